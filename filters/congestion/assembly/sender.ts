// The sending proxy's side (README "What the sender does"): frame admission, pacing, stamping,
// the estimators fed by feedback and receiver reports, signals to the origin, the circuit breaker.
import {
  Dest, LogLevel, Output, Packet, RtpError, RtpPacket, Rtcp, RtcpCompound, RtcpType, ReportBlock,
  REPORT_BLOCK_SIZE, Status, StateReader, StateWriter, log, loadBe16, loadBe32, metricSet, storeBe16, storeBe32,
  StateOrigin, randomU32, stateOrigin, timerSet, wallUs,
} from "../../../sdk/assembly";
import { PASS, SegmentContext, TAKE } from "../../../sdk/assembly/context-filter";
import { CounterBatch } from "../../../sdk/assembly/counter-batch";
import { Breaker } from "./breaker";
import { planStamp, plan, writeStamped } from "./extension";
import { FMT_TRANSPORT_CC, NOT_ARRIVED, report } from "./feedback-read";
import { FrameGate } from "./frames";
import { AckedRate, RING, SendHistory, SentRate } from "./history";
import { Count, DROP_CIRCUIT_BREAKER, DROP_QUEUE_FULL, DROP_RENUMBER_LATE, Gauge, counterIds, dropCount, gaugeIds } from "./metrics";
import { Pacer } from "./pacer";
import { LOSS_LOW, RateControl } from "./rate-control";
import { NO_TAG, Renumber, UNMAPPED } from "./renumber";
import { writeSignals } from "./signals";
import { MAX_SOURCES, SOURCE_IDLE_US, Settings, leastRecent } from "./settings";
import { Trendline } from "./trendline";

export const PACER_TIMER = 0;
export const TICK_TIMER = 1;
const TICK_US: i64 = 250_000;
const INTERVAL_US: i64 = 1_000_000;
/** Without transport-wide feedback for this long, receiver reports drive the loss-based part. */
const FEEDBACK_STALE_US: i64 = 2_000_000;
const PLI_SPACING_US: i64 = 1_000_000;
/** Silence from the receiver (no feedback, no report) after which the target halves, once a second. */
const SILENCE_US: i64 = 2_000_000;
/**
 * Receiver reports alone come every 5 s by RFC 3550's default (6.2, randomised 2.5-7.5 s;
 * GStreamer's rtpbin keeps to it): silence is then two of their mean interval (a running mean
 * of the gaps between reports, starting from 5 s).
 */
const REPORT_INTERVAL_US: f64 = 5_000_000;
/**
 * 6: the renumbering's retired sources; 5: the renumbering state; 4: whether the hop showed congestion; 3: the SSRCs carried and the
 * pacer's queue; 2: the start-up flag; 1 (before it) is still read, as after start-up.
 */
const STATE_VERSION: u8 = 6;
/** More packets left out of a blob than any queue holds (pacing.maxQueuePackets <= 4096): a forged blob. */
const MAX_LEFT_OUT: i32 = 4096;
const SR_MEMORY = 4;
const SOURCES = MAX_SOURCES;
/** Refused feedback counts in a row, each one on from the last, that mean proxy B started again. */
const RESTART_RUN = 3;
/** Generic NACK (RFC 4585 6.2.1). */
const FMT_NACK = 1;
/** REMB (draft-alvestrand-rmcat-remb, PSFB FMT 15, "REMB" after the header). */
const FMT_REMB = 15;
const REMB_ID: u32 = 0x52454d42;
/** FCI entries of one NACK translated (1,536 bytes, beyond any MTU); a longer one is taken out. */
const MAX_NACK_ENTRIES = 384;
/** The input numbers a NACK asks for, sorted before they are written back (one module, one call at a time). */
const nackScratch = new StaticArray<i64>(MAX_NACK_ENTRIES * 17);

export class SenderContext extends SegmentContext {
  readonly counts: CounterBatch = new CounterBatch(counterIds);
  private readonly ourSsrc: u32 = randomU32();

  private readonly acked: AckedRate = new AckedRate();
  private readonly sentRate: SentRate = new SentRate();
  /**
   * Bytes acknowledged by the feedback that came in the 400 ms before the current 100 ms (this
   * proxy's clock): what got through, averaged over gaps too, for the delivered_bps gauge. `acked` measures over the span of
   * the receiver's arrivals instead (a burst's rate, what the controller needs), which stays at the
   * last burst's rate through a gap in the media.
   */
  private readonly delivered: SentRate = new SentRate();
  private readonly trend: Trendline = new Trendline();
  private readonly rate: RateControl;
  private readonly gate: FrameGate = new FrameGate();
  private readonly breaker: Breaker;
  private readonly renum: Renumber = new Renumber();
  /** The packet in hand's renumbering slot (-1: not renumbered) and extended input number. */
  private curSlot: i32 = -1;
  private curExt: i64 = 0;
  private nextSeq: i64 = 0;
  private mediaSsrc: u32 = 0;
  private haveMedia: bool = false;
  private readonly sources: StaticArray<u32> = new StaticArray<u32>(SOURCES);
  /** Bytes per source this interval: the busiest is the one TMMBR names. */
  private readonly sourceBytes: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  /** When each source's last packet came: a new SSRC beyond SOURCES takes the place of the one silent longest. */
  private readonly sourceSeen: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  private sourceCount: i32 = 0;
  private pliSsrc: u32 = 0;
  // refused feedback counts in a row that follow each other (proxy B restarted)
  private refusedCount: i32 = -1;
  private refusedRun: i32 = 0;
  // the worst receiver report of the interval, when reports drive the loss-based part
  private reportLossWorst: f64 = -1;
  private pacerArmed: bool = false;
  private warnedUnstamped: bool = false;
  private tickArmed: bool = false;
  private lastIntervalUs: i64 = -1;

  // feedback bookkeeping
  private lastFeedbackUs: i64 = -1;
  /** The last feedback or receiver report about the media (-1: never), and the last cut (or count) for silence. */
  private lastHeardUs: i64 = -1;
  private lastSilenceCutUs: i64 = -1;
  /** Mean time between receiver reports heard (us), while no transport-wide feedback comes. */
  private reportGapUs: f64 = REPORT_INTERVAL_US;
  private lastReportUs: i64 = -1;
  /** The target before the current silence's first halving (-1: none since the receiver was last heard with a loss known). */
  private beforeSilenceBps: f64 = -1;
  /** This instance's first media packet (-1: none yet): silence before anything was heard counts from it. */
  private firstMediaUs: i64 = -1;
  private lastFeedbackCount: i32 = -1;
  private refTicks: i32 = -1;
  private refWrapUs: i64 = 0;
  private rttMs: f64 = 100;
  private haveRtt: bool = false;

