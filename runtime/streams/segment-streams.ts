// One segment's streams: finds (or makes) the table slot of a packet's SSRC and counts it, and
// reads the RTCP that passes: SRs forwarded downstream (remembered for round trips) and what
// receivers report upstream (RR and SR report blocks, XR Statistics Summary, BYE).
import { clockRateOf } from "./clock-rates.js";
import { EGRESS, INGRESS, PKT_AT_MS, PKT_BYTES, PKT_COPY, PKT_SEQ, PKT_TS, PKT_WINDOW_MS, type StreamTable } from "./stream-table.js";
import type { StreamOverflow, StreamStats } from "./types.js";

const RTP_HEADER = 12;
const RTCP_SR = 200;
const RTCP_RR = 201;
const RTCP_BYE = 203;
const RTCP_XR = 207;
/** RFC 3611 4.6: Statistics Summary Report Block, and its flags (lost, duplicates, jitter present). */
const XR_STATISTICS_SUMMARY = 6;
const XR_SUMMARY_WORDS = 9;
const XR_FLAG_LOST = 0x80;
const XR_FLAG_DUP = 0x40;
const XR_FLAG_JITTER = 0x20;

function u32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

/**
 * Packets a compound read may hold. A compound holds a few (RFC 3550 6.1: a report, SDES, maybe a
 * BYE or feedback); a datagram of 4-byte packets holds 16,000, each a step of each read below
 * (hundreds of microseconds a datagram, from anyone who may send feedback).
 */
const MAX_COMPOUND_PACKETS = 64;

/**
 * Whether buf[at, at + len) is a whole compound RTCP packet in the clear: each packet version 2
 * and the lengths adding up exactly, in at most MAX_COMPOUND_PACKETS packets. SRTCP (encrypted,
 * with its index and tag after the last packet) is not, so its ciphertext is never read as reports.
 */
function plainCompound(buf: Uint8Array, at: number, len: number): boolean {
  const end = at + len;
  let p = at;
  for (let n = 0; p + 4 <= end; n++) {
    if (buf[p]! >> 6 !== 2 || n === MAX_COMPOUND_PACKETS) return false;
    p += ((buf[p + 2]! << 8) | buf[p + 3]!) * 4 + 4;
  }
  return p === end && len >= 8;
}

export class SegmentStreams {
  private readonly slots = new Map<number, number>();
  private lastSsrc = -1;
  private lastSlot = -1;
  private readonly id: number;
  /** Packets of streams beyond the table's limit or the segment's share of it: counted, never per SSRC. */
  private overflowIn = 0;
  private overflowOut = 0;
  /** The segment's clockRates by payload type (null: none configured). */
  private clockRates: ReadonlyMap<number, number> | null;
  /** The segment's clockRates as its config gives them. */
  private configuredRates: Readonly<Record<string, number>> | undefined;

  constructor(private readonly table: StreamTable, clockRates: Readonly<Record<string, number>> | undefined) {
    this.id = table.register(this);
    this.configuredRates = clockRates;
    this.clockRates = SegmentStreams.rates(clockRates);
  }

  /**
   * The segment's clockRates, changed by a reload: new streams take them, and so do the streams
   * counted already whose payload type's rate they change (their jitter starts again: it was in
   * the old rate's units).
   */
  setClockRates(config: Readonly<Record<string, number>> | undefined): void {
    this.configuredRates = config;
    this.clockRates = SegmentStreams.rates(config);
    for (const slot of this.slots.values()) this.table.setClock(slot, clockRateOf(this.table.payloadType[slot]!, this.clockRates));
  }

  static rates(config: Readonly<Record<string, number>> | undefined): ReadonlyMap<number, number> | null {
    const entries = Object.entries(config ?? {});
    return entries.length === 0 ? null : new Map(entries.map(([pt, rate]) => [Number(pt), rate]));
  }

  /**
   * When the packets given next arrived or left (wall clock, ms: the kernel's receive time where
   * the I/O path has it), and for one leaving, when it arrived (`time[1]`). Set here, not passed
   * per packet: a time crossing a call is boxed by V8.
   */
  readonly time = new Float64Array(2);

