/* Event sources: UDP datagrams, a frame tick, and a load generator. Each runs
 * on its own thread, started by ee_engine_start and joined by ee_engine_stop. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ee__udp_open(ee__source_t *src, const char *host, uint16_t port) {
  char service[8];
  snprintf(service, sizeof service, "%u", (unsigned)port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *res = NULL;
  src->fd = -1;
  if (getaddrinfo(host, service, &hints, &res) != 0) return EE_EADDR;
  int rc = EE_EADDR;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    /* A bursty sender overflows the default ~208 KB receive buffer while this
     * thread is descheduled; ask for 4 MiB (the kernel caps it at
     * net.core.rmem_max, which operators can raise). */
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      close(fd);
      continue;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    src->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    src->fd = fd;
    rc = 0;
    break;
  }
  freeaddrinfo(res);
  return rc;
}

void *ee__udp_main(void *arg) {
  ee__source_t *src = arg;
  ee_engine_t *eng = src->eng;
  /* One byte more than the largest datagram, so truncation is detectable. */
  uint8_t *buf = malloc(EE_PAYLOAD_MAX + 1);
  int poller = buf ? ee__poller_open(src->fd, eng->stop_fd) : EE_ENOMEM;
  while (poller >= 0 && ee__poller_wait(poller, eng->stop_fd) == 1) {
    for (;;) {
      ssize_t n = recv(src->fd, buf, EE_PAYLOAD_MAX + 1, MSG_DONTWAIT);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          atomic_fetch_add(&eng->udp_errors, 1);
        break;
      }
      if ((size_t)n > EE_PAYLOAD_MAX) { /* cannot happen over IPv4/6 UDP */
        atomic_fetch_add(&eng->udp_errors, 1);
        continue;
      }
      ee_event_t ev = {.kind = EE_KIND_UDP, .source_id = src->id, .source_seq = src->seq++,
                       .ts_ns = ee_now_ns(), .payload = n ? buf : NULL, .len = (size_t)n};
      ee__dispatch(eng, &ev);
    }
  }
  if (poller < 0) atomic_fetch_add(&eng->udp_errors, 1);
  ee__poller_close(poller);
  free(buf);
  return NULL;
}

void *ee__tick_main(void *arg) {
  ee__source_t *src = arg;
  ee_engine_t *eng = src->eng;
  uint64_t start = ee_now_ns();
  uint64_t prev = start;
  for (uint64_t frame = 0;; frame++) {
    uint64_t due = start + (frame + 1) * src->period_ns;
    if (ee__sleep_until(eng, due)) break;
    uint64_t now = ee_now_ns();
    ee_tick_payload_t p = {.frame = frame, .frame_ns = now - prev};
    prev = now;
    /* ts is the frame's scheduled time: a frame that runs late shows as a
     * late event downstream. */
    ee_event_t ev = {.kind = EE_KIND_TICK, .source_id = src->id, .source_seq = src->seq++,
                     .ts_ns = due, .payload = &p, .len = sizeof p};
    ee__dispatch(eng, &ev);
  }
  return NULL;
}

void *ee__gen_main(void *arg) {
  ee__source_t *src = arg;
  ee_engine_t *eng = src->eng;
  uint8_t *payload = malloc(src->payload_len);
  if (!payload) return NULL;
  for (uint32_t i = 0; i < src->payload_len; i++) payload[i] = (uint8_t)(i * 7 + src->id);
  uint64_t start = ee_now_ns();
  uint64_t spacing = src->rate ? 1000000000u / src->rate : 0;
  for (uint64_t n = 0; src->count == 0 || n < src->count; n++) {
    if ((n & 255) == 0 && atomic_load_explicit(&eng->stopping, memory_order_relaxed)) break;
    uint64_t now = ee_now_ns();
    if (spacing) {
      uint64_t due = start + n * spacing;
      /* Sleep only when well ahead, so high rates are paced in bursts. The
       * timestamp is always the time of the call, never the due time: an
       * event sent early must not look younger to latency measurements. */
      if (due > now + 50000) {
        if (ee__sleep_until(eng, due)) break;
        now = ee_now_ns();
      }
    }
    uint64_t seq = src->seq++;
    memcpy(payload, &seq, sizeof seq); /* little-endian on every supported target */
    ee_event_t ev = {.kind = EE_KIND_GEN, .source_id = src->id, .source_seq = seq,
                     .ts_ns = now, .payload = payload, .len = src->payload_len};
    ee__dispatch(eng, &ev);
  }
  free(payload);
  atomic_fetch_add(&eng->gens_done, 1);
  return NULL;
}
