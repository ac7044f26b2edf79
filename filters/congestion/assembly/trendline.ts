// The delay-based over-use detector of GCC (draft-ietf-rmcat-gcc-02 section 5, with the trendline
// filter of its later implementations): packets sent within 5 ms form a group; each group's delay
// variation (arrival spacing minus send spacing) accumulates, is smoothed, and the slope of a
// least-squares line over the last WINDOW groups, scaled, is compared with a threshold that adapts
// to it. Times in milliseconds (f64), on the sender's clock for sends and the receiver's for arrivals.

export const NORMAL = 0;
export const OVERUSE = 1;
export const UNDERUSE = 2;

const GROUP_MS: f64 = 5;
const WINDOW = 20;
const SMOOTHING: f64 = 0.9;
const GAIN: f64 = 4;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
const OVERUSE_TIME_MS: f64 = 10;
/** An arrival gap this long (or going back) means the path restarted: start the groups again. */
const RESET_GAP_MS: f64 = 3000;

export class Trendline {
  state: i32 = NORMAL;
  threshold: f64 = 12.5;
  /** The last scaled slope (ms), for the metrics. */
  trend: f64 = 0;

  // the group being filled (groupSize 0: none) and the last complete one
  private groupFirstSend: f64 = 0;
  private groupLastSend: f64 = 0;
  private groupLastArrival: f64 = 0;
  private groupSize: i32 = 0;
  private havePrevious: bool = false;
  private prevSend: f64 = 0;
  private prevArrival: f64 = 0;

  private accumulated: f64 = 0;
  private smoothed: f64 = 0;
  private firstArrival: f64 = -1;
  private readonly xs: StaticArray<f64> = new StaticArray<f64>(WINDOW);
  private readonly ys: StaticArray<f64> = new StaticArray<f64>(WINDOW);
  private filled: i32 = 0;
  private next: i32 = 0;
  private deltas: i32 = 0;
  private overuseMs: f64 = -1;
  private overuseCount: i32 = 0;
  private previousTrend: f64 = 0;
  private lastThresholdUpdate: f64 = -1;

  /** One packet the feedback says arrived, in the order it was sent. Returns the state. */
  onPacket(sendMs: f64, arrivalMs: f64): i32 {
    if (this.groupSize == 0) {
      this.startGroup(sendMs, arrivalMs);
      return this.state;
    }
    if (sendMs < this.groupFirstSend) return this.state; // sent before the group: reordered feedback
    if (sendMs - this.groupFirstSend <= GROUP_MS) {
      this.groupLastSend = sendMs;
      if (arrivalMs > this.groupLastArrival) this.groupLastArrival = arrivalMs;
      this.groupSize++;
      return this.state;
    }
    // the group is complete: compare it with the previous one
    if (this.havePrevious) {
      const sendDelta = this.groupLastSend - this.prevSend;
      const arrivalDelta = this.groupLastArrival - this.prevArrival;
      if (arrivalDelta < -RESET_GAP_MS || arrivalDelta > RESET_GAP_MS) this.reset();
      else this.update(arrivalDelta - sendDelta, sendDelta, this.groupLastArrival);
    }
    this.havePrevious = true;
    this.prevSend = this.groupLastSend;
    this.prevArrival = this.groupLastArrival;
    this.startGroup(sendMs, arrivalMs);
    return this.state;
  }

  private startGroup(sendMs: f64, arrivalMs: f64): void {
    this.groupFirstSend = sendMs;
    this.groupLastSend = sendMs;
    this.groupLastArrival = arrivalMs;
    this.groupSize = 1;
  }

  private reset(): void {
    this.accumulated = 0;
    this.smoothed = 0;
    this.firstArrival = -1;
    this.filled = 0;
    this.next = 0;
    this.deltas = 0;
    this.overuseMs = -1;
    this.overuseCount = 0;
    this.state = NORMAL;
  }

  private update(delayDeltaMs: f64, sendDeltaMs: f64, arrivalMs: f64): void {
    if (this.deltas < 1000) this.deltas++;
    this.accumulated += delayDeltaMs;
    this.smoothed = SMOOTHING * this.smoothed + (1 - SMOOTHING) * this.accumulated;
    if (this.firstArrival < 0) this.firstArrival = arrivalMs;
    unchecked((this.xs[this.next] = arrivalMs - this.firstArrival));
    unchecked((this.ys[this.next] = this.smoothed));
    this.next = (this.next + 1) % WINDOW;
    if (this.filled < WINDOW) this.filled++;
    if (this.filled < WINDOW) return;
    const slope = this.slope();
    if (isNaN(slope)) return;
    this.trend = <f64>min(this.deltas, 60) * slope * GAIN;
    this.detect(this.trend, sendDeltaMs, arrivalMs);
  }

  private slope(): f64 {
    let sx: f64 = 0;
    let sy: f64 = 0;
    for (let i = 0; i < WINDOW; i++) {
      sx += unchecked(this.xs[i]);
      sy += unchecked(this.ys[i]);
    }
    const mx = sx / WINDOW;
    const my = sy / WINDOW;
    let num: f64 = 0;
    let den: f64 = 0;
    for (let i = 0; i < WINDOW; i++) {
      const dx = unchecked(this.xs[i]) - mx;
      num += dx * (unchecked(this.ys[i]) - my);
      den += dx * dx;
    }
    return den == 0 ? NaN : num / den;
  }

  private detect(trend: f64, sendDeltaMs: f64, nowMs: f64): void {
    if (trend > this.threshold) {
      this.overuseMs = this.overuseMs < 0 ? sendDeltaMs / 2 : this.overuseMs + sendDeltaMs;
      this.overuseCount++;
      if (this.overuseMs > OVERUSE_TIME_MS && this.overuseCount > 1 && trend >= this.previousTrend) {
        this.overuseMs = 0;
        this.overuseCount = 0;
        this.state = OVERUSE;
      }
    } else if (trend < -this.threshold) {
      this.overuseMs = -1;
      this.overuseCount = 0;
      this.state = UNDERUSE;
    } else {
      this.overuseMs = -1;
      this.overuseCount = 0;
      this.state = NORMAL;
    }
    this.previousTrend = trend;
    this.adaptThreshold(trend, nowMs);
  }

  /** The threshold follows |trend| (fast down, slowly up), except for spikes far above it. */
  private adaptThreshold(trend: f64, nowMs: f64): void {
    if (this.lastThresholdUpdate < 0) this.lastThresholdUpdate = nowMs;
    const magnitude = Math.abs(trend);
    if (magnitude > this.threshold + 15) {
      this.lastThresholdUpdate = nowMs;
      return;
    }
    const k = magnitude < this.threshold ? K_DOWN : K_UP;
    const dt = Math.min(Math.max(nowMs - this.lastThresholdUpdate, 0), 100);
    this.threshold += k * (magnitude - this.threshold) * dt;
    this.threshold = Math.min(Math.max(this.threshold, 6), 600);
    this.lastThresholdUpdate = nowMs;
  }
}
