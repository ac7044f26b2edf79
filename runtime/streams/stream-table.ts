// Per-stream (SSRC) counters of one worker, in columns of typed arrays indexed by slot (and by
// slot * 2 + direction), so that counting a packet allocates nothing. Sequence accounting follows
// RFC 3550 appendix A.1 and A.3, jitter A.8; windows give rates and the loss fraction. A window is
// a whole second of the wall clock, by each packet's own time: two proxies (kept in step by NTP or
// PTP) count the same second over nearly the same packets, so the mean transit of one less the
// other's is the delay between them, not the sender's drift between two unrelated seconds. Slots
// are handed out up to `limit`; the arrays grow by doubling, never per packet.
import { CLOCK_FROM_NAMES } from "./clock-rates.js";
import type { ReceiverReport, StreamDirection, StreamStats, StreamWindow } from "./types.js";

export const INGRESS = 0;
export const EGRESS = 1;

/** RFC 3550 A.1: a jump of more than this is a restart or a stray packet, not loss. */
const MAX_DROPOUT = 3000;
const SEQ_MOD = 65536;
const TS_MOD = 4294967296;
/** Sequence numbers remembered up to the highest (a bitmap of 1024 per direction), to tell a duplicate from a late packet. */
const HISTORY_WORDS = 32;
const HISTORY_MASK = HISTORY_WORDS * 32 - 1;
/**
 * RFC 3550 A.1's MAX_MISORDER: a packet less than this far behind the highest is late (or a
 * duplicate), not a restart. The RFC suggests 100; a late burst of more than 100 (400 ms of delay
 * jitter at 200 packets/s) was then taken for a restarted sender, and the packets after it for
 * loss. Here it is as far back as the history reaches, so that each is told from a duplicate.
 */
const MAX_MISORDER = HISTORY_MASK + 1;
/**
 * A packet further behind than the history whose RTP timestamp is at most this many seconds
 * before the highest packet's (or LATE_AHEAD_S after it: B-frames are sent before the frames
 * they follow) is late, not a restart: a restarted sender's timestamps start at random (RFC 3550
 * 5.1), seldom within this of the old ones, or, tied to a clock, ahead of them.
 */
const LATE_BEHIND_S = 10;
const LATE_AHEAD_S = 1;
/** Receivers remembered per stream, and SRs forwarded per stream (for LSR/DLSR round trips). */
export const RECEIVERS_PER_STREAM = 4;
/**
 * A receiver not heard from for this long has left: its row goes. RFC 3550 6.3.5 times a member
 * out after M = 5 report intervals, and 6.2's recommended minimum interval is 5 s. An RTCP BYE
 * from it (6.6) drops it sooner.
 */
export const RECEIVER_TIMEOUT_MS = 25_000;
/** BYEs kept until the next roll drops their receivers; more in one second are left to time out. */
const BYES_PER_ROLL = 32;
const SRS_PER_STREAM = 4;
const FIRST_CAPACITY = 16;
/** A window's length: it ends on a multiple of this, by the wall clock. */
export const WINDOW_MS = 1000;
/** A stream that began less than this before a window's end counts on to the next end: its rates would be noise. */
const MIN_WINDOW_MS = 200;
/** A packet or roll this far before the window being counted began: the wall clock stepped back, and the windows start again. */
const STEP_BACK_MS = 1000;

/**
 * A hole in the sequence numbers that opened in the last this-many ms of a window (the highest
 * passed it then) is not yet counted lost when the window ends: it is counted in the next window
 * if it is still missing then. Reordering across a second's edge (a link's delay jitter) was
 * otherwise counted as loss in one window, the late packets making up for it in the next, whose
 * loss cannot go below zero: a link that lost nothing read as losing 1-2% (an RFC 3550 interval of
 * 5 s hides this; a window of 1 s does not).
 */
export const LATE_GRACE_MS = 250;

/**
 * The roll timer ends a window only this long after its end. A worker held across a second's edge
 * (a busy CPU, a long GC) runs its timers before it reads the packets waiting in its socket: ended
 * on time, the second would miss those that arrived just before its edge (they carry the kernel's
 * receive time) and count them in the next one, and its jitter would be an earlier packet's. A
 * packet from after the edge still ends the window at once: a socket is read in order.
 */
export const ROLL_GRACE_MS = 250;

/** The end of the window a packet at `atMs` belongs to. */
const windowEnd = (atMs: number): number => (Math.floor(atMs / WINDOW_MS) + 1) * WINDOW_MS;

/** Milliseconds to the microsecond: what the clocks resolve, and a report a third the size. */
const us = (ms: number): number => Math.round(ms * 1000) / 1000;

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

type Column = Float64Array | Uint32Array | Int32Array | Uint8Array;

function grown<T extends Column>(old: T, size: number): T {
  const next = new (old.constructor as new (n: number) => T)(size);
  next.set(old);
  return next;
}

/** Where the packet being counted is described (see StreamTable.packet). */
export const PKT_SEQ = 0;
export const PKT_TS = 1;
export const PKT_BYTES = 2;
export const PKT_AT_MS = 3;
/** The time whose second the packet counts in: its own, or for a packet leaving a proxy, when it arrived there. */
export const PKT_WINDOW_MS = 4;
/** 1 for a packet of a redundant leg (a 2022-7 second path: its packets are copies of the media's), else 0. */
export const PKT_COPY = 5;

