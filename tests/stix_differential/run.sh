#!/usr/bin/env bash
# Differential test of Concordia's STIX 2.1 validator against the OASIS stix2-validator.
#
#   tests/stix_differential/run.sh [--corpus DIR]... [--no-fixtures] [--show-known]
#
# Env: CONCORDIA_BIN (default ${CARGO_TARGET_DIR:-<repo>/target}/release/concordia),
#      STIX_DIFF_VENV (default /var/tmp/concordia-stixdiff-venv), PYTHON (default python3).
# Last line: "N passed, M failed"; exit status non-zero if M > 0. See README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${STIX_DIFF_VENV:-/var/tmp/concordia-stixdiff-venv}"
bin="${CONCORDIA_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/concordia}"
python="${PYTHON:-python3}"

# (Re)create the venv when it is missing or requirements.txt changed.
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.concordia-requirements" 2>/dev/null || true)" != "$want" ]]; then
    if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]]; then
        echo "run.sh: $venv exists and is not a Python venv; set STIX_DIFF_VENV elsewhere" >&2
        exit 2
    fi
    echo "run.sh: installing stix2-validator into $venv" >&2
    "$python" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" >"$venv/.concordia-requirements"
fi

if [[ ! -x "$bin" ]]; then
    echo "run.sh: no Concordia binary at $bin (build it with 'cargo build --release' or set CONCORDIA_BIN)" >&2
    exit 2
fi

exec "$venv/bin/python" "$here/compare.py" \
    --concordia "$bin" \
    --fixtures "$repo/tests/fixtures/stix" \
    --known "$here/known_differences.json" \
    --fact-sheet-valid "$here/fact_sheet_valid.json" \
    "$@"
