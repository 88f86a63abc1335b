#!/usr/bin/env bash
# Real-browser tests of the operator console (issue 15): Playwright (playwright-core) driving
# Debian's Chromium against a freshly provisioned Concordia. Builds nothing.
#
#   tests/browser/run.sh [-- NODE_TEST_ARGS...]    e.g. -- --test-name-pattern=revoke
#
# Needs: the release binary, node (>= 20) with `npm ci` done in tests/browser, /usr/bin/chromium
# (apt-get install chromium), curl.
#
# Env: CONCORDIA_BIN (default ${CARGO_TARGET_DIR:-/var/tmp/concordia-target}/release/concordia),
#      SCREENSHOT_DIR (default /tmp/concordia-console-screenshots; a full-page PNG per journey step,
#      plus failed-*.png and the server logs when a test fails), CHROMIUM (default /usr/bin/chromium),
#      BROWSER_TESTS_KEEP_TMP=1 (keep the temp dir with the databases and server logs).
#
# It provisions two fresh SQLite databases from tests/browser/policy.toml (partner passwords, API
# keys, an operator; a few STIX objects written as cert-alpha over TAXII), starts two servers with
# the console on (the second with a 2 s idle timeout, for the session-expiry test, and the console
# on a listener of its own, CONCORDIA_CONSOLE_LISTEN), runs
# `node --test console.test.mjs`, and stops the servers on exit. The last line is the verdict.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${CONCORDIA_BIN:-${CARGO_TARGET_DIR:-/var/tmp/concordia-target}/release/concordia}"
SCREENSHOT_DIR="${SCREENSHOT_DIR:-/tmp/concordia-console-screenshots}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
IDLE_TIMEOUT=2

die() { echo "run.sh: $*" >&2; exit 2; }
[[ ${1:-} == -- ]] && shift
[[ -x $BIN ]] || die "no Concordia binary at $BIN (cargo build --release, or set CONCORDIA_BIN)"
[[ -x $CHROMIUM ]] || die "no Chromium at $CHROMIUM (apt-get install chromium)"
command -v node >/dev/null || die "node not found"
command -v curl >/dev/null || die "curl not found"
[[ -f $HERE/node_modules/playwright-core/package.json ]] || die "playwright-core missing: run 'npm ci' in $HERE"
"$BIN" operator --help >/dev/null 2>&1 || die "$BIN has no 'operator' command (a binary without the console?)"

mkdir -p "$SCREENSHOT_DIR"
SCREENSHOT_DIR="$(cd "$SCREENSHOT_DIR" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/concordia-browser.XXXXXX")"
pids=()

