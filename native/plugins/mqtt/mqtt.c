/*
 * mqtt.c -- an evbridge engine plugin for MQTT with libmosquitto: the
 * "device SDK" case. libmosquitto's network thread (mosquitto_loop_start)
 * calls on_message for every message; the plugin hands each to the bridge
 * as one event: kind "message", payload = the message payload, flags = the
 * QoS (bits 0-1) and the retain flag (bit 2), subject from the topic.
 *
 * Topics and subjects: an MQTT topic's levels are separated by "/", a
 * subject's tokens by ".", so "sensors/room1/temp" becomes
 * "sensors.room1.temp". A topic that cannot be a subject (an empty level, as
 * in "a//b" or "/a"; a level with ".", "*", ">", a space, '"' or "\") is
 * delivered without a subject and counted (unmappable_topics_total).
 * Subscribers filter with NATS wildcards: MQTT's "+" is "*"; MQTT's "#"
 * (zero or more levels) is ">" (one or more tokens) together with the parent
 * itself, so "a/#" is the two patterns "a" and "a.>".
 *
 * Configuration (engine.config):
 *   host ("127.0.0.1"), port (1883), keepalive (60 s)
 *   topics            MQTT topic filters to subscribe to (default ["#"])
 *   qos               0, 1 (default) or 2
 *   client_id         default "evbridge-<pid>"
 *   clean_session     default false: the broker keeps the session and, for
 *                     QoS 1 and 2, queues messages while the adapter is away
 *   reconnect_max_ms  longest wait between reconnects (default 5000; the
 *                     first is 100 ms, doubling)
 *
 * Broker restarts: libmosquitto's thread reconnects on its own; on each
 * connect the adapter subscribes again. What it missed while away is visible
 * in its counters: disconnects_total, connects_total, and the seconds it was
 * disconnected (disconnected_seconds_total). With clean_session false and
 * QoS >= 1 the broker redelivers what it queued for the session.
 *
 * Threading: create, start, stop, free and counters run on the host's
 * control thread; libmosquitto's network thread calls the callbacks.
 */
#define _GNU_SOURCE
#include <mosquitto.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "evb_plugin_util.h"

enum { KIND_MESSAGE = 1, COUNTERS = 6, MAX_TOPICS = 64 };

typedef struct {
  evbu_slot_t slot;
  const evb_host_t *host;     /* static: kept for subject_valid */
  struct mosquitto *mosq;
  char *host_name;
  int port, keepalive, qos;
  char *topics[MAX_TOPICS];
  size_t ntopics;
  bool running;
  uint64_t seq;               /* network thread only */
  _Atomic uint64_t messages, connects, disconnects, unmappable, cb_errors;
  _Atomic int64_t down_since_ns; /* 0 while connected */
  _Atomic uint64_t down_ns;      /* total time disconnected, ns */
  char detail[300];
  evb_plugin_source_t source;
  evb_plugin_counter_t counters[COUNTERS];
} mq_t;

static const evb_plugin_kind_t kinds[] = {{.number = KIND_MESSAGE, .name = "message"}};
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) { mosquitto_lib_init(); }

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_connect(struct mosquitto *mosq, void *user, int rc) {
  mq_t *m = user;
  if (rc != 0) return; /* refused: libmosquitto retries */
  atomic_fetch_add(&m->connects, 1);
  int64_t since = atomic_exchange(&m->down_since_ns, 0);
  if (since) atomic_fetch_add(&m->down_ns, (uint64_t)(now_ns() - since));
  for (size_t i = 0; i < m->ntopics; i++) mosquitto_subscribe(mosq, NULL, m->topics[i], m->qos);
}

static void on_disconnect(struct mosquitto *mosq, void *user, int rc) {
  (void)mosq;
  (void)rc;
  mq_t *m = user;
  atomic_fetch_add(&m->disconnects, 1);
  int64_t zero = 0;
  atomic_compare_exchange_strong(&m->down_since_ns, &zero, now_ns());
}

