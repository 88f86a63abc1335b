#!/usr/bin/env bash
# A/B of builds: the same data set ingested by several builds of Concordia, each into a fresh
# SQLite database, the builds taking turns (A run 1, B run 1, ..., A run 2, ...), with one
# driver (taxii-bench of the working tree) and run.sh's policy and ingest workloads (1 client
# into one collection, then 4 clients into another, 1,000 objects per POST); then, with
# --filters LIST, those filtered workloads on the one-client collection (as run.sh: 16
# connections, pages of 100 after the mid-way position; --duration S each, default 5); with
# --spread as well, those workloads again with each request after a position of its own (taxii-bench
# filtered --spread: as clients paging through, no two asking for the same page), reported as
# "<workload> (spread)".
#
#   bench/ab.sh --size 1000000 --runs 3 bcb5756 a42540b HEAD
#   bench/ab.sh --size 1000000 --runs 3 --filters labels,tlp,rare_label,no_match a42540b HEAD
#
# Each revision is built in a git worktree under $AB_DIR (default /var/tmp/concordia-ab), all
# sharing one target directory there (only the changed crates are rebuilt). One JSON line per
# revision, run and workload is appended to --out (default $AB_DIR/ab.jsonl); the medians
# are printed at the end (reproduce the table with --report). Data: BENCH_DATA_DIR as run.sh (generated and cached there).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
AB_DIR="${AB_DIR:-/var/tmp/concordia-ab}"
DATA_DIR="${BENCH_DATA_DIR:-/var/tmp/concordia-bench-data}"
SEED=2026
size=1000000 runs=3 out="" revs=() filters="" duration=5 report_only=0 spread=0
die() { echo "ab.sh: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
while (($#)); do
  case "$1" in
    --size) size="${2:?}"; shift 2 ;;
    --runs) runs="${2:?}"; shift 2 ;;
    --out) out="${2:?}"; shift 2 ;;
    --filters) filters="${2:?}"; shift 2 ;;
    --duration) duration="${2:?}"; shift 2 ;;
    --report) report_only=1; shift ;;
    --spread) spread=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) revs+=("$1"); shift ;;
  esac
