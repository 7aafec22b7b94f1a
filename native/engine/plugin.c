/* The reference engine as an evbridge engine plugin (evb_plugin.h): the
 * daemon's built-in default. Its configuration block (engine.config):
 *
 *   udp.enabled (true), udp.host ("127.0.0.1"), udp.port (5140), udp.subject
 *   tick.hz (1; 0 turns it off), tick.subject
 *   generator.threads (0 = off), generator.rate (0 = as fast as possible),
 *   generator.payloadBytes (64), generator.count (0 = until stopped),
 *   generator.subjects (a list, cycled per thread)
 *   faultInjection (false): allows the debug commands fault_* below.
 *
 * Debug commands (evb_plugin_t.debug), each with a count: fault_null_event,
 * fault_null_payload, fault_oversize, fault_unknown_kind, fault_stale,
 * fault_late, fault_bad_subject (see ee_engine_inject); generators_done
 * (argument ignored) returns how many generator threads have finished. */
#define _GNU_SOURCE
#include "internal.h"
#include "evb_plugin_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EE__COUNTERS = 5 };

/* One engine made by create: the engine and what it describes of itself. */
typedef struct {
  ee_engine_t *eng;
  evb_plugin_source_t sources[EE__MAX_SOURCES];
  uint32_t nsources;
  evb_plugin_counter_t counters[EE__COUNTERS];
} ee__plugin_t;

static const evb_plugin_kind_t ee__kinds[] = {
    {.number = EE_KIND_UDP, .name = "udp"},
    {.number = EE_KIND_TICK, .name = "tick"},
    {.number = EE_KIND_GEN, .name = "gen"},
};

static const char *ee__source_name(ee__src_type_t t) {
  return t == EE__SRC_UDP ? "udp" : t == EE__SRC_TICK ? "tick" : "gen";
}

static uint32_t ee__source_kind(ee__src_type_t t) {
  return t == EE__SRC_UDP ? EE_KIND_UDP : t == EE__SRC_TICK ? EE_KIND_TICK : EE_KIND_GEN;
}

/* Adds the configured sources; returns 0 or an EE_E* code with `c->err` set. */
static int ee__configure(evbu_config_t *c, ee_engine_t *eng) {
  bool udp = true, faults = false;
  const char *udp_host = "127.0.0.1", *udp_subject = NULL, *tick_subject = NULL;
  double udp_port = 5140, hz = 1, threads = 0, rate = 0, payload = 64, count = 0;
  size_t nsubjects = 0;
  evbu_cfg_bool(c, "udp.enabled", &udp);
  evbu_cfg_string(c, "udp.host", &udp_host);
  evbu_cfg_number(c, "udp.port", 0, 65535, true, &udp_port);
  evbu_cfg_subject(c, "udp.subject", &udp_subject);
  evbu_cfg_number(c, "tick.hz", 0, 100000, false, &hz);
  evbu_cfg_subject(c, "tick.subject", &tick_subject);
  evbu_cfg_number(c, "generator.threads", 0, 64, true, &threads);
  evbu_cfg_number(c, "generator.rate", 0, 1e12, true, &rate);
  evbu_cfg_number(c, "generator.payloadBytes", 8, EE_PAYLOAD_MAX, true, &payload);
  evbu_cfg_number(c, "generator.count", 0, 9007199254740991.0, true, &count);
  evbu_cfg_bool(c, "faultInjection", &faults);
  evbu_cfg_length(c, "generator.subjects", EE_MAX_GEN_SUBJECTS, &nsubjects);
  const char *subjects[EE_MAX_GEN_SUBJECTS] = {0};
  for (size_t i = 0; i < nsubjects && !c->failed; i++) {
    char path[48];
    snprintf(path, sizeof path, "generator.subjects.%zu", i);
    evbu_cfg_subject(c, path, &subjects[i]);
    if (!c->failed && !subjects[i]) evbu_fail(c, "%s must be a subject", path);
  }
  if (c->failed) return EE_EINVAL;

  int rc = 0;
  if (udp && (rc = ee_engine_add_udp(eng, udp_host, (uint16_t)udp_port, udp_subject)) < 0) {
    if (rc == EE_EADDRINUSE)
      evbu_fail(c, "UDP address %s:%g is already in use; udp.port chooses another", udp_host, udp_port);
    else
      evbu_fail(c, "cannot listen for UDP on %s:%g: %s", udp_host, udp_port, ee_strerror(rc));
    return rc;
  }
  if (hz > 0 && (rc = ee_engine_add_tick(eng, hz, tick_subject)) < 0) {
    evbu_fail(c, "cannot add the tick source: %s", ee_strerror(rc));
    return rc;
  }
  if (threads > 0 &&
      (rc = ee_engine_add_generator(eng, (uint32_t)threads, (uint64_t)rate, (uint32_t)payload, (uint64_t)count,
                                    subjects, (uint32_t)nsubjects)) < 0) {
    evbu_fail(c, "cannot add the generator: %s", ee_strerror(rc));
    return rc;
  }
  ee_engine_set_fault_injection(eng, faults);
  return 0;
}

