/*
 * evb_plugin_util.h -- optional helpers for engine plugin authors,
 * header-only (every function is static inline), on top of evb_plugin.h:
 *
 *   - reading the configuration block through the host's accessors with
 *     range and type checks, writing one message for the first problem
 *     into create's error buffer (evbu_config_t, evbu_cfg_*);
 *   - a registration slot that keeps unregister's promise: after
 *     evbu_slot_unregister returns, no thread is inside the callback and
 *     none will enter it (evbu_slot_t);
 *   - a small list of error codes with messages (EVBU_E*, evbu_strerror).
 *
 * The template plugin (native/plugins/template/) shows them in use.
 */
#ifndef EVB_PLUGIN_UTIL_H
#define EVB_PLUGIN_UTIL_H

#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "evb_plugin.h"

/* Error codes: X(name, value, message). Plugins may use these as theirs. */
#define EVBU_ERRNO_MAP(X)                                         \
  X(EINVAL, -1, "invalid argument or configuration")             \
  X(EBUSY, -2, "already registered, or already running")         \
  X(ENOENT, -3, "no such registration or command")               \
  X(ENOMEM, -4, "out of memory")                                 \
  X(EIO, -5, "the library failed (see the plugin's message)")    \
  X(ETHREAD, -6, "cannot create a thread")                       \
  X(EPERM, -7, "not allowed by the configuration")

enum {
#define EVBU__ENUM(name, value, msg) EVBU_##name = (value),
  EVBU_ERRNO_MAP(EVBU__ENUM)
#undef EVBU__ENUM
};

/* Static message of an EVBU_E* code; "unknown error" otherwise. Any thread. */
static inline const char *evbu_strerror(int err) {
  switch (err) {
#define EVBU__MSG(name, value, msg) \
  case value:                       \
    return msg;
    EVBU_ERRNO_MAP(EVBU__MSG)
#undef EVBU__MSG
  }
  return "unknown error";
}

/* ---- configuration ---------------------------------------------------- */

/* Reading state: the host, the configuration, create's error buffer, and
 * whether a read failed (every later read then fails too, so the first
 * problem's message is the one reported). */
typedef struct {
  const evb_host_t *host;
  const evb_config_t *cfg;
  char *err;
  size_t cap;
  bool failed;
} evbu_config_t;

/* A reader for create's arguments. */
static inline evbu_config_t evbu_config(const evb_host_t *host, const evb_config_t *cfg, char *err, size_t cap) {
  evbu_config_t c = {.host = host, .cfg = cfg, .err = err, .cap = cap, .failed = false};
  if (!host || !host->config_bool || !host->config_number || !host->config_string || !host->config_length) {
    if (err && cap) snprintf(err, cap, "the host offers no configuration accessors");
    c.failed = true;
  }
  return c;
}

/* Records the first problem (printf-style); returns false. */
static inline bool evbu_fail(evbu_config_t *c, const char *fmt, ...) {
  if (!c->failed && c->err && c->cap > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->cap, fmt, ap);
    va_end(ap);
  }
  c->failed = true;
  return false;
}

/* A boolean at `path`; *v keeps its value (the default) when absent. */
static inline bool evbu_cfg_bool(evbu_config_t *c, const char *path, bool *v) {
  int b = *v;
  if (c->failed) return false;
  if (c->host->config_bool(c->cfg, path, &b) < 0) return evbu_fail(c, "%s must be true or false", path);
  *v = b != 0;
  return true;
}

/* A number in [lo, hi] at `path`, a whole number when `whole`. */
static inline bool evbu_cfg_number(evbu_config_t *c, const char *path, double lo, double hi, bool whole, double *v) {
  double x = *v;
  if (c->failed) return false;
  int rc = c->host->config_number(c->cfg, path, &x);
  if (rc < 0 || (rc == 1 && (!(x >= lo && x <= hi) || (whole && (double)(int64_t)x != x))))
    return evbu_fail(c, "%s must be %s from %g to %g", path, whole ? "a whole number" : "a number", lo, hi);
  *v = x;
  return true;
}

