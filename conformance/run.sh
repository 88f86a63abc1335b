#!/usr/bin/env bash
# Black-box TAXII 2.1 conformance suite. See conformance/README.md.
#
#   conformance/run.sh                          # Concordia (release binary), fresh SQLite database
#   conformance/run.sh --target medallion       # medallion 3.0.0, the OASIS reference server
#   conformance/run.sh --url URL --profile FILE # any server that is already running
#   conformance/run.sh --via-proxy              # Concordia behind nginx terminating TLS (public_url set)
#   conformance/run.sh --mtls                   # Concordia serving HTTPS itself, client certificates optional
#                                               # (throwaway CA; partner certholder's certificate in the profile)
#
# Anything after `--` (or any unknown argument) is passed to pytest, e.g. `-- -k pagination -x`.
#
# Environment: CONFORMANCE_VENV (default /var/tmp/concordia-conformance-venv), CONFORMANCE_PYTHON
# (default python3.11), CONCORDIA_BIN (binary to test; built with cargo when unset and missing),
# CARGO_TARGET_DIR, CONFORMANCE_KEEP_TMP=1 (keep the temp dir with logs and database),
# CONFORMANCE_DATABASE_URL (an empty database for Concordia, e.g. postgres://...; default SQLite).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${CONFORMANCE_VENV:-/var/tmp/concordia-conformance-venv}"
PYTHON="${CONFORMANCE_PYTHON:-python3.11}"

target=concordia
via_proxy=0
mtls=0
url=""
profile=""
pytest_args=()

usage() { sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "run.sh: $*" >&2; exit 2; }

while (($#)); do
  case "$1" in
    --target) target="${2:?--target needs a value}"; shift 2 ;;
    --target=*) target="${1#*=}"; shift ;;
    --url) url="${2:?--url needs a value}"; shift 2 ;;
    --url=*) url="${1#*=}"; shift ;;
    --profile) profile="${2:?--profile needs a value}"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --via-proxy) via_proxy=1; shift ;;
    --mtls) mtls=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; pytest_args+=("$@"); break ;;
    *) pytest_args+=("$1"); shift ;;
  esac
done

if [[ -n $url || -n $profile ]]; then
  [[ -n $url && -n $profile ]] || die "--url and --profile go together"
  target=external
  profile="$(cd "$(dirname "$profile")" && pwd)/$(basename "$profile")"
  [[ -f $profile ]] || die "no such profile: $profile"
fi
case "$target" in concordia|medallion|external) ;; *) die "unknown target: $target (concordia|medallion)" ;; esac
if ((via_proxy)); then
  [[ $target == concordia ]] || die "--via-proxy runs Concordia behind nginx; it does not combine with --target or --url"
  command -v nginx >/dev/null || die "--via-proxy needs nginx (apt-get install nginx-light)"
  command -v openssl >/dev/null || die "--via-proxy needs openssl"
fi
if ((mtls)); then
  [[ $target == concordia ]] || die "--mtls runs Concordia with client certificates; it does not combine with --target or --url"
  ((via_proxy == 0)) || die "--mtls and --via-proxy do not combine (nginx would terminate the client's TLS)"
  command -v openssl >/dev/null || die "--mtls needs openssl"
fi

# ---- virtualenv -----------------------------------------------------------------------------
req_files=("$HERE/requirements.txt")
[[ $target == medallion ]] && req_files+=("$HERE/requirements-medallion.txt")
if [[ ! -x $VENV/bin/python ]]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set CONFORMANCE_PYTHON)"
  echo "run.sh: creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$VENV is not a Python >= 3.11 virtualenv (tomllib); remove it or set CONFORMANCE_VENV"
for req in "${req_files[@]}"; do
  stamp="$VENV/.installed-$(basename "$req")"
  sum="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ ! -f $stamp || "$(cat "$stamp")" != "$sum" ]]; then
    echo "run.sh: installing $(basename "$req") into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$sum" > "$stamp"
  fi
done
PY="$VENV/bin/python"

# ---- temp dir and server lifecycle ----------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/taxii-conformance.XXXXXX")"
server_pid=""
proxy_pid=""
pytest_pid=""
rc=1

stop_server() {
  if [[ -n $proxy_pid ]] && kill -0 "$proxy_pid" 2>/dev/null; then
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  fi
  proxy_pid=""
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

cleanup() {
  local status=$?
  if [[ -n $pytest_pid ]]; then
    kill "$pytest_pid" 2>/dev/null || true
    wait "$pytest_pid" 2>/dev/null || true
  fi
  stop_server
  if [[ ${CONFORMANCE_KEEP_TMP:-0} == 1 ]]; then
    echo "run.sh: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

server_log_tail() {
  if [[ -f $WORK/server.log ]]; then
    echo "---- last lines of the server log ($WORK/server.log) ----" >&2
    tail -n 40 "$WORK/server.log" >&2 || true
  fi
}

random_secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))'; }

