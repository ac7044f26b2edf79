// What the feedback part keeps per media source (an SSRC of the sender that receivers report on or
// ask about): its keyframe-request limiter, its own FIR sequence, the NACKed sequence numbers it
// forwarded lately, the worst report of receivers the receiver table had no room for, and the
// numbering its receivers' extended highest sequence numbers are compared in.
import { randomU32 } from "../../../sdk/assembly";
import { SequenceFrame, WorstReport } from "./rtcp-worst";

/** A time before any other. */
export const NEVER: i64 = i64.MIN_VALUE;
/** Sequence numbers remembered per media source (a power of two): a window wider than NACK intervals at any video rate. */
const NACK_WINDOW: i32 = 1024;

export class MediaSource {
  ssrc: u32 = 0;
  inUse: bool = false;
  /** When a receiver last reported on it or asked for it. */
  lastHeardUs: i64 = NEVER;
  /** When a keyframe request (PLI or FIR) for it was last forwarded. */
  keyframeForwardedUs: i64 = NEVER;
  /** The sequence number of the next FIR the filter sends for it (RFC 5104 4.3.1.2). */
  firSeq: u8 = 0;
  /** The worst of the receivers the receiver table had no room for, since the last report sent. */
  readonly overflow: WorstReport = new WorstReport();
  /** Its receivers' extended highest sequence numbers in one numbering. */
  readonly sequences: SequenceFrame = new SequenceFrame();
  // NACK memory, made at the source's first NACK: slot seq & (NACK_WINDOW-1) holds a sequence number
  // (-1: none) and when the filter forwarded a NACK for it.
  private nackSeqs: StaticArray<i32> | null = null;
  private nackAtUs: StaticArray<i64> | null = null;

  claim(ssrc: u32, nowUs: i64): void {
    this.ssrc = ssrc;
    this.inUse = true;
    this.lastHeardUs = nowUs;
    this.keyframeForwardedUs = NEVER;
    // A random start: after a restart the sender must not take the first FIR for a repeat.
    this.firSeq = <u8>randomU32();
    this.overflow.reset();
    this.sequences.reset();
    const seqs = this.nackSeqs;
    if (seqs !== null) seqs.fill(-1);
  }

  /** Whether a NACK for `seq` was forwarded less than `intervalUs` before `nowUs`. */
  nackForwardedWithin(seq: i32, nowUs: i64, intervalUs: i64): bool {
    const seqs = this.nackSeqs;
    if (seqs === null) return false;
    const slot = seq & (NACK_WINDOW - 1);
    return unchecked(seqs[slot]) == seq && nowUs - unchecked(this.nackAtUs![slot]) < intervalUs;
  }

  markNackForwarded(seq: i32, nowUs: i64): void {
    let seqs = this.nackSeqs;
    if (seqs === null) {
      seqs = new StaticArray<i32>(NACK_WINDOW);
      seqs.fill(-1);
      this.nackSeqs = seqs;
      this.nackAtUs = new StaticArray<i64>(NACK_WINDOW);
    }
    const slot = seq & (NACK_WINDOW - 1);
    unchecked((seqs[slot] = seq));
    unchecked((this.nackAtUs![slot] = nowUs));
  }
}

/**
 * The SSRCs the sender was seen sending (leg-0 RTP through the stage), the last `max` of them, and
 * when: a receiver may name any SSRC in its feedback, and only these are the sender's for certain.
 */
export class SentSources {
  private readonly ssrcs: StaticArray<u32>;
  private readonly atUs: StaticArray<i64>;
  /** The slot noted last: a stream's packets come one SSRC after another. */
  private last: i32 = 0;

  constructor(max: i32) {
    this.ssrcs = new StaticArray<u32>(max);
    this.atUs = new StaticArray<i64>(max);
    this.atUs.fill(NEVER);
  }

