/* Runs every test of test_list.h (or those named on the command line), each
 * in a forked child with a TEST_TIMEOUT_S alarm, and prints one line per
 * test and a closing "engine: N passed, N failed". */
#include "runner.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "test_list.h"

#define EE_DECLARE(name) TEST(name);
EE_TESTS(EE_DECLARE)

static const struct {
  const char *name;
  void (*fn)(void);
} tests[] = {
#define EE_ENTRY(name) {#name, test_##name},
    EE_TESTS(EE_ENTRY)
};

void waiter_init(waiter_t *w) {
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &a);
  pthread_condattr_destroy(&a);
  w->n = 0;
}

void waiter_bump(waiter_t *w) {
  pthread_mutex_lock(&w->mu);
  w->n++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

uint64_t waiter_wait(waiter_t *w, uint64_t target, int timeout_ms) {
  uint64_t deadline = ee_now_ns() + (uint64_t)timeout_ms * 1000000u;
  struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u), .tv_nsec = (long)(deadline % 1000000000u)};
  pthread_mutex_lock(&w->mu);
  while (w->n < target && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0) {
  }
  uint64_t n = w->n;
  pthread_mutex_unlock(&w->mu);
  return n;
}

static int wanted(int argc, char **argv, const char *name) {
  if (argc < 2) return 1;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    if (!wanted(argc, argv, tests[i].name)) continue;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 2;
    }
    if (pid == 0) {
      alarm(TEST_TIMEOUT_S);
      tests[i].fn();
      fflush(stdout);
      _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) {
      printf("ok %s\n", tests[i].name);
      passed++;
    } else if (WIFSIGNALED(status)) {
      printf("not ok %s (%s)\n", tests[i].name,
             WTERMSIG(status) == SIGALRM ? "timed out" : strsignal(WTERMSIG(status)));
      failed++;
    } else {
      printf("not ok %s (exit %d)\n", tests[i].name, WEXITSTATUS(status));
      failed++;
    }
  }
  printf("engine: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