export class StreamTable {
  /**
   * The packet record() counts: sequence number, RTP timestamp, bytes, time (ms), the time whose
   * second it counts in (ms; at most its time). Written here
   * rather than passed as arguments: a timestamp or a time is no small integer, and V8 would box
   * each one crossing a call, an allocation per packet.
   */
  readonly packet = new Float64Array(6);
  private capacity = 0;
  private freeHead = -1;
  private nextUnused = 0;
  /** Slots in use. */
  used = 0;
  /** Who owns each slot: told when an idle stream's slot is taken back. */
  private readonly owners = new Map<number, { forget(ssrc: number): void }>();
  private nextOwner = 1;

  // per slot
  ssrc = new Uint32Array(0);
  private owner = new Int32Array(0);
  private nextFree = new Int32Array(0);
  payloadType = new Int32Array(0);
  /** rate * 4 + ClockFrom (clock-rates.ts). */
  private clock = new Float64Array(0);
  // per slot * 2 + direction
  private started = new Uint8Array(0);
  private packets = new Float64Array(0);
  private bytes = new Float64Array(0);
  private baseExt = new Float64Array(0);
  private cycles = new Float64Array(0);
  private maxSeq = new Int32Array(0);
  private badSeq = new Int32Array(0);
  private duplicates = new Float64Array(0);
  private reordered = new Float64Array(0);
  private jitterMs = new Float64Array(0);
  private lastMs = new Float64Array(0);
  private firstMs = new Float64Array(0);
  private lastTs = new Uint32Array(0);
  /** The RTP timestamp of the packet with the highest sequence number. */
  private maxTs = new Uint32Array(0);
  /** The first packet's transit (ms): the others' are taken within half an RTP timestamp wrap of it. */
  private transitRef = new Float64Array(0);
  private history = new Uint32Array(0);
  // the window being counted; per (slot * 2 + direction) * 2 + k the last whole window (k = 0) and the one before it (k = 1)
  private winStartMs = new Float64Array(0);
  private winEndMs = new Float64Array(0);
  private winExpected = new Float64Array(0);
  /** expectedOf() as of the last packet that came before the window's last LATE_GRACE_MS: holes above it are not counted lost yet. */
  private winSettledExpected = new Float64Array(0);
  /** The expected index (expectedOf) of the oldest packet the history holds: the stream's first, or a restarted sender's. */
  private historyFloor = new Float64Array(0);
  /** Packets the windows have counted lost so far (settled holes, never given back). */
  private lostCounted = new Float64Array(0);
  /** The settled mark (expected - unsettled()) as the last window closed: the next window's loss is over the sequence numbers above it. */
  private lossFrom = new Float64Array(0);
  private winPackets = new Float64Array(0);
  private winBytes = new Float64Array(0);
  private winTransitSum = new Float64Array(0);
  private winTransitCount = new Float64Array(0);
  private wMs = new Float64Array(0);
  private wEndMs = new Float64Array(0);
  private wExpected = new Float64Array(0);
  private wLost = new Float64Array(0);
  /** The sequence numbers whose fate the window settled (its lost are holes among them): what its fraction lost is of. */
  private wLossSpan = new Float64Array(0);
  private wJitter = new Float64Array(0);
  private wPackets = new Float64Array(0);
  private wBytes = new Float64Array(0);
  private wTransit = new Float64Array(0);
  // per slot * RECEIVERS_PER_STREAM
  private rSsrc = new Uint32Array(0);
  private rAtMs = new Float64Array(0);
  private rFraction = new Float64Array(0);
  private rCumLost = new Float64Array(0);
  private rHighest = new Float64Array(0);
  private rJitterMs = new Float64Array(0);
  /** This proxy's egress jitter for the stream when the receiver's report came (NaN: no egress yet). */
  private rEgressJitterMs = new Float64Array(0);
  private rRttMs = new Float64Array(0);
  private rXrLost = new Float64Array(0);
  private rXrDup = new Float64Array(0);
  private rXrJitterMs = new Float64Array(0);
  // the previous report block's highest sequence and cumulative loss, this proxy's egress loss when it came, and the link's loss between the two
  private rPrevHighest = new Float64Array(0);
  private rPrevCumLost = new Float64Array(0);
  private rPrevEgressLost = new Float64Array(0);
  private rLinkLoss = new Float64Array(0);
  // per slot * SRS_PER_STREAM: the SRs this proxy forwarded downstream, by their LSR value
  private srLsr = new Uint32Array(0);
  private srAtMs = new Float64Array(0);
  private srNext = new Uint8Array(0);
  // BYEs from receivers since the last roll: the segment (owner) it came through, the SSRC it names, when
  private readonly byeOwner = new Int32Array(BYES_PER_ROLL);
  private readonly byeSsrc = new Uint32Array(BYES_PER_ROLL);
  private readonly byeAtMs = new Float64Array(BYES_PER_ROLL);
  private byes = 0;

  constructor(
    /** Most slots (streams) at once; 0 turns per-stream stats off. */
    readonly limit: number,
    /** A stream silent this long gives its slot back. */
    readonly idleMs: number,
    /** Most slots one owner (a segment) may take at once. */
    readonly perOwner: number = limit,
  ) {}

  /** An id for a new owner (a segment), and where to tell it that a slot was taken back. */
  register(owner: { forget(ssrc: number): void }): number {
    const id = this.nextOwner++;
    this.owners.set(id, owner);
    return id;
  }

  unregister(id: number): void {
    this.owners.delete(id);
  }