  note(ssrc: u32, nowUs: i64): void {
    const ssrcs = this.ssrcs;
    const at = this.atUs;
    if (unchecked(ssrcs[this.last]) == ssrc && unchecked(at[this.last]) != NEVER) {
      unchecked((at[this.last] = nowUs));
      return;
    }
    let slot = 0;
    for (let i = 0, n = ssrcs.length; i < n; i++) {
      if (unchecked(ssrcs[i]) == ssrc && unchecked(at[i]) != NEVER) {
        slot = i;
        break;
      }
      if (unchecked(at[i]) < unchecked(at[slot])) slot = i; // else the one heard longest ago
    }
    unchecked((ssrcs[slot] = ssrc));
    unchecked((at[slot] = nowUs));
    this.last = slot;
  }

  /** Whether the sender sent `ssrc` at or after `sinceUs`. */
  sentSince(ssrc: u32, sinceUs: i64): bool {
    for (let i = 0, n = this.ssrcs.length; i < n; i++) {
      if (unchecked(this.ssrcs[i]) == ssrc && unchecked(this.atUs[i]) != NEVER) return unchecked(this.atUs[i]) >= sinceUs;
    }
    return false;
  }
}

/** The media sources of one context, at most maxMediaSources of them. */
export class MediaTable {
  readonly sources: StaticArray<MediaSource>;
  /** What the sender sends: its sources take the place of made-up ones when the table is full. */
  readonly sent: SentSources;

  constructor(max: i32, private readonly sentWithinUs: i64) {
    this.sent = new SentSources(max);
    const sources = new StaticArray<MediaSource>(max);
    for (let i = 0; i < max; i++) unchecked((sources[i] = new MediaSource()));
    this.sources = sources;
  }

  get inUse(): i32 {
    let n = 0;
    for (let i = 0, m = this.sources.length; i < m; i++) if (unchecked(this.sources[i]).inUse) n++;
    return n;
  }

  /**
   * The source `ssrc`, heard from at `nowUs`; a free entry claimed for it if it is new. When the
   * table is full, a source the sender sends takes the place of one it does not (heard from longest
   * ago), so that receivers naming made-up SSRCs cannot keep the real media's feedback out; null
   * when there is no such place.
   */
  heard(ssrc: u32, nowUs: i64): MediaSource | null {
    let free: MediaSource | null = null;
    for (let i = 0, n = this.sources.length; i < n; i++) {
      const s = unchecked(this.sources[i]);
      if (!s.inUse) {
        if (free === null) free = s;
      } else if (s.ssrc == ssrc) {
        if (nowUs > s.lastHeardUs) s.lastHeardUs = nowUs;
        return s;
      }
    }
    if (free === null && this.sent.sentSince(ssrc, nowUs - this.sentWithinUs)) free = this.notSent(nowUs);
    if (free !== null) free.claim(ssrc, nowUs);
    return free;
  }

  /** The source heard from longest ago among those the sender has not sent lately, or null. */
  private notSent(nowUs: i64): MediaSource | null {
    let found: MediaSource | null = null;
    for (let i = 0, n = this.sources.length; i < n; i++) {
      const s = unchecked(this.sources[i]);
      if (this.sent.sentSince(s.ssrc, nowUs - this.sentWithinUs)) continue;
      if (found === null || s.lastHeardUs < found.lastHeardUs) found = s;
    }
    return found;
  }

  find(ssrc: u32): MediaSource | null {
    for (let i = 0, n = this.sources.length; i < n; i++) {
      const s = unchecked(this.sources[i]);
      if (s.inUse && s.ssrc == ssrc) return s;
    }
    return null;
  }

  /** Frees the sources no receiver mentioned since `oldestUs` (their receivers have timed out too). */
  expire(oldestUs: i64): void {
    for (let i = 0, n = this.sources.length; i < n; i++) {
      const s = unchecked(this.sources[i]);
      if (s.inUse && s.lastHeardUs < oldestUs && s.overflow.count == 0) s.inUse = false;
    }
  }
}
