#!/usr/bin/env bash
# Checks the deployment files as far as this machine allows (.ci/run runs it):
# - the systemd unit with `systemd-analyze verify` (ExecStart pointed at a real binary) and its
#   hardening with `systemd-analyze security` (exposure must stay at 2.0 "OK" or below);
# - the sysusers file with `systemd-sysusers --dry-run`;
# - the example configuration with `concordia check-config`;
# - the Containerfile's shape: two stages, the final one non-root with only the binary copied
#   in and nothing run. (No container runtime runs here, and CI reaches no image registry, so
#   the image itself is not built; see README: Deployment.)
#
#   deploy/check.sh [path/to/concordia]      (default: $CARGO_TARGET_DIR/release/concordia)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:-${CARGO_TARGET_DIR:-/var/tmp/concordia-target}/release/concordia}")"
[[ -x $bin ]] || { echo "no concordia binary at $bin; build it first"; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/local/bin/concordia#$bin#g" deploy/concordia.service > "$tmp/concordia.service"
  systemd-analyze verify "$tmp/concordia.service"
  systemd-analyze security --offline=true --threshold=20 "$tmp/concordia.service" > "$tmp/security.txt" \
    || { cat "$tmp/security.txt"; echo "deploy: the unit's exposure rose above 2.0"; exit 1; }
  echo "deploy: concordia.service verifies; $(grep -o 'Overall exposure level.*' "$tmp/security.txt")"
  systemd-sysusers --dry-run "$PWD/deploy/concordia.sysusers" > /dev/null 2>&1 \
    || { systemd-sysusers --dry-run "$PWD/deploy/concordia.sysusers"; exit 1; }
  echo "deploy: concordia.sysusers parses"
else
  echo "deploy: systemd-analyze is not installed; the unit was not checked"
  exit 1
fi

CONCORDIA_DATABASE_URL="sqlite://$tmp/check.db" "$bin" --config deploy/concordia.toml check-config > /dev/null
echo "deploy: concordia.toml is a valid configuration"

cf=deploy/Containerfile
froms="$(grep -c '^FROM ' "$cf")"
final="$(awk '/^FROM /{n++} n==2' "$cf")"
[[ $froms -eq 2 ]] || { echo "deploy: $cf must have a build stage and a run stage"; exit 1; }
grep -q '^USER nonroot' <<<"$final" || { echo "deploy: the final stage must run as a non-root user"; exit 1; }
if grep -qE '^(RUN|ADD) ' <<<"$final"; then echo "deploy: the final stage must only copy the binary"; exit 1; fi
[[ "$(grep -c '^COPY ' <<<"$final")" -eq 1 ]] && grep -q '^COPY --from=build .*/concordia ' <<<"$final" \
  || { echo "deploy: the final stage must copy exactly the binary from the build stage"; exit 1; }
echo "deploy: Containerfile has two stages; the final one is non-root and holds only the binary"
