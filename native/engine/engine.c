/* Engine core: errors, registrations, dispatch, lifecycle, fault injection. */
#define _GNU_SOURCE
#include "internal.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* The engine whose callback the current thread is inside, if any. */
static _Thread_local ee_engine_t *ee__current;

uint32_t ee_abi_version(void) { return EE_ABI_VERSION; }

const char *ee_err_name(int err) {
  switch (err) {
#define EE__ERR_NAME(name, value, msg) \
  case value:                          \
    return #name;
    EE_ERRNO_MAP(EE__ERR_NAME)
#undef EE__ERR_NAME
  }
  return "UNKNOWN";
}

const char *ee_strerror(int err) {
  switch (err) {
#define EE__ERR_MSG(name, value, msg) \
  case value:                         \
    return msg;
    EE_ERRNO_MAP(EE__ERR_MSG)
#undef EE__ERR_MSG
  }
  return "unknown error";
}

uint64_t ee_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

ee_engine_t *ee_engine_new(void) {
  ee_engine_t *eng = calloc(1, sizeof(*eng));
  if (!eng) return NULL;
  eng->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (eng->stop_fd < 0) {
    free(eng);
    return NULL;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&eng->sleep_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&eng->sleep_mu, NULL);
  pthread_mutex_init(&eng->ctl, NULL);
  eng->next_id = 1;
  return eng;
}

static void ee__source_free(ee__source_t *s) {
  if (!s) return;
  if (s->type == EE__SRC_UDP && s->fd >= 0) close(s->fd);
  free(s->subject);
  if (s->owns_subjects) {
    for (uint32_t i = 0; i < s->nsubjects; i++) free(s->subjects[i]);
    free(s->subjects);
  }
  free(s);
}

void ee_engine_free(ee_engine_t *eng) {
  if (!eng) return;
  if (ee_engine_stop(eng) == EE_EDEADLK) return; /* refusing beats a use-after-free */
  for (int i = 0; i < eng->nsources; i++) ee__source_free(eng->sources[i]);
  close(eng->stop_fd);
  pthread_cond_destroy(&eng->sleep_cv);
  pthread_mutex_destroy(&eng->sleep_mu);
  pthread_mutex_destroy(&eng->ctl);
  free(eng);
}

int64_t ee_engine_register(ee_engine_t *eng, ee_event_cb cb, void *userdata, uint32_t kind_mask) {
  if (!eng || !cb || (kind_mask & EE_KIND_MASK_ALL) == 0) return EE_EINVAL;
  pthread_mutex_lock(&eng->ctl);
  int64_t rc = EE_ENOSPC;
  for (int i = 0; i < EE_MAX_REGISTRATIONS; i++) {
    ee__reg_t *r = &eng->regs[i];
    if (atomic_load(&r->active)) continue;
    /* Inactive slot: dispatchers may still bump `inflight` but never read
     * cb/userdata/mask until they see active == 1, which is stored last. */
    r->cb = cb;
    r->userdata = userdata;
    r->mask = kind_mask;
    r->id = eng->next_id++;
    atomic_store(&r->active, 1);
    rc = r->id;
    break;
  }
  pthread_mutex_unlock(&eng->ctl);
  return rc;
}

int ee_engine_unregister(ee_engine_t *eng, int64_t id) {
  if (!eng) return EE_EINVAL;
  if (ee__current == eng) return EE_EDEADLK;
  pthread_mutex_lock(&eng->ctl);
  int rc = EE_ENOENT;
  for (int i = 0; i < EE_MAX_REGISTRATIONS; i++) {
    ee__reg_t *r = &eng->regs[i];
    if (!atomic_load(&r->active) || r->id != id) continue;
    atomic_store(&r->active, 0);
    /* Quiescence: wait for every dispatcher that saw active == 1. */
    while (atomic_load(&r->inflight) != 0) sched_yield();
    eng->stale_cb = r->cb;
    eng->stale_userdata = r->userdata;
    eng->has_stale = true;
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&eng->ctl);
  return rc;
}

uint64_t ee__call_registered(ee_engine_t *eng, const ee_event_t *ev, uint32_t bits) {
  ee_engine_t *outer = ee__current;
  ee__current = eng;
  uint64_t calls = 0;
  for (int i = 0; i < EE_MAX_REGISTRATIONS; i++) {
    ee__reg_t *r = &eng->regs[i];
    atomic_fetch_add(&r->inflight, 1);
    if (atomic_load(&r->active) && (r->mask & bits)) {
      if (r->cb(ev, r->userdata) != 0) atomic_fetch_add_explicit(&eng->cb_errors, 1, memory_order_relaxed);
      calls++;
    }
    atomic_fetch_sub(&r->inflight, 1);
  }
  ee__current = outer;
  return calls;
}

