/*
 * pcap.c -- an evbridge engine plugin for packet capture with libpcap: a C
 * event loop (pcap_dispatch, on the plugin's thread) calling a handler for
 * every packet that arrives. One event per packet: kind "packet", payload =
 * the captured bytes, subject from the packet's protocol and destination
 * port ("udp.5140", "tcp.443", "icmp", "icmp6", "ip.<protocol>", "arp",
 * "other"), flags bit 0 = cut by the snapshot length.
 *
 * Configuration (engine.config), one of:
 *   device        capture live on this interface ("lo", "eth0", "any")
 *   file          replay this capture file (pcap or pcapng)
 * and:
 *   filter        a BPF filter ("udp port 5140"), default none
 *   snaplen       bytes kept per packet, 64 to 262144 (default 65535)
 *   promiscuous   false (default) or true, live only
 *   buffer_bytes  kernel capture buffer, live only (default 4 MiB)
 *   timestamps    "capture" or "replay" (see below)
 *
 * Timestamps: libpcap stamps packets with the wall clock (nanosecond
 * precision here). With "capture" (the default for live capture), ts_ns is
 * that stamp moved onto CLOCK_MONOTONIC with the offset measured at start,
 * so the bridge's callback delay is the time from the kernel's stamp to the
 * callback, and "late" means the capture thread fell behind. With "replay"
 * (the default for files), ts_ns is the time the packet is read from the
 * file: a file's stamps are in the past, and counting every packet late
 * would say nothing. The original stamp of a replayed packet is not kept.
 *
 * Live capture needs CAP_NET_RAW (and AF_PACKET): see
 * daemon/evbridge-pcap.conf, the systemd drop-in, and native/plugins/README.md.
 *
 * Threading: create, start, stop, free and counters run on the host's
 * control thread; the capture thread calls the callback. Stop uses
 * pcap_breakloop, with a 100 ms read timeout so that a live capture with no
 * traffic notices it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "evb_plugin_util.h"

enum { KIND_PACKET = 1, COUNTERS = 5 };

typedef struct {
  evbu_slot_t slot;
  pcap_t *handle;
  int linktype;
  bool live;
  bool capture_ts;            /* ts_ns from the packet's stamp, else from the clock */
  int64_t wall_minus_mono;    /* ns, measured at start */
  pthread_t thread;
  bool running;
  _Atomic int stopping;
  uint64_t seq;               /* capture thread only */
  _Atomic uint64_t packets, truncated, kernel_drops, if_drops, cb_errors;
  char detail[300];
  evb_plugin_source_t source;
  evb_plugin_counter_t counters[COUNTERS];
} cap_t;