  /** An RTP packet from the sender, admitted, at `time[0]`. */
  ingress(buf: Uint8Array, at: number, len: number): void {
    this.time[1] = this.time[0]!;
    this.rtp(INGRESS, buf, at, len, 0);
  }

  /** An RTP packet of a redundant leg (a 2022-7 second path), at `time[0]`: the media's stream again, counted in its ingress. */
  ingressCopy(buf: Uint8Array, at: number, len: number): void {
    this.time[1] = this.time[0]!;
    this.rtp(INGRESS, buf, at, len, 1);
  }

  /**
   * An RTP packet leaving the chain toward the destinations (once, whatever the fan-out), at
   * `time[0]`, having arrived at `time[1]`: it counts in the second it arrived in, so that a
   * proxy's ingress and egress windows hold the same packets and the difference of their mean
   * transits is the time the packets spent in it, not also the transits of those in it at the
   * second's edges (a stall there read as a negative dwell). A packet a filter made arrived when
   * the filter sent it.
   */
  egress(buf: Uint8Array, at: number, len: number): void {
    this.rtp(EGRESS, buf, at, len, 0);
  }

  private rtp(dir: number, buf: Uint8Array, at: number, len: number, copy: number): void {
    if (len < RTP_HEADER || buf[at]! >> 6 !== 2) return; // not RTP: the chain's validate counts those
    const ssrc = u32(buf, at + 8);
    let slot = ssrc === this.lastSsrc ? this.lastSlot : this.slots.get(ssrc) ?? -1;
    if (slot < 0) {
      const pt = buf[at + 1]! & 0x7f;
      // a segment past its share counts its new streams together, leaving the other segments theirs
      slot = this.slots.size < this.table.perOwner ? this.table.alloc(ssrc, pt, clockRateOf(pt, this.clockRates), this.id) : -1;
      if (slot < 0) {
        if (dir === INGRESS) this.overflowIn++;
        else this.overflowOut++;
        return;
      }
      this.slots.set(ssrc, slot);
    }
    this.lastSsrc = ssrc;
    this.lastSlot = slot;
    const p = this.table.packet;
    p[PKT_SEQ] = (buf[at + 2]! << 8) | buf[at + 3]!;
    p[PKT_TS] = u32(buf, at + 4);
    p[PKT_BYTES] = len;
    p[PKT_AT_MS] = this.time[0]!;
    p[PKT_WINDOW_MS] = this.time[1]!;
    p[PKT_COPY] = copy;
    this.table.record(slot, dir);
  }

  /** RTCP going downstream: its SRs are what receivers' LSR fields will name. */
  downstreamRtcp(buf: Uint8Array, at: number, len: number, atMs: number): void {
    if (!plainCompound(buf, at, len)) return;
    const end = at + len;
    for (let p = at; p < end; p += ((buf[p + 2]! << 8) | buf[p + 3]!) * 4 + 4) {
      // its sender info within its own length, not read from the packet after it
      if (buf[p + 1] !== RTCP_SR || (((buf[p + 2]! << 8) | buf[p + 3]!) + 1) * 4 < 28) continue;
      const slot = this.slots.get(u32(buf, p + 4));
      if (slot !== undefined) this.table.noteSenderReport(slot, u32(buf, p + 8), u32(buf, p + 12), atMs);
    }
  }

