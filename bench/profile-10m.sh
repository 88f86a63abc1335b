#!/usr/bin/env bash
# Where the time goes at 10M objects (SQLite): one 10M collection loaded by one client, then
# match[id], a full read and type pages, each with `perf record` on the server and /proc/vmstat
# before and after. Issue 13's profile (see bench/profile-10m.md). About 30 min and 15 GB of disk.
#
#   bench/profile-10m.sh WORK_DIR      # needs the release binaries and the 10M data file of run.sh
#
# Env: CARGO_TARGET_DIR (default /var/tmp/concordia-target), BENCH_DATA_DIR
# (default /var/tmp/concordia-bench-data), PORT (default 18710).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
W="${1:?usage: bench/profile-10m.sh WORK_DIR}"
BIN="${CARGO_TARGET_DIR:-/var/tmp/concordia-target}/release"
DATA="${BENCH_DATA_DIR:-/var/tmp/concordia-bench-data}/stix-10000000-seed2026-v1.jsonl"
PORT="${PORT:-18710}"
C1=6b0a4f9e-7c1d-4e2a-9b3c-1d2e3f4a5b01
[[ -f $DATA ]] || { echo "no $DATA: run bench/run.sh --sizes 10M once (it generates it)" >&2; exit 2; }
mkdir -p "$W"
cat > "$W/policy.toml" <<POLICY
[discovery]
title = "taxii-bench"
default = "bench"
[[api_roots]]
name = "bench"
title = "Benchmark"
max_content_length = 104857600
[[partners]]
name = "bench"
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
POLICY
export TAXII_BENCH_USER=bench TAXII_BENCH_PASSWORD="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
DB="sqlite://$W/concordia.db"
rm -f "$W"/concordia.db*
"$BIN/concordia" --database-url "$DB" apply "$W/policy.toml" > "$W/apply.log" 2>&1
printf '%s' "$TAXII_BENCH_PASSWORD" | "$BIN/concordia" --database-url "$DB" credential add bench --password-stdin >> "$W/apply.log" 2>&1
RUST_LOG=warn "$BIN/concordia" --database-url "$DB" serve --listen "127.0.0.1:$PORT" > "$W/server.log" 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null' EXIT
sleep 3
vm() { echo "$1 $(date -u +%T) $(grep -E '^(pgmajfault|pgpgin|pgfault) ' /proc/vmstat | tr '\n' ' ') $(grep -E '^(Cached|MemFree):' /proc/meminfo | tr -s ' ' | tr '\n' ' ') server_cpu_ticks=$(awk '{print $14+$15}' /proc/$SP/stat)" >> "$W/vmstat.log"; }
phase() { # NAME CMD...
  local name=$1; shift
  vm "$name-start"
  perf record -F 99 -e cpu-clock -g -p $SP -o "$W/perf-$name.data" > "$W/perf-$name.log" 2>&1 &
  local pp=$!
  "$@" > "$W/$name.json" 2> "$W/$name.err"
  kill -INT $pp; wait $pp
  vm "$name-end"
  perf report -i "$W/perf-$name.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25 > "$W/top-$name.txt"
}
T="--url http://127.0.0.1:$PORT --api-root bench --collection $C1 --file $DATA --json"
phase ingest "$BIN/taxii-bench" ingest $T --clients 1
known=$(sed -n 's/.*"stored":\([0-9]*\).*/\1/p' "$W/ingest.json" | head -1)
sleep 20
phase id "$BIN/taxii-bench" filtered $T --known "$known" --workload id --connections 16 --duration 20
phase read "$BIN/taxii-bench" read $T --known "$known" --limit 1000
phase type "$BIN/taxii-bench" filtered $T --known "$known" --workload type --connections 16 --duration 20
du -sb "$W"/concordia.db* > "$W/size.txt"
echo "done: $W (vmstat.log, top-*.txt, *.json)"
