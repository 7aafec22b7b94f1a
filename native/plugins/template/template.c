/*
 * template.c -- a complete evbridge engine plugin, meant to be copied.
 *
 * It reads lines from a named pipe (or stdin) on a thread of its own and
 * hands each line to the bridge as one event: kind "line", payload = the
 * line without its newline, subject from the configuration. Replace the
 * reader thread with your library's event loop and its callback; keep the
 * rest. native/plugins/README.md walks through it.
 *
 * Configuration (engine.config):
 *   path            file to read: a named pipe, a regular file, or "-" for
 *                   stdin (default "-"). A pipe is reopened when its writer
 *                   closes; a regular file or stdin is read to its end once.
 *   subject         subject of every line (default none)
 *   max_line_bytes  longest line delivered, 1 to 65536 (default 4096);
 *                   longer lines are cut there and counted
 *
 * Threading: create, start, stop and free run on the host's control
 * thread; the reader thread calls the callback. Build:
 *   cc -shared -fPIC -fvisibility=hidden -I native/include -o libevb_template.so template.c -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evb_plugin_util.h"

enum { KIND_LINE = 1, COUNTERS = 3 };

typedef struct {
  evbu_slot_t slot;            /* the bridge's registration */
  char *path;                  /* NULL for stdin */
  char *subject;               /* NULL for none */
  size_t max_line;
  int fd;                      /* open while running */
  int stop_fd;                 /* eventfd: readable when stopping */
  pthread_t thread;
  bool running;
  uint64_t seq;                /* source_seq of the next line (reader thread) */
  _Atomic uint64_t lines, truncated, cb_errors;
  evb_plugin_counter_t counters[COUNTERS];
} template_t;

static const evb_plugin_kind_t kinds[] = {{.number = KIND_LINE, .name = "line"}};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One line to the bridge: never blocks, copies nothing. */
static void deliver(template_t *t, const char *line, size_t len) {
  if (len > t->max_line) {
    len = t->max_line;
    atomic_fetch_add(&t->truncated, 1);
  }
  evb_event_t ev = {.kind = KIND_LINE, .source_seq = t->seq++, .ts_ns = now_ns(), .payload = len ? line : NULL,
                    .len = len, .subject = t->subject, .subject_len = t->subject ? (uint32_t)strlen(t->subject) : 0};
  atomic_fetch_add(&t->lines, 1);
  if (evbu_slot_dispatch(&t->slot, &ev) < 0) atomic_fetch_add(&t->cb_errors, 1);
}

static void *reader_main(void *arg) {
  template_t *t = arg;
  size_t cap = t->max_line + 1, used = 0;
  bool skipping = false; /* inside the rest of a line that was cut */
  char *buf = malloc(cap);
  if (!buf) return NULL;
  struct pollfd fds[2] = {{.fd = t->fd, .events = POLLIN}, {.fd = t->stop_fd, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents) break; /* stopping */
    if (!fds[0].revents) continue;
    ssize_t n = read(t->fd, buf + used, cap - used);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) { /* end of a regular file or stdin: wait for stop only */
      fds[0].fd = -1;
      continue;
    }
    used += (size_t)n;
    size_t start = 0;
    for (size_t i = 0; i < used; i++) {
      if (buf[i] != '\n') continue;
      if (!skipping) deliver(t, buf + start, i - start);
      skipping = false;
      start = i + 1;
    }
    if (start == 0 && used == cap) { /* no newline in a full buffer: the line is too long */
      if (!skipping) deliver(t, buf, used); /* delivered cut, and counted */
      skipping = true;
      used = 0;
      continue;
    }
    memmove(buf, buf + start, used - start);
    used -= start;
  }
  free(buf);
  return NULL;
}

