/* Private declarations shared by the engine's translation units (prefix ee__). */
#ifndef EE_INTERNAL_H
#define EE_INTERNAL_H

#include "evengine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#define EE__MAX_SOURCES 64

/* One registration slot. `inflight` counts threads between their check of
 * `active` and the end of their call; unregister clears `active` and waits
 * for `inflight` to reach zero (both seq_cst, so one side always sees the
 * other: a dispatcher either sees active == 0 or is counted in inflight). */
typedef struct {
  _Atomic int active;
  _Atomic int inflight;
  ee_event_cb cb;
  void *userdata;
  uint32_t mask;
  int64_t id;
} ee__reg_t;

typedef enum { EE__SRC_UDP, EE__SRC_TICK, EE__SRC_GEN } ee__src_type_t;

typedef struct ee__source_s {
  ee__src_type_t type;
  uint32_t id;
  ee_engine_t *eng;
  pthread_t thread;
  bool thread_started;
  uint64_t seq;
  char *subject; /* UDP and TICK: owned copy, or NULL */
  /* UDP: fd is -1 until bound */
  int fd;
  int port;
  char detail[64];
  _Atomic uint32_t kernel_drops; /* last SO_RXQ_OVFL value seen */
  /* TICK */
  uint64_t period_ns;
  /* GEN: subjects are shared by the generator's threads, owned by the first */
  uint64_t rate;
  uint32_t payload_len;
  uint64_t count;
  char **subjects;
  uint32_t nsubjects;
  bool owns_subjects;
} ee__source_t;

struct ee_engine_s {
  pthread_mutex_t ctl;            /* serialises control calls               */
  ee__reg_t regs[EE_MAX_REGISTRATIONS];
  int64_t next_id;
  /* last unregistered callback, for EE_FAULT_STALE */
  ee_event_cb stale_cb;
  void *stale_userdata;
  bool has_stale;
  bool faults_enabled;

  ee__source_t *sources[EE__MAX_SOURCES];
  int nsources;
  bool running;
  _Atomic int stopping;
  int stop_fd;                    /* eventfd, readable while stopping       */
  pthread_mutex_t sleep_mu;       /* with sleep_cv: interruptible sleeps    */
  pthread_cond_t sleep_cv;
  _Atomic int gens_done;

  _Atomic uint64_t dispatched, cb_errors, injected, udp_errors;
};

/* engine.c */
/* Calls every active registration whose mask has `bits` in common (~0u:
 * all of them) with `ev`, counting non-zero returns; returns the number of
 * calls. The one dispatch loop, for sources and for fault injection. */
uint64_t ee__call_registered(ee_engine_t *eng, const ee_event_t *ev, uint32_t bits);
/* Dispatches a source's event to the registrations for its kind. */
void ee__dispatch(ee_engine_t *eng, const ee_event_t *ev);
/* Sleep until CLOCK_MONOTONIC deadline or until the engine stops.
 * Returns true when the engine is stopping. */
bool ee__sleep_until(ee_engine_t *eng, uint64_t deadline_ns);
/* Sum of the UDP sources' kernel drop counts. Any thread. */
uint64_t ee__udp_kernel_drops(ee_engine_t *eng);

/* sources.c */
void *ee__udp_main(void *arg);
void *ee__tick_main(void *arg);
void *ee__gen_main(void *arg);
/* Resolves and binds; returns 0, EE_EADDRINUSE, EE_EACCES or EE_EADDR. */
int ee__udp_open(ee__source_t *src, const char *host, uint16_t port);

/* io_epoll.c: a poller watching one data fd and the engine's stop fd.
 * open returns the poller fd or EE_EIO; wait returns 1 when the data fd is
 * readable, 0 when the engine is stopping, EE_EIO on error. */
int ee__poller_open(int fd, int stop_fd);
int ee__poller_wait(int poller, int stop_fd);
void ee__poller_close(int poller);

#endif