  // per interval (1 s): what the origin sent, what went missing, what the hop reported
  private originPackets: i64 = 0;
  private originBytes: i64 = 0;
  private droppedHere: i64 = 0;
  private hopReceived: i64 = 0;
  private hopLost: i64 = 0;
  private lossWindowReceived: i64 = 0;
  private lossWindowLost: i64 = 0;
  private lastLossUs: i64 = -1;
  private lastLoss: f64 = 0;
  private incomingBps: f64 = 0;
  private forwardedInterval: i64 = 0;

  // signals to the origin
  private signalledBps: f64 = 0;
  private lastSignalUs: i64 = -1;
  private wantPli: bool = false;
  private lastPliUs: i64 = -1;

  // the origin's SRs as they passed (for the round trip from receiver reports)
  private readonly srMiddle: StaticArray<u32> = new StaticArray<u32>(SR_MEMORY);
  private readonly srAtUs: StaticArray<i64> = new StaticArray<i64>(SR_MEMORY);
  private srNext: i32 = 0;

  constructor(id: u32, private readonly s: Settings, readonly pacer: Pacer, private readonly history: SendHistory) {
    super(id);
    this.rate = new RateControl(s.startBps, s.minBps, s.maxBps, s.startupEnabled ? s.startupGrowth : 1);
    this.breaker = new Breaker(s.breakerFactor, s.breakerIntervals, <i64>s.breakerCooldownS * 1_000_000);
    pacer.rateBps = s.startBps * s.pacingFactor;
  }

  onPacket(p: Packet, now: i64): u32 {
    if (p.isUpstream) return p.isRtcp ? this.upstreamRtcp(p, now) : PASS;
    if (p.isRtcp) {
      this.rememberSr(p.ptr, p.length, now);
      return PASS;
    }
    if (p.leg != 0 || RtpPacket.validate(p.ptr, p.length) != RtpError.None) return PASS;
    const ptr = p.ptr;
    const len = p.length;
    this.armTick(now);
    const ssrc = RtpPacket.ssrc(ptr);
    if (!this.haveMedia) {
      this.mediaSsrc = ssrc;
      this.haveMedia = true;
    }
    this.noteSource(ssrc, len, now);
    this.originPackets++;
    this.originBytes += len;
    this.curSlot = -1;
    if (this.s.renumber) {
      const seq = RtpPacket.sequence(ptr);
      const slot = this.renum.slot(ssrc, seq, now);
      if (slot >= 0) {
        const x = this.renum.arrive(slot, seq);
        if (!this.renum.mappable(slot, x)) return this.dropped(DROP_RENUMBER_LATE, true);
        this.curSlot = slot;
        this.curExt = x;
      }
      if (this.s.isRtx(<i32>RtpPacket.payloadType(ptr)) && !this.translateRtx(ptr, len)) return this.dropped(DROP_RENUMBER_LATE, true);
    }
    if (this.breaker.open) {
      if (!this.breaker.maybeClose(now)) return this.dropped(DROP_CIRCUIT_BREAKER, false);
      this.closedLog();
    }
    const pacer = this.pacer;
    pacer.refill(now);
    const s = this.s;
    const verdict = this.gate.decide(ptr, len, s.isH264(<i32>RtpPacket.payloadType(ptr)), pacer.queueMsBesideKeyframes, s.nonReferenceMs, s.referenceMs, s.maxQueueMs, now);
    if (this.gate.startedWaiting) this.askKeyframe();
    if (verdict != 0) return this.dropped(verdict, true);
    if (pacer.count == 0 && pacer.mayLeave) return this.passNow(p, now);
    if (!pacer.push(ptr, len, this.gate.currentIsKeyframe, this.renum.tag(this.curSlot), this.curExt)) {
      // the rest of the frame goes, and the part of it already queued: never half a frame (what
      // already left cannot be called back: a frame of more packets than the queue holds)
      this.gate.cutCurrent();
      if (this.gate.startedWaiting) this.askKeyframe();
      this.recordQueued(ssrc, RtpPacket.timestamp(ptr), false);
      const queued = pacer.discardFrame(ssrc, RtpPacket.timestamp(ptr));
      this.counts.add(Count.DroppedQueueFull, queued);
      this.droppedHere += queued;
      return this.dropped(DROP_QUEUE_FULL, true);
    }
    this.armPacer(now);
    return TAKE;
  }

  onTimer(timer: i32, now: i64): void {
    if (timer == PACER_TIMER) {
      this.pacerArmed = false;
      this.release(now, false);
    } else if (timer == TICK_TIMER) {
      this.tickArmed = false;
      this.tick(now);
    }
  }

  drain(now: i64): void {
    this.release(now, true);
  }

  flush(): void {
    this.counts.flush(this.id);
  }

  free(): void {
    this.pacer.free();
    this.history.free();
  }

  // ---- media out ----

  /** Stamps the packet in place and lets it go (the queue is empty and the bucket has room). */
  private passNow(p: Packet, now: i64): u32 {
    const ptr = p.ptr;
    const len = p.length;
    if (this.curSlot >= 0) RtpPacket.setSequence(ptr, <u16>this.renum.leave(this.curSlot, this.curExt));
    if (!planStamp(ptr, len, this.s.extensionId) || ptr - <usize>plan.grow < p.slotStart) {
      this.unstamped();
      this.pacer.spend(len);
      this.forwardedInterval++;
      return PASS;
    }
    const seq = this.nextSeq;
    const n = writeStamped(ptr - <usize>plan.grow, ptr, len, this.s.extensionId, <u16>seq);
    if (!p.resize(ptr - <usize>plan.grow, n)) { // cannot fail: the range was checked against the slot above
      this.unstamped();
      return PASS;
    }
    this.sent(seq, now, n);
    return PASS;
  }