start_concordia() {
  local bin="${CONCORDIA_BIN:-}"
  if [[ -z $bin ]]; then
    bin="${CARGO_TARGET_DIR:-$REPO/target}/release/concordia"
    if [[ ! -x $bin ]]; then
      echo "run.sh: building $bin (cargo build --release)" >&2
      (cd "$REPO" && cargo build --release)
    fi
  fi
  [[ -x $bin ]] || die "Concordia binary not found or not executable: $bin"
  # CONFORMANCE_DATABASE_URL: an empty database to run Concordia on (e.g. PostgreSQL);
  # default: a fresh SQLite file in the temp dir.
  local db="${CONFORMANCE_DATABASE_URL:-sqlite://$WORK/concordia.db}"
  local port; port="$(free_port)"
  local cli=("$bin" --database-url "$db")
  # With --via-proxy, partners reach Concordia through nginx on https://127.0.0.1:<proxy port>:
  # that is its public URL, and the suite talks to the proxy only.
  local base="http://127.0.0.1:$port" serve_args=() health_args=()
  local health="http://127.0.0.1:$port/healthz"
  if ((via_proxy)); then
    proxy_port="$(free_port)"
    base="https://127.0.0.1:$proxy_port"
    serve_args=(--public-url "$base")
  fi
  # With --mtls, Concordia serves HTTPS itself and asks for a client certificate (optional, so
  # Basic and API keys keep working on the same port); the suite trusts the throwaway CA.
  if ((mtls)); then
    make_mtls_certs
    base="https://127.0.0.1:$port"
    serve_args=(--tls-cert "$WORK/tls/server.crt" --tls-key "$WORK/tls/server.key"
                --tls-client-ca "$WORK/tls/ca.crt" --client-auth optional)
    health="$base/healthz"
    health_args=(--cafile "$WORK/tls/ca.crt")
    export REQUESTS_CA_BUNDLE="$WORK/tls/ca.crt"
  fi

  "${cli[@]}" apply "$HERE/concordia-policy.toml" > "$WORK/apply.log" 2>&1 \
    || { cat "$WORK/apply.log" >&2; die "concordia apply failed"; }

  {
    echo "base = \"$HERE/profiles/concordia.toml\""
    echo
    echo "[server]"
    echo "base_url = \"$base\""
    echo
  } > "$WORK/profile.toml"
  local role pw key
  for role in writer reader outsider writeonly; do
    pw="$(random_secret)"
    printf '%s' "$pw" | "${cli[@]}" credential add "$role" --password-stdin >> "$WORK/apply.log" 2>&1 \
      || { cat "$WORK/apply.log" >&2; die "credential add $role failed"; }
    printf '[credentials.%s]\npassword = "%s"\n\n' "$role" "$pw" >> "$WORK/profile.toml"
  done
  key="$("${cli[@]}" credential add keyholder --api-key 2>> "$WORK/apply.log" | tail -n 1 | tr -d '[:space:]')" \
    || { cat "$WORK/apply.log" >&2; die "credential add keyholder --api-key failed"; }
  [[ -n $key ]] || die "credential add keyholder --api-key printed no key"
  printf '[credentials.partner]\napi_key = "%s"\n' "$key" >> "$WORK/profile.toml"
  if ((mtls)); then
    printf '\n[credentials.certholder]\ncert = "%s"\nkey = "%s"\n' \
      "$WORK/tls/certholder.crt" "$WORK/tls/certholder.key" >> "$WORK/profile.toml"
  fi

  # Housekeeping every second: the retention collection's purge is seen within the test.
  CONCORDIA_FEED_HOUSEKEEPING_SECONDS=1 \
    "${cli[@]}" serve --listen "127.0.0.1:$port" "${serve_args[@]}" > "$WORK/server.log" 2>&1 &
  server_pid=$!
  "$PY" "$HERE/tools/wait_http.py" "$health" --timeout 30 --pid "$server_pid" "${health_args[@]}" \
    || { server_log_tail; die "Concordia did not become healthy"; }
  if ((via_proxy)); then
    start_proxy "$port" "$proxy_port"
  fi
  profile="$WORK/profile.toml"
}

