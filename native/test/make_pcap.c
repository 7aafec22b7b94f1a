/* Writes a classic pcap file (Ethernet, microsecond stamps) of N frames of
 * every shape the pcap adapter's parser meets: IPv4 and IPv6 with UDP, TCP
 * and ICMP, VLAN tags, ARP, frames cut anywhere (even inside the link
 * header), and random bytes. Deterministic (a fixed xorshift seed).
 * Usage: make_pcap FILE N */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

static void put32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); } /* little-endian host */
static void put16(FILE *f, uint16_t v) { fwrite(&v, 2, 1, f); }

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  FILE *f = fopen(argv[1], "wb");
  if (!f) return 1;
  long n = atol(argv[2]);
  put32(f, 0xa1b2c3d4u);
  put16(f, 2);
  put16(f, 4);
  put32(f, 0);
  put32(f, 0);
  put32(f, 65535);
  put32(f, 1);
  uint8_t p[1600];
  for (long i = 0; i < n; i++) {
    size_t len;
    uint32_t shape = next() % 8;
    memset(p, 0, sizeof p);
    memset(p, 0xaa, 12);
    size_t l3 = 14;
    if (shape == 6) { /* VLAN */
      p[12] = 0x81, p[13] = 0x00, p[16] = 0x08, p[17] = 0x00;
      l3 = 18;
    } else if (shape == 5) {
      p[12] = 0x08, p[13] = 0x06; /* ARP */
    } else if (shape == 4) {
      p[12] = 0x86, p[13] = 0xdd; /* IPv6 */
    } else {
      p[12] = 0x08, p[13] = 0x00;
    }
    if (shape == 4) {
      p[l3] = 0x60;
      p[l3 + 6] = (uint8_t)(next() % 2 ? 17 : 58);
    } else {
      p[l3] = (uint8_t)(0x40 | (5 + next() % 11)); /* IHL 5..15: options, and lies */
      p[l3 + 9] = (uint8_t)(next() % 3 == 0 ? 6 : next() % 2 ? 17 : 1);
    }
    for (size_t k = l3 + 20; k < l3 + 80; k++) p[k] = (uint8_t)next();
    len = l3 + 20 + next() % 1400;
    if (shape == 7) { /* random bytes of a random length */
      len = next() % 100;
      for (size_t k = 0; k < len; k++) p[k] = (uint8_t)next();
    }
    size_t cap = next() % 5 == 0 ? next() % (len + 1) : len; /* cut anywhere */
    put32(f, (uint32_t)(1700000000 + i));
    put32(f, (uint32_t)(i % 1000000));
    put32(f, (uint32_t)cap);
    put32(f, (uint32_t)len);
    fwrite(p, 1, cap, f);
  }
  return fclose(f) == 0 ? 0 : 1;
}
