// Feedback from many receivers (README.md): the RTCP that N receivers of a fanned-out stream send
// back up is taken in here and never reaches the sender as it is. Keyframe requests and NACKs go on
// de-duplicated and rate limited, receiver reports as one aggregate RR per interval (RFC 3550
// section 7: the filter reports as a translator that answers for all its receivers), all from the
// filter's own reporter SSRC; the rest is dropped and counted.
import {
  Config, Feedback as FeedbackHeader, Packet, PsfbFmt, REPORT_BLOCK_SIZE, ReportBlock, Rtcp, RtcpCompound,
  RtcpError, RtcpType, RtpfbFmt, Bye, loadBe16, loadBe32, nowUs, timerSet,
} from "../../../sdk/assembly";
import {
  DROP_DUPLICATE, DROP_MALFORMED, DROP_MERGED, DROP_NO_ROOM, DROP_NOT_FORWARDED, DROP_RATE_LIMITED, FbCount, FbCounts,
} from "./rtcp-counts";
import { MediaSource, MediaTable, NEVER } from "./rtcp-media";
import { ReceiverTable } from "./rtcp-receivers";
import { FeedbackSettings } from "./rtcp-settings";
import { RtcpWriter } from "./rtcp-writer";
import { WorstReport } from "./rtcp-worst";

/** The context timer that sends the aggregate report. */
export const FEEDBACK_TIMER: i32 = 3;

// What a receiver's compound led to; its drop reason names the most telling (see verdict()).
const USED = 1;
const DUPLICATE = 2;
const RATE_LIMITED = 4;
const NOT_FORWARDED = 8;
const NO_ROOM = 16;

const FIR_ENTRY: i32 = 8;
const NACK_ENTRY: i32 = 4;
const MICROS_PER_SECOND: f64 = 1_000_000;

/** The aggregate of one media source while a report is made (the timer's, shared by every context). */
const worst = new WorstReport();

export class Feedback {
  private readonly counts: FbCounts;
  private readonly media: MediaTable;
  private readonly receivers: ReceiverTable;
  private readonly writer: RtcpWriter;
  private timerArmed: bool = false;
  private outcome: i32 = 0;
  /** NACK rate limit: a bucket of sequence numbers, maxNacksPerSecond deep, filled at that rate. */
  private nackTokens: f64;
  private nackTokensAtUs: i64 = NEVER;

  private constructor(readonly settings: FeedbackSettings, counts: FbCounts) {
    this.counts = counts;
    this.media = new MediaTable(settings.maxMediaSources, settings.receiverTimeoutUs);
    this.receivers = new ReceiverTable(settings.maxReceivers);
    this.writer = new RtcpWriter(settings.reporterSsrc, settings.reporterCname, counts);
    this.nackTokens = <f64>settings.maxNacksPerSecond;
  }

  /**
   * The feedback part of a context whose config is `cfg`: reads its `feedback` object only (absent:
   * the defaults). Null after setError naming the field, on a bad value.
   */
  static configure(cfg: Config, ctx: u32): Feedback | null {
    const s = FeedbackSettings.read(cfg);
    if (s === null) {
      cfg.finish();
      return null;
    }
    return new Feedback(s, new FbCounts());
  }

  /** A media packet of the sender's (leg-0 RTP going down): its SSRC is one receivers may rightly name. */
  noteMedia(ssrc: u32, now: i64): void {
    this.media.sent.note(ssrc, now);
  }

  /** The reporter SSRC the sender sees on everything the filter sends it. */
  get reporterSsrc(): u32 {
    return this.settings.reporterSsrc;
  }

  /**
   * A receiver's RTCP compound (flags Upstream and Rtcp). It is always dropped, with a reason that
   * says what became of it; what it asked for goes out in the filter's own packet.
   */
  upstream(p: Packet, ctx: u32): void {
    const ptr = p.ptr;
    const len = p.length;
    if (RtcpCompound.validate(ptr, len, true) != RtcpError.None || !requestsWhole(ptr, len)) {
      this.counts.add(FbCount.Malformed);
      p.drop(DROP_MALFORMED);
      this.counts.flushWith(ctx, this.receivers.count);
      return;
    }
    const now = p.arrivalUs;
    this.outcome = 0;
    for (let off = RtcpCompound.first(len); off >= 0; off = RtcpCompound.next(ptr, len, off)) {
      this.take(ctx, ptr + <usize>off, now);
    }
    this.writer.flush(ctx);
    p.drop(this.verdict());
    this.armTimer(ctx);
    this.counts.flushWith(ctx, this.receivers.count);
  }