  /** A slot for a new stream, or -1 when `limit` streams are counted already. */
  alloc(ssrc: number, payloadType: number, clock: number, owner: number): number {
    let slot: number;
    if (this.freeHead >= 0) {
      slot = this.freeHead;
      this.freeHead = this.nextFree[slot]!;
    } else {
      if (this.nextUnused >= this.limit) return -1;
      if (this.nextUnused >= this.capacity) this.grow(Math.min(this.limit, Math.max(FIRST_CAPACITY, this.capacity * 2)));
      slot = this.nextUnused++;
    }
    this.used++;
    this.ssrc[slot] = ssrc;
    this.owner[slot] = owner;
    this.payloadType[slot] = payloadType;
    this.clock[slot] = clock;
    for (let d = 0; d < 2; d++) this.started[slot * 2 + d] = 0;
    this.rSsrc.fill(0, slot * RECEIVERS_PER_STREAM, (slot + 1) * RECEIVERS_PER_STREAM);
    this.rAtMs.fill(0, slot * RECEIVERS_PER_STREAM, (slot + 1) * RECEIVERS_PER_STREAM);
    this.srAtMs.fill(0, slot * SRS_PER_STREAM, (slot + 1) * SRS_PER_STREAM);
    this.srNext[slot] = 0;
    return slot;
  }

  /**
   * The stream in `slot` has another clock rate (rate * 4 + ClockFrom): the segment's clockRates
   * changed by a reload. Its jitter, in the old rate's units, starts again, and so does the transit
   * of each window under way; the transit's reference becomes the last packet's under the new rate.
   */
  setClock(slot: number, clock: number): void {
    const was = this.clock[slot]!;
    if (was === clock) return;
    this.clock[slot] = clock;
    const rate = Math.floor(clock / 4);
    if (Math.floor(was / 4) === rate) return; // only where the rate comes from changed (assumed 90000, now configured): the figures hold
    for (let d = 0; d < 2; d++) {
      const i = slot * 2 + d;
      if (this.started[i] === 0) continue;
      this.jitterMs[i] = 0;
      this.transitRef[i] = this.lastMs[i]! - (this.lastTs[i]! * 1000) / rate;
      this.winTransitSum[i] = this.winTransitCount[i] = 0;
    }
  }

  /** The stream in `slot` goes on under another owner (its segment bound afresh by a reload). */
  reown(slot: number, owner: number): void {
    this.owner[slot] = owner;
  }

  free(slot: number): void {
    this.owner[slot] = 0;
    this.nextFree[slot] = this.freeHead;
    this.freeHead = slot;
    this.used--;
  }

  /** Counts the RTP packet `packet` describes, of the stream in `slot`, direction `dir`. */
  record(slot: number, dir: number): void {
    const i = slot * 2 + dir;
    this.recordIn(slot, i);
    // the highest as of the window's last LATE_GRACE_MS: holes above it may be reordering
    const second = Math.min(this.packet[PKT_AT_MS]!, Math.max(this.packet[PKT_WINDOW_MS]!, this.winStartMs[i]!));
    if (second < this.winEndMs[i]! - LATE_GRACE_MS) this.winSettledExpected[i] = this.expectedOf(i);
  }

  private recordIn(slot: number, i: number): void {
    const seq = this.packet[PKT_SEQ]!;
    if (this.started[i] !== 0) {
      const at = this.packet[PKT_AT_MS]!;
      // a packet counts in the second it arrived in, unless a roll ended that second already
      const second = Math.min(at, Math.max(this.packet[PKT_WINDOW_MS]!, this.winStartMs[i]!));
      if (second >= this.winEndMs[i]!) this.endWindow(i, second);
      else if (at < this.winStartMs[i]! - STEP_BACK_MS) this.restartWindows(i, at);
    }
    if (this.started[i] === 0) {
      this.start(i, seq);
      this.count(slot, i, true);
      return;
    }
    const max = this.maxSeq[i]!;
    const udelta = (seq - max) & 0xffff;
    if (udelta === 0) {
      this.duplicates[i]++;
      return;
    }
    if (udelta < MAX_DROPOUT) {
      if (seq < max) this.cycles[i] += SEQ_MOD;
      this.advanceHistory(i, max, udelta);
      this.maxSeq[i] = seq;
      this.maxTs[i] = this.packet[PKT_TS]!;
      this.badSeq[i] = -1;
    } else if (udelta <= SEQ_MOD - MAX_MISORDER) {
      if (udelta > SEQ_MOD / 2 && this.lateByTimestamp(slot, i)) {
        // behind the history, but sent before the highest: late, not a restart
        this.lateBeyondHistory(slot, i);
        return;
      }
      if (seq !== this.badSeq[i]) {
        // a stray packet, or the first of a restarted sender: counted only if the next follows it (A.1)
        this.badSeq[i] = (seq + 1) & 0xffff;
        return;
      }
      // the sender restarted its sequence: carry on from here, counting the jump as neither loss
      // nor packets. The extended number moves the shorter way round, as a wrap would: a sender
      // that went back is not 65536 ahead (a wrap that never happened)
      const oldExt = this.cycles[i]! + max;
      let ext = udelta < SEQ_MOD / 2 ? oldExt + udelta : oldExt - (SEQ_MOD - udelta);
      if (ext < 0) ext += SEQ_MOD;
      this.cycles[i] = ext - seq;
      this.baseExt[i] += ext - oldExt - 1;
      this.history.fill(0, i * HISTORY_WORDS, (i + 1) * HISTORY_WORDS);
      this.maxSeq[i] = seq;
      this.maxTs[i] = this.packet[PKT_TS]!;
      this.badSeq[i] = -1;
      this.historyFloor[i] = this.expectedOf(i);
      // its timestamps start afresh too (RFC 3550 5.1: at random): its first packet counted is no
      // interarrival of the old sender's, whose difference would be read as jitter of up to 2^31
      // timestamp units (hours at 90 kHz), taking hundreds of packets to decay
      this.history[i * HISTORY_WORDS + ((seq & HISTORY_MASK) >>> 5)] |= 1 << (seq & 31);
      this.count(slot, i, false, false);
      return;
    } else {
      // behind the highest by fewer than MAX_MISORDER: late, or a duplicate
      const word = i * HISTORY_WORDS + ((seq & HISTORY_MASK) >>> 5);
      const bit = 1 << (seq & 31);
      if ((this.history[word]! & bit) !== 0) {
        this.duplicates[i]++;
        return;
      }
      this.history[word] |= bit;
      this.reordered[i]++;
      this.count(slot, i, false);
      return;
    }
    this.history[i * HISTORY_WORDS + ((seq & HISTORY_MASK) >>> 5)] |= 1 << (seq & 31);
    this.count(slot, i, false);
  }