  /** Sends queued packets as the bucket allows (all of them when draining), in the output area. */
  private release(now: i64, draining: bool): void {
    const pacer = this.pacer;
    pacer.refill(now);
    // keep one output slot for a signal to the origin
    pacer.popVoid();
    while (pacer.count > 0 && (draining || pacer.mayLeave) && Output.remaining() > 1) {
      const src = pacer.headPtr();
      const len = pacer.headLength();
      let slot = -1;
      let x: i64 = 0;
      const tag = pacer.tagAt(0);
      if (this.s.renumber && tag != NO_TAG) {
        slot = this.renum.slotOfTag(tag);
        x = pacer.extAt(0);
        if (slot < 0 || !this.renum.mappable(slot, x)) {
          // the history moved past it while it waited (or its slot went to another source): no number fits any more
          this.counts.add(Count.DroppedRenumberLate);
          this.droppedHere++;
          pacer.pop();
          pacer.popVoid();
          continue;
        }
      }
      const out = Output.reserve();
      let n = len;
      const stamp = planStamp(src, len, this.s.extensionId) && len + plan.grow <= Output.maxPacket;
      if (stamp) n = writeStamped(out, src, len, this.s.extensionId, <u16>this.nextSeq);
      else memory.copy(out, src, <usize>len);
      if (slot >= 0) RtpPacket.setSequence(out, <u16>(x - this.renum.droppedBelow(slot, x)));
      if (!Output.commit(this.id, n, 0, Dest.Forward, 0)) break;
      if (slot >= 0) this.renum.leave(slot, x);
      if (stamp) this.sent(this.nextSeq, now, n);
      else {
        this.unstamped();
        pacer.spend(n);
        this.forwardedInterval++;
      }
      pacer.pop();
      pacer.popVoid();
    }
    if (pacer.count > 0 && !draining) this.armPacer(now);
  }

  private sent(seq: i64, now: i64, size: i32): void {
    this.history.record(seq, now, size);
    this.sentRate.add(now, size);
    this.nextSeq = seq + 1;
    this.pacer.spend(size);
    this.forwardedInterval++;
  }

  private armPacer(now: i64): void {
    if (this.pacerArmed) return;
    const wait = this.pacer.waitUs();
    timerSet(this.id, PACER_TIMER, wait < 1000 ? 1000 : wait > 5000 ? 5000 : wait);
    this.pacerArmed = true;
  }

  private armTick(now: i64): void {
    if (this.tickArmed) return;
    timerSet(this.id, TICK_TIMER, TICK_US);
    this.tickArmed = true;
    if (this.lastIntervalUs < 0) {
      this.lastIntervalUs = now;
      this.firstMediaUs = now;
      this.setGauges(now); // from the first packet on, not from the first tick
    }
  }

  /** Counts a packet sent without a sequence number, and says why once per context. */
  private unstamped(): void {
    this.counts.add(Count.StampFailed);
    if (this.warnedUnstamped) return;
    this.warnedUnstamped = true;
    log(LogLevel.Warn, "a packet left without the transport-wide sequence number: its header extension uses ID " +
      this.s.extensionId.toString() + " for something else (set another extensionId on both proxies), has a profile RFC 8285 does not define, " +
      "or leaves no room; the estimator does not see such packets (stamp_failed counts them)");
  }

  private dropped(reason: u32, countsAsLoss: bool): u32 {
    this.counts.add(dropCount(reason));
    if (reason != DROP_RENUMBER_LATE && this.curSlot >= 0) this.renum.drop(this.curSlot, this.curExt);
    if (countsAsLoss) this.droppedHere++;
    return reason;
  }

  /**
   * An RTX packet (RFC 4588 4) from the origin: its original sequence number, the origin's, becomes
   * the one the receiver knows that packet by. Its media stream is the one a NACK to the origin
   * last asked that number of (the RTX stream's SSRC names no media stream). False (the packet
   * goes): it answers no NACK remembered (renumber_rtx_unmatched), or the packet it repeats has no
   * number any more (older than the history, or dropped here).
   */
  private translateRtx(ptr: usize, len: i32): bool {
    const off = RtpPacket.payloadOffset(ptr);
    if (off < 0 || off + 2 > len - RtpPacket.paddingLength(ptr, len)) return true;
    const osn = loadBe16(ptr + <usize>off);
    const slot = this.renum.askedBy(osn);
    if (slot < 0) {
      // its number is the origin's, which the receiver would take for one of its own: a
      // retransmission (or a sender's probe) answering no NACK seen here goes, counted
      this.counts.add(Count.RenumberRtxUnmatched);
      return false;
    }
    const x = this.renum.extend(slot, osn);
    if (!this.renum.mappable(slot, x)) return false;
    storeBe16(ptr + <usize>off, <u16>(x - this.renum.droppedBelow(slot, x)));
    return true;
  }

  /** Records as dropped the queued packets about to be discarded: a frame's (ssrc, ts), or `all`. Rare: it walks the queue. */
  private recordQueued(ssrc: u32, ts: u32, all: bool): void {
    if (!this.s.renumber) return;
    const pacer = this.pacer;
    for (let k = 0; k < pacer.count; k++) {
      const cell = pacer.packetAt(k);
      if (cell == 0) continue;
      if (!all && (RtpPacket.ssrc(cell) != ssrc || RtpPacket.timestamp(cell) != ts)) continue;
      const slot = this.renum.slotOfTag(pacer.tagAt(k));
      if (slot >= 0) this.renum.drop(slot, pacer.extAt(k));
    }
  }

  // ---- what comes back ----

  private upstreamRtcp(p: Packet, now: i64): u32 {
    const ptr = p.ptr;
    let len = p.length;
    if (len < 8 || (len & 3) != 0) return PASS;
    let onlyOurs = true;
    let off = RtcpCompound.first(len);
    while (off >= 0) {
      const q = ptr + <usize>off;
      const size = Rtcp.byteLength(q);
      if (size > len - off || (load<u8>(q) >> 6) != 2) {
        // not well-formed: not ours to read; a transport-wide feedback header in it is counted
        if (Rtcp.type(q) == RtcpType.RTPFB && Rtcp.count(q) == FMT_TRANSPORT_CC) this.counts.add(Count.FeedbackRejected);
        return PASS;
      }
      const type = <i32>Rtcp.type(q);
      if (type == RtcpType.RTPFB && Rtcp.count(q) == FMT_TRANSPORT_CC) {
        this.onFeedback(q, now);
      } else if (type == RtcpType.RR || type == RtcpType.SR) {
        this.onReport(q, type == RtcpType.SR ? 28 : 8, now);
        // an empty RR is what proxy B puts first; an SR carries the downstream sender's clock
        // for the origin (RFC 3550 6.4.1), blocks or not
        if (Rtcp.count(q) > 0 || type == RtcpType.SR) onlyOurs = false;
      } else if (type == RtcpType.PSFB && Rtcp.count(q) == FMT_REMB && size >= 20 && loadBe32(q + 12) == REMB_ID) {
        // a receiver's REMB: an upper bound on the target; the origin hears this filter's REMB
        // only (passed on beside it, the receiver's figure, a huge one too, undid the limit)
        this.onRemb(q, size, now);
        if (this.s.remb) {
          len -= this.shrink(p, off, size, 0);
          if (len == 0) return TAKE;
          if (off >= len) break;
          continue;
        }
        onlyOurs = false;
      } else if (type == RtcpType.RTPFB && Rtcp.count(q) == FMT_NACK && this.s.renumber) {
        onlyOurs = false;
        const removed = this.translateNack(p, off, size);
        if (removed > 0) {
          len = p.length;
          if (len == 0) return TAKE; // a NACK alone, about nothing the origin can still send
          if (removed == size) {
            // the packet went (the rest of the compound moved up to it)
            if (off >= len) break;
            continue;
          }
        }
      } else {
        onlyOurs = false;
      }
      off = RtcpCompound.next(ptr, len, off);
    }
    // a compound of feedback for this filter alone goes no further
    return onlyOurs ? TAKE : PASS;
  }