  /** RTCP going upstream from a receiver: report blocks and XR summaries about this segment's streams. */
  upstreamRtcp(buf: Uint8Array, at: number, len: number, atMs: number): void {
    if (!plainCompound(buf, at, len)) return;
    const end = at + len;
    for (let p = at; p < end; ) {
      const next = p + ((buf[p + 2]! << 8) | buf[p + 3]!) * 4 + 4;
      const type = buf[p + 1]!;
      if (type === RTCP_SR || type === RTCP_RR) {
        const reporter = u32(buf, p + 4);
        const count = buf[p]! & 0x1f;
        let b = p + (type === RTCP_SR ? 28 : 8);
        for (let k = 0; k < count && b + 24 <= next; k++, b += 24) this.reportBlock(buf, b, reporter, atMs);
      } else if (type === RTCP_XR && next - p >= 8) {
        this.extendedReport(buf, p + 8, next, u32(buf, p + 4), atMs);
      } else if (type === RTCP_BYE) {
        // a receiver leaving (RFC 3550 6.6): the SSRCs it names are no longer this segment's receivers
        const count = buf[p]! & 0x1f;
        for (let k = 0, s = p + 4; k < count && s + 4 <= next; k++, s += 4) this.table.noteBye(this.id, u32(buf, s), atMs);
      }
      p = next;
    }
  }

  private reportBlock(buf: Uint8Array, b: number, reporter: number, atMs: number): void {
    const slot = this.slots.get(u32(buf, b));
    if (slot === undefined) return;
    const lostField = (buf[b + 5]! << 16) | (buf[b + 6]! << 8) | buf[b + 7]!;
    const cumulativeLost = lostField & 0x800000 ? lostField - 0x1000000 : lostField; // 24-bit signed
    this.table.noteReceiverReport(slot, reporter, buf[b + 4]!, cumulativeLost, u32(buf, b + 8), u32(buf, b + 12), u32(buf, b + 16), u32(buf, b + 20), atMs);
  }

  private extendedReport(buf: Uint8Array, p: number, end: number, reporter: number, atMs: number): void {
    while (p + 4 <= end) {
      const words = (buf[p + 2]! << 8) | buf[p + 3]!;
      const next = p + 4 + words * 4;
      if (next > end) return;
      if (buf[p] === XR_STATISTICS_SUMMARY && words === XR_SUMMARY_WORDS) {
        const slot = this.slots.get(u32(buf, p + 4));
        const flags = buf[p + 1]!;
        if (slot !== undefined) {
          this.table.noteReceiverSummary(slot, reporter,
            flags & XR_FLAG_LOST ? u32(buf, p + 12) : NaN,
            flags & XR_FLAG_DUP ? u32(buf, p + 16) : NaN,
            flags & XR_FLAG_JITTER ? u32(buf, p + 28) : NaN, atMs);
        }
      }
      p = next;
    }
  }

  /** The table took back an idle stream's slot. */
  forget(ssrc: number): void {
    this.slots.delete(ssrc);
    if (ssrc === this.lastSsrc) this.lastSsrc = this.lastSlot = -1;
  }

  /**
   * The segment was bound afresh (a reload changed its sockets): `next`, its successor's, goes on
   * with these streams, their counters and state (sequence numbers, jitter, windows, receivers),
   * so that msm_stream_* does not go back and the packets lost in between count as lost.
   */
  handOverTo(next: SegmentStreams): void {
    for (const [ssrc, slot] of this.slots) {
      if (next.slots.has(ssrc)) {
        this.table.free(slot); // counted there already: the successor's stays
        continue;
      }
      this.table.reown(slot, next.id);
      next.slots.set(ssrc, slot);
    }
    next.overflowIn += this.overflowIn;
    next.overflowOut += this.overflowOut;
    next.setClockRates(next.configuredRates); // the successor's clockRates, for the streams it took
    this.slots.clear();
    this.close();
  }

  /** The segment is gone: its slots go back to the table. */
  close(): void {
    for (const slot of this.slots.values()) this.table.free(slot);
    this.slots.clear();
    this.lastSsrc = this.lastSlot = -1;
    this.table.unregister(this.id);
  }

  snapshot(): { streams: StreamStats[]; streamsOverflow: StreamOverflow | null } {
    const streams = [...this.slots.values()].map((slot) => this.table.snapshot(slot)).sort((a, b) => a.ssrc - b.ssrc);
    const overflow = this.overflowIn + this.overflowOut > 0 ? { ingressPackets: this.overflowIn, egressPackets: this.overflowOut } : null;
    return { streams, streamsOverflow: overflow };
  }
}
