// The decoder: media on leg 0 is kept in a ring and sent on in sequence order; FEC packets (on the
// column or row leg, told apart by their D bit) rebuild what is missing, row and column in turn
// until nothing more can be rebuilt; rebuilt packets take their place in the order.
//
// Release policy: the packet next in sequence goes out as soon as it is there (in place when
// nothing of the context went out through the output area before it in this call, else through
// the output area). A missing packet is waited for, for repair or a late arrival, at most
// maxDelayMs from the moment a later packet showed it missing; then it is given up
// (`unrecoverable`) and the packets behind it go on. So no packet is held longer than maxDelayMs
// past its arrival, nor once the ring needs its place for a newer one.
//
// A place counts as missing only once a later packet arrived: GStreamer's encoder sends a row's
// FEC before the row's last packet, which must not be "rebuilt" before it comes.
//
// No FEC heard over the last ring's worth of media (the FEC legs blocked by a firewall, an encoder
// with FEC off): nothing can rebuild a loss, so a missing packet is given up at once
// (`released_without_fec`) instead of holding everything behind it for maxDelayMs and then
// sending it on in one burst. Waiting starts again with the next FEC packet.
import {
  Deadline, LogLevel, MAX_PACKET, Output, Packet, RtpError, RtpPacket, Status, log, storeBe16, storeBe32, timerSet,
} from "../../../sdk/assembly";
import { CHUNK_SIZE, giveBack } from "../../../sdk/assembly/chunks";
import { FecContext, PASS, TAKE, currentCall } from "./context";
import { ABSENT, MediaRing, PASSED, PLACES_PER_CHUNK, PLACE_META, PRESENT, REBUILT } from "./media-ring";
import {
  Count, DROP_DUPLICATE, DROP_FEC_MALFORMED, DROP_FEC_OUT_OF_WINDOW, DROP_FEC_SHAPE,
} from "./metrics";
import { ENTRIES_PER_CHUNK, ENTRY_META, RepairTable } from "./repairs";
import { FEC_LEGS_PASS, MIN_COLUMNS_ROW_FEC, Settings } from "./settings";
import { FEC_HEADER_SIZE, FEC_OK, MAX_FEC_PAYLOAD, RTP_SIZE, Recovery, readFecHeader } from "./wire";
import { xorInto } from "./xor";

export const TIMER_WAIT = 0;
export const TIMER_FLUSH = 1;
export const TIMER_SETTLE = 2;
/**
 * FEC packets whose group starts past the newest media packet, kept unlinked until media claims
 * the group's first place. The legs are sockets of their own and race the media's: a few packets
 * ahead is usual. (After a stall, the proxy hands a segment's sockets' backlogs over in arrival
 * order, docs/batched-io.md; a host that read one socket's backlog after another's would overflow this.)
 */
const FUTURE_MAX: i32 = 32;
/** Packets sent on without being kept, remembered so that their places are not taken as lost. */
const PASSED_MEMORY: i32 = 64;

const scratch = new Recovery();
/** soleMissing(): every packet of the group is there. */
const ALL_THERE: i64 = -1;
/** soleMissing(): nothing to rebuild yet. */
const NOT_YET: i64 = -2;

/**
 * Places in the ring: a column's FEC comes up to (2L-1) x D packets after the column's first
 * packet (GStreamer's and our encoder's schedule), plus room for legs that race.
 */
export function ringSize(columns: i32, rows: i32): i32 {
  const want = 2 * columns * rows + 40;
  let n = 64;
  while (n < want) n <<= 1;
  return n;
}

/** Repair entries: the rows and columns of the window that can miss packets at once. */
export function repairCapacity(columns: i32, rows: i32): i32 {
  const n = ringSize(columns, rows);
  return (columns >= MIN_COLUMNS_ROW_FEC ? n / columns + 2 : 0) + n / rows + columns + 4;
}

/** Bytes of the first chunk: the places' and entries' metadata, the passed list, the work list. */
export function decoderMetaBytes(columns: i32, rows: i32): i32 {
  const f = repairCapacity(columns, rows);
  return ringSize(columns, rows) * PLACE_META + f * ENTRY_META + (PASSED_MEMORY + f + 2) * 8;
}