  private onFeedback(q: usize, now: i64): void {
    // feedback about a stream this segment never carried is not ours (0: the receiver names none)
    if (!report.read(q) || (report.mediaSsrc != 0 && !this.carries(report.mediaSsrc) && this.sourceCount < SOURCES)) {
      this.counts.add(Count.FeedbackRejected);
      return;
    }
    // out of order or repeated (the 8-bit feedback count did not move forward)
    if (this.lastFeedbackCount >= 0) {
      const step = (report.feedbackCount - this.lastFeedbackCount) & 0xff;
      if (step == 0 || step >= 128) {
        // repeated or out of order, unless several in a row follow each other: then proxy B
        // started again (a restart, a new context) and counts from anew
        const follows = this.refusedCount >= 0 && ((report.feedbackCount - this.refusedCount) & 0xff) == 1;
        this.refusedRun = follows ? this.refusedRun + 1 : 1;
        this.refusedCount = report.feedbackCount;
        if (this.refusedRun < RESTART_RUN) {
          this.counts.add(Count.FeedbackRejected);
          return;
        }
      }
    }
    this.refusedRun = 0;
    this.refusedCount = -1;
    // the base sequence number, extended: the nearest at or before the next one we send
    if (this.nextSeq == 0) {
      this.counts.add(Count.FeedbackRejected);
      return;
    }
    const latest = this.nextSeq - 1;
    const base = latest - <i64>((<u16>latest - report.baseSeq) & 0xffff);
    const count = report.count;
    if (base + <i64>count - 1 > latest || base < this.nextSeq - RING) {
      // about packets never sent, or older than anything remembered
      this.counts.add(Count.FeedbackRejected);
      return;
    }
    this.lastFeedbackCount = report.feedbackCount;
    // the 24-bit reference time wraps every 12 days of the receiver's clock
    if (this.refTicks >= 0 && report.referenceTicks < this.refTicks - (1 << 23)) this.refWrapUs += <i64>(1 << 24) * 64_000;
    this.refTicks = report.referenceTicks;
    let received: i64 = 0;
    let lost: i64 = 0;
    let newestSendUs: i64 = -1;
    for (let k = 0; k < count; k++) {
      const ext = base + k;
      if (!this.history.has(ext)) continue; // sent by an instance before a swap: nothing to compare
      const arrival = unchecked(report.arrivalUs[k]);
      if (arrival == NOT_ARRIVED) {
        if (!this.history.isAcked(ext)) lost++;
        continue;
      }
      if (this.history.isAcked(ext)) continue;
      this.history.markAcked(ext);
      received++;
      const sentUs = this.history.sentAt(ext);
      const arrivalUs = arrival + this.refWrapUs;
      this.acked.add(arrivalUs, this.history.size(ext));
      this.delivered.add(now, this.history.size(ext));
      const before = this.trend.state;
      const state = this.trend.onPacket(<f64>sentUs / 1000, <f64>arrivalUs / 1000);
      if (state == 1 && before != 1) this.counts.add(Count.OveruseSignals);
      if (sentUs > newestSendUs) newestSendUs = sentUs;
    }
    this.counts.add(Count.FeedbackPackets);
    this.lastFeedbackUs = now;
    this.lastHeardUs = now;
    // round trip: the shortest time from a send to the feedback about it (the receiver holds
    // feedback up to its interval, so this bounds it from above), followed slowly upward
    if (newestSendUs >= 0) this.noteRtt(<f64>(now - newestSendUs) / 1000, true);
    this.hopReceived += received;
    this.hopLost += lost;
    this.lossWindowReceived += received;
    this.lossWindowLost += lost;
    // start-up grows fast only while the pacer holds no backlog beyond what the priority drop
    // tolerates: a backlog is delay the detector does not see (it measures from when packets
    // leave), and a fast-rising pacing rate would pour it onto the path at once
    const pacerClear = this.pacer.queueMsBesideKeyframes <= this.s.nonReferenceMs;
    this.rate.onDelaySignal(this.trend.state, this.acked.bps, this.sentRate.bps(now), now, this.rttMs, pacerClear);
    if (this.lastLossUs < 0) this.lastLossUs = now;
    if (now - this.lastLossUs >= 500_000 && this.lossWindowReceived + this.lossWindowLost >= 20) {
      this.lastLoss = <f64>this.lossWindowLost / <f64>(this.lossWindowReceived + this.lossWindowLost);
      this.rate.onLoss(this.lastLoss, now);
      this.afterSilence(this.lastLoss);
      this.lossWindowReceived = 0;
      this.lossWindowLost = 0;
      this.lastLossUs = now;
    }
    this.pacer.rateBps = this.rate.target * this.s.pacingFactor;
  }

  /** Remembers the SSRCs the segment carries (the first SOURCES; feedback must name one of them). */
  private noteSource(ssrc: u32, bytes: i32, now: i64): void {
    const n = this.sourceCount;
    for (let i = 0; i < n; i++) {
      if (unchecked(this.sources[i]) == ssrc) {
        unchecked((this.sourceBytes[i] += bytes));
        unchecked((this.sourceSeen[i] = now));
        return;
      }
    }
    // a sender that restarted under a new SSRC: the stream it left is the one silent longest (while
    // every one followed is live, the new one is not followed)
    let at = n;
    if (n < SOURCES) this.sourceCount = n + 1;
    else {
      at = leastRecent(this.sourceSeen, n);
      if (now - unchecked(this.sourceSeen[at]) < SOURCE_IDLE_US) return;
      if (unchecked(this.sources[at]) == this.mediaSsrc) this.mediaSsrc = ssrc;
    }
    unchecked((this.sources[at] = ssrc));
    unchecked((this.sourceBytes[at] = bytes));
    unchecked((this.sourceSeen[at] = now));
  }

