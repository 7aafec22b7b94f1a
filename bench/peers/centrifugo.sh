#!/usr/bin/env bash
# Builds Centrifugo (the peer of bench/e2e/centrifugo-peer.mjs) from the Go
# module proxy into native/build/centrifugo/, once. Needs Go (on PATH or in
# /usr/local/go/bin); without it, prints one line and exits 0, and the
# benchmark leaves the Centrifugo rows out.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=v6.9.1
out="$root/native/build/centrifugo"
[ -x "$out/centrifugo" ] && [ "$(cat "$out/version" 2>/dev/null)" = "$version" ] && exit 0
PATH=$PATH:/usr/local/go/bin
if ! command -v go >/dev/null; then
  echo "bench: no Go toolchain; the Centrifugo rows are left out"
  exit 0
fi
mkdir -p "$out"
echo "bench: building Centrifugo $version with $(go version | cut -d' ' -f3) (a few minutes the first time)"
GOBIN="$out" GOFLAGS=-buildvcs=false go install "github.com/centrifugal/centrifugo/v6@$version"
echo "$version" >"$out/version"