/** Chunks a decoder of this shape takes: one of metadata, then packet bytes, then repair payloads. */
export function decoderChunks(s: Settings): i32 {
  return 1 + ringSize(s.columns, s.rows) / PLACES_PER_CHUNK + (repairCapacity(s.columns, s.rows) + ENTRIES_PER_CHUNK - 1) / ENTRIES_PER_CHUNK;
}

/** The matrix a FEC header describes: a row FEC gives L (NA), a column FEC L (Offset) and D (NA). */
function shapeOf(r: Recovery): string {
  return r.row ? (r.offset == 1 ? "a row of L = " + r.na.toString() : "no ST 2022-1 row")
    : "L x D = " + r.offset.toString() + " x " + r.na.toString();
}

export class Decoder extends FecContext {
  readonly columns: i32;
  readonly rows: i32;
  readonly maxDelayUs: i64;
  readonly passFec: bool;
  readonly columnLeg: i32;
  readonly rowLeg: i32;
  readonly ring: MediaRing;
  readonly repairs: RepairTable;
  private readonly chunks: StaticArray<usize>;
  /** PASSED_MEMORY extended sequence numbers of packets sent on unkept (-1: none). */
  private readonly passedSeqs: usize;
  /** Places whose groups are to be looked at again (each rebuild adds one). */
  private readonly work: usize;
  private workCount: i32 = 0;
  /** Repair entries kept for groups that start past maxSeq (at most FUTURE_MAX). */
  private readonly future: StaticArray<i32> = new StaticArray<i32>(FUTURE_MAX);
  private futureCount: i32 = 0;

  started: bool = false;
  /** The newest media packet's extended sequence number (-1: none yet). */
  maxSeq: i64 = -1;
  /** The next to send on. */
  nextOut: i64 = 0;
  /** The first place of this run: nothing before it was ever seen. */
  lowSeq: i64 = 0;
  /** The sequence number that would confirm a sender restart (a second packet far behind), or -1. */
  badSeq: i32 = -1;
  /** The call in which the context last sent through the output area. */
  private emitCall: u32 = 0;
  /** When the oldest missing packet is given up. */
  private readonly wait: Deadline;
  /** When the oldest rebuilt packet not yet counted is counted as recovered. */
  private readonly settle: Deadline;
  private flushArmed: bool = false;
  /** Whether FEC of another matrix shape was logged (once per context). */
  private shapeLogged: bool = false;
  private mediaLegFecLogged: bool = false;
  /** Media packets since the last FEC packet of this matrix (see fecAbsent). */
  private mediaSinceFec: i32 = 0;
  private fecAbsentLogged: bool = false;
  private draining: bool = false;

  /** `chunks`: decoderChunks(s) chunks. */
  constructor(id: u32, s: Settings, chunks: StaticArray<usize>) {
    super(id);
    this.wait = new Deadline(id, TIMER_WAIT);
    this.settle = new Deadline(id, TIMER_SETTLE);
    this.columns = s.columns;
    this.rows = s.rows;
    this.maxDelayUs = <i64>s.maxDelayMs * 1000;
    this.passFec = s.fecLegs == FEC_LEGS_PASS;
    this.columnLeg = s.columnLeg;
    this.rowLeg = s.rowLeg;
    this.chunks = chunks;
    const n = ringSize(s.columns, s.rows);
    const f = repairCapacity(s.columns, s.rows);
    let at = unchecked(chunks[0]);
    const ringMeta = at;
    at += <usize>n * PLACE_META;
    const entryMeta = at;
    at += <usize>f * ENTRY_META;
    this.passedSeqs = at;
    at += <usize>PASSED_MEMORY * 8;
    this.work = at;
    assert(decoderMetaBytes(s.columns, s.rows) <= CHUNK_SIZE); // every standard shape: see the tests
    const dataChunks = n / PLACES_PER_CHUNK;
    this.ring = new MediaRing(n, ringMeta, chunks, 1);
    this.repairs = new RepairTable(f, entryMeta, chunks, 1 + dataChunks);
    this.forgetPassed();
  }

  free(): void {
    giveBack(this.chunks);
  }

  /** The oldest place whose bytes may still be there. */
  @inline lowData(): i64 {
    const low = this.maxSeq - this.ring.size + 1;
    return low > this.lowSeq ? low : this.lowSeq;
  }

  /** `seq` extended to the place nearest the newest packet. */
  @inline extend(seq: u16): i64 {
    return this.maxSeq + <i64>(<i16>(seq - <u16>this.maxSeq));
  }