  /** The interval's busiest source becomes the one TMMBR names (video, not audio). */
  private pickMainSource(): void {
    let best: i64 = 0;
    for (let i = 0; i < this.sourceCount; i++) {
      const b = unchecked(this.sourceBytes[i]);
      if (b > best) {
        best = b;
        this.mediaSsrc = unchecked(this.sources[i]);
      }
      unchecked((this.sourceBytes[i] = 0));
    }
  }

  private askKeyframe(): void {
    this.wantPli = true;
    this.pliSsrc = this.gate.currentSsrc;
  }

  private closedLog(): void {
    log(LogLevel.Info, "circuit breaker closed after " + this.s.breakerCooldownS.toString() + " s: the flow is forwarded again");
  }

  /** A receiver's REMB about a stream the segment carries caps the target (never below minBps). */
  private onRemb(q: usize, size: i32, now: i64): void {
    const n = <i32>load<u8>(q + 16);
    if (20 + (n << 2) > size) return;
    let ours = false;
    for (let i = 0; i < n; i++) if (this.carries(loadBe32(q + 20 + <usize>(i << 2)))) ours = true;
    if (!ours) return;
    const e = load<u8>(q + 17);
    const mantissa = (<u32>(e & 3) << 16) | <u32>loadBe16(q + 18);
    this.counts.add(Count.RembReceived);
    this.rate.onRemb(<f64>mantissa * Math.pow(2, <f64>(e >> 2)), now);
    this.pacer.rateBps = this.rate.target * this.s.pacingFactor;
  }

  private carries(ssrc: u32): bool {
    for (let i = 0; i < this.sourceCount; i++) if (unchecked(this.sources[i]) == ssrc) return true;
    return false;
  }

  /**
   * A receiver report (or the blocks of an SR) from downstream: loss and round trip of the media,
   * read here first (in the numbers the receiver saw), then, with renumbering, rewritten for the origin.
   */
  private onReport(q: usize, blocksAt: i32, now: i64): void {
    const n = Rtcp.count(q);
    const size = Rtcp.byteLength(q);
    for (let i = 0; i < n; i++) {
      const b = q + <usize>(blocksAt + i * REPORT_BLOCK_SIZE);
      if (blocksAt + (i + 1) * REPORT_BLOCK_SIZE > size) return;
      if (this.haveMedia && this.carries(ReportBlock.ssrc(b))) this.readBlock(b, now);
      if (this.s.renumber) this.rewriteBlock(b, loadBe32(q + 4));
    }
  }

  /**
   * A report block about a renumbered SSRC, back in the origin's numbers: the extended highest
   * number it names is the input's, and this filter's drops below it count as lost again (the
   * receiver did not see them as gaps): the origin sees what it saw without renumbering. So does
   * the fraction lost, from the reporter's last block to this one (its first one stays the
   * receiver's: README "Renumbering").
   */
  private rewriteBlock(b: usize, reporter: u32): void {
    const slot = this.renum.find(ReportBlock.ssrc(b));
    if (slot < 0) return;
    const highest = ReportBlock.extendedHighestSequence(b);
    const o = this.renum.extendOutput(slot, <u16>highest);
    if (o == UNMAPPED) return;
    const x = this.renum.toInput(slot, o);
    if (x == UNMAPPED) return;
    const delta = x - o;
    const lost = <i64>ReportBlock.cumulativeLost(b) + delta;
    const fraction = this.renum.fractionSince(slot, reporter, x, lost);
    if (fraction >= 0) store<u8>(b + 4, <u8>fraction);
    if (delta == 0) return;
    storeBe32(b + 8, <u32>(<i64>highest + delta));
    // RFC 3550 6.4.1: the largest positive value when it overflows
    const written = lost > 0x7fffff ? 0x7fffff : lost;
    store<u8>(b + 5, <u8>(written >> 16));
    storeBe16(b + 6, <u16>written);
  }

  /**
   * A generic NACK (RFC 4585 6.2.1) about a renumbered SSRC names the receiver's (output) numbers:
   * they are written back as the origin's. Translation only widens the distances, so the set may
   * need more FCI entries than it came with: what does not fit, and numbers older than the
   * history, are left out (renumber_nack_dropped) and the packet shrinks to the entries written.
   * Returns the bytes removed from the compound (0: unchanged length).
   */
  private translateNack(p: Packet, off: i32, size: i32): i32 {
    const q = p.ptr + <usize>off;
    if (size < 16) return 0;
    const slot = this.renum.find(loadBe32(q + 8));
    if (slot < 0) return 0;
    const entries = (size - 12) >> 2;
    // one this filter cannot read whole (padded, or longer than any receiver's) goes: passed on,
    // it would ask the origin for the receiver's numbers, which are other packets there
    if (entries > MAX_NACK_ENTRIES || Rtcp.hasPadding(q)) return this.removeNack(p, off, size, entries * 17);
    const xs = nackScratch;
    let m = 0;
    let unmapped = 0;
    for (let e = 0; e < entries; e++) {
      const at = q + 12 + <usize>(e << 2);
      const pid = loadBe16(at);
      const blp = <i32>loadBe16(at + 2);
      for (let bit = -1; bit < 16; bit++) {
        if (bit >= 0 && ((blp >> bit) & 1) == 0) continue;
        const o = this.renum.extendOutput(slot, <u16>(<i32>pid + bit + 1));
        const x = o == UNMAPPED ? UNMAPPED : this.renum.toInput(slot, o);
        if (x == UNMAPPED) {
          unmapped++;
          continue;
        }
        this.renum.noteAsked(slot, x);
        unchecked((xs[m++] = x));
      }
    }
    // in order, once each: a heap sort, since a hostile NACK's entries may come in any order
    m = sortUnique(xs, m);
    let w = 0;
    let i = 0;
    while (i < m && w < entries) {
      const pid = unchecked(xs[i]);
      let blp = 0;
      let j = i + 1;
      while (j < m && unchecked(xs[j]) - pid <= 16) {
        blp |= 1 << <i32>(unchecked(xs[j]) - pid - 1);
        j++;
      }
      const at = q + 12 + <usize>(w << 2);
      storeBe16(at, <u16>pid);
      storeBe16(at + 2, <u16>blp);
      w++;
      i = j;
    }
    const left = unmapped + (m - i);
    if (left > 0) this.counts.add(Count.RenumberNackDropped, left);
    if (w == entries) return 0;
    // fewer entries than it came with: the packet shrinks (none left: it goes) and the rest of the compound moves up
    const newSize = w == 0 ? 0 : 12 + (w << 2);
    if (w > 0) storeBe16(q + 2, <u16>((newSize >> 2) - 1));
    return this.shrink(p, off, size, newSize);
  }