static const evb_plugin_kind_t kinds[] = {{.number = KIND_PACKET, .name = "packet"}};

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint16_t be16(const u_char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* The subject of an IP packet at `ip` (n bytes), into out. */
static void ip_subject(const u_char *ip, size_t n, char *out, size_t cap) {
  if (n < 1) goto other;
  int version = ip[0] >> 4;
  unsigned proto;
  size_t l4;
  if (version == 4 && n >= 20) {
    proto = ip[9];
    l4 = (size_t)(ip[0] & 0x0f) * 4;
  } else if (version == 6 && n >= 40) {
    proto = ip[6];
    l4 = 40;
  } else goto other;
  if ((proto == 6 || proto == 17) && n >= l4 + 4) {
    snprintf(out, cap, "%s.%u", proto == 6 ? "tcp" : "udp", be16(ip + l4 + 2));
  } else if (proto == 1) {
    snprintf(out, cap, "icmp");
  } else if (proto == 58) {
    snprintf(out, cap, "icmp6");
  } else {
    snprintf(out, cap, "ip.%u", proto);
  }
  return;
other:
  snprintf(out, cap, "other");
}

/* The subject of a captured packet: the link header, then IP. */
static void subject_of(int linktype, const u_char *p, size_t n, char *out, size_t cap) {
  size_t off;
  uint16_t ethertype;
  switch (linktype) {
    case DLT_EN10MB:
      if (n < 14) goto other;
      ethertype = be16(p + 12);
      off = 14;
      if (ethertype == 0x8100 && n >= 18) { /* one VLAN tag */
        ethertype = be16(p + 16);
        off = 18;
      }
      break;
    case DLT_LINUX_SLL:
      if (n < 16) goto other;
      ethertype = be16(p + 14);
      off = 16;
      break;
    case DLT_LINUX_SLL2:
      if (n < 20) goto other;
      ethertype = be16(p);
      off = 20;
      break;
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
      ip_subject(p, n, out, cap);
      return;
    default:
      goto other;
  }
  if (ethertype == 0x0800 || ethertype == 0x86dd) ip_subject(p + off, n - off, out, cap);
  else if (ethertype == 0x0806) snprintf(out, cap, "arp");
  else goto other;
  return;
other:
  snprintf(out, cap, "other");
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes) {
  cap_t *c = (cap_t *)user;
  char subject[32];
  subject_of(c->linktype, bytes, h->caplen, subject, sizeof subject);
  /* tv_usec holds nanoseconds: the handle was opened with nanosecond precision. */
  int64_t stamp = (int64_t)h->ts.tv_sec * 1000000000 + h->ts.tv_usec;
  evb_event_t ev = {.kind = KIND_PACKET,
                    .flags = h->caplen < h->len ? 1u : 0u,
                    .source_seq = c->seq++,
                    .ts_ns = (uint64_t)(c->capture_ts ? stamp - c->wall_minus_mono : clock_ns(CLOCK_MONOTONIC)),
                    .payload = h->caplen ? bytes : NULL,
                    .len = h->caplen,
                    .subject = subject,
                    .subject_len = (uint32_t)strlen(subject)};
  atomic_fetch_add(&c->packets, 1);
  if (ev.flags) atomic_fetch_add(&c->truncated, 1);
  if (evbu_slot_dispatch(&c->slot, &ev) < 0) atomic_fetch_add(&c->cb_errors, 1);
}

static void *capture_main(void *arg) {
  cap_t *c = arg;
  while (!atomic_load(&c->stopping)) {
    int n = pcap_dispatch(c->handle, -1, on_packet, (u_char *)c);
    if (c->live) {
      struct pcap_stat st;
      if (pcap_stats(c->handle, &st) == 0) {
        atomic_store(&c->kernel_drops, st.ps_drop);
        atomic_store(&c->if_drops, st.ps_ifdrop);
      }
    }
    if (n == PCAP_ERROR_BREAK || n < 0) break; /* stopped, or an error */
    if (n == 0 && !c->live) break;              /* the end of the file */
  }
  return NULL;
}

static int fail(evbu_config_t *cf, cap_t *c, const char *fmt, const char *a, const char *b) {
  evbu_fail(cf, fmt, a, b);
  if (c->handle) pcap_close(c->handle);
  free(c);
  return EVBU_EIO;
}

static int p_create(const evb_host_t *host, const evb_config_t *cfg, const char *json, size_t json_len, void **out,
                    char *err, size_t err_cap) {
  (void)json;
  (void)json_len;
  evbu_config_t cf = evbu_config(host, cfg, err, err_cap);
  const char *device = NULL, *file = NULL, *filter = NULL, *timestamps = NULL;
  double snaplen = 65535, buffer = 4 << 20;
  bool promisc = false;
  evbu_cfg_string(&cf, "device", &device);
  evbu_cfg_string(&cf, "file", &file);
  evbu_cfg_string(&cf, "filter", &filter);
  evbu_cfg_number(&cf, "snaplen", 64, 262144, true, &snaplen);
  evbu_cfg_bool(&cf, "promiscuous", &promisc);
  evbu_cfg_number(&cf, "buffer_bytes", 65536, 1 << 30, true, &buffer);
  evbu_cfg_string(&cf, "timestamps", &timestamps);
  if (!cf.failed && (!device) == (!file)) evbu_fail(&cf, "set exactly one of device (live capture) and file (replay)");
  if (!cf.failed && timestamps && strcmp(timestamps, "capture") != 0 && strcmp(timestamps, "replay") != 0)
    evbu_fail(&cf, "timestamps must be \"capture\" or \"replay\"");
  if (cf.failed) return EVBU_EINVAL;
  cap_t *c = calloc(1, sizeof *c);
  if (!c) return EVBU_ENOMEM;
  char eb[PCAP_ERRBUF_SIZE] = "";
  c->live = device != NULL;
  c->capture_ts = timestamps ? strcmp(timestamps, "capture") == 0 : c->live;
  if (file) {
    c->handle = pcap_open_offline_with_tstamp_precision(file, PCAP_TSTAMP_PRECISION_NANO, eb);
    if (!c->handle) return fail(&cf, c, "cannot open capture file %s: %s", file, eb);
    snprintf(c->detail, sizeof c->detail, "file %s", file);
  } else {
    c->handle = pcap_create(device, eb);
    if (!c->handle) return fail(&cf, c, "cannot capture on %s: %s", device, eb);
    pcap_set_snaplen(c->handle, (int)snaplen);
    pcap_set_promisc(c->handle, promisc);
    pcap_set_timeout(c->handle, 100);
    pcap_set_immediate_mode(c->handle, 1);
    pcap_set_buffer_size(c->handle, (int)buffer);
    pcap_set_tstamp_precision(c->handle, PCAP_TSTAMP_PRECISION_NANO);
    int rc = pcap_activate(c->handle);
    if (rc == PCAP_ERROR_PERM_DENIED || rc == PCAP_ERROR_PROMISC_PERM_DENIED)
      return fail(&cf, c, "capturing on %s is not permitted: %s (live capture needs CAP_NET_RAW; see daemon/evbridge-pcap.conf)", device,
                  pcap_geterr(c->handle));
    if (rc < 0) return fail(&cf, c, "cannot capture on %s: %s", device, pcap_geterr(c->handle));
    snprintf(c->detail, sizeof c->detail, "live on %s", device);
  }
  if (filter) {
    struct bpf_program prog;
    if (pcap_compile(c->handle, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0)
      return fail(&cf, c, "filter \"%s\" does not compile: %s", filter, pcap_geterr(c->handle));
    int rc = pcap_setfilter(c->handle, &prog);
    pcap_freecode(&prog);
    if (rc != 0) return fail(&cf, c, "filter \"%s\" cannot be set: %s", filter, pcap_geterr(c->handle));
    size_t used = strlen(c->detail);
    snprintf(c->detail + used, sizeof c->detail - used, ", filter %s", filter);
  }
  c->linktype = pcap_datalink(c->handle);
  c->source = (evb_plugin_source_t){.id = 0, .kind = KIND_PACKET, .name = "pcap", .detail = c->detail};
  static const char *const names[COUNTERS][2] = {
      {"packets_total", "Packets captured and handed to the bridge."},
      {"truncated_packets_total", "Packets cut by the snapshot length (flags bit 0)."},
      {"kernel_drops_total", "Packets the kernel dropped because the capture buffer was full (pcap_stats ps_drop)."},
      {"interface_drops_total", "Packets the interface or its driver dropped (pcap_stats ps_ifdrop)."},
      {"callback_errors_total", "Packets the bridge refused (see its own counters for why)."},
  };
  for (int i = 0; i < COUNTERS; i++) c->counters[i] = (evb_plugin_counter_t){.name = names[i][0], .help = names[i][1]};
  *out = c;
  return 0;
}

static uint32_t p_kinds(void *engine, const evb_plugin_kind_t **out) {
  (void)engine;
  *out = kinds;
  return 1;
}

static int64_t p_register(void *engine, evb_event_cb cb, void *userdata, uint32_t mask) {
  return evbu_slot_register(&((cap_t *)engine)->slot, cb, userdata, mask);
}

static int p_unregister(void *engine, int64_t id) { return evbu_slot_unregister(&((cap_t *)engine)->slot, id); }

static int p_start(void *engine) {
  cap_t *c = engine;
  if (c->running) return EVBU_EBUSY;
  c->wall_minus_mono = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
  atomic_store(&c->stopping, 0);
  if (pthread_create(&c->thread, NULL, capture_main, c) != 0) return EVBU_ETHREAD;
  c->running = true;
  return 0;
}

static int p_stop(void *engine) {
  cap_t *c = engine;
  if (!c->running) return 0;
  atomic_store(&c->stopping, 1);
  pcap_breakloop(c->handle);
  pthread_join(c->thread, NULL); /* no callback runs after this */
  c->running = false;
  return 0;
}

static void p_free(void *engine) {
  cap_t *c = engine;
  if (!c) return;
  p_stop(c);
  pcap_close(c->handle);
  free(c);
}

static const char *p_strerror(int err) { return evbu_strerror(err); }

static uint32_t p_sources(void *engine, const evb_plugin_source_t **out) {
  *out = &((cap_t *)engine)->source;
  return 1;
}

static uint32_t p_counters(void *engine, const evb_plugin_counter_t **out) {
  cap_t *c = engine;
  c->counters[0].value = atomic_load(&c->packets);
  c->counters[1].value = atomic_load(&c->truncated);
  c->counters[2].value = atomic_load(&c->kernel_drops);
  c->counters[3].value = atomic_load(&c->if_drops);
  c->counters[4].value = atomic_load(&c->cb_errors);
  *out = c->counters;
  return COUNTERS;
}

static const evb_plugin_t plugin = {
    .abi_version = EVB_PLUGIN_ABI_VERSION,
    .size = sizeof(evb_plugin_t),
    .name = "pcap",
    .version = "1.0.0",
    .create = p_create,
    .kinds = p_kinds,
    .register_callback = p_register,
    .unregister_callback = p_unregister,
    .start = p_start,
    .stop = p_stop,
    .free = p_free,
    .strerror = p_strerror,
    .sources = p_sources,
    .counters = p_counters,
};

EVB_PLUGIN_EXPORT const evb_plugin_t *evb_plugin_entry(void) { return &plugin; }