static int t_create(const evb_host_t *host, const evb_config_t *cfg, const char *json, size_t json_len, void **out,
                    char *err, size_t err_cap) {
  (void)json;
  (void)json_len;
  evbu_config_t c = evbu_config(host, cfg, err, err_cap);
  const char *path = "-", *subject = NULL;
  double max_line = 4096;
  evbu_cfg_string(&c, "path", &path);
  evbu_cfg_subject(&c, "subject", &subject);
  evbu_cfg_number(&c, "max_line_bytes", 1, 65536, true, &max_line);
  if (c.failed) return EVBU_EINVAL;
  template_t *t = calloc(1, sizeof *t);
  if (!t) return EVBU_ENOMEM;
  t->fd = -1;
  t->max_line = (size_t)max_line;
  t->path = strcmp(path, "-") == 0 ? NULL : strdup(path);
  t->subject = subject ? strdup(subject) : NULL;
  t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  static const char *const names[COUNTERS][2] = {
      {"lines_total", "Lines read and handed to the bridge."},
      {"truncated_lines_total", "Lines longer than max_line_bytes, cut there."},
      {"callback_errors_total", "Lines the bridge refused (see its own counters for why)."},
  };
  for (int i = 0; i < COUNTERS; i++) t->counters[i] = (evb_plugin_counter_t){.name = names[i][0], .help = names[i][1]};
  if (t->stop_fd < 0 || (strcmp(path, "-") != 0 && !t->path) || (subject && !t->subject)) {
    evbu_fail(&c, "out of memory or file descriptors");
    if (t->stop_fd >= 0) close(t->stop_fd);
    free(t->path);
    free(t->subject);
    free(t);
    return EVBU_ENOMEM;
  }
  *out = t;
  return 0;
}

static uint32_t t_kinds(void *engine, const evb_plugin_kind_t **out) {
  (void)engine;
  *out = kinds;
  return 1;
}

static int64_t t_register(void *engine, evb_event_cb cb, void *userdata, uint32_t mask) {
  return evbu_slot_register(&((template_t *)engine)->slot, cb, userdata, mask);
}

static int t_unregister(void *engine, int64_t id) { return evbu_slot_unregister(&((template_t *)engine)->slot, id); }

static int t_start(void *engine) {
  template_t *t = engine;
  if (t->running) return EVBU_EBUSY;
  if (t->path) {
    /* A named pipe is opened for reading and writing (Linux allows it), so
     * that it never reports end-of-file when its writers come and go. */
    struct stat st;
    int fifo = stat(t->path, &st) == 0 && S_ISFIFO(st.st_mode);
    t->fd = open(t->path, (fifo ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC);
  } else {
    t->fd = dup(STDIN_FILENO);
  }
  if (t->fd < 0) return EVBU_EIO;
  uint64_t drain;
  while (read(t->stop_fd, &drain, sizeof drain) > 0) {
  }
  if (pthread_create(&t->thread, NULL, reader_main, t) != 0) {
    close(t->fd);
    return EVBU_ETHREAD;
  }
  t->running = true;
  return 0;
}

static int t_stop(void *engine) {
  template_t *t = engine;
  if (!t->running) return 0;
  uint64_t one = 1;
  if (write(t->stop_fd, &one, sizeof one) != sizeof one) return EVBU_EIO;
  pthread_join(t->thread, NULL); /* no callback runs after this */
  close(t->fd);
  t->fd = -1;
  t->running = false;
  return 0;
}

static void t_free(void *engine) {
  template_t *t = engine;
  if (!t) return;
  t_stop(t);
  close(t->stop_fd);
  free(t->path);
  free(t->subject);
  free(t);
}

static const char *t_strerror(int err) { return evbu_strerror(err); }

static uint32_t t_counters(void *engine, const evb_plugin_counter_t **out) {
  template_t *t = engine;
  t->counters[0].value = atomic_load(&t->lines);
  t->counters[1].value = atomic_load(&t->truncated);
  t->counters[2].value = atomic_load(&t->cb_errors);
  *out = t->counters;
  return COUNTERS;
}

static const evb_plugin_t plugin = {
    .abi_version = EVB_PLUGIN_ABI_VERSION,
    .size = sizeof(evb_plugin_t),
    .name = "template",
    .version = "1.0.0",
    .create = t_create,
    .kinds = t_kinds,
    .register_callback = t_register,
    .unregister_callback = t_unregister,
    .start = t_start,
    .stop = t_stop,
    .free = t_free,
    .strerror = t_strerror,
    .counters = t_counters,
};

EVB_PLUGIN_EXPORT const evb_plugin_t *evb_plugin_entry(void) { return &plugin; }