  /** FEEDBACK_TIMER: forgets silent receivers, then sends the aggregate report. */
  onTimer(ctx: u32): void {
    this.timerArmed = false;
    const now = nowUs();
    const oldest = now - this.settings.receiverTimeoutUs;
    this.counts.add(FbCount.ReceiversTimedOut, this.receivers.expire(oldest));
    this.media.expire(oldest);
    const sources = this.media.sources;
    for (let k = 0, n = sources.length; k < n; k++) {
      const m = unchecked(sources[k]);
      if (!m.inUse) continue;
      worst.reset();
      worst.addAll(m.overflow);
      m.overflow.reset();
      for (let i = 0, count = this.receivers.count; i < count; i++) {
        const b = this.receivers.blockAt(i);
        if (ReportBlock.ssrc(b) == m.ssrc) worst.addBlock(b, this.receivers.arrivedAt(i), this.receivers.extendedAt(i));
      }
      if (worst.count > 0) this.writer.reportBlock(ctx, m.ssrc, worst, now);
    }
    if (this.writer.flush(ctx)) this.counts.add(FbCount.ReportsSent);
    this.armTimer(ctx);
    this.counts.flushWith(ctx, this.receivers.count);
  }

  // ---- one packet of a receiver's compound ----

  private take(ctx: u32, q: usize, now: i64): void {
    switch (<i32>Rtcp.type(q)) {
      case RtcpType.SR:
        this.reports(q, 28, now);
        break;
      case RtcpType.RR:
        this.reports(q, 8, now);
        break;
      case RtcpType.SDES:
        this.notForwarded(FbCount.DroppedSdes);
        break;
      case RtcpType.BYE:
        // A receiver leaving: out of the aggregate now, and no word of it to the sender (its
        // session goes on for the other receivers).
        for (let i = 0, n = Bye.sourceCount(q); i < n; i++) this.receivers.removeReceiver(Bye.ssrc(q, i));
        this.notForwarded(FbCount.DroppedBye);
        break;
      case RtcpType.APP:
        this.notForwarded(FbCount.DroppedApp);
        break;
      case RtcpType.RTPFB:
        if (FeedbackHeader.fmt(q) == RtpfbFmt.Nack) this.nacks(ctx, q, now);
        else this.notForwarded(FbCount.DroppedFeedbackOther);
        break;
      case RtcpType.PSFB: {
        const fmt = FeedbackHeader.fmt(q);
        if (fmt == PsfbFmt.Pli) {
          this.keyframe(ctx, FeedbackHeader.mediaSsrc(q), false, now);
        } else if (fmt == PsfbFmt.Fir) {
          const fci = q + <usize>FeedbackHeader.fciOffset();
          for (let e = 0, n = FeedbackHeader.fciLength(q) / FIR_ENTRY; e < n; e++) {
            this.keyframe(ctx, loadBe32(fci + <usize>(e * FIR_ENTRY)), true, now);
          }
        } else {
          this.notForwarded(FbCount.DroppedFeedbackOther); // SLI, RPSI, AFB (REMB), ...
        }
        break;
      }
      case RtcpType.XR:
        this.notForwarded(FbCount.DroppedXr);
        break;
      default:
        this.notForwarded(FbCount.DroppedUnknown);
    }
  }

  /**
   * The report blocks of an SR or RR (starting `blocksAt` bytes into it) join the aggregate. The
   * rest of an SR (the receiver's own sending) is of no use to the sender and goes no further.
   */
  private reports(q: usize, blocksAt: i32, now: i64): void {
    const receiver = Rtcp.ssrc(q);
    for (let i = 0, n = Rtcp.count(q); i < n; i++) {
      const b = q + <usize>(blocksAt + i * REPORT_BLOCK_SIZE);
      this.counts.add(FbCount.ReportBlocksIn);
      const m = this.source(ReportBlock.ssrc(b), now);
      if (m === null) continue;
      this.outcome |= USED;
      if (!this.receivers.put(receiver, b, now, m.sequences)) {
        // No room to track this receiver: it counts, as the worst case, in the next report only.
        const extended = ReportBlock.extendedHighestSequence(b);
        m.overflow.addBlock(b, now, extended + m.sequences.biasFor(extended));
        this.counts.add(FbCount.ReceiversOverflow);
      }
    }
  }

