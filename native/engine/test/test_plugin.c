/* The reference engine's plugin table (plugin.c), driven as the bridge
 * drives it, with a small host whose configuration is a table of values. */
#include "runner.h"

#include <stdatomic.h>
#include <string.h>

/* A configuration value of the fake host. */
typedef struct {
  const char *path;
  char type; /* 's' string, 'n' number, 'b' boolean, 'a' array (n = length) */
  const char *s;
  double n;
} cfg_entry_t;

typedef struct {
  const cfg_entry_t *entries;
  size_t count;
} fake_cfg_t;

static const cfg_entry_t *find(const evb_config_t *cfg, const char *path) {
  const fake_cfg_t *c = (const fake_cfg_t *)cfg;
  for (size_t i = 0; i < c->count; i++)
    if (strcmp(c->entries[i].path, path) == 0) return &c->entries[i];
  return NULL;
}

static int get_string(const evb_config_t *cfg, const char *path, const char **out, size_t *len) {
  const cfg_entry_t *e = find(cfg, path);
  if (!e) return 0;
  if (e->type != 's') return -1;
  *out = e->s;
  if (len) *len = strlen(e->s);
  return 1;
}
static int get_number(const evb_config_t *cfg, const char *path, double *out) {
  const cfg_entry_t *e = find(cfg, path);
  if (!e) return 0;
  if (e->type != 'n') return -1;
  *out = e->n;
  return 1;
}
static int get_bool(const evb_config_t *cfg, const char *path, int *out) {
  const cfg_entry_t *e = find(cfg, path);
  if (!e) return 0;
  if (e->type != 'b') return -1;
  *out = e->n != 0;
  return 1;
}
static int get_length(const evb_config_t *cfg, const char *path, size_t *out) {
  const cfg_entry_t *e = find(cfg, path);
  if (!e) return 0;
  if (e->type != 'a') return -1;
  *out = (size_t)e->n;
  return 1;
}
static int subject_valid(const char *s, size_t len) { return len > 0 && memchr(s, ' ', len) == NULL; }

static const evb_host_t host = {.size = sizeof(evb_host_t),
                                .config_string = get_string,
                                .config_number = get_number,
                                .config_bool = get_bool,
                                .config_length = get_length,
                                .subject_valid = subject_valid};

/* Creates an engine from `entries`; returns the create status and the message. */
static int create(const evb_plugin_t *p, const cfg_entry_t *entries, size_t n, void **engine, char *err) {
  fake_cfg_t cfg = {entries, n};
  memset(err, 0, 256);
  return p->create(&host, (const evb_config_t *)&cfg, "{}", 2, engine, err, 256);
}

TEST(plugin_table) {
  const evb_plugin_t *p = evb_plugin_entry();
  CHECK(p);
  CHECK(p->abi_version == EVB_PLUGIN_ABI_VERSION && p->size == sizeof(evb_plugin_t));
  CHECK(strcmp(p->name, "evengine") == 0);
  CHECK(p->create && p->kinds && p->register_callback && p->unregister_callback && p->start && p->stop && p->free &&
        p->strerror && p->sources && p->counters && p->debug);
  CHECK(strcmp(p->strerror(EE_EADDRINUSE), "address already in use") == 0);
}

static _Atomic uint64_t plugin_events;
static int plugin_cb(const evb_event_t *ev, void *ud) {
  if (ud == (void *)0x5eed && ev && ev->kind == EE_KIND_GEN && ev->subject_len == 3) atomic_fetch_add(&plugin_events, 1);
  return 0;
}