stop_servers() {
  local pid
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  local status=$?
  stop_servers
  if ((status != 0)); then
    for log in "$WORK"/*.log; do [[ -f $log ]] && cp "$log" "$SCREENSHOT_DIR/server-$(basename "$log")"; done
  fi
  if [[ ${BROWSER_TESTS_KEEP_TMP:-0} == 1 ]]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

secret() { node -e 'process.stdout.write(require("crypto").randomBytes(18).toString("base64url"))'; }

# provision NAME: a fresh database $WORK/NAME.db with the policy, credentials and an operator.
# Sets the globals DB and CLI.
declare -A PASSWORD
OPERATOR=console-op
OPERATOR_PASSWORD="$(secret)"
for p in cert-alpha cert-bravo cert-charlie; do PASSWORD[$p]="$(secret)"; done
provision() {
  local name="$1" log="$WORK/$1-provision.log"
  DB="sqlite://$WORK/$name.db"
  CLI=("$BIN" --database-url "$DB")
  "${CLI[@]}" apply "$HERE/policy.toml" >> "$log" 2>&1 || { cat "$log" >&2; die "apply failed"; }
  local p
  for p in cert-alpha cert-bravo cert-charlie; do
    printf '%s' "${PASSWORD[$p]}" | "${CLI[@]}" credential add "$p" --password-stdin >> "$log" 2>&1 \
      || { cat "$log" >&2; die "credential add $p failed"; }
  done
  printf '%s' "$OPERATOR_PASSWORD" | "${CLI[@]}" operator add "$OPERATOR" --password-stdin >> "$log" 2>&1 \
    || { cat "$log" >&2; die "operator add failed"; }
}
# api_key PARTNER LABEL [ARGS...]: prints a new API key of PARTNER.
api_key() {
  local key partner="$1" label="$2"
  shift 2
  key="$("${CLI[@]}" credential add "$partner" --api-key --label "$label" "$@" 2>> "$WORK/main-provision.log" | tail -n 1 | tr -d '[:space:]')"
  [[ $key == cnc_* ]] || die "credential add $partner --api-key printed no key"
  printf '%s' "$key"
}

# start NAME [ENV=VALUE...]: starts a server with the console on; sets PORT.
start() {
  local name="$1"; shift
  local log="$WORK/$name-server.log"
  env CONCORDIA_CONSOLE=true "$@" "${CLI[@]}" serve --listen 127.0.0.1:0 > "$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  PORT=""
  for _ in $(seq 300); do
    PORT="$(sed -n 's#^.*concordia listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*$#\1#p' "$log" | head -n 1)"
    [[ -n $PORT ]] && break
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$log" >&2; die "the $name server exited"; }
    sleep 0.1
  done
  [[ -n $PORT ]] || { tail -n 40 "$log" >&2; die "the $name server printed no 'concordia listening on' line in 30 s"; }
  CONSOLE_PORT="$PORT"
  if [[ " $* " == *" CONCORDIA_CONSOLE_LISTEN="* ]]; then
    CONSOLE_PORT=""
    for _ in $(seq 100); do
      CONSOLE_PORT="$(sed -n 's#^.*concordia console listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*$#\1#p' "$log" | head -n 1)"
      [[ -n $CONSOLE_PORT ]] && break
      sleep 0.1
    done
    [[ -n $CONSOLE_PORT ]] || { tail -n 40 "$log" >&2; die "the $name server printed no 'concordia console listening on' line"; }
  fi
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" || { tail -n 40 "$log" >&2; die "the $name server is not healthy"; }
}

# ---- the main server ------------------------------------------------------------------------
provision main
MAIN_DB="$DB"
REVOKE_KEY="$(api_key cert-bravo revoke-me)"      # revoked through the console (journey 3)
EXPIRE_KEY="$(api_key cert-alpha expire-me)"      # expired through the console
CSRF_KEY="$(api_key cert-alpha csrf-target)"      # a forged cross-site POST must not revoke it
api_key cert-charlie expires-soon --expires "$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)" >/dev/null  # on the overview
start main
MAIN_PORT="$PORT"

# A few STIX objects, written as cert-alpha over TAXII.
C_ALLIANCE=0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6
C_BILATERAL=1e2f3a4b-5c6d-4e7f-8091-a2b3c4d5e6f7
C_NATIONAL=2f3a4b5c-6d7e-4f80-91a2-b3c4d5e6f708
OBJ_INDICATOR=indicator--6b1f9c3e-2d4a-4c8b-9e7f-1a2b3c4d5e01
OBJ_MALWARE=malware--6b1f9c3e-2d4a-4c8b-9e7f-1a2b3c4d5e02
OBJ_BILATERAL=indicator--6b1f9c3e-2d4a-4c8b-9e7f-1a2b3c4d5e03
OBJ_NATIONAL=indicator--6b1f9c3e-2d4a-4c8b-9e7f-1a2b3c4d5e04
TLP_GREEN=marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da
indicator() { # ID NAME DOMAIN [MARKING]
  local refs=""
  [[ -n ${4:-} ]] && refs=",\"object_marking_refs\":[\"$4\"]"
  printf '{"type":"indicator","spec_version":"2.1","id":"%s","created":"2026-03-01T10:00:00.000Z","modified":"2026-03-01T10:00:00.000Z","name":"%s","pattern":"[domain-name:value = '"'"'%s'"'"']","pattern_type":"stix","valid_from":"2026-03-01T00:00:00Z"%s}' "$1" "$2" "$3" "$refs"
}
post_objects() { # ROOT COLLECTION ENVELOPE
  local out="$WORK/post.json" code
  code="$(curl -sS -o "$out" -w '%{http_code}' -u "cert-alpha:${PASSWORD[cert-alpha]}" \
    -H 'Content-Type: application/taxii+json;version=2.1' -H 'Accept: application/taxii+json;version=2.1' \
    --data-binary "$3" "http://127.0.0.1:$MAIN_PORT/$1/collections/$2/objects/")"
  [[ $code == 202 ]] || { cat "$out" >&2; die "POST /$1/collections/$2/objects/ answered $code"; }
  grep -q '"failure_count":0' "$out" || { cat "$out" >&2; die "POST /$1/collections/$2/objects/ stored not everything"; }
}
post_objects hub "$C_ALLIANCE" "{\"objects\":[$(indicator "$OBJ_INDICATOR" "C2 domain of the spring campaign" c2.spring.example "$TLP_GREEN"),{\"type\":\"malware\",\"spec_version\":\"2.1\",\"id\":\"$OBJ_MALWARE\",\"created\":\"2026-03-01T10:00:00.000Z\",\"modified\":\"2026-03-01T10:00:00.000Z\",\"name\":\"Poison Ivy\",\"is_family\":true}]}"
post_objects hub "$C_BILATERAL" "{\"objects\":[$(indicator "$OBJ_BILATERAL" "Bilateral lead" lead.bilateral.example)]}"
post_objects national "$C_NATIONAL" "{\"objects\":[$(indicator "$OBJ_NATIONAL" "National sinkhole" sinkhole.national.example)]}"

# ---- a second server: a short idle timeout (session expiry), the console on its own listener ---
provision idle
start idle CONCORDIA_CONSOLE_IDLE_TIMEOUT_SECONDS="$IDLE_TIMEOUT" CONCORDIA_CONSOLE_LISTEN=127.0.0.1:0
IDLE_PORT="$PORT"
IDLE_CONSOLE_PORT="$CONSOLE_PORT"

# ---- the tests --------------------------------------------------------------------------------
export CONCORDIA_FIXTURE="$WORK/fixture.json"
F_BIN="$BIN" F_MAIN_DB="$MAIN_DB" F_MAIN_PORT="$MAIN_PORT" F_IDLE_PORT="$IDLE_PORT" F_IDLE_CONSOLE_PORT="$IDLE_CONSOLE_PORT" F_IDLE_TIMEOUT="$IDLE_TIMEOUT" \
F_OPERATOR="$OPERATOR" F_OPERATOR_PASSWORD="$OPERATOR_PASSWORD" F_POLICY="$HERE/policy.toml" \
F_PW_ALPHA="${PASSWORD[cert-alpha]}" F_PW_BRAVO="${PASSWORD[cert-bravo]}" F_PW_CHARLIE="${PASSWORD[cert-charlie]}" \
F_REVOKE_KEY="$REVOKE_KEY" F_EXPIRE_KEY="$EXPIRE_KEY" F_CSRF_KEY="$CSRF_KEY" \
F_C_ALLIANCE="$C_ALLIANCE" F_C_BILATERAL="$C_BILATERAL" F_C_NATIONAL="$C_NATIONAL" \
F_OBJ_INDICATOR="$OBJ_INDICATOR" F_OBJ_MALWARE="$OBJ_MALWARE" F_OBJ_BILATERAL="$OBJ_BILATERAL" F_OBJ_NATIONAL="$OBJ_NATIONAL" \
node -e '
const e = process.env;
const fixture = {
  bin: e.F_BIN, databaseUrl: e.F_MAIN_DB, policyPath: e.F_POLICY,
  // The browser uses localhost (Secure cookies are accepted on http://localhost); node uses 127.0.0.1.
  consoleUrl: `http://localhost:${e.F_MAIN_PORT}`, taxiiUrl: `http://127.0.0.1:${e.F_MAIN_PORT}`,
  // The second server serves the console on its own listener (CONCORDIA_CONSOLE_LISTEN).
  idleConsoleUrl: `http://localhost:${e.F_IDLE_CONSOLE_PORT}`, idleTaxiiUrl: `http://127.0.0.1:${e.F_IDLE_PORT}`,
  idleTimeoutSeconds: Number(e.F_IDLE_TIMEOUT),
  operator: { name: e.F_OPERATOR, password: e.F_OPERATOR_PASSWORD },
  passwords: { "cert-alpha": e.F_PW_ALPHA, "cert-bravo": e.F_PW_BRAVO, "cert-charlie": e.F_PW_CHARLIE },
  apiKeys: { revoke: { partner: "cert-bravo", label: "revoke-me", key: e.F_REVOKE_KEY },
             expire: { partner: "cert-alpha", label: "expire-me", key: e.F_EXPIRE_KEY },
             csrf: { partner: "cert-alpha", label: "csrf-target", key: e.F_CSRF_KEY } },
  collections: {
    alliance: { id: e.F_C_ALLIANCE, root: "hub", title: "Alliance indicators" },
    bilateral: { id: e.F_C_BILATERAL, root: "hub", title: "Alpha-Bravo bilateral" },
    national: { id: e.F_C_NATIONAL, root: "national", title: "Alpha national" },
  },
  objects: { indicator: e.F_OBJ_INDICATOR, malware: e.F_OBJ_MALWARE, bilateral: e.F_OBJ_BILATERAL, national: e.F_OBJ_NATIONAL },
};
require("fs").writeFileSync(process.env.CONCORDIA_FIXTURE, JSON.stringify(fixture, null, 2));
'

echo "run.sh: console on http://localhost:$MAIN_PORT/console/; second server: TAXII on port $IDLE_PORT, console on port $IDLE_CONSOLE_PORT"
echo "screenshots: $SCREENSHOT_DIR"
rc=0
(cd "$HERE" && SCREENSHOT_DIR="$SCREENSHOT_DIR" CHROMIUM="$CHROMIUM" \
  node --test --test-reporter=spec --test-timeout=120000 "$@" console.test.mjs) || rc=$?
if ((rc == 0)); then
  echo "browser tests: passed (screenshots in $SCREENSHOT_DIR)"
else
  echo "browser tests: FAILED (exit $rc; screenshots and server logs in $SCREENSHOT_DIR)"
fi
exit "$rc"