/* A string at `path` (NUL-terminated, owned by the host, valid during create). */
static inline bool evbu_cfg_string(evbu_config_t *c, const char *path, const char **v) {
  size_t len = 0;
  if (c->failed) return false;
  if (c->host->config_string(c->cfg, path, v, &len) < 0) return evbu_fail(c, "%s must be a string", path);
  return true;
}

/* Whether the host says `s` is a valid subject (true when it cannot say). */
static inline bool evbu_subject_ok(const evb_host_t *host, const char *s, size_t len) {
  bool has = host && host->size >= offsetof(evb_host_t, subject_valid) + sizeof host->subject_valid && host->subject_valid;
  return !has || host->subject_valid(s, len) == 1;
}

/* An optional subject at `path`: absent, or valid by the host's rule. */
static inline bool evbu_cfg_subject(evbu_config_t *c, const char *path, const char **v) {
  if (!evbu_cfg_string(c, path, v)) return false;
  if (*v && !evbu_subject_ok(c->host, *v, strlen(*v)))
    return evbu_fail(c, "%s \"%s\" is not a valid subject (tokens separated by single dots; no spaces, \", \\, * or >)", path, *v);
  return true;
}

/* The length of an optional array at `path` (0 when absent), at most `max`. */
static inline bool evbu_cfg_length(evbu_config_t *c, const char *path, size_t max, size_t *n) {
  if (c->failed) return false;
  *n = 0;
  if (c->host->config_length(c->cfg, path, n) < 0) return evbu_fail(c, "%s must be a list", path);
  if (*n > max) return evbu_fail(c, "%s has %zu entries; at most %zu", path, *n, max);
  return true;
}

/* ---- one registration ---------------------------------------------------- */

/* A registration slot. `inflight` counts threads between their check of
 * `active` and the end of their call; unregister clears `active` and waits
 * for `inflight` to reach zero. Both sides use seq_cst operations, so one
 * side always sees the other: a dispatcher either sees active == 0 or is
 * counted in inflight before unregister reads it. Zero-initialise it. */
typedef struct {
  _Atomic int active;
  _Atomic int inflight;
  evb_event_cb cb;
  void *userdata;
  uint32_t mask;
} evbu_slot_t;

/* The plugin's register_callback for a one-slot plugin: returns the id 1,
 * or EVBU_EBUSY when a registration exists, EVBU_EINVAL for a NULL cb or
 * an empty mask. Control thread. */
static inline int64_t evbu_slot_register(evbu_slot_t *s, evb_event_cb cb, void *userdata, uint32_t mask) {
  if (!cb || mask == 0) return EVBU_EINVAL;
  if (atomic_load(&s->active)) return EVBU_EBUSY;
  /* Inactive: dispatchers never read cb/userdata/mask until they see
   * active == 1, which is stored last. */
  s->cb = cb;
  s->userdata = userdata;
  s->mask = mask;
  atomic_store(&s->active, 1);
  return 1;
}

/* The plugin's unregister_callback: waits until no thread is inside the
 * callback; after it returns, the callback is never called again. Returns
 * 0, or EVBU_ENOENT for an id that is not registered. Control thread (never
 * from inside the callback: it would wait for itself). */
static inline int evbu_slot_unregister(evbu_slot_t *s, int64_t id) {
  if (id != 1 || !atomic_load(&s->active)) return EVBU_ENOENT;
  atomic_store(&s->active, 0);
  while (atomic_load(&s->inflight) != 0) sched_yield();
  return 0;
}

/* Calls the registered callback with `ev` when one is registered for its
 * kind. Returns the callback's result, or 1 when nobody was called. Any
 * thread, concurrently. */
static inline int evbu_slot_dispatch(evbu_slot_t *s, const evb_event_t *ev) {
  int rc = 1;
  atomic_fetch_add(&s->inflight, 1);
  if (atomic_load(&s->active) && (s->mask & (1u << (ev->kind & 31)))) rc = s->cb(ev, s->userdata);
  atomic_fetch_sub(&s->inflight, 1);
  return rc;
}

#endif /* EVB_PLUGIN_UTIL_H */
