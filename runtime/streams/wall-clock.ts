// Wall-clock milliseconds with sub-millisecond resolution: the monotonic clock plus an offset to
// the wall clock. Date.now() alone has 1 ms steps, too coarse for jitter and for comparing with
// the kernel's CLOCK_REALTIME receive stamps (and other hosts' clocks, kept in step by NTP or
// PTP); performance.timeOrigin was measured off by more than a millisecond in worker threads. So
// the offset is taken at the instant Date.now() ticks over to its next millisecond (a spin of at
// most a millisecond), and taken again only when the wall clock steps.
/** Differences beyond Date.now()'s truncation and this are a step of the wall clock. */
const STEP_MS = 2;

function calibrate(): number {
  const start = Date.now();
  const limit = performance.now() + 5;
  for (;;) {
    const mono = performance.now();
    const wall = Date.now();
    if (wall !== start || mono > limit) return wall - mono;
  }
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