static int ee__plugin_create(const evb_host_t *host, const evb_config_t *cfg, const char *json, size_t json_len,
                             void **out, char *err, size_t err_cap) {
  (void)json;
  (void)json_len;
  evbu_config_t c = evbu_config(host, cfg, err, err_cap);
  if (c.failed || !out) return EE_EINVAL;
  ee__plugin_t *p = calloc(1, sizeof *p);
  if (!p || !(p->eng = ee_engine_new())) {
    free(p);
    evbu_fail(&c, "out of memory");
    return EE_ENOMEM;
  }
  int rc = ee__configure(&c, p->eng);
  if (rc < 0) {
    ee_engine_free(p->eng);
    free(p);
    return rc;
  }
  for (int i = 0; i < p->eng->nsources; i++) {
    ee__source_t *s = p->eng->sources[i];
    p->sources[p->nsources++] = (evb_plugin_source_t){
        .id = s->id, .kind = ee__source_kind(s->type), .name = ee__source_name(s->type), .detail = s->detail};
  }
  static const char *const names[EE__COUNTERS][2] = {
      {"dispatched_total", "Callback invocations made by the engine's sources."},
      {"callback_errors_total", "Callback invocations that returned non-zero."},
      {"injected_total", "Callback invocations made by fault injection."},
      {"udp_receive_errors_total", "UDP receive failures and truncated datagrams."},
      {"udp_kernel_drops_total", "Datagrams the kernel dropped for a full UDP receive buffer (SO_RXQ_OVFL)."},
  };
  for (int i = 0; i < EE__COUNTERS; i++) p->counters[i] = (evb_plugin_counter_t){.name = names[i][0], .help = names[i][1]};
  *out = p;
  return 0;
}

static uint32_t ee__plugin_kinds(void *engine, const evb_plugin_kind_t **out) {
  (void)engine;
  *out = ee__kinds;
  return sizeof ee__kinds / sizeof ee__kinds[0];
}

static int64_t ee__plugin_register(void *engine, evb_event_cb cb, void *userdata, uint32_t mask) {
  return ee_engine_register(((ee__plugin_t *)engine)->eng, cb, userdata, mask);
}

static int ee__plugin_unregister(void *engine, int64_t id) {
  return ee_engine_unregister(((ee__plugin_t *)engine)->eng, id);
}

static int ee__plugin_start(void *engine) { return ee_engine_start(((ee__plugin_t *)engine)->eng); }

static int ee__plugin_stop(void *engine) { return ee_engine_stop(((ee__plugin_t *)engine)->eng); }

static void ee__plugin_free(void *engine) {
  ee__plugin_t *p = engine;
  if (!p) return;
  ee_engine_free(p->eng);
  free(p);
}

static const char *ee__plugin_strerror(int err) { return ee_strerror(err); }

static uint32_t ee__plugin_sources(void *engine, const evb_plugin_source_t **out) {
  ee__plugin_t *p = engine;
  *out = p->sources;
  return p->nsources;
}

static uint32_t ee__plugin_counters(void *engine, const evb_plugin_counter_t **out) {
  ee__plugin_t *p = engine;
  ee_stats_t st;
  ee_engine_stats(p->eng, &st);
  const uint64_t values[EE__COUNTERS] = {st.dispatched, st.cb_errors, st.injected, st.udp_errors, st.udp_kernel_drops};
  for (int i = 0; i < EE__COUNTERS; i++) p->counters[i].value = values[i];
  *out = p->counters;
  return EE__COUNTERS;
}

static int64_t ee__plugin_debug(void *engine, const char *command, uint64_t arg) {
  static const struct {
    const char *name;
    ee_fault_t fault;
  } faults[] = {
      {"fault_null_event", EE_FAULT_NULL_EVENT}, {"fault_null_payload", EE_FAULT_NULL_PAYLOAD},
      {"fault_oversize", EE_FAULT_OVERSIZE},     {"fault_unknown_kind", EE_FAULT_UNKNOWN_KIND},
      {"fault_stale", EE_FAULT_STALE},           {"fault_late", EE_FAULT_LATE},
      {"fault_bad_subject", EE_FAULT_BAD_SUBJECT},
  };
  ee__plugin_t *p = engine;
  if (strcmp(command, "generators_done") == 0) return ee_engine_generators_done(p->eng);
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
    if (strcmp(command, faults[i].name) != 0) continue;
    if (arg < 1 || arg > UINT32_MAX) return EE_EINVAL;
    return ee_engine_inject(p->eng, faults[i].fault, (uint32_t)arg);
  }
  return EE_ENOENT;
}

static const evb_plugin_t ee__plugin = {
    .abi_version = EVB_PLUGIN_ABI_VERSION,
    .size = sizeof(evb_plugin_t),
    .name = "evengine",
    .version = "2.0.0",
    .create = ee__plugin_create,
    .kinds = ee__plugin_kinds,
    .register_callback = ee__plugin_register,
    .unregister_callback = ee__plugin_unregister,
    .start = ee__plugin_start,
    .stop = ee__plugin_stop,
    .free = ee__plugin_free,
    .strerror = ee__plugin_strerror,
    .sources = ee__plugin_sources,
    .counters = ee__plugin_counters,
    .debug = ee__plugin_debug,
};

EVB_PLUGIN_EXPORT const evb_plugin_t *evb_plugin_entry(void) { return &ee__plugin; }
