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

/* Length of a source's subject, for an event's subject_len. */
static uint32_t ee__subject_len(const char *s) { return s ? (uint32_t)strlen(s) : 0; }

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
    /* Have the kernel report, with each datagram, how many it dropped for a
     * full receive buffer (socket(7), SO_RXQ_OVFL). */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      rc = errno == EADDRINUSE ? EE_EADDRINUSE : errno == EACCES ? EE_EACCES : EE_EADDR;
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

/* The SO_RXQ_OVFL count carried by a received message, if any. */
static void ee__note_kernel_drops(ee__source_t *src, struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
      uint32_t drops;
      memcpy(&drops, CMSG_DATA(c), sizeof drops);
      atomic_store(&src->kernel_drops, drops);
    }
  }
}

void *ee__udp_main(void *arg) {
  ee__source_t *src = arg;
  ee_engine_t *eng = src->eng;
  /* One byte more than the largest datagram, so truncation is detectable. */
  uint8_t *buf = malloc(EE_PAYLOAD_MAX + 1);
  union {
    char bytes[CMSG_SPACE(sizeof(uint32_t))];
    struct cmsghdr align;
  } control;
  uint32_t subject_len = ee__subject_len(src->subject);
  int poller = buf ? ee__poller_open(src->fd, eng->stop_fd) : EE_ENOMEM;
  while (poller >= 0 && ee__poller_wait(poller, eng->stop_fd) == 1) {
    for (;;) {
      struct iovec iov = {.iov_base = buf, .iov_len = EE_PAYLOAD_MAX + 1};
      struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                          .msg_controllen = sizeof control.bytes};
      ssize_t n = recvmsg(src->fd, &mh, MSG_DONTWAIT);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          atomic_fetch_add(&eng->udp_errors, 1);
        break;
      }
      ee__note_kernel_drops(src, &mh);
      if ((size_t)n > EE_PAYLOAD_MAX || (mh.msg_flags & MSG_TRUNC)) { /* cannot happen over IPv4/6 UDP */
        atomic_fetch_add(&eng->udp_errors, 1);
        continue;
      }
      ee_event_t ev = {.kind = EE_KIND_UDP, .source_id = src->id, .source_seq = src->seq++,
                       .ts_ns = ee_now_ns(), .payload = n ? buf : NULL, .len = (size_t)n,
                       .subject = src->subject, .subject_len = subject_len};
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
  uint32_t subject_len = ee__subject_len(src->subject);
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
                     .ts_ns = due, .payload = &p, .len = sizeof p,
                     .subject = src->subject, .subject_len = subject_len};
    ee__dispatch(eng, &ev);
  }
  return NULL;
}

void *ee__gen_main(void *arg) {
  ee__source_t *src = arg;
  ee_engine_t *eng = src->eng;
  uint8_t *payload = malloc(src->payload_len);
  uint32_t *subject_lens = src->nsubjects ? malloc(src->nsubjects * sizeof *subject_lens) : NULL;
  if (!payload || (src->nsubjects && !subject_lens)) {
    free(payload);
    free(subject_lens);
    atomic_fetch_add(&eng->gens_done, 1);
    return NULL;
  }
  for (uint32_t i = 0; i < src->nsubjects; i++) subject_lens[i] = ee__subject_len(src->subjects[i]);
  for (uint32_t i = 0; i < src->payload_len; i++) payload[i] = (uint8_t)(i * 7 + src->id);
  uint64_t start = ee_now_ns();
  uint64_t spacing = src->rate ? 1000000000u / src->rate : 0;
  uint32_t next_subject = 0;
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
    if (src->nsubjects) {
      ev.subject = src->subjects[next_subject];
      ev.subject_len = subject_lens[next_subject];
      if (++next_subject == src->nsubjects) next_subject = 0;
    }
    ee__dispatch(eng, &ev);
  }
  free(payload);
  free(subject_lens);
  atomic_fetch_add(&eng->gens_done, 1);
  return NULL;
}