  onPacket(p: Packet, nowUs: i64): u32 {
    if (p.isRtcp || p.isUpstream) return PASS;
    const leg = p.leg;
    // the decoder's clock is the packet's arrival: a backlog read late after a stall is judged by
    // when it came, so repair queued behind it still rebuilds what it covers
    const at = p.arrivalOr(nowUs);
    if (leg == 0) return this.isFec(p) ? this.onFecOnMediaLeg(p, at) : this.onMedia(p, at);
    if (leg == this.columnLeg || leg == this.rowLeg) return this.onFec(p, at);
    return PASS; // another leg (a second path): not ours
  }

  onTimer(timer: i32, nowUs: i64): void {
    if (timer == TIMER_SETTLE) {
      this.settle.fired();
      this.settleRebuilt(nowUs);
      return;
    }
    if (timer == TIMER_WAIT) this.wait.fired();
    else if (timer == TIMER_FLUSH) this.flushArmed = false;
    this.release(nowUs, -1);
  }

  /** The segment goes: everything held goes out in order, what is missing is given up. */
  drain(nowUs: i64): void {
    this.draining = true;
    this.release(nowUs, -1);
    this.countRebuilt();
  }

  // ---- counting rebuilt packets ----
  // A rebuilt packet counts as recovered only once its original can no longer come in time:
  // maxDelayMs after it went missing (as long as the decoder would have waited for it), or when
  // its place goes. One whose original comes first was reordered, not lost (a duplicate), so
  // `recovered` + `unrecoverable` is the loss the FEC was offered.

  /** Counts the rebuilt packets whose wait is over, and arms the timer for the next. */
  settleRebuilt(now: i64): void {
    const ring = this.ring;
    let next = i64.MAX_VALUE;
    for (let i = 0; i < ring.size; i++) {
      if (ring.state(i) != REBUILT) continue;
      const due = ring.since(i) + this.maxDelayUs;
      if (due <= now) this.countRecovered(i);
      else if (due < next) next = due;
    }
    if (next != i64.MAX_VALUE) this.settle.arm(next);
  }

  /** Counts every rebuilt packet in the ring (the stream or the context ends). */
  private countRebuilt(): void {
    for (let i = 0; i < this.ring.size; i++) if (this.ring.state(i) == REBUILT) this.countRecovered(i);
    this.settle.cancel();
  }

  @inline private countRecovered(i: i32): void {
    this.counts.add(Count.Recovered);
    this.ring.setState(i, PRESENT); // counted once
  }


  // ---- media ----

  private onMedia(p: Packet, now: i64): u32 {
    const ptr = p.ptr;
    const len = p.length;
    const bad = RtpPacket.validate(ptr, len);
    if (bad != RtpError.None) return <u32>bad;
    this.counts.add(Count.MediaReceived);
    if (this.mediaSinceFec < i32.MAX_VALUE) this.mediaSinceFec++;
    const seq = RtpPacket.sequence(ptr);
    if (!this.started) this.start(seq);
    const ext = this.extend(seq);
    if (len > MAX_PACKET) return this.passUnkept(ext);
    if (ext > this.maxSeq) {
      if (ext - this.maxSeq >= <i64>this.ring.size) return this.resync(p, seq, now);
      return this.takeNewest(p, ext, now);
    }
    if (ext < this.lowData()) return this.fromFarBehind(p, seq, now);
    this.notRestarted();
    const i = this.ring.place(ext);
    const state = this.ring.state(i);
    if (state != ABSENT) {
      // a rebuilt packet's original: it was reordered, not lost, so the rebuild is no recovery
      if (state == REBUILT) this.ring.setState(i, PRESENT);
      this.counts.add(Count.Duplicates);
      return DROP_DUPLICATE;
    }
    this.keep(i, p);
    if (ext < this.nextOut) {
      // Given up already: it goes on now, out of order, and may still help rebuild others.
      this.counts.add(Count.Late);
      this.recoverAround(ext);
      return PASS;
    }
    this.recoverAround(ext);
    return this.release(now, ext);
  }

