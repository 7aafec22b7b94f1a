#!/usr/bin/env bash
# Builds and runs the native callback benchmark against the release bridge.
# Usage: bench/native/run.sh [events per run, default 2000000]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
lib="$root/native/bridge/target/release"
out="$root/native/build/bench"
mkdir -p "$out"
cc -std=c11 -O2 -g -Wall -Wextra -Werror -I"$root/native/include" -o "$out/callback_bench" \
  "$root/bench/native/callback_bench.c" -L"$lib" -Wl,-rpath,"$lib" -levbridge -lpthread
"$out/callback_bench" "$@"
