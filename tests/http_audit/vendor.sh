#!/usr/bin/env bash
# Re-create tests/http_audit/vendor/ from the npm registry.
#
# Vendors the audit suite of graphql-http (the GraphQL-over-HTTP spec's official
# conformance audits) at a pinned version: only the ES-module files that
# lib/audits/index.mjs loads, byte-for-byte as published, plus the package's
# LICENSE.md and package.json. The audits use nothing but the global fetch, so the
# graphql peer dependency (imported only by graphql-http's handler) is not vendored.
#
# Usage: tests/http_audit/vendor.sh            re-create vendor/, check it against the
#                                              committed vendor/SHA256SUMS
#        tests/http_audit/vendor.sh --check    only check vendor/ against SHA256SUMS
#        tests/http_audit/vendor.sh --update   re-create vendor/ and rewrite SHA256SUMS
#                                              (after changing VERSION or FILES)
# Needs: npm (registry access), tar, openssl, sha256sum. Not node.
set -euo pipefail

PACKAGE=graphql-http
VERSION=1.23.1
# The registry's dist.integrity for graphql-http@1.23.1 (npm view graphql-http@1.23.1
# dist.integrity); npm pack checks the download against the registry's metadata, this
# pins that metadata too.
INTEGRITY=sha512-h6AcykL7+xp22QvOnK0fu1eHk9AZG1ngF71rk0ZGuGupnjm1yqXRFrZ/eMv4Q1FTCWILJ5o6hVAxzt3S8/wPHQ==
FILES=(
    LICENSE.md
    package.json
    lib/utils.mjs
    lib/audits/index.mjs
    lib/audits/common.mjs
    lib/audits/server.mjs
    lib/audits/render.mjs
    lib/audits/utils.mjs
)

here="$(cd "$(dirname "$0")" && pwd)"
mode="${1:-}"

check() {
    (cd "$1" && sha256sum --check --strict --quiet SHA256SUMS)
}

case "$mode" in
    --check)
        check "$here/vendor"
        echo "vendor.sh: $here/vendor matches its SHA256SUMS"
        exit 0
        ;;
    "" | --update) ;;
    *)
        echo "usage: $0 [--check|--update]" >&2
        exit 2
        ;;
esac

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tarball="$tmp/$PACKAGE-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$INTEGRITY" ]; then
    echo "vendor.sh: $PACKAGE@$VERSION tarball integrity is $actual, expected $INTEGRITY" >&2
    exit 1
fi
mkdir "$tmp/extracted"
tar -xzf "$tarball" -C "$tmp/extracted"

new="$tmp/vendor"
for file in "${FILES[@]}"; do
    install -D -m 0644 "$tmp/extracted/package/$file" "$new/$PACKAGE/$file"
done

if [ "$mode" = --update ] || [ ! -f "$here/vendor/SHA256SUMS" ]; then
    (cd "$new" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum) >"$tmp/sums"
    mv "$tmp/sums" "$new/SHA256SUMS"
else
    cp "$here/vendor/SHA256SUMS" "$new/SHA256SUMS"
    if ! check "$new"; then
        echo "vendor.sh: the registry's files differ from vendor/SHA256SUMS; vendor/ left as is" >&2
        exit 1
    fi
fi

rm -rf "$here/vendor"
cp -R "$new" "$here/vendor"
cat "$here/vendor/SHA256SUMS"
echo "vendor.sh: vendored $PACKAGE@$VERSION into $here/vendor"