  /** Whether the packet's RTP timestamp is that of one sent shortly before the highest (or just after: B-frames). */
  private lateByTimestamp(slot: number, i: number): boolean {
    const rate = Math.floor(this.clock[slot]! / 4);
    const ts = this.packet[PKT_TS]!;
    const maxTs = this.maxTs[i]!;
    return ((maxTs - ts) >>> 0) <= LATE_BEHIND_S * rate || ((ts - maxTs) >>> 0) <= LATE_AHEAD_S * rate;
  }

  /**
   * A late packet behind the history: whether it is a copy of one counted already is not known.
   * It counts as received while the stream is missing packets (expected > packets: it was one of
   * them), else as a duplicate. One of a redundant leg (a 2022-7 second path slower than the
   * history is long) is taken as a copy: most of that path's packets are, and counted as received
   * they would fill the holes both paths left, hiding the loss the ingress is there to show.
   */
  private lateBeyondHistory(slot: number, i: number): void {
    if (this.packet[PKT_COPY] === 0 && this.expectedOf(i) > this.packets[i]!) {
      this.reordered[i]++;
      this.count(slot, i, false);
    } else {
      this.duplicates[i]++;
    }
  }

  private start(i: number, seq: number): void {
    this.started[i] = 1;
    this.packets[i] = this.bytes[i] = this.duplicates[i] = this.reordered[i] = this.jitterMs[i] = 0;
    this.baseExt[i] = seq;
    this.cycles[i] = 0;
    this.maxSeq[i] = seq;
    this.maxTs[i] = this.packet[PKT_TS]!;
    this.badSeq[i] = -1;
    this.history.fill(0, i * HISTORY_WORDS, (i + 1) * HISTORY_WORDS);
    this.history[i * HISTORY_WORDS + ((seq & HISTORY_MASK) >>> 5)] = 1 << (seq & 31);
    const atMs = this.packet[PKT_AT_MS]!;
    this.firstMs[i] = atMs;
    this.historyFloor[i] = 1;
    this.lostCounted[i] = this.winSettledExpected[i] = this.lossFrom[i] = 0;
    // the first packet, counted next, is in the first window: from when it arrived, as the ingress's
    this.restartWindows(i, Math.min(atMs, this.packet[PKT_WINDOW_MS]!), 0);
  }

  /** Counts a first window from `atMs` on (the stream's start, or a step back of the wall clock), with no whole one before it. */
  private restartWindows(i: number, atMs: number, expectedBefore = this.expectedOf(i)): void {
    this.winStartMs[i] = atMs;
    const end = windowEnd(atMs);
    this.winEndMs[i] = end - atMs < MIN_WINDOW_MS ? end + WINDOW_MS : end;
    this.winExpected[i] = expectedBefore;
    this.winPackets[i] = this.packets[i]!;
    this.winBytes[i] = this.bytes[i]!;
    this.winTransitSum[i] = this.winTransitCount[i] = 0;
    this.wMs[i * 2] = this.wMs[i * 2 + 1] = 0;
  }

  /**
   * Ends the window being counted, at its end (`nowMs` is at or past it). Seconds after it that
   * passed with no packet make the last whole window an empty one: the stream stopped, or paused.
   */
  private endWindow(i: number, nowMs: number): void {
    const end = this.winEndMs[i]!;
    const expected = this.expectedOf(i);
    const next = windowEnd(nowMs) - WINDOW_MS; // the start of the window `nowMs` is in
    const w = i * 2;
    if (next <= end + WINDOW_MS) {
      this.shiftWindows(w);
      this.closeCounted(i, w, expected);
      // a second with no packet right after it (a pause the roll's grace let a packet end): the
      // counted one stays in the report, as the one before the empty last
      if (next > end) {
        this.shiftWindows(w);
        this.emptyWindow(i, w, next);
      }
    } else {
      // seconds passed with no packet: the last whole one and the one before it are empty, and the
      // counted one's holes are judged with the next window that holds packets
      this.emptyWindow(i, w + 1, next - WINDOW_MS);
      this.emptyWindow(i, w, next);
    }
    this.winStartMs[i] = next;
    this.winEndMs[i] = next + WINDOW_MS;
    this.winExpected[i] = expected;
    this.winSettledExpected[i] = expected;
    this.winPackets[i] = this.packets[i]!;
    this.winBytes[i] = this.bytes[i]!;
    this.winTransitSum[i] = this.winTransitCount[i] = 0;
  }

