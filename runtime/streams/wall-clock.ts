// Wall-clock milliseconds with sub-millisecond resolution: the monotonic clock plus an offset to
// the wall clock (Date.now() alone has 1 ms steps, too coarse for jitter). It compares with the
// kernel's CLOCK_REALTIME receive stamps and with other hosts kept in step by NTP or PTP.
// resync() follows a stepped wall clock: each sample of Date.now() - performance.now() is up to
// 1 ms low (Date.now() truncates), so the offset is the highest of the recent samples.
const SAMPLES = 8;
const samples = new Float64Array(SAMPLES).fill(Date.now() - performance.now());
let next = 0;
let offset = Date.now() - performance.now();

export function wallClockMs(): number {
  return offset + performance.now();
}

/** Takes another sample of the wall clock (called about once a second). */
export function resyncWallClock(): void {
  samples[next] = Date.now() - performance.now();
  next = (next + 1) % SAMPLES;
  let best = samples[0]!;
  for (let i = 1; i < SAMPLES; i++) best = Math.max(best, samples[i]!);
  offset = best;
}