void ee__dispatch(ee_engine_t *eng, const ee_event_t *ev) {
  uint64_t n = ee__call_registered(eng, ev, 1u << (ev->kind & 31));
  atomic_fetch_add_explicit(&eng->dispatched, n, memory_order_relaxed);
}

uint64_t ee__udp_kernel_drops(ee_engine_t *eng) {
  uint64_t total = 0;
  for (int i = 0; i < eng->nsources; i++)
    if (eng->sources[i]->type == EE__SRC_UDP) total += atomic_load(&eng->sources[i]->kernel_drops);
  return total;
}

bool ee__sleep_until(ee_engine_t *eng, uint64_t deadline_ns) {
  struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                        .tv_nsec = (long)(deadline_ns % 1000000000u)};
  pthread_mutex_lock(&eng->sleep_mu);
  while (!atomic_load(&eng->stopping) && ee_now_ns() < deadline_ns) {
    if (pthread_cond_timedwait(&eng->sleep_cv, &eng->sleep_mu, &ts) != 0) break;
  }
  pthread_mutex_unlock(&eng->sleep_mu);
  return atomic_load(&eng->stopping) != 0;
}

static int ee__add_source(ee_engine_t *eng, ee__source_t *src) {
  if (eng->running) return EE_EBUSY;
  if (eng->nsources == EE__MAX_SOURCES) return EE_ENOSPC;
  src->eng = eng;
  eng->sources[eng->nsources++] = src;
  return 0;
}

static uint32_t ee__next_source_id(ee_engine_t *eng) {
  uint32_t id = 0;
  for (int i = 0; i < eng->nsources; i++) {
    ee__source_t *s = eng->sources[i];
    if (s->id + 1 > id) id = s->id + 1;
  }
  return id;
}

/* A new source of `type`, with an owned copy of `subject`; NULL when out of memory. */
static ee__source_t *ee__source_new(ee_engine_t *eng, ee__src_type_t type, const char *subject) {
  ee__source_t *src = calloc(1, sizeof(*src));
  if (!src) return NULL;
  src->type = type;
  src->fd = -1;
  src->id = ee__next_source_id(eng);
  if (subject && !(src->subject = strdup(subject))) {
    free(src);
    return NULL;
  }
  return src;
}

int ee_engine_add_udp(ee_engine_t *eng, const char *host, uint16_t port, const char *subject) {
  if (!eng || !host) return EE_EINVAL;
  pthread_mutex_lock(&eng->ctl);
  int rc = eng->running ? EE_EBUSY : 0;
  ee__source_t *src = NULL;
  if (rc == 0 && !(src = ee__source_new(eng, EE__SRC_UDP, subject))) rc = EE_ENOMEM;
  if (rc == 0) rc = ee__udp_open(src, host, port);
  if (rc == 0) rc = ee__add_source(eng, src);
  if (rc == 0) {
    snprintf(src->detail, sizeof src->detail, "%s:%d", host, src->port);
    rc = (int)src->id;
  } else {
    ee__source_free(src);
  }
  pthread_mutex_unlock(&eng->ctl);
  return rc;
}

int ee_engine_udp_port(ee_engine_t *eng, int source_id) {
  if (!eng) return EE_EINVAL;
  int rc = EE_ENOENT;
  pthread_mutex_lock(&eng->ctl);
  for (int i = 0; i < eng->nsources; i++)
    if (eng->sources[i]->type == EE__SRC_UDP && (int)eng->sources[i]->id == source_id)
      rc = eng->sources[i]->port;
  pthread_mutex_unlock(&eng->ctl);
  return rc;
}

int ee_engine_add_tick(ee_engine_t *eng, double hz, const char *subject) {
  if (!eng || !(hz > 0.0 && hz <= 100000.0)) return EE_EINVAL;
  pthread_mutex_lock(&eng->ctl);
  int rc = eng->running ? EE_EBUSY : 0;
  ee__source_t *src = NULL;
  if (rc == 0 && !(src = ee__source_new(eng, EE__SRC_TICK, subject))) rc = EE_ENOMEM;
  if (rc == 0) {
    src->period_ns = (uint64_t)(1e9 / hz);
    snprintf(src->detail, sizeof src->detail, "%g Hz", hz);
    rc = ee__add_source(eng, src);
    if (rc == 0) rc = (int)src->id;
    else ee__source_free(src);
  }
  pthread_mutex_unlock(&eng->ctl);
  return rc;
}