  /**
   * Whether a packet on leg 0 is a 2022-1 FEC packet of this decoder's matrix: E set, N, type,
   * index and mask 0, and Offset and NA those of a row (1, L) or a column (L, D). Media (an MPEG
   * TS, say) matches these forty-odd bits by chance next to never.
   */
  private isFec(p: Packet): bool {
    const ptr = p.ptr;
    const len = p.length;
    if (RtpPacket.validate(ptr, len) != RtpError.None) return false;
    if (RtpPacket.payloadLength(ptr, len) < FEC_HEADER_SIZE) return false;
    const r = scratch;
    if (readFecHeader(ptr + <usize>RtpPacket.payloadOffset(ptr), RtpPacket.marker(ptr), r) != FEC_OK) return false;
    const L = this.columns;
    return r.row ? L >= MIN_COLUMNS_ROW_FEC && r.offset == 1 && <i32>r.na == L : <i32>r.offset == L && <i32>r.na == this.rows;
  }

  /** FEC sent to the media port (a sender's mistake): used as repair, never sent on as media. */
  private onFecOnMediaLeg(p: Packet, now: i64): u32 {
    this.counts.add(Count.FecOnMediaLeg);
    if (!this.mediaLegFecLogged) {
      this.mediaLegFecLogged = true;
      log(LogLevel.Warn, "FEC packets arrive on the media leg (leg 0, the segment's listen port): they are used as repair and not sent on " +
        "(fec_on_media_leg); ST 2022-1 sends column FEC to port + 2 and row FEC to port + 4 (said once per segment)");
    }
    const verdict = this.onFec(p, now);
    return verdict == PASS ? TAKE : verdict; // fecLegs: pass passes FEC on its own legs, never in the media
  }

  private start(seq: u16): void {
    const ext = <i64>seq + 0x10000;
    this.started = true;
    this.maxSeq = ext - 1;
    this.nextOut = ext;
    this.lowSeq = ext;
    this.badSeq = -1;
  }

  private keep(i: i32, p: Packet): void {
    const ptr = p.ptr;
    const len = p.length;
    this.ring.keep(i, ptr, len, RtpPacket.payloadOffset(ptr), RtpPacket.payloadLength(ptr, len));
  }

  /** A packet newer than any so far: the places it skipped are missing from now on. */
  private takeNewest(p: Packet, ext: i64, now: i64): u32 {
    // Its place must be free: older packets still waiting for it go on (or are given up) first.
    const limit = ext - this.ring.size + 1;
    if (this.nextOut < limit && !this.releaseBelow(limit)) return this.passUnkept(ext);
    this.notRestarted();
    const first = this.maxSeq + 1;
    for (let q = first; q <= ext; q++) this.claim(q, now, q != ext && this.wasPassed(q) ? PASSED : ABSENT);
    this.maxSeq = ext;
    this.keep(this.ring.place(ext), p);
    if (this.repairs.live > 0) {
      for (let q = first; q <= ext; q++) this.recoverAround(q);
    }
    return this.release(now, ext);
  }

  /** Claims place `q` (the one of q - size goes: links to its groups with it). */
  private claim(q: i64, now: i64, state: u8): void {
    const ring = this.ring;
    const i = ring.place(q);
    const row = ring.rowLink(i);
    if (row >= 0 && this.repairs.base(row) != q) this.expire(row);
    const col = ring.columnLink(i);
    if (col >= 0 && this.repairs.base(col) != q) this.expire(col);
    if (ring.state(i) == REBUILT) this.countRecovered(i); // q - size goes: its original can no longer be told apart
    ring.claim(i, q, state, now);
    if (this.futureCount > 0) this.linkFuture(q, i);
  }

  /**
   * Older than the ring: very late, or the sender restarted lower (a second one in sequence says
   * so). It passes on; it counts as late only once the next packet shows no restart.
   */
  private fromFarBehind(p: Packet, seq: u16, now: i64): u32 {
    if (this.badSeq == <i32>seq) return this.resync(p, seq, now);
    this.notRestarted();
    this.badSeq = <i32>(<u16>(seq + 1));
    return PASS;
  }

  /** The packet before, if it came from far behind, was a late one, not a restart. */
  private notRestarted(): void {
    if (this.badSeq >= 0) this.counts.add(Count.Late);
    this.badSeq = -1;
  }

