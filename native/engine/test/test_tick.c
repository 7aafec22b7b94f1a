/* The frame tick: frames on absolute deadlines, ts = scheduled time, subject. */
#include "runner.h"

#include <string.h>

#define TICKS 50
static waiter_t tick_w;
static uint64_t tick_ts[TICKS];
static uint64_t tick_frame[TICKS];
static int tick_bad;

static int tick_cb(const ee_event_t *ev, void *ud) {
  (void)ud;
  if (tick_w.n < TICKS && ev->len == sizeof(ee_tick_payload_t)) {
    ee_tick_payload_t p;
    memcpy(&p, ev->payload, sizeof p);
    tick_ts[tick_w.n] = ev->ts_ns;
    tick_frame[tick_w.n] = p.frame;
    if (ev->subject_len != 10 || memcmp(ev->subject, "game.frame", 10) != 0) tick_bad++;
  }
  waiter_bump(&tick_w);
  return 0;
}

TEST(tick_rate) {
  waiter_init(&tick_w);
  ee_engine_t *eng = ee_engine_new();
  CHECK(eng);
  CHECK(ee_engine_add_tick(eng, 0, NULL) == EE_EINVAL);
  CHECK(ee_engine_add_tick(eng, 200.0, "game.frame") >= 0);
  CHECK(ee_engine_register(eng, tick_cb, NULL, 1u << EE_KIND_TICK) > 0);
  uint64_t t0 = ee_now_ns();
  CHECK(ee_engine_start(eng) == 0);
  CHECK(waiter_wait(&tick_w, TICKS, 10000) >= TICKS);
  uint64_t elapsed = ee_now_ns() - t0;
  CHECK(ee_engine_stop(eng) == 0);
  /* Frames are scheduled on absolute deadlines: 50 frames at 200 Hz cannot
   * finish before 250 ms; the upper bound only guards against a stuck clock
   * on a loaded machine. */
  CHECK(elapsed >= 250000000u - 1000000u);
  CHECK(elapsed < 2000000000u);
  CHECK(tick_bad == 0);
  for (int i = 1; i < TICKS; i++) {
    CHECK(tick_frame[i] == tick_frame[i - 1] + 1);
    CHECK(tick_ts[i] - tick_ts[i - 1] == 5000000u); /* the scheduled period */
  }
  ee_engine_free(eng);
}