/* An owned copy of n subjects, or NULL (out of memory, or a NULL entry). */
static char **ee__copy_subjects(const char *const *subjects, uint32_t n) {
  char **out = calloc(n, sizeof *out);
  for (uint32_t i = 0; out && i < n; i++) {
    if (!subjects[i] || !(out[i] = strdup(subjects[i]))) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      out = NULL;
    }
  }
  return out;
}

int ee_engine_add_generator(ee_engine_t *eng, uint32_t threads, uint64_t rate,
                            uint32_t payload_len, uint64_t count,
                            const char *const *subjects, uint32_t nsubjects) {
  if (!eng || threads < 1 || threads > 64 || payload_len < 8 || payload_len > EE_PAYLOAD_MAX ||
      nsubjects > EE_MAX_GEN_SUBJECTS || (nsubjects > 0 && !subjects))
    return EE_EINVAL;
  pthread_mutex_lock(&eng->ctl);
  int rc = eng->running ? EE_EBUSY : 0;
  if (rc == 0 && eng->nsources + (int)threads > EE__MAX_SOURCES) rc = EE_ENOSPC;
  char **copy = NULL;
  if (rc == 0 && nsubjects > 0 && !(copy = ee__copy_subjects(subjects, nsubjects))) rc = EE_ENOMEM;
  bool owned = false; /* whether a source took ownership of `copy` */
  uint32_t first = ee__next_source_id(eng);
  for (uint32_t t = 0; rc == 0 && t < threads; t++) {
    ee__source_t *src = ee__source_new(eng, EE__SRC_GEN, NULL);
    if (!src) {
      rc = EE_ENOMEM; /* sources added so far stay; they are valid on their own */
      break;
    }
    src->id = first + t;
    src->rate = rate;
    src->payload_len = payload_len;
    src->count = count;
    src->subjects = copy;
    src->nsubjects = nsubjects;
    src->owns_subjects = t == 0; /* the first thread's source frees the shared copy */
    snprintf(src->detail, sizeof src->detail, "%" PRIu64 " ev/s, %u B", rate, payload_len);
    rc = ee__add_source(eng, src);
    if (rc == 0) owned = true;
    else {
      src->owns_subjects = false;
      ee__source_free(src);
    }
  }
  if (!owned && copy) {
    for (uint32_t i = 0; i < nsubjects; i++) free(copy[i]);
    free(copy);
  }
  pthread_mutex_unlock(&eng->ctl);
  return rc == 0 ? (int)first : rc;
}

int ee_engine_generators_done(ee_engine_t *eng) { return eng ? atomic_load(&eng->gens_done) : EE_EINVAL; }

int ee_engine_start(ee_engine_t *eng) {
  if (!eng) return EE_EINVAL;
  pthread_mutex_lock(&eng->ctl);
  int rc = eng->running ? EE_EBUSY : 0;
  if (rc == 0) {
    uint64_t drain;
    while (read(eng->stop_fd, &drain, sizeof drain) > 0) {
    }
    atomic_store(&eng->stopping, 0);
    atomic_store(&eng->gens_done, 0);
    eng->running = true;
    for (int i = 0; i < eng->nsources && rc == 0; i++) {
      ee__source_t *s = eng->sources[i];
      void *(*fn)(void *) = s->type == EE__SRC_UDP ? ee__udp_main
                            : s->type == EE__SRC_TICK ? ee__tick_main
                                                      : ee__gen_main;
      if (pthread_create(&s->thread, NULL, fn, s) != 0) rc = EE_ETHREAD;
      else s->thread_started = true;
    }
  }
  pthread_mutex_unlock(&eng->ctl);
  if (rc == EE_ETHREAD) ee_engine_stop(eng);
  return rc;
}

