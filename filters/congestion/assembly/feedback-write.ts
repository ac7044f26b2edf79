// The receiving proxy's side: notes when each stamped packet arrived and writes transport-wide
// feedback (RTCP RTPFB FMT 15, draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1)
// into the output area, as a compound that starts with an empty receiver report (RFC 3550 6.1:
// any RTCP parser along the way accepts it).
import { Output, PacketFlag, Dest, storeBe16, storeBe32 } from "../../../sdk/assembly";
import { Records } from "./records";

/** Arrivals remembered, by sequence number modulo this (a power of two). */
export const RING = 2048;
/** Per packet: arrival (i64), sequence tag (ext + 1, 0: empty; i64). */
export const RECORD = 16;
/** Largest feedback compound written (fits any path's MTU). */
const MAX_FEEDBACK_BYTES = 1200;
const RR_BYTES = 8;
const HEADER_BYTES = 20; // RTCP header, sender and media SSRC, base, count, reference time, count
/** Statuses in one feedback (fewer than a run-length chunk's 13 bits can say, and than the ring). */
const MAX_STATUSES = 2048;
/** A jump forward this far starts the numbering afresh rather than report everything between as lost. */
const JUMP: i64 = 1024;
/**
 * Packets in a row behind what was reported, each one on from the last, that mean the sending
 * proxy restarted without its state and numbers anew (from 0, or from an older checkpoint): the
 * numbering starts afresh from the first of them. Fewer is reordering: too late, dropped.
 */
export const RESTART_RUN = 8;
// One feedback's statuses and staged deltas while it is written (shared: calls never overlap).
const symbols = new StaticArray<u8>(MAX_STATUSES);
const deltaStage = new StaticArray<u8>(MAX_FEEDBACK_BYTES);

export class ArrivalLog {
  /** Extended sequence numbers: the highest seen and the first not yet reported (-1: none yet). */
  highest: i64 = -1;
  nextToReport: i64 = -1;
  feedbackCount: i32 = 0;
  /** The run of packets behind nextToReport, each one on from the last: its length, last number, arrivals. */
  private lateRun: i32 = 0;
  private lateLast: i64 = 0;
  private readonly lateArrivals: StaticArray<i64> = new StaticArray<i64>(RESTART_RUN);

  constructor(private readonly records: Records) {}

  free(): void {
    this.records.free();
  }

  /** `seq` extended against the highest seen: forward or back by the shortest way. */
  @inline private extend(seq: u16): i64 {
    return this.highest < 0 ? <i64>seq : this.highest + <i64>(<i16>(seq - <u16>this.highest));
  }

  /**
   * Whether noting `seq` starts the numbering afresh: a jump forward of more than one feedback
   * can cover (the numbers between were never sent to us), far back (the sending proxy
   * restarted without its state), or the RESTART_RUN-th packet in a row behind what was
   * reported (it restarted, numbering from less than we reported). The caller sends what is
   * pending first: it would be lost.
   */
  breaksNumbering(seq: u16): bool {
    if (this.highest < 0) return false;
    const ext = this.extend(seq);
    return ext - this.nextToReport >= JUMP || ext < this.nextToReport - RING || (ext < this.nextToReport && this.completesRun(ext));
  }

  /** Whether `ext`, behind nextToReport, is the last of a run that means a restart. */
  @inline private completesRun(ext: i64): bool {
    return this.lateRun == RESTART_RUN - 1 && ext == this.lateLast + 1;
  }

  /** Notes packet `seq` (16-bit, as on the wire) arriving at `nowUs`. */
  record(seq: u16, nowUs: i64): void {
    let ext = this.extend(seq);
    if (this.highest < 0) this.nextToReport = ext;
    else if (ext - this.nextToReport >= JUMP) {
      this.nextToReport = ext; // what was pending has been sent (breaksNumbering)
    } else if (ext < this.nextToReport - RING) {
      this.restart(seq);
      ext = <i64>seq;
    } else if (ext < this.nextToReport) {
      this.late(ext, nowUs);
      return;
    }
    this.lateRun = 0; // a packet at or beyond what was reported: the run (reordering) is over
    if (ext < 0) return;
    if (ext > this.highest) this.highest = ext;
    this.put(ext, nowUs);
  }

  /**
   * A packet behind what was reported (as received or lost). Alone, or a few in a row, it came
   * late (reordered past a feedback): too late, dropped. The RESTART_RUN-th in a row, each one on
   * from the last, with none at or beyond nextToReport between: the sending proxy numbers anew
   * (restarted without its state, or from an older checkpoint), and the numbering starts afresh
   * from the first of the run, its arrivals kept.
   */
  private late(ext: i64, nowUs: i64): void {
    if (this.lateRun > 0 && ext == this.lateLast + 1) this.lateRun++;
    else this.lateRun = 1;
    this.lateLast = ext;
    unchecked((this.lateArrivals[this.lateRun - 1] = nowUs));
    if (this.lateRun < RESTART_RUN) return;
    const first = <u16>(ext - (RESTART_RUN - 1));
    this.restart(first);
    for (let k = 0; k < RESTART_RUN; k++) this.put(<i64>first + k, unchecked(this.lateArrivals[k]));
    this.highest = <i64>first + (RESTART_RUN - 1);
  }