  /** Takes a NACK out of the compound, its `numbers` counted as not passed on. */
  private removeNack(p: Packet, off: i32, size: i32, numbers: i32): i32 {
    this.counts.add(Count.RenumberNackDropped, numbers);
    return this.shrink(p, off, size, 0);
  }

  /** The RTCP packet at `off` becomes `newSize` bytes long (0: it goes); the rest of the compound moves up. Returns the bytes removed. */
  private shrink(p: Packet, off: i32, size: i32, newSize: i32): i32 {
    const q = p.ptr + <usize>off;
    const len = p.length;
    memory.copy(q + <usize>newSize, q + <usize>size, <usize>(len - off - size));
    p.resize(p.ptr, len - (size - newSize));
    return size - newSize;
  }

  /** One block about the media, for this filter: the receiver's view of loss and the round trip. */
  private readBlock(b: usize, now: i64): void {
    this.lastHeardUs = now;
    // the reports' interval (blocks of one compound, or several receivers' within 100 ms, are one)
    if (this.lastReportUs < 0 || now - this.lastReportUs >= 100_000) {
      if (this.lastReportUs >= 0) this.reportGapUs += (<f64>(now - this.lastReportUs) - this.reportGapUs) / 4;
      this.lastReportUs = now;
    }
    const lsr = ReportBlock.lastSr(b);
    if (lsr != 0) {
      for (let k = 0; k < SR_MEMORY; k++) {
        if (unchecked(this.srMiddle[k]) != lsr) continue;
        const rtt = <f64>(now - unchecked(this.srAtUs[k])) / 1000 - <f64>ReportBlock.delaySinceLastSr(b) * 1000 / 65536;
        if (rtt >= 0 && rtt < 60_000) this.noteRtt(rtt, false);
        break;
      }
    }
    // only without transport-wide feedback do receiver reports drive the loss-based part
    // (the worst block of the interval, applied once at its end: many receivers, or reports
    // more often than a second, must not count the same loss again)
    if (this.lastFeedbackUs < 0 || now - this.lastFeedbackUs > FEEDBACK_STALE_US) {
      this.reportLossWorst = Math.max(this.reportLossWorst, <f64>ReportBlock.fractionLost(b) / 256);
    }
  }

  /**
   * The first loss known after a silence: below 2% the hop carried what went meanwhile (only the
   * way back failed, or nothing was lost), so the silence's halvings, a precaution, are undone;
   * otherwise they stand.
   */
  private afterSilence(loss: f64): void {
    if (this.beforeSilenceBps < 0) return;
    if (loss < LOSS_LOW) this.rate.undoSilence(this.beforeSilenceBps);
    this.beforeSilenceBps = -1;
  }

  private noteRtt(ms: f64, fromFeedback: bool): void {
    if (!(ms >= 0) || ms > 60_000) return;
    if (!this.haveRtt || ms < this.rttMs || !fromFeedback) this.rttMs = ms;
    else this.rttMs += (ms - this.rttMs) * 0.01;
    this.haveRtt = true;
  }

  /** Notes an SR from the origin as it passes (its NTP time's middle, and when). */
  private rememberSr(ptr: usize, len: i32, now: i64): void {
    if (len < 28 || Rtcp.type(ptr) != RtcpType.SR) return;
    const middle = loadBe32(ptr + 10); // the middle 32 bits of its NTP timestamp (RFC 3550 6.4.1)
    unchecked((this.srMiddle[this.srNext] = middle));
    unchecked((this.srAtUs[this.srNext] = now));
    this.srNext = (this.srNext + 1) % SR_MEMORY;
  }

  // ---- every TICK_US while media flows ----

  private tick(now: i64): void {
    const s = this.s;
    if (this.breaker.maybeClose(now)) this.closedLog();
    // the receiver went quiet while media goes out (the hop died, or its proxy went): do not go on
    // at the last estimate; halve it each second, down to minBps. Nothing heard at all since this
    // instance's media began (a proxy B that does not answer, a receiver that sends no RTCP) is
    // counted the same, once a second, but cuts nothing: there is no estimate to distrust
    const heardUs = this.lastHeardUs >= 0 ? this.lastHeardUs : this.firstMediaUs;
    // 2 s once transport-wide feedback (every 50 ms) has come; on receiver reports alone, two of their interval
    const silenceUs = this.lastFeedbackUs >= 0 || this.lastReportUs < 0 ? SILENCE_US : max(SILENCE_US, <i64>(2.0 * this.reportGapUs));
    if (heardUs >= 0 && this.forwardedInterval > 0 && now - heardUs > silenceUs &&
      (this.lastSilenceCutUs < 0 || now - this.lastSilenceCutUs >= INTERVAL_US)) {
      if (this.lastHeardUs >= 0) {
        if (this.beforeSilenceBps < 0) this.beforeSilenceBps = this.rate.target;
        this.rate.onSilence();
        this.pacer.rateBps = this.rate.target * s.pacingFactor;
      }
      this.lastSilenceCutUs = now;
      this.counts.add(Count.FeedbackTimeouts);
    }
    if (this.lastIntervalUs >= 0 && now - this.lastIntervalUs >= INTERVAL_US) this.interval(now);
    this.rate.rembTick(now);
    this.pacer.rateBps = this.rate.target * s.pacingFactor;
    this.signal(now);
    this.setGauges(now);
    // ticks go on while media comes (armTick re-arms on the next packet), and until delivered_bps
    // has come down to 0 after the origin stopped (a gauge left at its last value would lie)
    if (this.originPackets > 0 || this.pacer.count > 0 || this.delivered.completedBps(now) > 0) {
      timerSet(this.id, TICK_TIMER, TICK_US);
      this.tickArmed = true;
    }
  }

