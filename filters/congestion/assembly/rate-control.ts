// Turns the detector's state and the feedback's figures into a target rate: GCC's AIMD for the
// delay-based rate (draft-ietf-rmcat-gcc-02 section 5.5), its loss-based controller (section 6),
// and the target = the smaller, clamped to [minBps, maxBps]; from the start until the first
// over-use or loss, a start-up phase in which the delay-based rate grows faster. Rates in bits per
// second, times in microseconds on the sender's clock.
import { OVERUSE, UNDERUSE } from "./trendline";

const HOLD = 0;
const INCREASE = 1;
const DECREASE = 2;

const BETA: f64 = 0.85;
/** Sending below this share of the estimate makes the acknowledged rate no measure of the path. */
const APP_LIMITED: f64 = 0.6;
/** GCC's 8% a second, raised: a relay cannot probe, and the origin rises only when told. */
const MULTIPLICATIVE_PER_S: f64 = 1.12;
export const LOSS_LOW: f64 = 0.02;
const LOSS_HIGH: f64 = 0.1;

export class RateControl {
  /**
   * Start-up: from the start until the first over-use, loss or silence, the delay-based rate grows
   * by `startupGrowth` a second instead of MULTIPLICATIVE_PER_S, and the loss-based one does not
   * hold it back. GCC's implementations find the path's rate at the start by probing exponentially
   * (each probe twice the last result) until a probe falls short; a relay cannot send probes, so it
   * lets the origin's own media rise fast instead, with the detector watching. It never comes
   * back by itself: after the first sign of congestion the path's rate is known roughly.
   */
  startup: bool;
  /**
   * Whether the hop has shown congestion at all: an over-use, a loss of LOSS_LOW or more (the loss
   * control's own line: less is not congestion), or a silence, whatever the start-up setting. Until
   * it has, the circuit breaker does not judge the flow: what this filter drops while its target
   * ramps up is not loss on the path. Carried across a hot swap.
   */
  congested: bool = false;
  delayBased: f64;
  lossBased: f64;
  target: f64;
  /** Whether a delay-based estimate exists (transport-wide feedback has come). */
  haveDelayBased: bool = false;
  private state: i32 = INCREASE;
  private lastDelayUpdateUs: i64 = -1;
  private lastLossUpdateUs: i64 = -1;
  private lastDecreaseUs: i64 = -1;
  /** Mean and variance of the acknowledged rate at over-use (GCC's "near convergence"), -1: unknown. */
  private avgMaxKbps: f64 = -1;
  private varMax: f64 = 0.4;

  constructor(startBps: f64, private minBps: f64, private maxBps: f64, private startupGrowth: f64) {
    this.startup = startupGrowth > MULTIPLICATIVE_PER_S;
    this.delayBased = startBps;
    this.lossBased = startBps;
    this.target = startBps;
  }

  /**
   * After a feedback packet: the detector's state, the acknowledged rate, what we sent over the
   * same time, the round trip, and whether the pacer's queue is near empty (`pacerClear`: start-up
   * grows fast only then).
   */
  onDelaySignal(signal: i32, ackedBps: f64, sentBps: f64, nowUs: i64, rttMs: f64, pacerClear: bool): void {
    this.haveDelayBased = true;
    if (signal == OVERUSE) {
      this.state = DECREASE;
      this.startup = false;
      this.congested = true;
    } else if (signal == UNDERUSE) this.state = HOLD;
    else if (this.state == HOLD) this.state = INCREASE;
    const dt = this.lastDelayUpdateUs < 0 ? 0 : <f64>(nowUs - this.lastDelayUpdateUs) / 1e6;
    this.lastDelayUpdateUs = nowUs;
    let rate = this.delayBased;
    if (this.state == INCREASE) {
      const ackedKbps = ackedBps / 1000;
      if (this.avgMaxKbps >= 0 && ackedKbps > this.avgMaxKbps + 3 * Math.sqrt(this.varMax * this.avgMaxKbps)) this.avgMaxKbps = -1;
      const step = Math.min(dt, 1);
      if (this.avgMaxKbps >= 0) {
        // near the last over-use point: about one packet more per response time
        const responseS = (rttMs + 100) / 1000;
        rate += Math.max(1000, (1200 * 8 / responseS) * step);
      } else {
        rate *= Math.pow(this.startup && pacerClear ? this.startupGrowth : MULTIPLICATIVE_PER_S, step);
      }
      // the acknowledged rate bounds how far the estimate may grow, never cuts it: an origin that
      // sent less (a quiet scene, frames dropped here) says nothing of the path's capacity
      if (ackedBps > 0) rate = Math.max(this.delayBased, Math.min(rate, 1.5 * ackedBps + 10_000));
    } else if (this.state == DECREASE) {
      const spacingUs = <i64>((rttMs + 50) * 1000);
      if (ackedBps > 0 && (this.lastDecreaseUs < 0 || nowUs - this.lastDecreaseUs >= spacingUs)) {
        if (sentBps < APP_LIMITED * rate) {
          // we sent far less than the estimate (the origin paused, or frames were dropped here):
          // what came through says nothing of the path's capacity; step down from the estimate
          rate *= BETA;
        } else {
          rate = Math.min(rate, BETA * ackedBps);
          this.noteMax(ackedBps / 1000);
        }
        this.lastDecreaseUs = nowUs;
      }
      this.state = HOLD;
    }
    this.delayBased = this.clamp(rate);
    // no loss seen yet: the loss-based rate does not hold the delay-based one back (GCC's
    // implementations trust the delay-based estimate alone in their start phase, until a loss)
    if (this.startup && this.lossBased < this.delayBased) this.lossBased = this.delayBased;
    this.update();
  }

