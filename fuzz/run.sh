#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, nightly toolchain, AddressSanitizer) and runs each for a
# bounded time, starting from the corpus kept in fuzz/corpus/<target>. A crash, a panic, a leak
# or an out-of-memory stops the run, keeps the input under $FUZZ_WORK/artifacts/<target>/ and
# fails the script. New interesting inputs go to $FUZZ_WORK/corpus/<target>/ (kept between runs,
# outside the checkout; copy the useful ones into fuzz/corpus/ to keep them).
#
#   fuzz/run.sh                      every target, 60 s each
#   fuzz/run.sh --seconds 600 pattern
#
# Environment: FUZZ_WORK (default /var/tmp/concordia-fuzz), FUZZ_TARGET_DIR (default
# /var/tmp/concordia-fuzz-target), CARGO_FUZZ_ROOT (where cargo-fuzz is installed if missing;
# default /var/tmp/concordia-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(stix_validator pattern query cursor policy envelope)
((${#targets[@]})) || targets=("${all[@]}")

work="${FUZZ_WORK:-/var/tmp/concordia-fuzz}"
target_dir="${FUZZ_TARGET_DIR:-/var/tmp/concordia-fuzz-target}"
tools="${CARGO_FUZZ_ROOT:-/var/tmp/concordia-tools}"
export PATH="$tools/bin:$PATH"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz into $tools"
  cargo install cargo-fuzz --locked --root "$tools"
fi

echo "building the fuzz targets (nightly, AddressSanitizer, debug assertions)"
cargo +nightly fuzz build --release --debug-assertions --target-dir "$target_dir"
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  echo "fuzzing $t for ${seconds}s (corpus: fuzz/corpus/$t + $work/corpus/$t)"
  log="$work/$t.log"
  if "$bin_dir/$t" "$work/corpus/$t" "fuzz/corpus/$t" \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
      -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
    cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 || true)"
    echo "fuzz: $t: ${runs} runs in ${seconds}s, ${cov:-cov: ?}, no crash"
  else
    echo "fuzz: $t: CRASH (input kept in $work/artifacts/$t/)"
    grep -E 'panicked|ERROR: |SUMMARY' "$log" | head -20 || tail -40 "$log"
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: crashes in: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s), no crash"
