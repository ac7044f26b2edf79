// The RFC 8083 congestion circuit breaker (section 4.3): once per interval, the flow's loss p and
// round trip R give the rate X a TCP flow would get on the path (RFC 5348 section 3.1, b = 1,
// t_RTO = 4R). A flow sending more than `factor` x X for `intervals` intervals in a row trips it.

/** How far above the path's estimate the origin must send for an interval to count against it. */
const OVER_PATH: f64 = 1.25;

export class Breaker {
  open: bool = false;
  /** When it opened (sender's clock, microseconds). */
  openedUs: i64 = 0;
  /** Intervals in a row above the limit. */
  strikes: i32 = 0;
  /** The figures of the last evaluation, for the log line. */
  lastTcpBps: f64 = 0;
  lastRateBps: f64 = 0;
  lastLoss: f64 = 0;

  constructor(private factor: f64, private intervals: i32, private cooldownUs: i64) {}

  /**
   * One interval: `packets` and `bytes` the origin sent in `seconds`, of which `lost` never
   * reached the receiver (dropped here or lost on the hop); `rttS` the round trip; `pathBps` what
   * the path is estimated to carry (the target). Returns true when this interval trips the breaker.
   */
  evaluate(packets: i64, bytes: i64, lost: i64, seconds: f64, rttS: f64, pathBps: f64): bool {
    if (this.open || packets < 10 || seconds <= 0) return false; // too little to judge either way
    const p = Math.min(<f64>lost / <f64>packets, 1);
    const rate = <f64>bytes * 8 / seconds;
    this.lastLoss = p;
    this.lastRateBps = rate;
    if (p <= 0) {
      this.lastTcpBps = Infinity;
      this.strikes = 0;
      return false;
    }
    const s = <f64>bytes / <f64>packets;
    const r = Math.max(rttS, 0.001);
    const denominator = r * Math.sqrt(2 * p / 3) + 4 * r * (3 * Math.sqrt(3 * p / 8)) * p * (1 + 32 * p * p);
    const tcpBps = (s / denominator) * 8;
    this.lastTcpBps = tcpBps;
    // a strike needs both: far above what a TCP flow would get with this loss, and above what the
    // path carries (an origin that has come down to the estimate is not the cause, even while the
    // losses of the fall that made it come down still count)
    if (rate > this.factor * tcpBps && rate > OVER_PATH * pathBps) this.strikes++;
    else this.strikes = 0;
    return this.strikes >= this.intervals;
  }

  trip(nowUs: i64): void {
    this.open = true;
    this.openedUs = nowUs;
    this.strikes = 0;
  }

  /** Closes it once the cooldown has passed (never with a cooldown of 0). True when it closed now. */
  maybeClose(nowUs: i64): bool {
    if (!this.open || this.cooldownUs <= 0 || nowUs - this.openedUs < this.cooldownUs) return false;
    this.open = false;
    return true;
  }
}