  /** The last whole window becomes the one before: a report holds both, so that the control plane finds a second that two proxies' reports, taken at different moments, both hold. */
  private shiftWindows(w: number): void {
    this.wMs[w + 1] = this.wMs[w]!;
    this.wEndMs[w + 1] = this.wEndMs[w]!;
    this.wExpected[w + 1] = this.wExpected[w]!;
    this.wLost[w + 1] = this.wLost[w]!;
    this.wLossSpan[w + 1] = this.wLossSpan[w]!;
    this.wJitter[w + 1] = this.wJitter[w]!;
    this.wPackets[w + 1] = this.wPackets[w]!;
    this.wBytes[w + 1] = this.wBytes[w]!;
    this.wTransit[w + 1] = this.wTransit[w]!;
  }

  /** Window slot `k` holds a second ending at `endMs` in which no packet came. */
  private emptyWindow(i: number, k: number, endMs: number): void {
    this.wMs[k] = WINDOW_MS;
    this.wEndMs[k] = endMs;
    this.wExpected[k] = this.wLost[k] = this.wLossSpan[k] = this.wPackets[k] = this.wBytes[k] = 0;
    this.wTransit[k] = NaN;
    this.wJitter[k] = this.jitterMs[i]!;
  }

  /** Window slot `w` holds the window being counted, closed with `expected` as of its end. */
  private closeCounted(i: number, w: number, expected: number): void {
    const end = this.winEndMs[i]!;
    this.wJitter[w] = this.jitterMs[i]!;
    this.wMs[w] = end - this.winStartMs[i]!;
    this.wEndMs[w] = end;
    this.wExpected[w] = expected - this.winExpected[i]!;
    this.wPackets[w] = this.packets[i]! - this.winPackets[i]!;
    // lost: the holes that settled since the last window (A.3's expected - received, but for the
    // holes too recent to tell from reordering), never below zero, and a late packet's making up
    // for a hole counted already is not counted twice: the windows' losses add up to the stream's
    const settled = this.settledLost(i, expected);
    this.wLost[w] = Math.max(0, settled - this.lostCounted[i]!);
    if (settled > this.lostCounted[i]!) this.lostCounted[i] = settled;
    // its fraction lost is of the same sequence numbers its lost were holes among: from the last
    // window's settled mark to its own, not its expected (holes carried in from the last window's
    // last LATE_GRACE_MS are in that window's expected: a burst lost across the edge read 69% of a
    // second on a link that lost 5%, and a hole before a sender's pause over 100%)
    const mark = expected - this.unsettled(i, expected);
    this.wLossSpan[w] = mark - this.lossFrom[i]!;
    this.lossFrom[i] = mark;
    this.wBytes[w] = this.bytes[i]! - this.winBytes[i]!;
    this.wTransit[w] = this.winTransitCount[i]! > 0 ? this.transitRef[i]! + this.winTransitSum[i]! / this.winTransitCount[i]! : NaN;
  }

  /**
   * A.3's lost (expected - received) but for the holes above the window's settled mark
   * (winSettledExpected), which are not counted yet: at most the history's 1024 sequence numbers
   * below the highest, and none from before a restarted sender's first.
   */
  private settledLost(i: number, expected: number): number {
    const lost = expected - this.packets[i]!;
    const k = this.unsettled(i, expected);
    if (k === 0) return lost;
    const base = i * HISTORY_WORDS;
    let seen = 0;
    let s = (this.maxSeq[i]! - k + 1) & HISTORY_MASK;
    for (let n = k; n > 0; ) {
      const bit = s & 31;
      const take = Math.min(32 - bit, n);
      const mask = take === 32 ? -1 : ((1 << take) - 1) << bit;
      seen += popcount(this.history[base + (s >>> 5)]! & mask);
      n -= take;
      s = (s + take) & HISTORY_MASK;
    }
    return lost - (k - seen);
  }

  /** How many of the highest sequence numbers are above the window's settled mark: their holes are not counted yet. */
  private unsettled(i: number, expected: number): number {
    return Math.max(0, Math.min(expected - Math.max(this.winSettledExpected[i]!, this.historyFloor[i]! - 1), HISTORY_MASK + 1));
  }

  /**
   * Clears the history bits of the sequence numbers skipped between `max` and `max + udelta`, a
   * word (32 of them) at a time: bit by bit, a sender stepping its sequence by 1023 cost 1023
   * writes a packet, 25 times a packet in order.
   */
  private advanceHistory(i: number, max: number, udelta: number): void {
    const base = i * HISTORY_WORDS;
    if (udelta > HISTORY_MASK) {
      this.history.fill(0, base, base + HISTORY_WORDS);
      return;
    }
    let s = (max + 1) & HISTORY_MASK;
    for (let n = udelta; n > 0; ) {
      const bit = s & 31;
      const take = Math.min(32 - bit, n);
      const mask = take === 32 ? -1 : ((1 << take) - 1) << bit;
      this.history[base + (s >>> 5)] &= ~mask;
      n -= take;
      s = (s + take) & HISTORY_MASK;
    }
  }