done
((${#revs[@]} >= 2)) || die "give at least two revisions"
mkdir -p "$AB_DIR/bin"
out="${out:-$AB_DIR/ab.jsonl}"

report() { # the medians of what $out holds for these revisions
  python3 - "$out" "$@" <<'PY'
import json, statistics, sys
path, names = sys.argv[1], sys.argv[2:]
rows = [json.loads(l) for l in open(path) if l.strip()]
def fig(v, f):
    return f"{f(statistics.median(v))} ({f(min(v))}–{f(max(v))}, {len(v)} runs)" if v else "—"
mine = lambda r, n: r["tags"].get("rev") == n
print("| revision | ingest, 1 client (obj/s) | ingest, 4 clients (obj/s) | database after both (MB) |")
print("|---|---|---|---|")
for n in names:
    ing = lambda c: [r["objects_per_s"] for r in rows if r["cmd"] == "ingest" and mine(r, n) and r["clients"] == c]
    db = [r["bytes"] / 1e6 for r in rows if r["cmd"] == "db" and mine(r, n)]
    num = lambda x: f"{x:,.0f}"
    print(f"| {n} | {fig(ing(1), num)} | {fig(ing(4), num)} | {fig(db, num)} |")
wl_of = lambda r, w: w["workload"] + (" (spread)" if r.get("spread") else "")
wls = sorted({wl_of(r, w) for r in rows if r["cmd"] == "filtered" for w in r["workloads"]})
if wls:
    print()
    print("| workload | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for wl in wls:
        cells = []
        for n in names:
            ws = [w for r in rows if r["cmd"] == "filtered" and mine(r, n) for w in r["workloads"] if wl_of(r, w) == wl]
            ms = lambda x: f"{x:.2f} ms"
            cells.append(f"p50 {fig([w['p50_ms'] for w in ws], ms)} / p99 {fig([w['p99_ms'] for w in ws], ms)} · "
                         f"{fig([w['requests_per_s'] for w in ws], lambda x: f'{x:,.0f}')} req/s" if ws else "—")
        print(f"| {wl} | " + " | ".join(cells) + " |")
PY
}
if ((report_only)); then
  names=(); for rev in "${revs[@]}"; do names+=("$(git -C "$REPO" rev-parse --short "$rev")"); done
  report "${names[@]}"; exit 0
fi

log "driver: taxii-bench of the working tree"
driver_target="${CARGO_TARGET_DIR:-/var/tmp/concordia-target}"
(cd "$REPO" && CARGO_TARGET_DIR="$driver_target" cargo build --release -q -p taxii-bench)
cp "$driver_target/release/taxii-bench" "$AB_DIR/bin/taxii-bench"
BENCH="$AB_DIR/bin/taxii-bench"

names=()
for rev in "${revs[@]}"; do
  sha="$(git -C "$REPO" rev-parse --short "$rev")"
  names+=("$sha")
  [[ -x $AB_DIR/bin/concordia-$sha ]] && continue
  wt="$AB_DIR/wt-$sha"
  [[ -d $wt ]] || git -C "$REPO" worktree add -q --detach "$wt" "$sha"
  log "build $rev ($sha)"
  (cd "$wt" && CARGO_TARGET_DIR="$AB_DIR/target" cargo build --release -q -p concordia)
  cp "$AB_DIR/target/release/concordia" "$AB_DIR/bin/concordia-$sha"
done

file="$DATA_DIR/stix-$size-seed$SEED-v1.jsonl"
if [[ ! -s $file ]]; then
  log "data: generating $size objects"
  mkdir -p "$DATA_DIR"
  "$BENCH" generate --count "$size" --seed "$SEED" --out "$file.tmp" --json --tag size="$size" > "$file.json.tmp"
  mv "$file.tmp" "$file"
  mv "$file.json.tmp" "$file.json"
fi

C1="6b0a4f9e-7c1d-4e2a-9b3c-1d2e3f4a5b01"
C4="6b0a4f9e-7c1d-4e2a-9b3c-1d2e3f4a5b04"
cat > "$AB_DIR/policy.toml" <<EOF
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

[[collections]]
id = "$C4"
api_root = "bench"
title = "Bench, four clients"
read = ["bench"]
write = ["bench"]
EOF
TAXII_BENCH_PASSWORD="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export TAXII_BENCH_PASSWORD
export TAXII_BENCH_USER=bench

server_pid=""
stop() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=""; }
trap stop EXIT
port=18590

for run in $(seq "$runs"); do
  for sha in "${names[@]}"; do
    dir="$AB_DIR/run-$sha-$run"
    rm -rf "$dir" && mkdir -p "$dir"
    db="sqlite://$dir/concordia.db"
    bin="$AB_DIR/bin/concordia-$sha"
    "$bin" --database-url "$db" apply "$AB_DIR/policy.toml" > "$dir/apply.log" 2>&1 || die "apply failed ($sha)"
    printf '%s' "$TAXII_BENCH_PASSWORD" | "$bin" --database-url "$db" credential add bench --password-stdin \
      >> "$dir/apply.log" 2>&1 || die "credential add failed ($sha)"
    RUST_LOG=warn "$bin" --database-url "$db" serve --listen "127.0.0.1:$port" > "$dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    for clients in 1 4; do
      c=$C1; ((clients == 4)) && c=$C4
      log "$sha run $run: ingest, $clients client(s), load $(cut -d' ' -f1 /proc/loadavg)"
      "$BENCH" ingest --url "http://127.0.0.1:$port" --api-root bench --collection "$c" --file "$file" \
        --clients "$clients" --json --tag rev="$sha" --tag run="$run" --tag size="$size" >> "$out" \
        || log "$sha run $run: the $clients-client ingest failed its checks"
    done
    # A build without the richer filters ignores them (or answers 400): a label on no object
    # must give an empty page, or its filtered reads are skipped.
    probe="$(curl -s -u "bench:$TAXII_BENCH_PASSWORD" -H 'Accept: application/taxii+json;version=2.1' \
      "http://127.0.0.1:$port/bench/collections/$C1/objects/?match%5Blabels%5D=no-such-label&limit=1" || true)"
    if [[ -n $filters && $probe == \{* && $probe != *'"objects"'* ]]; then
      log "$sha run $run: filtered reads ($filters), ${duration} s each"
      "$BENCH" filtered --url "http://127.0.0.1:$port" --api-root bench --collection "$C1" --file "$file" \
        --known "$size" --workload "$filters" --connections 16 --duration "$duration" --json \
        --tag rev="$sha" --tag run="$run" --tag size="$size" >> "$out" || log "$sha run $run: a filtered check failed"
      if ((spread)); then
        log "$sha run $run: filtered reads ($filters), each after a position of its own, ${duration} s each"
        "$BENCH" filtered --url "http://127.0.0.1:$port" --api-root bench --collection "$C1" --file "$file" \
          --known "$size" --workload "$filters" --connections 16 --duration "$duration" --spread --json \
          --tag rev="$sha" --tag run="$run" --tag size="$size" >> "$out" \
          || log "$sha run $run: a spread filtered check failed"
      fi
    fi
    stop
    printf '{"cmd":"db","tags":{"rev":"%s","run":"%s","size":"%s"},"bytes":%s}\n' "$sha" "$run" "$size" \
      "$(du -cb "$dir"/concordia.db* | tail -n 1 | cut -f1)" >> "$out"
    rm -rf "$dir"
  done
done

report "${names[@]}"
