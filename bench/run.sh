#!/usr/bin/env bash
# Concordia performance benchmark. See bench/README.md.
#
#   bench/run.sh --quick                      # 10k objects, Concordia on SQLite only (CI smoke, < 1 min)
#   bench/run.sh                              # 10k, 100k and 1M objects, Concordia on SQLite
#   bench/run.sh --sizes 10k,100k             # choose the sizes
#   bench/run.sh --postgres URL               # also Concordia on PostgreSQL (URL of an empty database,
#                                             #   which is wiped before every size)
#   bench/run.sh --peers                      # also medallion 3.0.0 and OpenTAXII (PyPI, venvs in /var/tmp)
#   bench/run.sh --runs 3                     # measure Concordia 3 times per size; the table shows medians
#   bench/run.sh --peers-from bench/peers-2026-11-26.jsonl
#                                             # the peers' figures from an earlier run's raw results, for
#                                             #   the sizes measured, instead of running them (~40 min)
#
# Options: --duration S (seconds per filtered workload, default 10; --quick: 4), --connections N (16),
# --peer-cap S (longest a peer may spend on one ingest or full read, default 120), --peer-timeout S
# (per-request timeout for the peers, default 45), --out FILE (default bench/results.md),
# --keep (keep the work directory with databases and logs), --runs N (default 1; at each size the
# Concordia servers run N times in a row, alternating backends: SQLite run 1, PostgreSQL run 1, SQLite
# run 2, ..., each on a fresh database; every Concordia figure in the table is then the median of the
# N runs, followed by its range (min-max); checks show the worst run; the peers run once).
# Environment: CARGO_TARGET_DIR (default /var/tmp/concordia-target), BENCH_DATA_DIR (generated data
# sets, cached; default /var/tmp/concordia-bench-data), BENCH_WORK_DIR (parent of the work
# directory; default /var/tmp), BENCH_MEDALLION_VENV, BENCH_OPENTAXII_VENV, BENCH_PYTHON (python3.11).
#
# Every server is started on 127.0.0.1 and stopped at exit; every driver run is bounded in time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/concordia-target}"
DATA_DIR="${BENCH_DATA_DIR:-/var/tmp/concordia-bench-data}"
MED_VENV="${BENCH_MEDALLION_VENV:-/var/tmp/concordia-bench-medallion-venv}"
OT_VENV="${BENCH_OPENTAXII_VENV:-/var/tmp/concordia-bench-opentaxii-venv}"
PYTHON="${BENCH_PYTHON:-python3.11}"
SEED=2026

sizes="10k,100k,1M"
quick=0
peers=0
peers_from=""
pg_url=""
duration=""
connections=16
peer_cap=120
peer_timeout=45
out="$HERE/results.md"
keep=0
runs=1
cmdline="bench/run.sh $*"

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
die() { echo "run.sh: $*" >&2; exit 2; }
log() { printf '\n==== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)" >&2; }

while (($#)); do
  case "$1" in
    --quick) quick=1; shift ;;
    --peers) peers=1; shift ;;
    --peers-from) peers_from="${2:?--peers-from needs a file}"; shift 2 ;;
    --sizes) sizes="${2:?--sizes needs a value}"; shift 2 ;;
    --postgres) pg_url="${2:?--postgres needs a URL}"; shift 2 ;;
    --duration) duration="${2:?}"; shift 2 ;;
    --connections) connections="${2:?}"; shift 2 ;;
    --peer-cap) peer_cap="${2:?}"; shift 2 ;;
    --peer-timeout) peer_timeout="${2:?}"; shift 2 ;;
    --out) out="${2:?}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --runs) runs="${2:?--runs needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
if ((quick)); then
  sizes="10k"
  ((peers)) && die "--quick runs Concordia on SQLite only; drop --peers"
  [[ -n $pg_url ]] && die "--quick runs Concordia on SQLite only; drop --postgres"
  duration="${duration:-4}"
fi
duration="${duration:-10}"
if [[ -n $peers_from ]]; then
  ((peers)) && die "--peers runs the peers, --peers-from takes their figures from a file: choose one"
  [[ -r $peers_from ]] || die "cannot read $peers_from"
fi
for v in "$duration" "$connections" "$peer_cap" "$peer_timeout"; do
  [[ $v =~ ^[0-9]+$ ]] && ((v > 0 && v <= 3600)) || die "durations and counts must be integers in 1..3600, got $v"
done
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 1 || runs > 100)); then
  die "--runs must be an integer in 1..100, got $runs"
