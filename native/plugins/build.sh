#!/usr/bin/env bash
# Builds the engine plugin adapters into native/build/plugins/:
#   libevb_template.so  always (no dependency)
#   libevb_pcap.so      when libpcap's headers are installed (Debian: libpcap-dev)
#   libevb_mqtt.so      when libmosquitto's headers are installed (Debian: libmosquitto-dev)
# and prints one line for each adapter it skipped. With ASAN=1, builds them
# with AddressSanitizer and UBSan into native/build/asan/plugins/ instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
native=$(dirname "$here")
out="$native/build/plugins"
flags=(-std=c11 -Wall -Wextra -Werror -O2 -g -shared -fPIC -fvisibility=hidden -I"$native/include")
if [ "${ASAN:-0}" = 1 ]; then
  out="$native/build/asan/plugins"
  flags=(-std=c11 -Wall -Wextra -Werror -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -shared -fPIC -fvisibility=hidden -I"$native/include")
fi
mkdir -p "$out"
cc=${CC:-cc}
# has HEADER: whether the compiler finds HEADER.
has() { echo "#include <$1>" | "$cc" -E -x c - >/dev/null 2>&1; }

"$cc" "${flags[@]}" -o "$out/libevb_template.so" "$here/template/template.c" -lpthread
if has pcap/pcap.h; then
  "$cc" "${flags[@]}" -o "$out/libevb_pcap.so" "$here/pcap/pcap.c" -lpcap -lpthread
else
  echo "evbridge: skipped the pcap adapter: libpcap's headers are not installed (sudo apt-get install libpcap-dev)"
fi
if has mosquitto.h; then
  "$cc" "${flags[@]}" -o "$out/libevb_mqtt.so" "$here/mqtt/mqtt.c" -lmosquitto -lpthread
else
  echo "evbridge: skipped the mqtt adapter: libmosquitto's headers are not installed (sudo apt-get install libmosquitto-dev)"
fi