  /** The stream jumped beyond the ring: send on what is held, forget the rest, start at `seq`. */
  private resync(p: Packet, seq: u16, now: i64): u32 {
    if (!this.releaseBelow(this.maxSeq + 1)) {
      this.counts.add(Count.PassedUnkept); // the rest goes out from the flush timer first
      this.armFlush();
      return PASS;
    }
    this.counts.add(Count.Resyncs);
    this.reset();
    this.start(seq);
    return this.takeNewest(p, this.extend(seq), now);
  }

  /** Forgets the stream (a resync, or a state import). */
  reset(): void {
    this.countRebuilt();
    this.ring.clear();
    this.repairs.clear();
    this.futureCount = 0;
    this.forgetPassed();
    this.started = false;
    this.maxSeq = -1;
    this.nextOut = 0;
    this.wait.cancel();
  }

  /** Sends the packet on now without keeping it (no room, or too large to keep). */
  private passUnkept(ext: i64): u32 {
    this.counts.add(Count.PassedUnkept);
    const i = this.ring.place(ext);
    if (ext >= this.lowData() && ext <= this.maxSeq && this.ring.holds(i, ext)) {
      if (this.ring.state(i) == ABSENT) this.ring.setState(i, PASSED);
    } else {
      store<i64>(this.passedSeqs + ((<usize>ext & <usize>(PASSED_MEMORY - 1)) << 3), ext);
    }
    this.armFlush();
    return PASS;
  }

  @inline private wasPassed(ext: i64): bool {
    return load<i64>(this.passedSeqs + ((<usize>ext & <usize>(PASSED_MEMORY - 1)) << 3)) == ext;
  }

  private forgetPassed(): void {
    for (let k = 0; k < PASSED_MEMORY; k++) store<i64>(this.passedSeqs + (<usize>k << 3), -1);
  }

  // ---- release ----

  /**
   * Sends on, in order, what is due: packets that are there, and past missing ones whose wait is
   * over. Returns PASS when packet `current` (extended sequence number) was released in place,
   * else TAKE.
   */
  private release(now: i64, current: i64): u32 {
    const ring = this.ring;
    let verdict = TAKE;
    while (this.nextOut <= this.maxSeq) {
      const i = ring.place(this.nextOut);
      const state = ring.state(i);
      if (state == PRESENT || state == REBUILT) {
        if (this.nextOut == current && this.emitCall != currentCall()) {
          verdict = PASS; // nothing of this context went out through the output area before it
        } else if (!this.emit(i)) {
          this.armFlush();
          break;
        }
      } else if (state == ABSENT) {
        const due = ring.since(i) + this.maxDelayUs;
        if (now < due && !this.draining) {
          if (!this.fecAbsent()) {
            this.wait.arm(due); // `due` counts from arrivals: the delay from the host's clock
            break;
          }
          this.counts.add(Count.ReleasedWithoutFec);
        }
        this.counts.add(Count.Unrecoverable);
      }
      this.nextOut++;
    }
    return verdict;
  }

  /**
   * Whether no FEC of this matrix came over the last ring's worth of media: a column's FEC comes
   * within 2 x L x D packets of its first (the ring holds more), a row's within L, so this is no
   * gap in a FEC stream that flows, even with some of it lost.
   */
  private fecAbsent(): bool {
    if (this.mediaSinceFec <= this.ring.size) return false;
    if (!this.fecAbsentLogged) {
      this.fecAbsentLogged = true;
      log(LogLevel.Warn, "no FEC heard over the last " + this.ring.size.toString() + " media packets: losses are given up at once, not waited for " +
        "(released_without_fec); are the FEC legs (port + 2 for columns, + 4 for rows) reaching this proxy? (said once per segment)");
    }
    return true;
  }

  /** Sends on everything before `limit` now, given up or not; false when the output area filled. */
  private releaseBelow(limit: i64): bool {
    const ring = this.ring;
    while (this.nextOut < limit) {
      const i = ring.place(this.nextOut);
      if (ring.holds(i, this.nextOut)) {
        const state = ring.state(i);
        if (state == PRESENT || state == REBUILT) {
          if (!this.emit(i)) return false;
        } else if (state == ABSENT) {
          this.counts.add(Count.Unrecoverable);
        }
      }
      this.nextOut++;
    }
    return true;
  }

  private emit(i: i32): bool {
    if (!Output.emit(this.id, this.ring.bytes(i), this.ring.length(i))) return false;
    this.emitCall = currentCall();
    return true;
  }

