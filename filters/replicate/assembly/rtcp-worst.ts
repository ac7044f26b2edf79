// The worst of many receivers' report blocks about one media source: what the filter reports to
// the sender for all of them (README.md "Feedback from many receivers").
import { ReportBlock } from "../../../sdk/assembly";

const MICROS_PER_SECOND: i64 = 1_000_000;

export class WorstReport {
  /** Blocks folded in; 0: nothing to report. */
  count: i32 = 0;
  /** The highest fraction lost. */
  fractionLost: i32 = 0;
  /** The highest cumulative lost. */
  cumulativeLost: i32 = 0;
  /** The lowest extended highest sequence number (modulo 2^32: the one furthest behind). */
  extendedHighest: u32 = 0;
  /** The highest jitter. */
  jitter: u32 = 0;
  // LSR and DLSR of the block with the highest fraction lost, so that the sender's round-trip
  // time is the worst path's; `receivedUs` is when that block arrived.
  lsr: u32 = 0;
  dlsr: u32 = 0;
  receivedUs: i64 = 0;

  reset(): void {
    this.count = 0;
  }

  /** Folds in the report block at `b`, which arrived at `receivedUs`. */
  addBlock(b: usize, receivedUs: i64): void {
    this.add(
      <i32>ReportBlock.fractionLost(b), ReportBlock.cumulativeLost(b), ReportBlock.extendedHighestSequence(b),
      ReportBlock.jitter(b), ReportBlock.lastSr(b), ReportBlock.delaySinceLastSr(b), receivedUs, 1,
    );
  }

  /** Folds in another aggregate. */
  addAll(o: WorstReport): void {
    if (o.count == 0) return;
    this.add(o.fractionLost, o.cumulativeLost, o.extendedHighest, o.jitter, o.lsr, o.dlsr, o.receivedUs, o.count);
  }

  /**
   * The DLSR to send at `nowUs`: the receiver's delay plus the time the filter held its block, in
   * 1/65536 s (saturating); 0 when the receiver had no sender report to echo (LSR 0).
   */
  dlsrAt(nowUs: i64): u32 {
    if (this.lsr == 0) return 0;
    const held = max<i64>(nowUs - this.receivedUs, 0);
    const total = <i64>this.dlsr + (held * 65536) / MICROS_PER_SECOND;
    return total > <i64>u32.MAX_VALUE ? u32.MAX_VALUE : <u32>total;
  }

  private add(fraction: i32, cumulative: i32, extended: u32, jitter: u32, lsr: u32, dlsr: u32, receivedUs: i64, n: i32): void {
    if (this.count == 0) {
      this.fractionLost = fraction;
      this.cumulativeLost = cumulative;
      this.extendedHighest = extended;
      this.jitter = jitter;
      this.lsr = lsr;
      this.dlsr = dlsr;
      this.receivedUs = receivedUs;
      this.count = n;
      return;
    }
    this.count += n;
    if (cumulative > this.cumulativeLost) this.cumulativeLost = cumulative;
    if (<i32>(extended - this.extendedHighest) < 0) this.extendedHighest = extended;
    if (jitter > this.jitter) this.jitter = jitter;
    if (this.isWorsePath(fraction, lsr, receivedUs)) {
      this.fractionLost = fraction;
      this.lsr = lsr;
      this.dlsr = dlsr;
      this.receivedUs = receivedUs;
    }
  }

  /**
   * Whether a block with these values names a worse path than the one kept: a higher fraction
   * lost; at the same fraction, one that can give a round-trip time (LSR set), then the fresher.
   */
  private isWorsePath(fraction: i32, lsr: u32, receivedUs: i64): bool {
    if (fraction != this.fractionLost) return fraction > this.fractionLost;
    if ((lsr != 0) != (this.lsr != 0)) return lsr != 0;
    return receivedUs > this.receivedUs;
  }
}