TEST(plugin_engine) {
  const evb_plugin_t *p = evb_plugin_entry();
  const cfg_entry_t cfg[] = {
      {"udp.port", 'n', NULL, 0},          {"tick.hz", 'n', NULL, 0},         {"generator.threads", 'n', NULL, 2},
      {"generator.count", 'n', NULL, 500}, {"generator.subjects", 'a', NULL, 2}, {"generator.subjects.0", 's', "a.b", 0},
      {"generator.subjects.1", 's', "c.d", 0}, {"faultInjection", 'b', NULL, 1},
  };
  void *eng = NULL;
  char err[256];
  CHECK(create(p, cfg, sizeof cfg / sizeof cfg[0], &eng, err) == 0 && eng);
  const evb_plugin_kind_t *kinds;
  CHECK(p->kinds(eng, &kinds) == 3);
  CHECK(kinds[0].number == EE_KIND_UDP && strcmp(kinds[0].name, "udp") == 0);
  const evb_plugin_source_t *sources;
  CHECK(p->sources(eng, &sources) == 3); /* udp + two generator threads */
  CHECK(strcmp(sources[0].name, "udp") == 0 && sources[1].kind == EE_KIND_GEN && sources[2].id == 2);
  int64_t id = p->register_callback(eng, plugin_cb, (void *)0x5eed, 1u << EE_KIND_GEN);
  CHECK(id > 0);
  CHECK(p->start(eng) == 0);
  WAIT_FOR(p->debug(eng, "generators_done", 0) == 2, 10000);
  CHECK(p->stop(eng) == 0);
  CHECK(atomic_load(&plugin_events) == 1000);
  const evb_plugin_counter_t *counters;
  CHECK(p->counters(eng, &counters) == 5);
  CHECK(strcmp(counters[0].name, "dispatched_total") == 0 && counters[0].value == 1000);
  CHECK(p->debug(eng, "fault_late", 4) == 4);
  CHECK(p->debug(eng, "fault_late", 0) == EE_EINVAL);
  CHECK(p->debug(eng, "fault_late", (uint64_t)1 << 40) == EE_EINVAL);
  CHECK(p->debug(eng, "toString", 1) == EE_ENOENT);
  CHECK(p->counters(eng, &counters) == 5 && counters[2].value == 4);
  CHECK(p->unregister_callback(eng, id) == 0);
  p->free(eng);
}

TEST(plugin_config_errors) {
  const evb_plugin_t *p = evb_plugin_entry();
  void *eng = NULL;
  char err[256];
  const cfg_entry_t bad_port[] = {{"udp.port", 'n', NULL, 70000}};
  CHECK(create(p, bad_port, 1, &eng, err) == EE_EINVAL && !eng);
  CHECK(strcmp(err, "udp.port must be a whole number from 0 to 65535") == 0);
  const cfg_entry_t not_whole[] = {{"generator.threads", 'n', NULL, 1.5}};
  CHECK(create(p, not_whole, 1, &eng, err) == EE_EINVAL);
  CHECK(strcmp(err, "generator.threads must be a whole number from 0 to 64") == 0);
  const cfg_entry_t wrong_type[] = {{"udp.enabled", 's', "yes", 0}};
  CHECK(create(p, wrong_type, 1, &eng, err) == EE_EINVAL);
  CHECK(strcmp(err, "udp.enabled must be true or false") == 0);
  const cfg_entry_t bad_subject[] = {{"udp.port", 'n', NULL, 0}, {"tick.subject", 's', "a b", 0}};
  CHECK(create(p, bad_subject, 2, &eng, err) == EE_EINVAL);
  CHECK(strcmp(err, "tick.subject \"a b\" is not a valid subject (tokens separated by single dots; no spaces, \", \\, * or >)") == 0);
  /* A busy UDP port names the port and the key that changes it. */
  const cfg_entry_t first[] = {{"udp.port", 'n', NULL, 0}, {"tick.hz", 'n', NULL, 0}};
  void *holder = NULL;
  CHECK(create(p, first, 2, &holder, err) == 0);
  const evb_plugin_source_t *sources;
  CHECK(p->sources(holder, &sources) == 1);
  const char *colon = strrchr(sources[0].detail, ':');
  CHECK(colon);
  const cfg_entry_t busy[] = {{"udp.port", 'n', NULL, (double)atoi(colon + 1)}, {"tick.hz", 'n', NULL, 0}};
  CHECK(create(p, busy, 2, &eng, err) == EE_EADDRINUSE);
  char want[128];
  snprintf(want, sizeof want, "UDP address 127.0.0.1:%d is already in use; udp.port chooses another", atoi(colon + 1));
  CHECK(strcmp(err, want) == 0);
  p->free(holder);
}