  private interval(now: i64): void {
    const seconds = <f64>(now - this.lastIntervalUs) / 1e6;
    this.incomingBps = <f64>this.originBytes * 8 / seconds;
    this.pickMainSource();
    if (this.reportLossWorst >= 0) {
      // without renumbering the receiver counts missing what this filter dropped: that share of
      // its loss is not the hop's, and must neither cut the rate nor arm the breaker (with
      // renumbering the receiver sees no gap where this filter dropped: its loss is the hop's)
      const sentOrDropped = this.forwardedInterval + this.droppedHere;
      const ownShare = sentOrDropped > 0 && !this.s.renumber ? <f64>this.droppedHere / <f64>sentOrDropped : 0;
      const fraction = Math.max(0, this.reportLossWorst - ownShare);
      this.lastLoss = fraction;
      this.rate.onLoss(fraction, now);
      this.afterSilence(fraction);
      this.hopLost += <i64>Math.round(fraction * <f64>this.forwardedInterval);
      this.pacer.rateBps = this.rate.target * this.s.pacingFactor;
      this.reportLossWorst = -1;
    }
    // the breaker judges a flow only once the hop has shown congestion: before that, all the "loss"
    // is this filter's own drops while its target ramps up, and the path is not harmed
    if (this.s.breakerEnabled && this.rate.congested) {
      const lost = this.droppedHere + this.hopLost;
      if (this.breaker.evaluate(this.originPackets, this.originBytes, lost, seconds, this.rttMs / 1000, this.rate.target)) {
        this.breaker.trip(now);
        this.counts.add(Count.CircuitBreakerTrips);
        log(LogLevel.Warn, "circuit breaker tripped (RFC 8083): the origin sends " + kbps(this.breaker.lastRateBps) +
          " kbit/s with " + (<i64>Math.round(this.breaker.lastLoss * 100)).toString() + "% loss and a " + (<i64>Math.round(this.rttMs)).toString() +
          " ms round trip, " + (<i64>Math.round(this.breaker.lastRateBps / this.breaker.lastTcpBps)).toString() + "x the " + kbps(this.breaker.lastTcpBps) +
          " kbit/s a TCP flow would get and above the " + kbps(this.rate.target) + " kbit/s the path carries, for " +
          this.s.breakerIntervals.toString() + " s; its media is dropped" +
          (this.s.breakerCooldownS > 0 ? " for " + this.s.breakerCooldownS.toString() + " s" : " until the segment is reconfigured"));
        this.dropQueue();
      }
    }
    this.originPackets = 0;
    this.originBytes = 0;
    this.droppedHere = 0;
    this.hopLost = 0;
    this.hopReceived = 0;
    this.forwardedInterval = 0;
    this.lastIntervalUs = now;
  }

  /** Empties the queue (the breaker opened: nothing of the flow goes on). */
  private dropQueue(): void {
    this.recordQueued(0, 0, true);
    this.counts.add(Count.DroppedCircuitBreaker, this.pacer.clear());
  }

  private signal(now: i64): void {
    const s = this.s;
    if (!this.haveMedia) return;
    const target = this.rate.target;
    const moved = this.signalledBps <= 0 || Math.abs(target - this.signalledBps) > 0.05 * this.signalledBps;
    const refresh = this.lastSignalUs >= 0 && now - this.lastSignalUs >= <i64>s.signalIntervalMs * 1000 && this.incomingBps > target * 1.05;
    const pli = this.wantPli && (this.lastPliUs < 0 || now - this.lastPliUs >= PLI_SPACING_US);
    const rate = (moved || refresh) && (s.tmmbr || s.remb);
    if (!rate && !pli) return;
    if (!writeSignals(this.id, this.ourSsrc, this.mediaSsrc, this.pliSsrc, target, rate && s.tmmbr, rate && s.remb, pli)) return;
    if (rate) {
      this.signalledBps = target;
      this.lastSignalUs = now;
      if (s.tmmbr) this.counts.add(Count.TmmbrSent);
      if (s.remb) this.counts.add(Count.RembSent);
    }
    if (pli) {
      this.wantPli = false;
      this.lastPliUs = now;
      this.counts.add(Count.PliSent);
    }
  }

  private setGauges(now: i64): void {
    const id = this.id;
    metricSet(unchecked(gaugeIds[Gauge.TargetBps]), id, <i64>this.rate.target);
    metricSet(unchecked(gaugeIds[Gauge.DelayBasedBps]), id, this.rate.haveDelayBased ? <i64>this.rate.delayBased : 0);
    metricSet(unchecked(gaugeIds[Gauge.LossBasedBps]), id, <i64>this.rate.lossBased);
    metricSet(unchecked(gaugeIds[Gauge.AckedBps]), id, <i64>this.acked.bps);
    metricSet(unchecked(gaugeIds[Gauge.IncomingBps]), id, <i64>this.incomingBps);
    metricSet(unchecked(gaugeIds[Gauge.RttMs]), id, <i64>this.rttMs);
    metricSet(unchecked(gaugeIds[Gauge.LossPerMille]), id, <i64>(this.lastLoss * 1000));
    metricSet(unchecked(gaugeIds[Gauge.QueuePackets]), id, this.pacer.packets);
    metricSet(unchecked(gaugeIds[Gauge.QueueMs]), id, <i64>this.pacer.queueMs);
    metricSet(unchecked(gaugeIds[Gauge.BreakerOpen]), id, this.breaker.open ? 1 : 0);
    metricSet(unchecked(gaugeIds[Gauge.DetectorState]), id, this.trend.state);
    metricSet(unchecked(gaugeIds[Gauge.TrendUs]), id, <i64>(this.trend.trend * 1000));
    metricSet(unchecked(gaugeIds[Gauge.ThresholdUs]), id, <i64>(this.trend.threshold * 1000));
    metricSet(unchecked(gaugeIds[Gauge.Startup]), id, this.rate.startup ? 1 : 0);
    metricSet(unchecked(gaugeIds[Gauge.BreakerArmed]), id, this.rate.congested ? 1 : 0);
    metricSet(unchecked(gaugeIds[Gauge.DeliveredBps]), id, <i64>this.delivered.completedBps(now));
  }

  // ---- hot swap ----

  exportState(out: StateWriter, now: i64): Status {
    out.u8(STATE_VERSION);
    out.u64(reinterpret<u64>(this.rate.target));
    // no feedback yet: no delay-based estimate, whatever its starting value (the reader takes a
    // value under its maxBps for one made from feedback; infinity is clamped to its maxBps)
    out.u64(reinterpret<u64>(this.rate.haveDelayBased ? this.rate.delayBased : Infinity));
    out.u64(reinterpret<u64>(this.rate.lossBased));
    out.u64(reinterpret<u64>(this.rttMs));
    out.u64(<u64>this.nextSeq);
    out.u8(this.breaker.open ? 1 : 0);
    out.u64(<u64>(this.breaker.open ? now - this.breaker.openedUs : 0));
    out.u8(this.rate.startup ? 1 : 0);
    out.u8(this.rate.congested ? 1 : 0); // (version 4) whether the hop had shown congestion: the breaker stays armed or not
    // the SSRCs carried (version 3): feedback and reports that reach the new instance before its
    // first media packet name them, and would otherwise be refused as about another stream
    out.u8(this.haveMedia ? 1 : 0);
    out.u32(this.mediaSsrc);
    out.u8(<u8>this.sourceCount);
    for (let i = 0; i < this.sourceCount; i++) out.u32(unchecked(this.sources[i]));
    // (version 5) the renumbering: without it the new instance's numbers would jump back by the drops so far
    this.renum.writeTo(out);
    // the pacer's queue (version 3): the new instance paces it on; what the blob cannot hold is
    // counted there as swap_lost
    out.u64(<u64>wallUs());
    const carriedAt = out.reserve(4);
    const leftAt = out.reserve(4);
    if (out.overflow) return Status.NoSpace;
    const carried = this.pacer.writeTo(out);
    store<u32>(carriedAt, <u32>carried);
    store<u32>(leftAt, <u32>(this.pacer.packets - carried));
    return Status.Ok;
  }