  @inline private put(ext: i64, nowUs: i64): void {
    const r = this.records.at(<i32>(ext & (RING - 1)));
    store<i64>(r, nowUs);
    store<i64>(r, ext + 1, 8);
  }

  private restart(seq: u16): void {
    for (let i = 0; i < RING; i++) store<i64>(this.records.at(i), 0, 8);
    this.highest = <i64>seq;
    this.nextToReport = <i64>seq;
    this.lateRun = 0;
  }

  /** Packets waiting to be reported. */
  @inline get pending(): i64 {
    return this.highest < 0 ? 0 : this.highest - this.nextToReport + 1;
  }

  /**
   * Writes one feedback compound for the packets from nextToReport on (as many as fit) into the
   * output area, for context `ctx`, going back to the sender. False when nothing is pending or
   * the area is full.
   */
  writeFeedback(ctx: u32, senderSsrc: u32, mediaSsrc: u32): bool {
    if (this.pending <= 0) return false;
    const out = Output.reserve();
    if (out == 0) return false;
    // the first received packet sets the reference time (64 ms units)
    const base = this.nextToReport;
    let first = base;
    while (first <= this.highest && !this.has(first)) first++;
    if (first > this.highest) return false; // cannot happen: the highest was received
    const ref64 = this.arrival(first) / 64_000;

    // pass 1: each packet's status and delta, while the compound stays under MAX_FEEDBACK_BYTES
    // (chunk space counted as if every status took a 2-bit vector: 7 per chunk)
    const deltas = changetype<usize>(deltaStage);
    let deltaBytes: i32 = 0;
    let count: i32 = 0;
    let t = ref64 * 64_000;
    for (let s = base; s <= this.highest && count < MAX_STATUSES; s++) {
      const chunkBytes = ((count + 7) / 7) * 2;
      if (RR_BYTES + HEADER_BYTES + chunkBytes + deltaBytes + 2 + 3 > MAX_FEEDBACK_BYTES) break;
      let symbol: u8 = 0;
      if (this.has(s)) {
        const d = (this.arrival(s) - t) / 250;
        if (d < -32768 || d > 32767) break; // the next feedback starts here
        if (d >= 0 && d <= 255) {
          store<u8>(deltas + <usize>deltaBytes, <u8>d);
          deltaBytes += 1;
          symbol = 1;
        } else {
          storeBe16(deltas + <usize>deltaBytes, <u16>(<i16>d));
          deltaBytes += 2;
          symbol = 2;
        }
        t += d * 250;
      }
      unchecked((symbols[count++] = symbol));
    }
    if (count == 0) return false;
    // pass 2: status chunks (run-length for runs of 14 and more, else 2-bit vectors of 7), deltas
    const fb = out + RR_BYTES;
    let at = fb + HEADER_BYTES;
    let k: i32 = 0;
    while (k < count) {
      const s0 = <i32>unchecked(symbols[k]);
      let run = 1;
      while (k + run < count && run < 0x1fff && <i32>unchecked(symbols[k + run]) == s0) run++;
      if (run >= 14) {
        storeBe16(at, <u16>((s0 << 13) | run));
        k += run;
      } else {
        let chunk: i32 = 0xc000;
        for (let j = 0; j < 7 && k < count; j++) chunk |= <i32>unchecked(symbols[k++]) << (12 - j * 2);
        storeBe16(at, <u16>chunk);
      }
      at += 2;
    }
    memory.copy(at, deltas, <usize>deltaBytes);
    at += <usize>deltaBytes;
    // padding to a word, flagged (RFC 3550 6.4.1): the last octet counts the padding octets
    let len = <i32>(at - fb);
    const pad = (4 - (len & 3)) & 3;
    if (pad > 0) {
      memory.fill(fb + <usize>len, 0, <usize>pad);
      store<u8>(fb + <usize>len + pad - 1, <u8>pad);
      len += pad;
    }
    // the empty receiver report
    store<u8>(out, 0x80);
    store<u8>(out, 201, 1);
    storeBe16(out + 2, 1);
    storeBe32(out + 4, senderSsrc);
    // the feedback packet's header
    store<u8>(fb, <u8>(0x80 | (pad > 0 ? 0x20 : 0) | 15));
    store<u8>(fb, 205, 1);
    storeBe16(fb + 2, <u16>((len >> 2) - 1));
    storeBe32(fb + 4, senderSsrc);
    storeBe32(fb + 8, mediaSsrc);
    storeBe16(fb + 12, <u16>base);
    storeBe16(fb + 14, <u16>count);
    storeBe32(fb + 16, ((<u32>ref64 & 0xffffff) << 8) | <u32>(this.feedbackCount & 0xff)); // 24 bits: wraps (the reader unwraps)
    this.feedbackCount = (this.feedbackCount + 1) & 0xff;
    this.nextToReport = base + count;
    return Output.commit(ctx, RR_BYTES + len, PacketFlag.Rtcp | PacketFlag.Upstream, Dest.Forward);
  }

  @inline private has(ext: i64): bool {
    return load<i64>(this.records.at(<i32>(ext & (RING - 1))), 8) == ext + 1;
  }

  @inline private arrival(ext: i64): i64 {
    return load<i64>(this.records.at(<i32>(ext & (RING - 1))));
  }
}