  /**
   * A packet that counts: totals, A.8 jitter (in ms: the same recurrence scaled by 1000 / clock rate;
   * `interarrival` false: not from the packet before it, the first of a stream or of a restarted sender), transit.
   */
  private count(slot: number, i: number, first: boolean, interarrival = !first): void {
    const p = this.packet;
    const ts = p[PKT_TS]!;
    const atMs = p[PKT_AT_MS]!;
    this.packets[i]++;
    this.bytes[i] += p[PKT_BYTES]!;
    const rate = Math.floor(this.clock[slot]! / 4);
    if (interarrival) {
      const d = atMs - this.lastMs[i]! - (((ts - this.lastTs[i]!) | 0) * 1000) / rate;
      this.jitterMs[i] += (Math.abs(d) - this.jitterMs[i]!) / 16;
    }
    this.lastMs[i] = atMs;
    this.lastTs[i] = ts;
    // transits are summed as differences from the stream's first (near 1e12 ms each, 300 a second
    // summed would keep 0.06 ms of precision), within half a wrap of it: the 32-bit timestamp
    // wraps every 13.3 h at 90 kHz, and a window across the wrap averaged transits 2^32 / rate
    // apart. Two points whose first packets fell either side of a wrap differ by whole wraps (the
    // control plane folds the difference)
    const transit = atMs - (ts * 1000) / rate;
    if (first) this.transitRef[i] = transit;
    const fromFirst = transit - this.transitRef[i]!;
    const wrapMs = (TS_MOD * 1000) / rate;
    this.winTransitSum[i] += fromFirst - Math.round(fromFirst / wrapMs) * wrapMs;
    this.winTransitCount[i]++;
  }

  /**
   * Ends the windows that ended ROLL_GRACE_MS before `nowMs` (the wall clock: called about once a
   * second, and before a snapshot) and gives idle streams' slots back. A stream's packets end its
   * windows as they come.
   */
  roll(nowMs: number): void {
    const settledMs = nowMs - ROLL_GRACE_MS; // what a held worker may not have read yet is newer
    for (let slot = 0; slot < this.nextUnused; slot++) {
      const owner = this.owner[slot]!;
      if (owner === 0) continue;
      let last = 0;
      for (let d = 0; d < 2; d++) {
        const i = slot * 2 + d;
        if (this.started[i] === 0) continue;
        last = Math.max(last, this.lastMs[i]!);
        if (settledMs >= this.winEndMs[i]!) this.endWindow(i, settledMs);
        else if (nowMs < this.winStartMs[i]! - STEP_BACK_MS) this.restartWindows(i, nowMs);
      }
      for (let r = slot * RECEIVERS_PER_STREAM; r < (slot + 1) * RECEIVERS_PER_STREAM; r++) {
        const at = this.rAtMs[r]!;
        if (at === 0) continue;
        if (nowMs - at > RECEIVER_TIMEOUT_MS || this.saidBye(owner, this.rSsrc[r]!, at)) this.rAtMs[r] = 0; // it left
        else last = Math.max(last, at);
      }
      if (last > 0 && nowMs - last > this.idleMs) {
        this.owners.get(owner)?.forget(this.ssrc[slot]!);
        this.free(slot);
      }
    }
    this.byes = 0;
  }

  /** A BYE naming `reporter`, come through the segment `owner` (RFC 3550 6.6): its rows go at the next roll (before any snapshot). */
  noteBye(owner: number, reporter: number, atMs: number): void {
    if (this.byes >= BYES_PER_ROLL) return; // a flood of them: the rest time out
    this.byeOwner[this.byes] = owner;
    this.byeSsrc[this.byes] = reporter;
    this.byeAtMs[this.byes] = atMs;
    this.byes++;
  }

  /** Whether `reporter` said BYE through `owner` since its report at `atMs` (a report after its BYE: it came back). */
  private saidBye(owner: number, reporter: number, atMs: number): boolean {
    for (let k = 0; k < this.byes; k++) {
      if (this.byeSsrc[k] === reporter && this.byeOwner[k] === owner && this.byeAtMs[k]! >= atMs) return true;
    }
    return false;
  }

  private expectedOf(i: number): number {
    return this.cycles[i]! + this.maxSeq[i]! - this.baseExt[i]! + 1;
  }

  /** Remembers an SR forwarded downstream: a receiver's LSR will name it (RFC 3550 6.4.1). */
  noteSenderReport(slot: number, ntpSeconds: number, ntpFraction: number, atMs: number): void {
    const k = slot * SRS_PER_STREAM + this.srNext[slot]!;
    this.srLsr[k] = (((ntpSeconds & 0xffff) << 16) | (ntpFraction >>> 16)) >>> 0;
    this.srAtMs[k] = atMs;
    this.srNext[slot] = (this.srNext[slot]! + 1) % SRS_PER_STREAM;
  }

  /** The row for `reporter` among the stream's receivers: its own, a free one, or the one heard from longest ago. */
  private receiverRow(slot: number, reporter: number): number {
    const first = slot * RECEIVERS_PER_STREAM;
    let oldest = first;
    for (let r = first; r < first + RECEIVERS_PER_STREAM; r++) {
      if (this.rAtMs[r]! > 0 && this.rSsrc[r] === reporter) return r;
      if (this.rAtMs[r]! < this.rAtMs[oldest]!) oldest = r;
    }
    this.rSsrc[oldest] = reporter;
    this.rXrLost[oldest] = this.rXrDup[oldest] = this.rXrJitterMs[oldest] = NaN;
    this.rRttMs[oldest] = NaN;
    this.rPrevHighest[oldest] = this.rLinkLoss[oldest] = NaN;
    return oldest;
  }

