// Reads transport-wide feedback (RTCP RTPFB FMT 15, draft-holmer-rmcat-transport-wide-cc-
// extensions-01 section 3.1) into two arrays: per reported packet, its sequence number and its
// arrival time (microseconds on the receiver's clock, or -1: not received). Everything is checked
// against the packet's length; anything that does not add up rejects the whole packet.
import { loadBe16, loadBe32, Rtcp } from "../../../sdk/assembly";

/** The most packets one feedback may report (more is refused as hostile). */
export const MAX_REPORTED = 4096;
/** The FMT of transport-wide feedback. */
export const FMT_TRANSPORT_CC = 15;

const NOT_RECEIVED = 0;
/** The arrival time of a packet reported lost. */
export const NOT_ARRIVED: i64 = i64.MIN_VALUE;
const SMALL_DELTA = 1;
const LARGE_DELTA = 2;

export class FeedbackReport {
  /** Sequence number of the first packet reported. */
  baseSeq: u16 = 0;
  /** Packets reported (statuses). */
  count: i32 = 0;
  /** Feedback packet count (wraps at 256). */
  feedbackCount: i32 = 0;
  /** The reference time, in 64 ms, 24 bits as on the wire. */
  referenceTicks: i32 = 0;
  /** The media SSRC the feedback names. */
  mediaSsrc: u32 = 0;
  /** Per reported packet: arrival in microseconds from the reference time's zero (receiver's clock, before unwrapping), or NOT_ARRIVED. */
  readonly arrivalUs: StaticArray<i64> = new StaticArray<i64>(MAX_REPORTED);
  /** Statuses, then deltas, decoded here first. */
  private readonly symbols: StaticArray<u8> = new StaticArray<u8>(MAX_REPORTED);

  /** Reads the feedback packet at `p` (its RTCP header); false if malformed. */
  read(p: usize): bool {
    const content = Rtcp.contentLength(p);
    if (content < 20) return false;
    this.mediaSsrc = loadBe32(p + 8);
    const fci = p + 12;
    this.baseSeq = loadBe16(fci);
    const count = <i32>loadBe16(fci + 2);
    if (count == 0 || count > MAX_REPORTED) return false;
    this.referenceTicks = <i32>(loadBe32(fci + 4) >> 8); // 24 bits of 64 ms, wrapping (the reader of the times unwraps)
    const referenceUs = <i64>this.referenceTicks * 64_000;
    this.feedbackCount = <i32>load<u8>(fci + 7);
    const end = p + <usize>content;
    let at = fci + 8;
    // chunks, until every status is known
    let n = 0;
    const symbols = this.symbols;
    while (n < count) {
      if (at + 2 > end) return false;
      const chunk = <i32>loadBe16(at);
      at += 2;
      if ((chunk & 0x8000) == 0) {
        const symbol = (chunk >> 13) & 3;
        const run = chunk & 0x1fff;
        if (symbol == 3 || run == 0) return false;
        for (let k = 0; k < run && n < count; k++) unchecked((symbols[n++] = <u8>symbol));
      } else if ((chunk & 0x4000) == 0) {
        for (let k = 13; k >= 0 && n < count; k--) unchecked((symbols[n++] = <u8>((chunk >> k) & 1)));
      } else {
        for (let k = 12; k >= 0 && n < count; k -= 2) {
          const symbol = (chunk >> k) & 3;
          if (symbol == 3) return false;
          unchecked((symbols[n++] = <u8>symbol));
        }
      }
    }
    // receive deltas, in 250 us, for the received ones in order
    let t = referenceUs;
    const arrival = this.arrivalUs;
    for (let k = 0; k < count; k++) {
      const s = unchecked(symbols[k]);
      if (s == NOT_RECEIVED) {
        unchecked((arrival[k] = NOT_ARRIVED));
        continue;
      }
      if (s == SMALL_DELTA) {
        if (at + 1 > end) return false;
        t += <i64>load<u8>(at) * 250;
        at += 1;
      } else {
        if (at + 2 > end) return false;
        t += <i64>(<i16>loadBe16(at)) * 250;
        at += 2;
      }
      unchecked((arrival[k] = t));
    }
    this.count = count;
    return true;
  }
}

export const report = new FeedbackReport();
