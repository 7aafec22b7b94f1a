/* The UDP source: every datagram one event, in order, intact, with its
 * subject; bind errors by cause; kernel drops counted. */
#include "runner.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#define UDP_N 200
static waiter_t udp_w;
static size_t udp_len[UDP_N];
static uint8_t udp_first[UDP_N];
static uint64_t udp_seq[UDP_N];
static int udp_bad;

static int udp_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  uint64_t i = udp_w.n;
  if (ev->kind != EE_KIND_UDP || i >= UDP_N || ev->subject_len != 5 || memcmp(ev->subject, "net.a", 5) != 0) {
    udp_bad++;
  } else {
    udp_len[i] = ev->len;
    udp_first[i] = ev->len ? ((const uint8_t *)ev->payload)[0] : 0;
    udp_seq[i] = ev->source_seq;
    if (ev->len && ((const uint8_t *)ev->payload)[ev->len - 1] != (uint8_t)(i * 3)) udp_bad++;
  }
  waiter_bump(&udp_w);
  return 0;
}

static size_t udp_size(int i) {
  if (i == 0) return 0;
  if (i == 1) return EE_PAYLOAD_MAX;
  return (size_t)(i * 97) % 2000 + 1;
}

static int udp_socket_to(int port, struct sockaddr_in *to) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  *to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to->sin_addr);
  return fd;
}

TEST(udp_source) {
  waiter_init(&udp_w);
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  int src = ee_engine_add_udp(eng, "127.0.0.1", 0, "net.a");
  CHECK(src >= 0);
  int port = ee_engine_udp_port(eng, src);
  CHECK(port > 0);
  CHECK(ee_engine_register(eng, udp_cb, NULL, 1u << EE_KIND_UDP) > 0);
  CHECK(ee_engine_start(eng) == 0);
  struct sockaddr_in to;
  int fd = udp_socket_to(port, &to);
  static uint8_t buf[EE_PAYLOAD_MAX];
  for (int i = 0; i < UDP_N; i++) {
    size_t n = udp_size(i);
    memset(buf, i, n);
    if (n) buf[n - 1] = (uint8_t)(i * 3);
    CHECK(sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)n);
    /* Pace by receipt so the receive buffer never overflows. */
    CHECK(waiter_wait(&udp_w, (uint64_t)i + 1, 5000) == (uint64_t)i + 1);
  }
  close(fd);
  CHECK(ee_engine_stop(eng) == 0);
  CHECK(udp_bad == 0);
  for (int i = 0; i < UDP_N; i++) {
    CHECK(udp_len[i] == udp_size(i));
    CHECK(udp_seq[i] == (uint64_t)i);
    if (udp_len[i] > 1) CHECK(udp_first[i] == (uint8_t)i);
  }
  ee_stats_t st;
  CHECK(ee_engine_stats(eng, &st) == 0 && st.udp_errors == 0 && st.udp_kernel_drops == 0);
  ee_engine_free(eng);
}

TEST(udp_bind_errors) {
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  int src = ee_engine_add_udp(eng, "127.0.0.1", 0, NULL);
  CHECK(src >= 0);
  int port = ee_engine_udp_port(eng, src);
  CHECK(ee_engine_add_udp(eng, "127.0.0.1", (uint16_t)port, NULL) == EE_EADDRINUSE);
  CHECK(ee_engine_add_udp(eng, "not a host name .", 1, NULL) == EE_EADDR);
  CHECK(strcmp(ee_strerror(EE_EADDRINUSE), "address already in use") == 0);
  CHECK(ee_engine_udp_port(eng, 42) == EE_ENOENT);
  ee_engine_free(eng);
}

static _Atomic uint64_t drop_test_received, markers_seen;
static int drop_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  if (ev->len == 1) atomic_fetch_add(&markers_seen, 1);
  atomic_fetch_add(&drop_test_received, 1);
  return 0;
}

/* Datagrams sent while the source is not reading overflow its receive
 * buffer; SO_RXQ_OVFL tells how many the kernel dropped, so that
 * received + dropped = sent, exactly. */
TEST(udp_kernel_drops) {
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  int src = ee_engine_add_udp(eng, "127.0.0.1", 0, NULL);
  CHECK(src >= 0);
  CHECK(ee_engine_register(eng, drop_cb, NULL, 1u << EE_KIND_UDP) > 0);
  struct sockaddr_in to;
  int fd = udp_socket_to(ee_engine_udp_port(eng, src), &to);
  static uint8_t buf[60000];
  const int sent = 400; /* 24 MB: more than any receive buffer the kernel grants by default */
  for (int i = 0; i < sent; i++) CHECK(sendto(fd, buf, sizeof buf, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)sizeof buf);
  CHECK(ee_engine_start(eng) == 0);
  /* The kernel reports drops with the next datagram it queues. Send 1-byte
   * markers until one arrives (a marker sent while the backlog still fills
   * the buffer is dropped too): the queue is FIFO, so when one arrives every
   * earlier datagram was received or dropped, and it carries the count. */
  uint64_t total = (uint64_t)sent;
  for (int marker = 0; marker < 200 && atomic_load(&markers_seen) == 0; marker++) {
    CHECK(sendto(fd, buf, 1, 0, (struct sockaddr *)&to, sizeof to) == 1);
    total++;
    uint64_t deadline = ee_now_ns() + 50000000u; /* this marker's chance: 50 ms */
    while (atomic_load(&markers_seen) == 0 && ee_now_ns() < deadline) sched_yield();
  }
  close(fd);
  CHECK(atomic_load(&markers_seen) >= 1);
  /* An earlier marker may still be on its way; the last one that arrives
   * carries the final count. */
  ee_stats_t st;
  WAIT_FOR((ee_engine_stats(eng, &st), st.dispatched + st.udp_kernel_drops == total), 5000);
  CHECK(st.udp_kernel_drops > 0);
  CHECK(atomic_load(&drop_test_received) == st.dispatched);
  ee_engine_free(eng);
}