# --mtls: a throwaway CA in $WORK/tls that signs Concordia's server certificate (127.0.0.1) and
# the client certificate of partner certholder (subject CN=certholder.conformance.invalid,
# O=Conformance, extendedKeyUsage clientAuth), which concordia-policy.toml maps to certholder.
make_mtls_certs() {
  local d="$WORK/tls"
  mkdir -p "$d"
  cat > "$d/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:certholder.conformance.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  {
    openssl req -config "$d/openssl.cnf" -x509 "${ec[@]}" -days 2 -extensions ca \
      -subj "/O=Conformance/CN=Conformance throwaway CA" -keyout "$d/ca.key" -out "$d/ca.crt" &&
    openssl req -config "$d/openssl.cnf" -new "${ec[@]}" -subj /CN=127.0.0.1 \
      -keyout "$d/server.key" -out "$d/server.csr" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -CAserial "$d/ca.srl" -days 2 -extfile "$d/openssl.cnf" -extensions server -out "$d/server.crt" &&
    openssl req -config "$d/openssl.cnf" -new "${ec[@]}" \
      -subj "/O=Conformance/CN=certholder.conformance.invalid" \
      -keyout "$d/certholder.key" -out "$d/certholder.csr" &&
    openssl x509 -req -in "$d/certholder.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAserial "$d/ca.srl" \
      -days 2 -extfile "$d/openssl.cnf" -extensions client -out "$d/certholder.crt"
  } > "$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "openssl could not make the mTLS certificates"; }
}

# nginx terminating TLS on $2 in front of Concordia on $1, with a throwaway certificate for
# 127.0.0.1 that the suite trusts (REQUESTS_CA_BUNDLE).
start_proxy() {
  local upstream=$1 port=$2
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/proxy.key" -out "$WORK/proxy.crt" 2>/dev/null \
    || die "openssl could not make the proxy certificate"
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  # Concordia enforces each API root's max_content_length itself (with a TAXII 413).
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $WORK/proxy.crt;
    ssl_certificate_key $WORK/proxy.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://127.0.0.1:$upstream;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
NGINX
  nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" > "$WORK/nginx/stdout.log" 2>&1 &
  proxy_pid=$!
  "$PY" "$HERE/tools/wait_http.py" "https://127.0.0.1:$port/healthz" --timeout 30 --pid "$proxy_pid" \
    --cafile "$WORK/proxy.crt" || { cat "$WORK/nginx/error.log" >&2 || true; die "nginx did not start"; }
  export REQUESTS_CA_BUNDLE="$WORK/proxy.crt"
  echo "run.sh: nginx terminates TLS on https://127.0.0.1:$port in front of Concordia on 127.0.0.1:$upstream" >&2
}

start_medallion() {
  local port; port="$(free_port)"
  local writer
  writer="$("$PY" "$HERE/tools/medallion_setup.py" "$WORK" "$port" "$HERE/profiles/medallion.toml")"
  local user pw
  user="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["writer"][0])' "$writer")"
  pw="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["writer"][1])' "$writer")"
  (cd "$WORK" && exec "$VENV/bin/medallion" --host 127.0.0.1 --port "$port" --log-level WARN \
      "$WORK/medallion-config.json") > "$WORK/server.log" 2>&1 &
  server_pid=$!
  "$PY" "$HERE/tools/wait_http.py" "http://127.0.0.1:$port/taxii2/" --timeout 30 --pid "$server_pid" \
    --user "$user" --password "$pw" || { server_log_tail; die "medallion did not start"; }
  profile="$WORK/profile.toml"
}

case "$target" in
  concordia) start_concordia ;;
  medallion) start_medallion ;;
  external) export CONFORMANCE_BASE_URL="$url" ;;
esac

# ---- run the suite --------------------------------------------------------------------------
echo "run.sh: target=$target$( ((via_proxy)) && echo ' (via nginx, TLS)')$( ((mtls)) && echo ' (HTTPS, client certificates optional)') profile=$profile" >&2
set +e
# pytest runs in the background so that a signal to this script is handled at once (wait is
# interruptible, a foreground child is not); cleanup() stops it together with the server.
(cd "$HERE" && CONFORMANCE_PROFILE="$profile" PYTHONDONTWRITEBYTECODE=1 \
   exec "$PY" -m pytest --rootdir="$HERE" -c "$HERE/pytest.ini" -rfExX "${pytest_args[@]}") <&0 &
pytest_pid=$!
wait "$pytest_pid"
rc=$?
pytest_pid=""
set -e
if [[ $target != external ]]; then
  if [[ -n $server_pid ]] && ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: the server died during the run" >&2
    server_log_tail
    ((rc == 0)) && rc=1
  elif ((rc != 0)); then
    server_log_tail
  fi
fi
stop_server
echo "run.sh: target=$target pytest exit code $rc" >&2
exit "$rc"