  armFlush(): void {
    if (this.flushArmed) return;
    this.flushArmed = timerSet(this.id, TIMER_FLUSH, 0) == Status.Ok || timerSet(this.id, TIMER_FLUSH, 1000) == Status.Ok;
  }

  // ---- FEC ----

  private onFec(p: Packet, now: i64): u32 {
    this.counts.add(Count.FecReceived);
    const ptr = p.ptr;
    const len = p.length;
    const r = scratch;
    if (RtpPacket.validate(ptr, len) != RtpError.None) return this.refuse(Count.FecMalformed, DROP_FEC_MALFORMED);
    const off = RtpPacket.payloadOffset(ptr);
    const fecLen = RtpPacket.payloadLength(ptr, len) - FEC_HEADER_SIZE;
    if (fecLen < 0 || fecLen > MAX_FEC_PAYLOAD) return this.refuse(Count.FecMalformed, DROP_FEC_MALFORMED);
    const header = ptr + <usize>off;
    if (readFecHeader(header, RtpPacket.marker(ptr), r) != FEC_OK) return this.refuse(Count.FecMalformed, DROP_FEC_MALFORMED);
    const L = this.columns;
    const shapeOk = r.row
      ? L >= MIN_COLUMNS_ROW_FEC && r.offset == 1 && <i32>r.na == L
      : <i32>r.offset == L && <i32>r.na == this.rows;
    if (!shapeOk) return this.wrongShape(r);
    this.mediaSinceFec = 0;
    if (!this.started) return this.refuse(Count.FecOutOfWindow, DROP_FEC_OUT_OF_WINDOW);
    const base = this.extend(r.snBase);
    if (base < this.lowData() || base > this.maxSeq + <i64>(this.ring.size >> 1)) return this.refuse(Count.FecOutOfWindow, DROP_FEC_OUT_OF_WINDOW);
    if (base > this.maxSeq) return this.keepFuture(base, r, header + <usize>FEC_HEADER_SIZE, fecLen);
    const ring = this.ring;
    const at = ring.place(base);
    const link = r.row ? ring.rowLink(at) : ring.columnLink(at);
    if (link >= 0 && this.repairs.base(link) == base) {
      this.counts.add(Count.Duplicates);
      return DROP_DUPLICATE;
    }
    const payload = header + <usize>FEC_HEADER_SIZE;
    const missing = this.soleMissing(base, r.row);
    if (missing == ALL_THERE) {
      // nothing to rebuild: the group arrived whole
    } else if (missing >= 0) {
      if (this.rebuild(missing, payload, fecLen, r, base)) this.recoverAround(missing);
    } else {
      this.store(base, r, payload, fecLen);
    }
    this.release(now, -1);
    return this.passFec ? PASS : TAKE;
  }

  /** A FEC packet ahead of its media: kept unlinked (its first place is not the group's yet). */
  private keepFuture(base: i64, r: Recovery, payload: usize, payLen: i32): u32 {
    const repairs = this.repairs;
    for (let k = 0; k < this.futureCount; k++) {
      const e = unchecked(this.future[k]);
      if (repairs.base(e) == base && repairs.isRow(e) == r.row) {
        this.counts.add(Count.Duplicates);
        return DROP_DUPLICATE;
      }
    }
    if (this.futureCount == FUTURE_MAX) return this.refuse(Count.FecOutOfWindow, DROP_FEC_OUT_OF_WINDOW);
    let e = repairs.findFree();
    if (e < 0) {
      e = repairs.oldest();
      this.expire(e);
    }
    repairs.fill(e, base, r, payload, payLen);
    unchecked(this.future[this.futureCount++] = e);
    return this.passFec ? PASS : TAKE;
  }

  /** Links the kept repairs of groups that start at `q` (its place `i` was just claimed). */
  private linkFuture(q: i64, i: i32): void {
    const repairs = this.repairs;
    const ring = this.ring;
    for (let k = 0; k < this.futureCount; ) {
      const e = unchecked(this.future[k]);
      if (repairs.base(e) != q) {
        k++;
        continue;
      }
      this.unlistFuture(k);
      const row = repairs.isRow(e);
      const link = row ? ring.rowLink(i) : ring.columnLink(i);
      if (link >= 0) this.expire(e); // one came the usual way too
      else if (row) ring.setRowLink(i, e);
      else ring.setColumnLink(i, e);
    }
  }