fi

size_count() {
  case "$1" in
    *[kK]) echo $(( ${1%[kK]} * 1000 )) ;;
    *[mM]) echo $(( ${1%[mM]} * 1000000 )) ;;
    *) [[ $1 =~ ^[0-9]+$ ]] || die "bad size $1"; echo "$1" ;;
  esac
}
counts=()
IFS=',' read -ra size_list <<< "$sizes"
for s in "${size_list[@]}"; do
  n="$(size_count "$s")"
  ((n >= 1000 && n <= 10000000)) || die "sizes must be between 1k and 10M objects, got $s"
  counts+=("$n")
done

for tool in curl timeout; do command -v "$tool" >/dev/null || die "$tool is needed"; done
if [[ -n $pg_url ]]; then
  command -v psql >/dev/null || die "--postgres needs psql (to wipe the database between sizes)"
  [[ $pg_url == postgres://* || $pg_url == postgresql://* ]] || die "--postgres needs a postgres:// URL"
fi

mkdir -p "$DATA_DIR" "$(dirname "$out")"
WORK="$(mktemp -d "${BENCH_WORK_DIR:-/var/tmp}/concordia-bench.XXXXXX")"
# Raw driver output, written as the run goes (a run that stops half-way leaves what it measured).
RESULTS="${out%.md}.jsonl"
: > "$RESULTS"
run_start=$(date +%s)
run_date="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
run_commit="$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# (the run's own output files do not count: results.jsonl is emptied just above)
(cd "$REPO" && git diff --quiet HEAD -- . ':!bench/results.md' ':!bench/results.jsonl' 2>/dev/null) \
  || run_commit+=" with uncommitted changes"

# ---- server lifecycle -------------------------------------------------------------------------
server_pid=""
stop_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    local children c
    children="$(ps -o pid= --ppid "$server_pid" 2>/dev/null || true)"   # gunicorn's workers
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    for c in $children; do kill -KILL "$c" 2>/dev/null || true; done
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  local status=$?
  stop_server
  if ((keep)); then
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
  local p
  for p in $(seq 18480 18580); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port in 18480-18580"
}

wait_http() { # URL [curl options...]: up to 60 s, while the server lives
  local url="$1"; shift
  for _ in $(seq 600); do
    kill -0 "$server_pid" 2>/dev/null || return 1
    curl -sf -o /dev/null --max-time 2 "$@" "$url" && return 0
    sleep 0.1
  done
  return 1
}

server_log_tail() { [[ -f $1 ]] && tail -n 30 "$1" >&2 || true; }

# ---- build, data ------------------------------------------------------------------------------
log "build (release)"
(cd "$REPO" && cargo build --release -p concordia -p taxii-bench)
# Copies: a build by someone else in the same (shared) target directory must not swap the
# binaries in the middle of a run.
mkdir -p "$WORK/bin"
cp "$CARGO_TARGET_DIR/release/concordia" "$CARGO_TARGET_DIR/release/taxii-bench" "$WORK/bin/"
CONCORDIA="$WORK/bin/concordia"
BENCH="$WORK/bin/taxii-bench"

log "data: validate a sample with concordia validate"
"$BENCH" generate --count 2000 --seed "$SEED" --format envelopes --out "$WORK/sample.ndjson" >&2
mkdir -p "$WORK/sample"
split -l 1 -d -a 3 "$WORK/sample.ndjson" "$WORK/sample/envelope-"
"$CONCORDIA" validate "$WORK"/sample/envelope-* >&2 || die "generated data is not valid STIX 2.1"

# Data sets are deterministic (seed, count, generator version), so they are cached.
data_file() { echo "$DATA_DIR/stix-$1-seed$SEED-v1.jsonl"; }
for n in "${counts[@]}"; do
  f="$(data_file "$n")"
  if [[ ! -s $f || ! -s $f.json ]]; then
    log "data: generating $n objects"
    "$BENCH" generate --count "$n" --seed "$SEED" --out "$f.tmp" --json --tag size="$n" > "$f.json.tmp"
    mv "$f.tmp" "$f"
    mv "$f.json.tmp" "$f.json"
  fi
  cat "$f.json" >> "$RESULTS"
done

# ---- driver runs ------------------------------------------------------------------------------
failures=0
# The run number (1..--runs) of the server being measured; every line written to $RESULTS is tagged
# with it. The peers run once, as run 1.
run_no=1
# bench SERVER SIZE HARDCAP CMD ARGS...: one driver run, its JSON line appended to $RESULTS.
bench() {
  local server="$1" size="$2" cap="$3" cmd="$4"; shift 4
  local line rc=0
  line="$(timeout --kill-after=10 "$cap" "$BENCH" "$cmd" "$@" --json --tag server="$server" --tag size="$size" \
    --tag run="$run_no")" || rc=$?
  if [[ -n $line ]]; then
    echo "$line" >> "$RESULTS"
  else
    printf '{"cmd":"%s","ok":false,"failed":true,"exit":%d,"tags":{"server":"%s","size":"%s","run":"%s"}}\n' \
      "$cmd" "$rc" "$server" "$size" "$run_no" >> "$RESULTS"
  fi
  if ((rc != 0)); then
    echo "run.sh: taxii-bench $cmd against $server at $size (run $run_no) exited $rc" >&2
    [[ $server == concordia-* ]] && failures=$((failures + 1))
  fi
  last_line="$line"
}
json_field() { # JSON FIELD: a top-level number of a driver summary (no jq needed)
  sed -n "s/.*\"$2\":\([0-9][0-9.]*\).*/\1/p" <<< "$1" | head -n 1
}
note() { # SERVER SIZE TEXT
  printf '{"cmd":"note","tags":{"server":"%s","size":"%s","run":"%s"},"text":"%s"}\n' "$1" "$2" "$run_no" "$3" \
    >> "$RESULTS"
}

cpu_ticks() { # PID: CPU time (clock ticks) of the process and its children
  local total=0 p f a
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    f="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
    read -r -a a <<< "${f##*) }"
    total=$(( total + a[11] + a[12] ))   # utime, stime (fields 14 and 15)
  done
  echo "$total"
}
# settle SERVER SIZE BEFORE MAX: wait until the server has been idle (< 5 % of a core) for a second.
# A peer keeps computing the answers to requests the driver abandoned at its timeout; without this
# the next workload would measure that backlog.
settle() {
  local start=$SECONDS prev cur
  prev="$(cpu_ticks "$server_pid")"
  while (( SECONDS - start < $4 )); do
    sleep 1
    cur="$(cpu_ticks "$server_pid")"
    (( cur - prev <= 5 )) && return 0
    prev=$cur
  done
  note "$1" "$2" "still busy (abandoned requests) after waiting $4 s, when the $3 workload started"
}

# workloads SERVER SIZE URL API_ROOT C1 C4 PEER(0|1) RSS_FLAGS
# Order: ingest (1 client), ingest (4 clients), match[id], full read, full read in gzip (Concordia
# only), match[type], manifest: the
# workloads that make a slow peer fall over come last.
workloads() {
  local server="$1" n="$2" url="$3" root="$4" c1="$5" c4="$6" peer="$7" rss_flags="$8"
  local file; file="$(data_file "$n")"
  local t=(--url "$url" --api-root "$root")
  local cap_args=() timeout_args=() hard=7200 known stored4 settle_max=30 wl
  if ((peer)); then
    cap_args=(--max-seconds "$peer_cap")
    timeout_args=(--timeout "$peer_timeout")
    hard=$((peer_cap + peer_timeout + 120))
    settle_max=60
  fi
  local filtered_args=(--connections "$connections" --duration "$duration" "${timeout_args[@]}")
  local t0; t0=$(date +%s)
  local what="$server, $n objects"
  if ((runs > 1 && !peer)); then what+=" (run $run_no of $runs)"; fi
  log "$what: ingest, 1 client"
  bench "$server" "$n" "$hard" ingest "${t[@]}" --collection "$c1" --file "$file" --clients 1 \
    "${cap_args[@]}" "${timeout_args[@]}" >&2
  known="$(json_field "$last_line" stored)"; known="${known:-0}"
  settle "$server" "$n" "4-client ingest" "$settle_max"
  log "$what: ingest, 4 clients"
  bench "$server" "$n" "$hard" ingest "${t[@]}" --collection "$c4" --file "$file" --clients 4 \
    "${cap_args[@]}" "${timeout_args[@]}" >&2
  stored4="$(json_field "$last_line" stored)"
  if ((known == 0)); then
    note "$server" "$n" "nothing was stored: reads skipped"
  else
    for wl in id read readgz type manifest; do
      settle "$server" "$n" "$wl" "$settle_max"
      if [[ $wl == read ]]; then
        log "$what: full read ($known objects)"
        bench "$server" "$n" "$hard" read "${t[@]}" --collection "$c1" --file "$file" --known "$known" \
          --limit 1000 "${cap_args[@]}" "${timeout_args[@]}" >&2
      elif [[ $wl == readgz ]]; then
        # The peers do not compress (a gzip read of theirs would be the plain read again).
        ((peer)) && continue
        log "$what: full read with Accept-Encoding: gzip ($known objects)"
        bench "$server" "$n" "$hard" read "${t[@]}" --collection "$c1" --file "$file" --known "$known" \
          --limit 1000 --gzip >&2
      else
        log "$what: filtered reads ($wl), $connections connections, ${duration} s"
        bench "$server" "$n" $((duration + peer_timeout + 600)) filtered "${t[@]}" --collection "$c1" \
          --file "$file" --known "$known" --workload "$wl" "${filtered_args[@]}" >&2
      fi
    done
  fi
  # shellcheck disable=SC2086
  bench "$server" "$n" 60 rss --pid "$server_pid" $rss_flags >&2
  printf '{"cmd":"timing","tags":{"server":"%s","size":"%s","run":"%s"},"seconds":%d,"stored_1":%s,"stored_4":%s}\n' \
    "$server" "$n" "$run_no" $(( $(date +%s) - t0 )) "$known" "${stored4:-0}" >> "$RESULTS"
}

# ---- Concordia --------------------------------------------------------------------------------
C1="6b0a4f9e-7c1d-4e2a-9b3c-1d2e3f4a5b01"
C4="6b0a4f9e-7c1d-4e2a-9b3c-1d2e3f4a5b04"
cat > "$WORK/policy.toml" <<EOF
[discovery]
title = "taxii-bench"
default = "bench"

[[api_roots]]
name = "bench"
title = "Benchmark"
max_content_length = 104857600

[[partners]]
name = "bench"
title = "Benchmark driver"
# The driver is one partner sending as fast as 16 connections allow: no practical limit.
rate_limit = { requests_per_second = 10000000, burst = 10000000 }
write_limit = { objects_per_minute = 10000000 }

[[groups]]
name = "bench"
members = ["bench"]

[[collections]]
id = "$C1"
api_root = "bench"
title = "Bench, one client"
read = ["bench"]
write = ["bench"]

[[collections]]
id = "$C4"
api_root = "bench"
title = "Bench, four clients"
read = ["bench"]
write = ["bench"]
EOF

# The same, with a derived collection over the one-client collection (see `feeds`).
CF="6b0a4f9e-7c1d-4e2a-9b3c-1d2e3f4a5bf1"
cp "$WORK/policy.toml" "$WORK/policy-feed.toml"
cat >> "$WORK/policy-feed.toml" <<EOF

[[collections]]
id = "$CF"
api_root = "bench"
title = "Bench feed: indicators with confidence 50 or more"
read = ["bench"]
derived_from = ["$C1"]
[collections.filter]
types = ["indicator"]
confidence_min = 50
EOF

export TAXII_BENCH_USER=bench
TAXII_BENCH_PASSWORD="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export TAXII_BENCH_PASSWORD

run_concordia() { # BACKEND(sqlite|postgres) N: one run (number $run_no) on a fresh database
  local backend="$1" n="$2" db dir="$WORK/concordia-$1-$2" port
  if ((runs > 1)); then dir+="-run$run_no"; fi
  mkdir -p "$dir"
  if [[ $backend == sqlite ]]; then
    db="sqlite://$dir/concordia.db"
  else
    db="$pg_url"
    psql "$pg_url" -v ON_ERROR_STOP=1 -qc 'DROP SCHEMA IF EXISTS public CASCADE' -c 'CREATE SCHEMA public' >&2 \
      || die "cannot wipe the PostgreSQL database"
  fi
  "$CONCORDIA" --database-url "$db" apply "$WORK/policy.toml" > "$dir/apply.log" 2>&1 \
    || { cat "$dir/apply.log" >&2; die "concordia apply failed"; }
  printf '%s' "$TAXII_BENCH_PASSWORD" | "$CONCORDIA" --database-url "$db" credential add bench --password-stdin \
    >> "$dir/apply.log" 2>&1 || { cat "$dir/apply.log" >&2; die "concordia credential add failed"; }
  port="$(free_port)"
  RUST_LOG=warn "$CONCORDIA" --database-url "$db" serve --listen "127.0.0.1:$port" > "$dir/server.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$port/healthz" || { server_log_tail "$dir/server.log"; die "Concordia did not start"; }
  workloads "concordia-$backend" "$n" "http://127.0.0.1:$port" bench "$C1" "$C4" 0 ""
  feeds "concordia-$backend" "$n" "http://127.0.0.1:$port" "$db"
  if [[ $backend == sqlite ]]; then
    printf '{"cmd":"db","tags":{"server":"concordia-sqlite","size":"%s","run":"%s"},"bytes":%s}\n' "$n" "$run_no" \
      "$(du -cb "$dir"/concordia.db* | tail -n 1 | cut -f1)" >> "$RESULTS"
  fi
  stop_server
  # With several runs the databases would add up (2.8 GB per run at 1M objects): each is deleted once measured.
  if ((!keep)); then rm -f "$dir"/concordia.db*; fi
}

# feeds SERVER SIZE URL DB: the richer filters on the one-client collection, then a derived
# collection over it (indicators with confidence >= 50): the time `apply` takes to fill it from
# what is stored, a full read of it, and its type and manifest pages. Concordia only; after the
# peak RSS and wall time of the column were taken. Lines tagged feed=1.
feeds() {
  local server="$1" n="$2" url="$3" db="$4" file known t0 t1 what="$1, $2 objects"
  file="$(data_file "$n")"
  known="$(json_field "$(grep '"cmd":"ingest"' "$RESULTS" | grep "\"server\":\"$server\"" | grep "\"size\":\"$n\"" \
    | grep "\"run\":\"$run_no\"" | grep '"clients":1' | tail -n 1)" stored)"
  ((${known:-0} > 0)) || return 0
  if ((runs > 1)); then what+=" (run $run_no of $runs)"; fi
  local t=(--url "$url" --api-root bench)
  log "$what: richer filters (labels, confidence, tlp, created_by, rare_label, no_match, related), $connections connections"
  bench "$server" "$n" $((5 * duration + 600)) filtered "${t[@]}" --collection "$C1" --file "$file" --known "$known" \
    --workload labels,confidence,tlp,created_by,rare_label,no_match,related --connections "$connections" --duration "$duration" \
    --tag feed=1 >&2
  log "$what: derived collection: apply fills it"
  t0=$(date +%s%N)
  "$CONCORDIA" --database-url "$db" apply "$WORK/policy-feed.toml" > "$WORK/apply-feed.log" 2>&1 \
    || { cat "$WORK/apply-feed.log" >&2; die "concordia apply (feed) failed"; }
  t1=$(date +%s%N)
  printf '{"cmd":"feed_fill","tags":{"server":"%s","size":"%s","run":"%s","feed":"1"},"seconds":%s}\n' \
    "$server" "$n" "$run_no" "$(awk "BEGIN{printf \"%.3f\", ($t1 - $t0) / 1e9}")" >> "$RESULTS"
  # The server picks the policy up within policy_refresh_ms.
  for _ in $(seq 100); do
    curl -s -o /dev/null -w '%{http_code}' -u "bench:$TAXII_BENCH_PASSWORD" \
      -H 'Accept: application/taxii+json;version=2.1' "$url/bench/collections/$CF/" | grep -q 200 && break
    sleep 0.1
  done
  local sub=(--only-type indicator --min-confidence 50)
  log "$what: derived collection: full read"
  bench "$server" "$n" 7200 read "${t[@]}" --collection "$CF" --file "$file" --known "$known" --limit 1000 \
    "${sub[@]}" --tag feed=1 >&2
  log "$what: derived collection: filtered reads (type, manifest), $connections connections"
  bench "$server" "$n" $((2 * duration + 600)) filtered "${t[@]}" --collection "$CF" --file "$file" --known "$known" \
    --workload type,manifest --connections "$connections" --duration "$duration" "${sub[@]}" --tag feed=1 >&2
}

# ---- peers ------------------------------------------------------------------------------------
peer_versions=""
setup_peers() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set BENCH_PYTHON)"
  if [[ ! -x $MED_VENV/bin/medallion ]]; then
    log "medallion 3.0.0: virtualenv $MED_VENV"
    "$PYTHON" -m venv "$MED_VENV"
    "$MED_VENV/bin/pip" install -q --disable-pip-version-check medallion==3.0.0 >&2
  fi
  if [[ ! -x $OT_VENV/bin/gunicorn ]] || ! "$OT_VENV/bin/python" -c 'import opentaxii' 2>/dev/null; then
    log "OpenTAXII (latest) and gunicorn: virtualenv $OT_VENV"
    "$PYTHON" -m venv "$OT_VENV"
    "$OT_VENV/bin/pip" install -q --disable-pip-version-check opentaxii gunicorn >&2
  fi
  # OpenTAXII 0.9.3 answers every TAXII 2.1 POST with a 500 after storing the objects: the status
  # id is a uuid.UUID that json.dumps cannot serialise (with SQLAlchemy 1.4 and 2.x alike). The one
  # call is patched, idempotently.
  local ent
  ent="$("$OT_VENV/bin/python" -c 'import opentaxii.taxii2.entities as e; print(e.__file__)')"
  if grep -q '"id": self.id,' "$ent"; then
    sed -i 's/"id": self.id,/"id": str(self.id),  # patched by concordia bench\/run.sh/' "$ent"
  fi
  grep -q '"id": str(self.id),' "$ent" || die "could not patch OpenTAXII's Job.as_taxii2_dict in $ent"
  peer_versions="$("$MED_VENV/bin/pip" list --disable-pip-version-check 2>/dev/null | awk '$1=="medallion"{print "medallion " $2}'), $(
    "$OT_VENV/bin/pip" list --disable-pip-version-check 2>/dev/null \
      | awk 'tolower($1)=="opentaxii"||tolower($1)=="sqlalchemy"||tolower($1)=="gunicorn"||tolower($1)=="flask"{printf "%s %s, ", $1, $2}' \
      | sed 's/, $//')"
}