  /** A report block about this stream from receiver `reporter` (RFC 3550 6.4.1), read at `atMs`. */
  noteReceiverReport(slot: number, reporter: number, fraction: number, cumulativeLost: number, highest: number, jitter: number, lsr: number, dlsr: number, atMs: number): void {
    const r = this.receiverRow(slot, reporter);
    this.noteLinkLoss(slot, r, cumulativeLost, highest);
    this.rAtMs[r] = atMs;
    this.rFraction[r] = fraction / 256;
    this.rCumLost[r] = cumulativeLost;
    this.rHighest[r] = highest;
    this.rJitterMs[r] = (jitter * 1000) / Math.floor(this.clock[slot]! / 4);
    // the receiver's jitter is compared with ours as of its report, not as of a later read
    this.rEgressJitterMs[r] = this.started[slot * 2 + EGRESS] === 0 ? NaN : this.jitterMs[slot * 2 + EGRESS]!;
    if (lsr !== 0) {
      for (let k = slot * SRS_PER_STREAM; k < (slot + 1) * SRS_PER_STREAM; k++) {
        if (this.srAtMs[k]! > 0 && this.srLsr[k] === lsr) {
          this.rRttMs[r] = Math.max(0, atMs - this.srAtMs[k]! - dlsr / 65.536);
          break;
        }
      }
    }
  }

  /**
   * The loss between this proxy and the receiver over the receiver's last report interval: what it
   * says it lost since its previous report, less what this proxy's egress was already missing over
   * the same span (read when each report came). Its own fraction lost covers its whole interval,
   * seconds long, and mixes in losses upstream: neither compares with this proxy's last window.
   * Both sides are counted alike, as RFC 3550 A.3 counts the receiver's: expected - received, the
   * duplicates received (here, sent) among the received, so below 0 where they outnumber the
   * losses. The egress's own `lost` leaves duplicates out: less it, duplicates upstream hid as much
   * loss on the last link.
   */
  private noteLinkLoss(slot: number, r: number, cumulativeLost: number, highest: number): void {
    const e = slot * 2 + EGRESS;
    const egressLost = this.started[e] === 0 ? NaN : this.expectedOf(e) - this.packets[e]! - this.duplicates[e]!;
    const expected = highest - this.rPrevHighest[r]!;
    if (expected > 0 && !Number.isNaN(egressLost) && !Number.isNaN(this.rPrevEgressLost[r]!)) {
      const lost = cumulativeLost - this.rPrevCumLost[r]! - (egressLost - this.rPrevEgressLost[r]!);
      this.rLinkLoss[r] = Math.min(1, Math.max(0, lost / expected));
    } else if (expected !== 0) {
      this.rLinkLoss[r] = NaN; // a first report, a receiver that went back, or no egress to compare with
    }
    this.rPrevHighest[r] = highest;
    this.rPrevCumLost[r] = cumulativeLost;
    this.rPrevEgressLost[r] = egressLost;
  }

  /** An XR Statistics Summary block (RFC 3611 4.6) about this stream; NaN for what the block does not carry. */
  noteReceiverSummary(slot: number, reporter: number, lost: number, duplicates: number, meanJitter: number, atMs: number): void {
    const r = this.receiverRow(slot, reporter);
    this.rAtMs[r] = atMs;
    this.rXrLost[r] = lost;
    this.rXrDup[r] = duplicates;
    this.rXrJitterMs[r] = Number.isNaN(meanJitter) ? NaN : (meanJitter * 1000) / Math.floor(this.clock[slot]! / 4);
  }

  /** A plain-object copy of one stream's counters (for /stats, the control plane and /metrics). */
  snapshot(slot: number): StreamStats {
    const clock = this.clock[slot]!;
    const receivers: ReceiverReport[] = [];
    for (let r = slot * RECEIVERS_PER_STREAM; r < (slot + 1) * RECEIVERS_PER_STREAM; r++) {
      if (this.rAtMs[r] === 0) continue;
      const xr = Number.isNaN(this.rXrLost[r]!) && Number.isNaN(this.rXrDup[r]!) && Number.isNaN(this.rXrJitterMs[r]!)
        ? null
        : {
          lost: Number.isNaN(this.rXrLost[r]!) ? null : this.rXrLost[r]!,
          duplicates: Number.isNaN(this.rXrDup[r]!) ? null : this.rXrDup[r]!,
          jitterMeanMs: Number.isNaN(this.rXrJitterMs[r]!) ? null : us(this.rXrJitterMs[r]!),
        };
      receivers.push({
        reporterSsrc: this.rSsrc[r]!,
        fractionLost: this.rFraction[r]!,
        cumulativeLost: this.rCumLost[r]!,
        highestSeq: this.rHighest[r]!,
        jitterMs: us(this.rJitterMs[r]!),
        egressJitterMs: Number.isNaN(this.rEgressJitterMs[r]!) ? null : us(this.rEgressJitterMs[r]!),
        rttMs: Number.isNaN(this.rRttMs[r]!) ? null : us(this.rRttMs[r]!),
        linkFractionLost: Number.isNaN(this.rLinkLoss[r]!) ? null : this.rLinkLoss[r]!,
        xr,
        atMs: us(this.rAtMs[r]!),
      });
    }
    return {
      ssrc: this.ssrc[slot]!,
      payloadType: this.payloadType[slot]!,
      clockRate: Math.floor(clock / 4),
      clockRateFrom: CLOCK_FROM_NAMES[clock % 4]!,
      ingress: this.direction(slot * 2 + INGRESS),
      egress: this.direction(slot * 2 + EGRESS),
      receivers,
    };
  }