static void on_message(struct mosquitto *mosq, void *user, const struct mosquitto_message *msg) {
  (void)mosq;
  mq_t *m = user;
  char subject[EVB_SUBJECT_MAX + 1];
  size_t len = strlen(msg->topic);
  bool mapped = len > 0 && len <= EVB_SUBJECT_MAX;
  if (mapped) {
    for (size_t i = 0; i < len; i++) {
      char ch = msg->topic[i];
      subject[i] = ch == '/' ? '.' : ch == '.' ? '\0' : ch; /* a "." in a level cannot be mapped */
      if (subject[i] == '\0') mapped = false;
    }
    mapped = mapped && evbu_subject_ok(m->host, subject, len);
  }
  if (!mapped) atomic_fetch_add(&m->unmappable, 1);
  evb_event_t ev = {.kind = KIND_MESSAGE,
                    .flags = (uint32_t)(msg->qos & 3) | (msg->retain ? 4u : 0u),
                    .source_seq = m->seq++,
                    .ts_ns = (uint64_t)now_ns(),
                    .payload = msg->payloadlen ? msg->payload : NULL,
                    .len = (size_t)msg->payloadlen,
                    .subject = mapped ? subject : NULL,
                    .subject_len = mapped ? (uint32_t)len : 0};
  atomic_fetch_add(&m->messages, 1);
  if (evbu_slot_dispatch(&m->slot, &ev) < 0) atomic_fetch_add(&m->cb_errors, 1);
}

static void m_free(void *engine);

static int m_create(const evb_host_t *host, const evb_config_t *cfg, const char *json, size_t json_len, void **out,
                    char *err, size_t err_cap) {
  (void)json;
  (void)json_len;
  evbu_config_t cf = evbu_config(host, cfg, err, err_cap);
  const char *host_name = "127.0.0.1", *client_id = NULL;
  double port = 1883, keepalive = 60, qos = 1, reconnect_max = 5000;
  bool clean = false;
  size_t ntopics = 0;
  evbu_cfg_string(&cf, "host", &host_name);
  evbu_cfg_number(&cf, "port", 1, 65535, true, &port);
  evbu_cfg_number(&cf, "keepalive", 5, 65535, true, &keepalive);
  evbu_cfg_number(&cf, "qos", 0, 2, true, &qos);
  evbu_cfg_string(&cf, "client_id", &client_id);
  evbu_cfg_bool(&cf, "clean_session", &clean);
  evbu_cfg_number(&cf, "reconnect_max_ms", 100, 3600000, true, &reconnect_max);
  evbu_cfg_length(&cf, "topics", MAX_TOPICS, &ntopics);
  if (cf.failed) return EVBU_EINVAL;
  mq_t *m = calloc(1, sizeof *m);
  if (!m) return EVBU_ENOMEM;
  m->host = host;
  m->port = (int)port;
  m->keepalive = (int)keepalive;
  m->qos = (int)qos;
  m->host_name = strdup(host_name);
  for (size_t i = 0; i < ntopics && !cf.failed; i++) {
    char path[32];
    const char *topic = NULL;
    snprintf(path, sizeof path, "topics.%zu", i);
    evbu_cfg_string(&cf, path, &topic);
    if (!cf.failed && (!topic || mosquitto_sub_topic_check(topic) != MOSQ_ERR_SUCCESS))
      evbu_fail(&cf, "%s is not an MQTT topic filter", path);
    if (!cf.failed) m->topics[m->ntopics++] = strdup(topic);
  }
  if (!cf.failed && ntopics == 0) m->topics[m->ntopics++] = strdup("#");
  if (cf.failed) {
    m_free(m);
    return EVBU_EINVAL;
  }
  pthread_once(&lib_once, lib_init);
  char id[64];
  if (!client_id) snprintf(id, sizeof id, "evbridge-%d", (int)getpid());
  m->mosq = mosquitto_new(client_id ? client_id : id, clean, m);
  if (!m->mosq) {
    evbu_fail(&cf, "mosquitto_new failed (clean_session false needs a client_id, or out of memory)");
    m_free(m);
    return EVBU_EIO;
  }
  mosquitto_connect_callback_set(m->mosq, on_connect);
  mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
  mosquitto_message_callback_set(m->mosq, on_message);
  mosquitto_reconnect_delay_set(m->mosq, 1, (unsigned)((reconnect_max + 999) / 1000), true);
  snprintf(m->detail, sizeof m->detail, "mqtt://%s:%d, %zu topic filter(s), qos %d", m->host_name, m->port, m->ntopics, m->qos);
  m->source = (evb_plugin_source_t){.id = 0, .kind = KIND_MESSAGE, .name = "mqtt", .detail = m->detail};
  static const char *const names[COUNTERS][2] = {
      {"messages_total", "MQTT messages received and handed to the bridge."},
      {"connects_total", "Connections to the broker made (the first one and every reconnect)."},
      {"disconnects_total", "Connections to the broker lost or closed."},
      {"disconnected_seconds_total", "Seconds spent without a broker connection after the first one."},
      {"unmappable_topics_total", "Messages whose topic cannot be a subject, delivered without one."},
      {"callback_errors_total", "Messages the bridge refused (see its own counters for why)."},
  };
  for (int i = 0; i < COUNTERS; i++) m->counters[i] = (evb_plugin_counter_t){.name = names[i][0], .help = names[i][1]};
  *out = m;
  return 0;
}