run_medallion() { # N
  local n="$1" dir="$WORK/medallion-$1" port c1=c0000000-0000-4000-8000-000000000001
  local c4=c0000000-0000-4000-8000-000000000004
  mkdir -p "$dir"
  "$PYTHON" "$HERE/peers.py" medallion "$dir" bench "$TAXII_BENCH_PASSWORD" "$c1" "$c4"
  port="$(free_port)"
  (cd "$dir" && exec "$MED_VENV/bin/medallion" --host 127.0.0.1 --port "$port" --log-level WARN \
     medallion-config.json) > "$dir/server.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$port/taxii2/" -u "bench:$TAXII_BENCH_PASSWORD" -H 'Accept: application/taxii+json;version=2.1' \
    || { server_log_tail "$dir/server.log"; die "medallion did not start"; }
  workloads medallion "$n" "http://127.0.0.1:$port" bench "$c1" "$c4" 1 ""
  stop_server
}

run_opentaxii() { # N
  local n="$1" dir="$WORK/opentaxii-$1" port ids root c1 c4
  mkdir -p "$dir"
  "$PYTHON" "$HERE/peers.py" opentaxii-config "$dir"
  ids="$(OPENTAXII_CONFIG="$dir/opentaxii.yml" "$OT_VENV/bin/python" "$HERE/peers.py" opentaxii-provision \
    bench "$TAXII_BENCH_PASSWORD" 2 2> "$dir/provision.log" | tail -n 1)" \
    || { cat "$dir/provision.log" >&2; die "OpenTAXII provisioning failed"; }
  root="$(sed -n 's/.*"api_root": "\([^"]*\)".*/\1/p' <<< "$ids")"
  c1="$(sed -n 's/.*"collections": \["\([^"]*\)", "\([^"]*\)"\].*/\1/p' <<< "$ids")"
  c4="$(sed -n 's/.*"collections": \["\([^"]*\)", "\([^"]*\)"\].*/\2/p' <<< "$ids")"
  [[ -n $root && -n $c1 && -n $c4 ]] || die "OpenTAXII provisioning printed $ids"
  port="$(free_port)"
  # gunicorn, OpenTAXII's documented deployment: one sync worker per core.
  OPENTAXII_CONFIG="$dir/opentaxii.yml" "$OT_VENV/bin/gunicorn" --workers 2 --timeout 600 \
    --bind "127.0.0.1:$port" opentaxii.http:app > "$dir/server.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$port/taxii2/" -u "bench:$TAXII_BENCH_PASSWORD" -H 'Accept: application/taxii+json;version=2.1' \
    || { server_log_tail "$dir/server.log"; die "OpenTAXII did not start"; }
  workloads opentaxii "$n" "http://127.0.0.1:$port" "$root" "$c1" "$c4" 1 "--children"
  stop_server
}

((peers)) && setup_peers

for n in "${counts[@]}"; do
  # Concordia --runs times in a row, the backends taking turns (SQLite run 1, PostgreSQL run 1,
  # SQLite run 2, ...), so that a slow spell of a shared machine does not fall on one backend only.
  for ((run_no = 1; run_no <= runs; run_no++)); do
    run_concordia sqlite "$n"
    if [[ -n $pg_url ]]; then run_concordia postgres "$n"; fi
  done
  run_no=1
  if ((peers)); then
    run_medallion "$n"
    run_opentaxii "$n"
  fi
done

# ---- report -----------------------------------------------------------------------------------
if [[ -n $peers_from ]]; then
  # The peers' lines for the sizes measured, and the line that says which run they come from.
  "${BENCH_REPORT_PYTHON:-python3}" - "$peers_from" "${counts[@]}" >> "$RESULTS" <<'PY'
import json, sys
sizes = set(sys.argv[2:])
for line in open(sys.argv[1]):
    r = json.loads(line)
    t = r.get("tags", {})
    if r.get("cmd") == "peers-run" or (t.get("server") in ("medallion", "opentaxii") and t.get("size") in sizes):
        print(json.dumps(r, separators=(",", ":")))
PY
fi
pg_version=""
[[ -n $pg_url ]] && pg_version="$(psql "$pg_url" -tAc 'SHOW server_version' 2>/dev/null | cut -d' ' -f1 || true)"
"${BENCH_REPORT_PYTHON:-python3}" "$HERE/report.py" "$RESULTS" --load "$load_start" --date "$run_date" --commit "$run_commit" \
  --command "${cmdline//$pg_url/URL}" --seconds $(( $(date +%s) - run_start )) --duration "$duration" \
  --connections "$connections" --peer-cap "$peer_cap" --peer-timeout "$peer_timeout" \
  --postgres-version "$pg_version" --peer-versions "$peer_versions" --repo "$REPO" > "$out"
log "wrote $out (raw results: $RESULTS) in $(( $(date +%s) - run_start )) s"
cat "$out"
if ((failures)); then
  echo "run.sh: $failures Concordia workload(s) failed their checks (see above)" >&2
  exit 1
fi
