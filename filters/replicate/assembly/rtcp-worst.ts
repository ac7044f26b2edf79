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
  /**
   * The extended highest sequence number of the receiver furthest behind, in the media source's
   * common numbering (SequenceFrame; serial-number arithmetic on 32 bits).
   */
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

  /**
   * Folds in the report block at `b`, which arrived at `receivedUs`, with its extended highest
   * sequence number `extended` in the common numbering.
   */
  addBlock(b: usize, receivedUs: i64, extended: u32): void {
    this.add(
      <i32>ReportBlock.fractionLost(b), ReportBlock.cumulativeLost(b), extended,
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

/**
 * One media source's common numbering of extended highest sequence numbers. Each receiver counts
 * sequence cycles from when it joined (RFC 3550 A.1), so at the same packet a late joiner's
 * extended number is a multiple of 65536 below an early one's. A receiver's numbers are moved by
 * the multiple of 65536 that puts its first one nearest (serial-number arithmetic on the low 16
 * bits) to the most advanced position any receiver reported; from then on its own cycle count
 * carries it. The first receiver's numbering is the common one, so the aggregate the sender sees
 * goes on without a jump of a wrap when receivers join or leave.
 */
export class SequenceFrame {
  private known: bool = false;
  /** The most advanced position reported, in the common numbering. */
  private latest: u32 = 0;

  reset(): void {
    this.known = false;
  }

  /** What to add to the extended numbers of a receiver whose first report says `extended`. */
  biasFor(extended: u32): u32 {
    if (!this.known) return 0;
    return this.latest + <u32>(<i32>(<i16>(<u16>extended - <u16>this.latest))) - extended;
  }

  /** Notes a receiver's position, in the common numbering. */
  saw(position: u32): void {
    if (!this.known || <i32>(position - this.latest) > 0) this.latest = position;
    this.known = true;
  }
}