static uint32_t m_kinds(void *engine, const evb_plugin_kind_t **out) {
  (void)engine;
  *out = kinds;
  return 1;
}

static int64_t m_register(void *engine, evb_event_cb cb, void *userdata, uint32_t mask) {
  return evbu_slot_register(&((mq_t *)engine)->slot, cb, userdata, mask);
}

static int m_unregister(void *engine, int64_t id) { return evbu_slot_unregister(&((mq_t *)engine)->slot, id); }

static int m_start(void *engine) {
  mq_t *m = engine;
  if (m->running) return EVBU_EBUSY;
  /* Asynchronous: a broker that is not up yet is retried by the loop thread. */
  mosquitto_connect_async(m->mosq, m->host_name, m->port, m->keepalive);
  if (mosquitto_loop_start(m->mosq) != MOSQ_ERR_SUCCESS) return EVBU_ETHREAD;
  m->running = true;
  return 0;
}

static int m_stop(void *engine) {
  mq_t *m = engine;
  if (!m->running) return 0;
  mosquitto_disconnect(m->mosq);
  mosquitto_loop_stop(m->mosq, true); /* joins the network thread: no callback after this */
  m->running = false;
  return 0;
}

static void m_free(void *engine) {
  mq_t *m = engine;
  if (!m) return;
  if (m->mosq) {
    m_stop(m);
    mosquitto_destroy(m->mosq);
  }
  for (size_t i = 0; i < m->ntopics; i++) free(m->topics[i]);
  free(m->host_name);
  free(m);
}

static const char *m_strerror(int err) { return evbu_strerror(err); }

static uint32_t m_sources(void *engine, const evb_plugin_source_t **out) {
  *out = &((mq_t *)engine)->source;
  return 1;
}

static uint32_t m_counters(void *engine, const evb_plugin_counter_t **out) {
  mq_t *m = engine;
  int64_t since = atomic_load(&m->down_since_ns);
  uint64_t down = atomic_load(&m->down_ns) + (since ? (uint64_t)(now_ns() - since) : 0);
  m->counters[0].value = atomic_load(&m->messages);
  m->counters[1].value = atomic_load(&m->connects);
  m->counters[2].value = atomic_load(&m->disconnects);
  m->counters[3].value = down / 1000000000u;
  m->counters[4].value = atomic_load(&m->unmappable);
  m->counters[5].value = atomic_load(&m->cb_errors);
  *out = m->counters;
  return COUNTERS;
}

static const evb_plugin_t plugin = {
    .abi_version = EVB_PLUGIN_ABI_VERSION,
    .size = sizeof(evb_plugin_t),
    .name = "mqtt",
    .version = "1.0.0",
    .create = m_create,
    .kinds = m_kinds,
    .register_callback = m_register,
    .unregister_callback = m_unregister,
    .start = m_start,
    .stop = m_stop,
    .free = m_free,
    .strerror = m_strerror,
    .sources = m_sources,
    .counters = m_counters,
};

EVB_PLUGIN_EXPORT const evb_plugin_t *evb_plugin_entry(void) { return &plugin; }
