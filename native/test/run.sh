#!/usr/bin/env bash
# Builds and runs the native C checks: the engine's own tests (each in a
# forked process with a timeout), then the engine plugin built with
# AddressSanitizer and UBSan loaded by the release bridge in the ASan
# harness. Needs libevbridge.so built first (npm run build:native). Prints
# each suite's "N passed, N failed" line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
native=$(dirname "$here")
build="$native/build"
make -s -C "$native/engine" BUILD="$build" test
make -s -C "$native/engine" BUILD="$build" "$build/asan/libevengine.so"
bridge_dir="$native/bridge/target/release"
[ -f "$bridge_dir/libevbridge.so" ] || { echo "libevbridge.so missing: run npm run build:native" >&2; exit 1; }
mkdir -p "$build/asan"
cc -std=c11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-parameter \
  -I"$native/include" -o "$build/asan/harness" "$here/asan_harness.c" \
  -L"$bridge_dir" -Wl,-rpath,"$bridge_dir" -levbridge -lpthread
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
timeout 120 "$build/asan/harness" "$build/asan/libevengine.so"

# One adapter under the same sanitizers: pcap, whose parser reads untrusted
# packet bytes, replaying a generated file of every frame shape (cut ones and
# random bytes included).
ASAN=1 bash "$native/plugins/build.sh" >/dev/null
if [ -f "$build/asan/plugins/libevb_pcap.so" ]; then
  cc -std=c11 -O1 -g -Wall -Wextra -Werror -o "$build/make_pcap" "$here/make_pcap.c"
  "$build/make_pcap" "$build/asan/frames.pcap" 5000
  cc -std=c11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -Wall -Wextra -Werror \
    -I"$native/include" -o "$build/asan/adapter_harness" "$here/adapter_harness.c" \
    -L"$bridge_dir" -Wl,-rpath,"$bridge_dir" -levbridge -lpthread
  timeout 120 "$build/asan/adapter_harness" "$build/asan/plugins/libevb_pcap.so" "{\"file\":\"$build/asan/frames.pcap\"}" 5000
else
  echo "asan: the pcap adapter was not built (libpcap-dev missing); its sanitizer run is skipped"
fi