  private unlistFuture(k: i32): void {
    unchecked(this.future[k] = unchecked(this.future[--this.futureCount]));
  }

  /** A FEC packet of another matrix: dropped, and said once per context (it means a config mismatch: no repair at all). */
  private wrongShape(r: Recovery): u32 {
    if (!this.shapeLogged) {
      this.shapeLogged = true;
      log(LogLevel.Warn, "FEC of another matrix shape: a " + (r.row ? "row" : "column") + " FEC with Offset " +
        r.offset.toString() + " and NA " + r.na.toString() + " (" + shapeOf(r) + "), this decoder is configured for L x D = " +
        this.columns.toString() + " x " + this.rows.toString() + (r.row && this.columns < MIN_COLUMNS_ROW_FEC ? " (no row FEC under L = 4)" : "") +
        "; such FEC is dropped (fec_shape) and repairs nothing: give the encoder and decoder the same columns and rows (said once per segment)");
    }
    return this.refuse(Count.FecShape, DROP_FEC_SHAPE);
  }

  private refuse(count: Count, reason: u32): u32 {
    this.counts.add(count);
    return reason;
  }

  /** Keeps a FEC packet whose group cannot be used yet, linked from its first place. */
  store(base: i64, r: Recovery, payload: usize, payLen: i32): void {
    const repairs = this.repairs;
    const at = this.ring.place(base);
    const link = r.row ? this.ring.rowLink(at) : this.ring.columnLink(at);
    if (link >= 0) this.expire(link); // an older group on the same place: long past its time
    let e = repairs.findFree();
    if (e < 0) {
      e = repairs.oldest();
      this.expire(e);
    }
    repairs.fill(e, base, r, payload, payLen);
    if (r.row) this.ring.setRowLink(at, e);
    else this.ring.setColumnLink(at, e);
  }

  /** Frees entry `e` unused (its group's time is over), unlinking it. */
  private expire(e: i32): void {
    this.counts.add(Count.FecExpired);
    this.drop(e);
  }

  /** Frees entry `e` and its link. */
  private drop(e: i32): void {
    const repairs = this.repairs;
    for (let k = 0; k < this.futureCount; k++) {
      if (unchecked(this.future[k]) == e) {
        this.unlistFuture(k);
        break;
      }
    }
    const at = this.ring.place(repairs.base(e));
    if (repairs.isRow(e)) {
      if (this.ring.rowLink(at) == e) this.ring.setRowLink(at, -1);
    } else if (this.ring.columnLink(at) == e) {
      this.ring.setColumnLink(at, -1);
    }
    repairs.free(e);
  }

  // ---- recovery ----

  /**
   * The group of `base` (a row when `row`): ALL_THERE when every packet is there, the one
   * missing packet's extended sequence number when exactly one is missing and every other is
   * there, else NOT_YET (several missing, or one not known missing yet, or one sent unkept).
   */
  private soleMissing(base: i64, row: bool): i64 {
    const ring = this.ring;
    const step: i64 = row ? 1 : <i64>this.columns;
    const n = row ? this.columns : this.rows;
    let missing: i64 = NOT_YET;
    let absent = 0;
    for (let k = 0; k < n; k++) {
      const q = base + <i64>k * step;
      const i = ring.place(q);
      if (ring.holds(i, q) && ring.hasBytes(i)) continue;
      if (++absent > 1) return NOT_YET;
      if (!ring.holds(i, q) || ring.state(i) != ABSENT) return NOT_YET; // not claimed yet, or passed unkept
      missing = q;
    }
    return absent == 0 ? ALL_THERE : missing;
  }

  /** Looks at the groups of place `q` again, and at those of every packet that rebuilds. */
  private recoverAround(q: i64): void {
    if (this.repairs.live == 0) return;
    this.workCount = 0;
    this.push(q);
    while (this.workCount > 0) {
      this.workCount--;
      this.visit(load<i64>(this.work + (<usize>this.workCount << 3)));
    }
  }

  @inline private push(q: i64): void {
    store<i64>(this.work + (<usize>this.workCount << 3), q);
    this.workCount++;
  }

