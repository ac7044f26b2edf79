// Wall-clock milliseconds with sub-millisecond resolution: the monotonic clock plus an offset to
// the wall clock. Date.now() alone has 1 ms steps, too coarse for jitter and for comparing with
// the kernel's CLOCK_REALTIME receive stamps (and other hosts' clocks, kept in step by NTP or
// PTP); performance.timeOrigin was measured off by more than a millisecond in worker threads. So
// the offset is taken at the instant Date.now() ticks over to its next millisecond, and taken
// again only when the wall clock steps.
/** Differences beyond Date.now()'s truncation and this are a step of the wall clock. */
const STEP_MS = 2;
/** Ticks of Date.now() timed; the best bracketed wins. */
const TICKS = 4;
/** The most a calibration spins. */
const SPIN_MS = 12;

/**
 * The wall clock's offset from the monotonic clock. A tick of Date.now() is bracketed by two
 * monotonic reads, and the narrowest bracket of a few ticks gives it: one tick alone was measured
 * off by 0.4-0.6 ms (a first call slow to return, a preemption in the loop), and a proxy's dwell
 * then read as negative.
 */
function calibrate(): number {
  for (let k = 0; k < 1000; k++) Date.now() + performance.now(); // warm both calls
  let best = Date.now() + 0.5 - performance.now(); // no tick timed: Date.now() truncates, so half a millisecond on average
  let bestSpan = Infinity;
  const limit = performance.now() + SPIN_MS;
  let twoBefore = performance.now();
  let wall = Date.now();
  let before = performance.now();
  for (let ticks = 0; ticks < TICKS && before < limit; ) {
    const now = Date.now();
    const after = performance.now();
    // the tick came after the previous Date.now() began (after twoBefore) and before this one ended (before after)
    if (now !== wall) {
      if (after - twoBefore < bestSpan) {
        bestSpan = after - twoBefore;
        best = now - (twoBefore + after) / 2;
      }
      ticks++;
      wall = now;
    }
    twoBefore = before;
    before = after;
  }
  return best;
}

let offset = calibrate();

export function wallClockMs(): number {
  return offset + performance.now();
}

/** Checks the wall clock for a step (called about once a second): a sample lies in (offset - 1, offset] unless it stepped. */
export function resyncWallClock(): void {
  const sample = Date.now() - performance.now();
  if (sample > offset + STEP_MS || sample < offset - 1 - STEP_MS) offset = calibrate();
}
