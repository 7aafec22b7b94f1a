/* A small test runner in the manner of libuv's: each test is a function in a
 * file of its feature, listed in test_list.h, and runs in a forked process
 * with a timeout, so that a crash or a hang fails that test alone. Checks
 * end the test at the first failure. Waits are bounded (WAIT_FOR, waiter_wait). */
#ifndef EE_TEST_RUNNER_H
#define EE_TEST_RUNNER_H

#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "evengine.h"

/* Seconds a test may run before the runner kills it. */
#define TEST_TIMEOUT_S 30

#define TEST(name) void test_##name(void)

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "  check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
      fflush(stderr);                                                                   \
      _exit(1);                                                                         \
    }                                                                                   \
  } while (0)

/* Polls `cond`, yielding between polls, until it holds; fails the test when
 * it does not hold within `ms` milliseconds. */
#define WAIT_FOR(cond, ms)                                                                        \
  for (uint64_t test__deadline = ee_now_ns() + (uint64_t)(ms) * 1000000u; !(cond);) {             \
    if (ee_now_ns() > test__deadline) {                                                           \
      fprintf(stderr, "  timed out after %d ms at %s:%d waiting for %s\n", (ms), __FILE__, __LINE__, #cond); \
      fflush(stderr);                                                                             \
      _exit(1);                                                                                   \
    }                                                                                             \
    sched_yield();                                                                                \
  }

/* A counter that a test can wait on (condition variable, bounded wait). */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t n;
} waiter_t;

void waiter_init(waiter_t *w);
void waiter_bump(waiter_t *w);
/* Waits until n >= target or timeout_ms passes; returns n. */
uint64_t waiter_wait(waiter_t *w, uint64_t target, int timeout_ms);

#endif
