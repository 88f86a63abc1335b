#!/usr/bin/env bash
# Proves that vendor/actix-http is the published actix-http crate plus vendor/actix-http.patch,
# and nothing else: unpacks the crate (checksum verified), drops what is not needed to build
# (tests, benches, examples), applies the patch and compares the result with the vendored copy.
#
#   vendor/check.sh            # exit 0 when they are identical
#   vendor/check.sh --refresh  # rewrite vendor/actix-http.patch from the vendored copy
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=3.20.0
sha256=d20a22850ea7fecad12c5f8cd97d246c3af1f04ef400033977c2f13425c45816

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/actix-http-$version.crate 2>/dev/null | head -n 1 || true)"
if [[ -z $crate ]]; then
  crate="$tmp/actix-http-$version.crate"
  curl -sSfL -o "$crate" "https://static.crates.io/crates/actix-http/actix-http-$version.crate"
fi
echo "$sha256  $crate" | sha256sum -c --quiet -
tar xzf "$crate" -C "$tmp"
upstream="$tmp/actix-http-$version"
rm -rf "$upstream"/{tests,benches,examples,.cargo_vcs_info.json,Cargo.toml.orig,Cargo.lock,.cargo-ok}

if [[ ${1:-} == --refresh ]]; then
  (cd "$tmp" && mv "actix-http-$version" a && cp -r "$here/actix-http" b && diff -ruN a b) \
    | sed 's/\t[0-9-]* [0-9:.]* [+-][0-9]*$//' > "$here/actix-http.patch" || true
  echo "wrote $here/actix-http.patch"
  exit 0
fi
(cd "$upstream" && patch -s -p1 < "$here/actix-http.patch")
if diff -r "$upstream" "$here/actix-http"; then
  echo "vendor/actix-http = actix-http $version + vendor/actix-http.patch"
else
  echo "vendor/actix-http differs from actix-http $version + vendor/actix-http.patch (see above)" >&2
  exit 1
fi