  /** A PLI, or one FIR entry, for `ssrc`: forwarded unless one went less than keyframeIntervalMs ago. */
  private keyframe(ctx: u32, ssrc: u32, fir: bool, now: i64): void {
    this.counts.add(FbCount.KeyframeRequestsIn);
    const m = this.source(ssrc, now);
    if (m === null) return;
    if (m.keyframeForwardedUs != NEVER && now - m.keyframeForwardedUs < this.settings.keyframeIntervalUs) {
      this.outcome |= DUPLICATE;
      return;
    }
    m.keyframeForwardedUs = now;
    if (fir) this.writer.fir(ctx, ssrc, m.firSeq++);
    else this.writer.pli(ctx, ssrc);
    this.counts.add(FbCount.KeyframeRequestsForwarded);
    this.outcome |= USED;
  }

  /** A generic NACK: each sequence number it names goes on unless sent lately or over the rate. */
  private nacks(ctx: u32, q: usize, now: i64): void {
    const ssrc = FeedbackHeader.mediaSsrc(q);
    const fci = q + <usize>FeedbackHeader.fciOffset();
    const entries = FeedbackHeader.fciLength(q) / NACK_ENTRY;
    const m = this.source(ssrc, now);
    for (let e = 0; e < entries; e++) {
      const at = fci + <usize>(e * NACK_ENTRY);
      const pid = <i32>loadBe16(at);
      const blp = <i32>loadBe16(at + 2);
      for (let bit = -1; bit < 16; bit++) {
        if (bit >= 0 && (blp & (1 << bit)) == 0) continue;
        this.counts.add(FbCount.NackSeqsIn);
        if (m !== null) this.nack(ctx, m, (pid + bit + 1) & 0xffff, now);
      }
    }
  }

  private nack(ctx: u32, m: MediaSource, seq: i32, now: i64): void {
    if (m.nackForwardedWithin(seq, now, this.settings.nackIntervalUs)) {
      this.outcome |= DUPLICATE;
      return;
    }
    if (!this.takeNackToken(now)) {
      this.counts.add(FbCount.NackSeqsRateLimited);
      this.outcome |= RATE_LIMITED;
      return;
    }
    m.markNackForwarded(seq, now);
    this.writer.nack(ctx, m.ssrc, seq);
    this.counts.add(FbCount.NackSeqsForwarded);
    this.outcome |= USED;
  }

  private takeNackToken(now: i64): bool {
    const rate = <f64>this.settings.maxNacksPerSecond;
    if (this.nackTokensAtUs != NEVER && now > this.nackTokensAtUs) {
      this.nackTokens = min(rate, this.nackTokens + (<f64>(now - this.nackTokensAtUs) * rate) / MICROS_PER_SECOND);
    }
    this.nackTokensAtUs = now;
    if (this.nackTokens < 1) return false;
    this.nackTokens -= 1;
    return true;
  }

  /** The media source `ssrc`, or null (counted) when the table has no room for a new one. */
  private source(ssrc: u32, now: i64): MediaSource | null {
    const m = this.media.heard(ssrc, now);
    if (m === null) {
      this.counts.add(FbCount.MediaSourcesFull);
      this.outcome |= NO_ROOM;
    }
    return m;
  }

  private notForwarded(which: FbCount): void {
    this.counts.add(which);
    this.outcome |= NOT_FORWARDED;
  }

  /** The drop reason for the compound: what was lost first, then what was used, then what was not. */
  private verdict(): u32 {
    const o = this.outcome;
    if (o & NO_ROOM) return DROP_NO_ROOM;
    if (o & RATE_LIMITED) return DROP_RATE_LIMITED;
    if (o & USED) return DROP_MERGED;
    if (o & DUPLICATE) return DROP_DUPLICATE;
    return DROP_NOT_FORWARDED;
  }

  /** Keeps the report timer running while anything is tracked (so that it also expires it). */
  private armTimer(ctx: u32): void {
    if (this.timerArmed || (this.receivers.count == 0 && this.media.inUse == 0)) return;
    timerSet(ctx, FEEDBACK_TIMER, this.settings.reportIntervalUs);
    this.timerArmed = true;
  }
}

/** NACK FCI in whole 4-byte entries and FIR FCI in whole 8-byte entries, at least one each. */
function requestsWhole(ptr: usize, len: i32): bool {
  for (let off = RtcpCompound.first(len); off >= 0; off = RtcpCompound.next(ptr, len, off)) {
    const q = ptr + <usize>off;
    const type = <i32>Rtcp.type(q);
    const fmt = FeedbackHeader.fmt(q);
    let entry = 0;
    if (type == RtcpType.RTPFB && fmt == RtpfbFmt.Nack) entry = NACK_ENTRY;
    else if (type == RtcpType.PSFB && fmt == PsfbFmt.Fir) entry = FIR_ENTRY;
    else continue;
    const fci = FeedbackHeader.fciLength(q);
    if (fci <= 0 || fci % entry != 0) return false;
  }
  return true;
}