int ee_engine_stop(ee_engine_t *eng) {
  if (!eng) return EE_EINVAL;
  if (ee__current == eng) return EE_EDEADLK;
  pthread_mutex_lock(&eng->ctl);
  if (eng->running) {
    atomic_store(&eng->stopping, 1);
    uint64_t one = 1;
    if (write(eng->stop_fd, &one, sizeof one) < 0) { /* eventfd cannot overflow at 1 */
    }
    pthread_mutex_lock(&eng->sleep_mu);
    pthread_cond_broadcast(&eng->sleep_cv);
    pthread_mutex_unlock(&eng->sleep_mu);
    for (int i = 0; i < eng->nsources; i++) {
      ee__source_t *s = eng->sources[i];
      if (s->thread_started) pthread_join(s->thread, NULL);
      s->thread_started = false;
    }
    eng->running = false;
  }
  pthread_mutex_unlock(&eng->ctl);
  return 0;
}

int ee_engine_set_fault_injection(ee_engine_t *eng, int enabled) {
  if (!eng) return EE_EINVAL;
  pthread_mutex_lock(&eng->ctl);
  eng->faults_enabled = enabled != 0;
  pthread_mutex_unlock(&eng->ctl);
  return 0;
}

typedef struct {
  ee_engine_t *eng;
  ee_fault_t fault;
  uint32_t count;
  ee_event_cb stale_cb;
  void *stale_userdata;
  int64_t calls;
} ee__inject_t;

/* The careless event of one fault: an event, or NULL for EE_FAULT_NULL_EVENT. */
static const ee_event_t *ee__fault_event(ee_fault_t fault, ee_event_t *ev) {
  static const uint8_t small[16] = {0};
  *ev = (ee_event_t){.kind = EE_KIND_GEN, .source_id = 0xFFFFu, .ts_ns = ee_now_ns(),
                     .payload = small, .len = sizeof small};
  switch (fault) {
    case EE_FAULT_NULL_EVENT: return NULL;
    case EE_FAULT_NULL_PAYLOAD: ev->payload = NULL; ev->len = 32; break;
    case EE_FAULT_OVERSIZE: ev->len = (size_t)1 << 40; break;
    case EE_FAULT_UNKNOWN_KIND: ev->kind = EE_FAULT_KIND; break;
    case EE_FAULT_LATE: ev->ts_ns -= 1000000000u; break;
    case EE_FAULT_BAD_SUBJECT: ev->subject = "a..b"; ev->subject_len = 4; break;
    case EE_FAULT_STALE: break;
  }
  return ev;
}

static void *ee__inject_main(void *arg) {
  ee__inject_t *job = arg;
  for (uint32_t n = 0; n < job->count; n++) {
    ee_event_t ev;
    const ee_event_t *e = ee__fault_event(job->fault, &ev);
    if (job->fault == EE_FAULT_STALE) {
      /* Breaks the unregister promise on purpose: the retired callback. */
      if (job->stale_cb(e, job->stale_userdata) != 0)
        atomic_fetch_add_explicit(&job->eng->cb_errors, 1, memory_order_relaxed);
      job->calls++;
    } else {
      job->calls += (int64_t)ee__call_registered(job->eng, e, ~0u);
    }
  }
  return NULL;
}

int64_t ee_engine_inject(ee_engine_t *eng, ee_fault_t fault, uint32_t count) {
  if (!eng || fault < EE_FAULT_NULL_EVENT || fault > EE_FAULT_BAD_SUBJECT) return EE_EINVAL;
  pthread_mutex_lock(&eng->ctl);
  ee__inject_t job = {.eng = eng, .fault = fault, .count = count,
                      .stale_cb = eng->stale_cb, .stale_userdata = eng->stale_userdata};
  int64_t rc = 0;
  if (!eng->faults_enabled) rc = EE_EPERM;
  else if (fault == EE_FAULT_STALE && !eng->has_stale) rc = EE_ENOENT;
  pthread_mutex_unlock(&eng->ctl);
  if (rc != 0) return rc;
  pthread_t t;
  if (pthread_create(&t, NULL, ee__inject_main, &job) != 0) return EE_ETHREAD;
  pthread_join(t, NULL);
  if (job.calls == 0) return EE_ENOENT;
  atomic_fetch_add(&eng->injected, (uint64_t)job.calls);
  return job.calls;
}

int ee_engine_stats(ee_engine_t *eng, ee_stats_t *out) {
  if (!eng || !out) return EE_EINVAL;
  out->dispatched = atomic_load(&eng->dispatched);
  out->cb_errors = atomic_load(&eng->cb_errors);
  out->injected = atomic_load(&eng->injected);
  out->udp_errors = atomic_load(&eng->udp_errors);
  out->udp_kernel_drops = ee__udp_kernel_drops(eng);
  return 0;
}
