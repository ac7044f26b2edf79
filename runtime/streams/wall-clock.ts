// Wall-clock milliseconds with sub-millisecond resolution: the monotonic clock plus the wall-clock
// time it started from (performance.timeOrigin, taken with microseconds when the thread began).
// Date.now() alone has 1 ms steps, too coarse for jitter and for comparing with the kernel's
// CLOCK_REALTIME receive stamps. NTP slews both clocks alike; a step of the wall clock (set by
// hand, or NTP stepping) is followed by resyncWallClock(), from Date.now(), which truncates to the
// millisecond: hence the tolerance, and half a millisecond added back when it re-anchors.
let offset = performance.timeOrigin;
/** Differences up to this are Date.now()'s truncation, not a step of the wall clock. */
const STEP_MS = 2;

export function wallClockMs(): number {
  return offset + performance.now();
}

/** Checks the wall clock for a step (called about once a second). */
export function resyncWallClock(): void {
  const sample = Date.now() - performance.now();
  if (Math.abs(sample + 0.5 - offset) > STEP_MS) offset = sample + 0.5;
}