  /**
   * After an interval's loss is known (from feedback or a receiver report): grow the loss-based
   * rate below 2% loss, cut it from the target above 10%.
   */
  onLoss(lossRatio: f64, nowUs: i64): void {
    const dt = this.lastLossUpdateUs < 0 ? 0 : <f64>(nowUs - this.lastLossUpdateUs) / 1e6;
    this.lastLossUpdateUs = nowUs;
    if (lossRatio > 0) this.startup = false;
    if (lossRatio >= LOSS_LOW) this.congested = true;
    if (lossRatio < LOSS_LOW) this.lossBased = this.clamp(Math.max(this.lossBased, this.target) * Math.pow(MULTIPLICATIVE_PER_S, Math.min(dt, 1)) + 1000);
    else if (lossRatio > LOSS_HIGH) this.lossBased = this.clamp(this.target * (1 - 0.5 * Math.min(lossRatio, 1)));
    this.update();
  }

  /** Nothing heard from the receiver for a while although media goes out: halve the target. */
  onSilence(): void {
    this.startup = false;
    this.congested = true;
    this.lossBased = this.clamp(this.target / 2);
    this.update();
  }

  /** The receiver is heard again, and what went during its silence arrived: the loss-based rate back to `bps`, the target before the silence. */
  undoSilence(bps: f64): void {
    this.lossBased = this.clamp(Math.max(this.lossBased, bps));
    this.update();
  }

  /** The rates after a hot swap (checked: nothing outside the limits comes in); `startup`: the old instance was still in it; `congested`: its hop had shown congestion. */
  restore(target: f64, delayBased: f64, lossBased: f64, startup: bool, congested: bool): void {
    this.startup = this.startup && startup;
    this.congested = congested;
    this.haveDelayBased = delayBased < this.maxBps; // it was limiting: feedback had come
    this.lossBased = this.clamp(lossBased);
    this.target = this.clamp(target);
    // none (no feedback yet, the blob says infinity): the first feedback starts it from the target,
    // as a new context's does from startBps
    this.delayBased = this.haveDelayBased ? this.clamp(delayBased) : this.target;
  }

  /** GCC's running mean and normalised variance of the rate at over-use, in kbit/s. */
  private noteMax(kbps: f64): void {
    const alpha: f64 = 0.05;
    if (this.avgMaxKbps < 0) this.avgMaxKbps = kbps;
    else this.avgMaxKbps = (1 - alpha) * this.avgMaxKbps + alpha * kbps;
    const norm = Math.max(this.avgMaxKbps, 1);
    this.varMax = (1 - alpha) * this.varMax + alpha * (this.avgMaxKbps - kbps) * (this.avgMaxKbps - kbps) / norm;
    this.varMax = Math.min(Math.max(this.varMax, 0.4), 2.5);
  }

  /**
   * Receivers' REMBs: the target stays at or under the lowest of this second's and the last's
   * (several receivers each send their own), none once both hold none (2 s without one). Not
   * carried across a hot swap.
   */
  private receiverCap: f64 = Infinity;
  private rembMin: f64 = Infinity;
  private rembMinBefore: f64 = Infinity;
  private rembWindowUs: i64 = -1;
  private lastRembUs: i64 = -1;

  onRemb(bps: f64, nowUs: i64): void {
    this.rollRemb(nowUs);
    if (bps < this.rembMin) this.rembMin = bps;
    this.lastRembUs = nowUs;
    this.receiverCap = Math.min(this.rembMin, this.rembMinBefore);
    this.update();
  }

  /** Every tick: the REMB windows move on; a cap nobody renewed goes with them. */
  rembTick(nowUs: i64): void {
    if (this.lastRembUs < 0) return;
    this.rollRemb(nowUs);
    const cap = Math.min(this.rembMin, this.rembMinBefore);
    if (cap != this.receiverCap) {
      this.receiverCap = cap;
      this.update();
    }
  }

  private rollRemb(nowUs: i64): void {
    if (this.rembWindowUs >= 0 && nowUs - this.rembWindowUs < 1_000_000) return;
    this.rembMinBefore = this.rembWindowUs >= 0 && nowUs - this.rembWindowUs < 2_000_000 ? this.rembMin : Infinity;
    this.rembMin = Infinity;
    this.rembWindowUs = nowUs;
  }

  private update(): void {
    const delay = this.haveDelayBased ? this.delayBased : this.maxBps;
    this.target = this.clamp(Math.min(Math.min(delay, this.lossBased), this.receiverCap));
  }

  @inline private clamp(bps: f64): f64 {
    if (!(bps >= this.minBps)) return this.minBps; // NaN too
    return bps > this.maxBps ? this.maxBps : bps;
  }
}

