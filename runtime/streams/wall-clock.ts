// Wall-clock milliseconds with sub-millisecond resolution: the monotonic clock plus an offset to
// the wall clock. Date.now() alone has 1 ms steps, too coarse for jitter and for comparing with
// the kernel's CLOCK_REALTIME receive stamps (and other hosts' clocks, kept in step by NTP or
// PTP); performance.timeOrigin was measured off by more than a millisecond in worker threads. So
// the offset is taken at start at the instant Date.now() ticks over to its next millisecond (a
// spin of at most SPIN_MS), and again after the wall clock steps, then without spinning: the data
// plane's thread is the one that checks, and a spin there holds every packet behind it.
/** Differences beyond Date.now()'s truncation and this are a step of the wall clock. */
const STEP_MS = 2;
/** Ticks of Date.now() timed; the best bracketed wins. */
const TICKS = 4;
/** The most the start's calibration spins. */
const SPIN_MS = 12;
/** Samples after a step that settle the offset (the largest of n lies about 1/(n+1) ms below it). */
const SETTLE_SAMPLES = 64;

/** The two clocks read (injectable for tests). */
export interface Clocks {
  wall(): number;
  monotonic(): number;
}

const systemClocks: Clocks = { wall: () => Date.now(), monotonic: () => performance.now() };

export class WallClock {
  private offset: number;
  /** Samples taken since a step (each lies in (true offset - 1, true offset]); 0 when settled. */
  private stepSamples = 0;

  constructor(private readonly clocks: Clocks = systemClocks) {
    this.offset = this.calibrate();
  }

  nowMs(): number {
    return this.offset + this.clocks.monotonic();
  }

  /** The wall clock at a reading of the monotonic clock. */
  atMs(monotonicMs: number): number {
    return this.offset + monotonicMs;
  }

  /**
   * Checks the wall clock for a step (called about once a second). After one, the offset is the
   * sample (Date.now() truncates: at most a millisecond early), then the largest sample since,
   * nearer with each call as the calls fall at unrelated fractions of a millisecond. It only
   * grows while it settles: a time stamped later never reads earlier than one before it.
   */
  resync(): void {
    const sample = this.clocks.wall() - this.clocks.monotonic();
    if (sample > this.offset + STEP_MS || sample < this.offset - 1 - STEP_MS) {
      this.offset = sample;
      this.stepSamples = 1;
      return;
    }
    if (this.stepSamples === 0) return;
    if (sample > this.offset) this.offset = sample;
    if (++this.stepSamples >= SETTLE_SAMPLES) this.stepSamples = 0;
  }

  /**
   * The wall clock's offset from the monotonic clock. A tick of Date.now() is bracketed by two
   * monotonic reads, and the narrowest bracket of a few ticks gives it: one tick alone was measured
   * off by 0.4-0.6 ms (a first call slow to return, a preemption in the loop), and a proxy's dwell
   * then read as negative.
   */
  private calibrate(): number {
    const wall = (): number => this.clocks.wall();
    const monotonic = (): number => this.clocks.monotonic();
    for (let k = 0; k < 1000; k++) wall() + monotonic(); // warm both calls
    let best = wall() + 0.5 - monotonic(); // no tick timed: Date.now() truncates, so half a millisecond on average
    let bestSpan = Infinity;
    const limit = monotonic() + SPIN_MS;
    let twoBefore = monotonic();
    let last = wall();
    let before = monotonic();
    for (let ticks = 0; ticks < TICKS && before < limit; ) {
      const now = wall();
      const after = monotonic();
      // the tick came after the previous Date.now() began (after twoBefore) and before this one ended (before after)
      if (now !== last) {
        if (after - twoBefore < bestSpan) {
          bestSpan = after - twoBefore;
          best = now - (twoBefore + after) / 2;
        }
        ticks++;
        last = now;
      }
      twoBefore = before;
      before = after;
    }
    return best;
  }
}

const clock = new WallClock();

export function wallClockMs(): number {
  return clock.nowMs();
}

/** The wall clock at `monotonicMs`, a reading of performance.now(): two times taken from one reading agree. */
export function wallClockAt(monotonicMs: number): number {
  return clock.atMs(monotonicMs);
}

/** Checks the wall clock for a step (called about once a second). */
export function resyncWallClock(): void {
  clock.resync();
}