  importState(blob: StateReader, now: i64): Status {
    if (blob.length == 0) return Status.Ok;
    const version = blob.u8();
    if (version < 1 || version > STATE_VERSION) return Status.BadState;
    const target = reinterpret<f64>(blob.u64());
    const delayBased = reinterpret<f64>(blob.u64());
    const lossBased = reinterpret<f64>(blob.u64());
    const rtt = reinterpret<f64>(blob.u64());
    const nextSeq = <i64>blob.u64();
    const open = blob.u8() != 0;
    const ageUs = <i64>blob.u64();
    const startup = version >= 2 && blob.u8() != 0;
    // before version 4 an instance past start-up is taken to have seen congestion
    const congested = version >= 4 ? blob.u8() != 0 : !startup;
    const haveMedia = version >= 3 && blob.u8() != 0;
    const mediaSsrc = version >= 3 ? blob.u32() : 0;
    const sourceCount = version >= 3 ? <i32>blob.u8() : 0;
    if (sourceCount > SOURCES) return Status.BadState;
    const sourcesAt = blob.position;
    blob.take(sourceCount * 4);
    const renumAt = blob.position;
    if (version >= 5 && !this.renum.readFrom(blob, false, version >= 6, now)) return Status.BadState;
    if (version >= 3) blob.u64(); // the export's wall clock: filters before ABI 1.5 told a swap by its age
    const carried = version >= 3 ? <i32>blob.u32() : 0;
    const left = version >= 3 ? <i32>blob.u32() : 0;
    const packetsAt = blob.position;
    for (let k = 0; k < carried && !blob.overflow; k++) {
      blob.u8();
      blob.take(<i32>blob.u16());
    }
    if (blob.overflow || nextSeq < 0 || ageUs < 0 || carried < 0 || left < 0 || left > MAX_LEFT_OUT) return Status.BadState;
    const afterAt = blob.position;
    blob.position = sourcesAt;
    for (let i = 0; i < sourceCount; i++) unchecked((this.sources[i] = blob.u32()));
    if (version >= 5) {
      blob.position = renumAt;
      this.renum.readFrom(blob, true, version >= 6, now);
    }
    blob.position = afterAt;
    this.haveMedia = haveMedia;
    this.mediaSsrc = mediaSsrc;
    this.sourceCount = sourceCount;
    for (let i = 0; i < sourceCount; i++) {
      unchecked((this.sourceBytes[i] = 0));
      unchecked((this.sourceSeen[i] = now));
    }
    this.rate.restore(target, delayBased, lossBased, startup, congested);
    this.pacer.rateBps = this.rate.target * this.s.pacingFactor;
    if (rtt >= 0 && rtt < 60_000) {
      this.rttMs = rtt;
      this.haveRtt = true;
    }
    this.nextSeq = nextSeq;
    // a carried estimate was heard about: silence from here on is distrusted as the old instance's
    // would have been (else a receiver gone just before a swap left the target standing for good)
    if (this.haveRtt || !startup) this.lastHeardUs = now;
    if (open) this.breaker.trip(now - ageUs);
    this.signalledBps = this.rate.target; // the origin was told already
    // a swap's queue was never sent; a checkpoint's may have been (the failed instance ran on)
    if (stateOrigin() == StateOrigin.Swap) this.requeue(blob, packetsAt, carried, left, now);
    return Status.Ok;
  }

  /** A hot swap's queue: the old instance's packets go first, paced, stamped as they leave. */
  private requeue(blob: StateReader, at: i32, carried: i32, left: i32, now: i64): void {
    blob.position = at;
    let lost = left;
    for (let k = 0; k < carried; k++) {
      const keyframe = blob.u8() != 0;
      const len = <i32>blob.u16();
      const ptr = blob.take(len);
      // its number extended against the old instance's newest, as close as it gets
      let slot = -1;
      let x: i64 = 0;
      if (this.s.renumber && RtpPacket.validate(ptr, len) == RtpError.None) {
        slot = this.renum.find(RtpPacket.ssrc(ptr));
        if (slot >= 0) x = this.renum.extend(slot, RtpPacket.sequence(ptr));
      }
      if (!this.pacer.push(ptr, len, keyframe, this.renum.tag(slot), x)) lost++; // a smaller queue in the new config
    }
    this.counts.add(Count.SwapLost, lost);
    if (this.pacer.packets > 0) {
      this.armPacer(now);
      this.armTick(now); // the gauges move while only the old instance's queue flows
    }
  }
}

function kbps(bps: f64): string {
  return isFinite(bps) ? (<i64>Math.round(bps / 1000)).toString() : "unlimited";
}

/** Sorts xs[0..n) in place and keeps each value once (a heap sort: no allocation, n log n on any input); returns the count kept. */
function sortUnique(xs: StaticArray<i64>, n: i32): i32 {
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(xs, i, n);
  for (let end = n - 1; end > 0; end--) {
    const top = unchecked(xs[0]);
    unchecked((xs[0] = xs[end]));
    unchecked((xs[end] = top));
    siftDown(xs, 0, end);
  }
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const x = unchecked(xs[i]);
    if (kept > 0 && unchecked(xs[kept - 1]) == x) continue;
    unchecked((xs[kept++] = x));
  }
  return kept;
}

function siftDown(xs: StaticArray<i64>, at: i32, n: i32): void {
  let i = at;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) return;
    const r = l + 1;
    const c = r < n && unchecked(xs[r]) > unchecked(xs[l]) ? r : l;
    if (unchecked(xs[c]) <= unchecked(xs[i])) return;
    const t = unchecked(xs[c]);
    unchecked((xs[c] = xs[i]));
    unchecked((xs[i] = t));
    i = c;
  }
}