  /** Tries every stored group that holds place `q`: its row, and its column. */
  private visit(q: i64): void {
    const ring = this.ring;
    const repairs = this.repairs;
    const L = this.columns;
    if (L >= MIN_COLUMNS_ROW_FEC) {
      for (let k = 0; k < L; k++) {
        const base = q - <i64>k;
        const e = ring.rowLink(ring.place(base));
        if (e >= 0 && repairs.base(e) == base) this.tryEntry(e);
      }
    }
    for (let k = 0; k < this.rows; k++) {
      const base = q - <i64>(k * L);
      const e = ring.columnLink(ring.place(base));
      if (e >= 0 && repairs.base(e) == base) this.tryEntry(e);
    }
  }

  /** Uses stored entry `e` if its group can be completed now, or frees it if it is whole. */
  private tryEntry(e: i32): void {
    const repairs = this.repairs;
    const base = repairs.base(e);
    const row = repairs.isRow(e);
    const missing = this.soleMissing(base, row);
    if (missing == NOT_YET) return;
    if (missing >= 0) {
      const r = scratch;
      repairs.recovery(e, r);
      // Each rebuild frees an entry, so the work list never holds more than the table + 1.
      if (this.rebuild(missing, repairs.payload(e), repairs.payloadLength(e), r, base)) this.push(missing);
    }
    this.drop(e);
  }

  /**
   * Rebuilds packet `q` of the group at `base` from the FEC payload [fec, fec+fecLen) and the
   * recovery fields `r`: the payload, its length, payload type, timestamp and marker. SSRC from
   * a neighbour in sequence (else the group's other packets); no CSRCs, extension or padding
   * (2022-1 does not protect them).
   */
  private rebuild(q: i64, fec: usize, fecLen: i32, r: Recovery, base: i64): bool {
    const ring = this.ring;
    const step: i64 = r.row ? 1 : <i64>this.columns;
    const n = r.row ? this.columns : this.rows;
    let length = <i32>r.lengthRecovery;
    let pt = <i32>r.ptRecovery;
    let ts = r.tsRecovery;
    let marker = r.marker;
    let ssrc: u32 = 0;
    for (let k = 0; k < n; k++) {
      const m = base + <i64>k * step;
      if (m == q) continue;
      const i = ring.place(m);
      const pkt = ring.bytes(i);
      length ^= ring.payloadLength(i);
      pt ^= <i32>RtpPacket.payloadType(pkt);
      ts ^= RtpPacket.timestamp(pkt);
      if (RtpPacket.marker(pkt)) marker = !marker;
      ssrc = RtpPacket.ssrc(pkt);
    }
    if (length > fecLen) {
      this.counts.add(Count.FecBadLength); // a length no packet of this group can have
      return false;
    }
    // 2022-1 does not protect the SSRC: a neighbour in sequence has the packet's own (a group
    // may span an SSRC change upstream that kept the numbering), else the group's last one
    const before = ring.place(q - 1);
    const after = ring.place(q + 1);
    if (ring.holds(before, q - 1) && ring.hasBytes(before)) ssrc = RtpPacket.ssrc(ring.bytes(before));
    else if (ring.holds(after, q + 1) && ring.hasBytes(after)) ssrc = RtpPacket.ssrc(ring.bytes(after));
    const at = ring.place(q);
    const dst = ring.bytes(at);
    store<u8>(dst, 0x80);
    store<u8>(dst, (marker ? 0x80 : 0) | <u8>(pt & 0x7f), 1);
    storeBe16(dst + 2, <u16>q);
    storeBe32(dst + 4, ts);
    storeBe32(dst + 8, ssrc);
    const payload = dst + <usize>RTP_SIZE;
    memory.copy(payload, fec, <usize>length);
    for (let k = 0; k < n; k++) {
      const m = base + <i64>k * step;
      if (m == q) continue;
      const i = ring.place(m);
      const have = ring.payloadLength(i);
      xorInto(payload, ring.bytes(i) + <usize>ring.payloadOffset(i), have < length ? have : length);
    }
    if (q < this.nextOut) {
      // its place was given up (counted unrecoverable): it goes on now, out of order, as a late
      // original would, and is no recovery
      ring.setPacket(at, PRESENT, RTP_SIZE + length, RTP_SIZE, length);
      this.counts.add(Count.Late);
      this.emit(at);
    } else {
      ring.setPacket(at, REBUILT, RTP_SIZE + length, RTP_SIZE, length); // counted recovered later (settleRebuilt)
      if (!this.settle.armed) this.settle.arm(ring.since(at) + this.maxDelayUs);
    }
    return true;
  }
}