  private direction(i: number): StreamDirection | null {
    if (this.started[i] === 0) return null;
    const expected = this.expectedOf(i);
    return {
      packets: this.packets[i]!,
      bytes: this.bytes[i]!,
      expected,
      lost: Math.max(0, expected - this.packets[i]!),
      duplicates: this.duplicates[i]!,
      reordered: this.reordered[i]!,
      jitterMs: us(this.jitterMs[i]!),
      highestSeq: this.cycles[i]! + this.maxSeq[i]!,
      firstMs: us(this.firstMs[i]!),
      lastMs: us(this.lastMs[i]!),
      window: this.windowAt(i * 2),
      previousWindow: this.windowAt(i * 2 + 1),
    };
  }

  private windowAt(k: number): StreamWindow | null {
    const ms = this.wMs[k]!;
    if (ms <= 0) return null;
    return {
      ms: us(ms),
      endMs: us(this.wEndMs[k]!),
      expected: this.wExpected[k]!,
      lost: this.wLost[k]!,
      fractionLost: this.wLossSpan[k]! > 0 ? Math.min(1, this.wLost[k]! / this.wLossSpan[k]!) : 0,
      packetRate: Math.round((this.wPackets[k]! * 1000 * 10) / ms) / 10,
      bitrateBps: Math.round((this.wBytes[k]! * 8000) / ms),
      transitMs: Number.isNaN(this.wTransit[k]!) ? null : us(this.wTransit[k]!),
      jitterMs: us(this.wJitter[k]!),
    };
  }

  private grow(size: number): void {
    const s = size;
    const d = size * 2;
    const r = size * RECEIVERS_PER_STREAM;
    const q = size * SRS_PER_STREAM;
    this.ssrc = grown(this.ssrc, s);
    this.owner = grown(this.owner, s);
    this.nextFree = grown(this.nextFree, s);
    this.payloadType = grown(this.payloadType, s);
    this.clock = grown(this.clock, s);
    this.srNext = grown(this.srNext, s);
    this.started = grown(this.started, d);
    this.packets = grown(this.packets, d);
    this.bytes = grown(this.bytes, d);
    this.baseExt = grown(this.baseExt, d);
    this.cycles = grown(this.cycles, d);
    this.maxSeq = grown(this.maxSeq, d);
    this.badSeq = grown(this.badSeq, d);
    this.duplicates = grown(this.duplicates, d);
    this.reordered = grown(this.reordered, d);
    this.jitterMs = grown(this.jitterMs, d);
    this.lastMs = grown(this.lastMs, d);
    this.firstMs = grown(this.firstMs, d);
    this.lastTs = grown(this.lastTs, d);
    this.maxTs = grown(this.maxTs, d);
    this.transitRef = grown(this.transitRef, d);
    this.history = grown(this.history, d * HISTORY_WORDS);
    this.winStartMs = grown(this.winStartMs, d);
    this.winEndMs = grown(this.winEndMs, d);
    this.winExpected = grown(this.winExpected, d);
    this.winSettledExpected = grown(this.winSettledExpected, d);
    this.historyFloor = grown(this.historyFloor, d);
    this.lostCounted = grown(this.lostCounted, d);
    this.lossFrom = grown(this.lossFrom, d);
    this.winPackets = grown(this.winPackets, d);
    this.winBytes = grown(this.winBytes, d);
    this.winTransitSum = grown(this.winTransitSum, d);
    this.winTransitCount = grown(this.winTransitCount, d);
    this.wMs = grown(this.wMs, d * 2);
    this.wEndMs = grown(this.wEndMs, d * 2);
    this.wExpected = grown(this.wExpected, d * 2);
    this.wLossSpan = grown(this.wLossSpan, d * 2);
    this.wLost = grown(this.wLost, d * 2);
    this.wJitter = grown(this.wJitter, d * 2);
    this.wPackets = grown(this.wPackets, d * 2);
    this.wBytes = grown(this.wBytes, d * 2);
    this.wTransit = grown(this.wTransit, d * 2);
    this.rSsrc = grown(this.rSsrc, r);
    this.rAtMs = grown(this.rAtMs, r);
    this.rFraction = grown(this.rFraction, r);
    this.rCumLost = grown(this.rCumLost, r);
    this.rHighest = grown(this.rHighest, r);
    this.rJitterMs = grown(this.rJitterMs, r);
    this.rEgressJitterMs = grown(this.rEgressJitterMs, r);
    this.rRttMs = grown(this.rRttMs, r);
    this.rXrLost = grown(this.rXrLost, r);
    this.rXrDup = grown(this.rXrDup, r);
    this.rXrJitterMs = grown(this.rXrJitterMs, r);
    this.rPrevHighest = grown(this.rPrevHighest, r);
    this.rPrevCumLost = grown(this.rPrevCumLost, r);
    this.rPrevEgressLost = grown(this.rPrevEgressLost, r);
    this.rLinkLoss = grown(this.rLinkLoss, r);
    this.srLsr = grown(this.srLsr, q);
    this.srAtMs = grown(this.srAtMs, q);
    this.capacity = size;
  }
}
