// The encoder: media passes untouched on leg 0; FEC packets are built in the output area.
//
// Matrices are L x D consecutive sequence numbers from the first packet the encoder gets. A
// packet's place is its sequence number less the matrix's first (so a matrix straddles the 16-bit
// wrap like any other). Row FEC goes out when its row is complete. Column FEC of a matrix goes out
// during the next one, column c with that matrix's packet c x D (GStreamer's schedule), so that a
// burst does not take the columns with it.
//
// A sequence number that is skipped (lost before the encoder) leaves its row and column
// incomplete: no FEC is sent for them, since a decoder would "rebuild" a packet that never was.
// The same for a packet too large to protect. A packet from behind (reordered, duplicate) passes
// unprotected; a jump of more than a matrix forward, or far back, starts a new matrix there.
import {
  Dest, Output, Packet, RtpError, RtpPacket,
} from "../../../sdk/assembly";
import {
  ACC_SIZE, accAdd, accAdd2, accCount, accMaxLen, accRecovery, accReset, setAccSnBase, accData,
} from "./accumulator";
import { CHUNK_SIZE, giveBack } from "../../../sdk/assembly/chunks";
import { FecContext, PASS } from "./context";
import { Count } from "./metrics";
import { Settings } from "./settings";
import { MAX_FEC_PAYLOAD, RTP_SIZE, FEC_HEADER_SIZE, Recovery, writeFecHeaders } from "./wire";

const scratch = new Recovery();

/** Groups per chunk (CHUNK_SIZE / ACC_SIZE, rounded down to a power of two). */
const GROUPS_SHIFT: i32 = 3;
const GROUPS_PER_CHUNK: i32 = 1 << GROUPS_SHIFT;
assert(GROUPS_PER_CHUNK * ACC_SIZE <= CHUNK_SIZE);

/** Chunks an encoder of this shape takes: a row group and two banks of columns. */
export function encoderChunks(s: Settings): i32 {
  return (1 + 2 * s.columns + GROUPS_PER_CHUNK - 1) / GROUPS_PER_CHUNK;
}

export class Encoder extends FecContext {
  readonly columns: i32;
  readonly rows: i32;
  readonly size: i32;
  readonly rowFec: bool;
  readonly columnLeg: i32;
  readonly rowLeg: i32;
  readonly payloadType: i32;
  private readonly chunks: StaticArray<usize>;

  started: bool = false;
  /** Sequence number of the current matrix's first packet. */
  base: u16 = 0;
  /** Place of the next packet in the current matrix, and its column and row. */
  pos: i32 = 0;
  column: i32 = 0;
  row: i32 = 0;
  /** Which bank of column groups the current matrix fills; the other holds the previous matrix's. */
  bank: i32 = 0;
  /** The next column of the previous matrix to send; `columns` when none is waiting. */
  pendingNext: i32;
  rowSeq: u16 = 0;
  columnSeq: u16 = 0;
  /** Timestamp of the newest media packet (for column FEC sent at a skipped place, or at drain). */
  lastTs: u32 = 0;

  /** `chunks`: encoderChunks(s) chunks. */
  constructor(id: u32, s: Settings, chunks: StaticArray<usize>) {
    super(id);
    this.columns = s.columns;
    this.rows = s.rows;
    this.size = s.columns * s.rows;
    this.rowFec = s.rowFec;
    this.columnLeg = s.columnLeg;
    this.rowLeg = s.rowLeg;
    this.payloadType = s.payloadType;
    this.chunks = chunks;
    this.pendingNext = s.columns;
    for (let k = 0, n = this.groupCount(); k < n; k++) accReset(this.groupAt(k));
  }

  /** Group `k`: 0 the row, then the columns of bank 0, then those of bank 1. */
  @inline private groupAt(k: i32): usize {
    return unchecked(this.chunks[k >> GROUPS_SHIFT]) + <usize>(k & (GROUPS_PER_CHUNK - 1)) * <usize>ACC_SIZE;
  }

  @inline rowGroup(): usize {
    return this.groupAt(0);
  }

  /** Column `c` of bank `bank`. */
  @inline columnGroup(bank: i32, c: i32): usize {
    return this.groupAt(1 + bank * this.columns + c);
  }

  free(): void {
    giveBack(this.chunks);
  }

  onPacket(p: Packet, nowUs: i64): u32 {
    if (p.leg != 0 || p.isRtcp || p.isUpstream) return PASS;
    const ptr = p.ptr;
    const len = p.length;
    if (RtpPacket.validate(ptr, len) != RtpError.None) {
      this.counts.add(Count.MediaUnprotected); // not RTP: it has no place in a matrix
      return PASS;
    }
    const seq = RtpPacket.sequence(ptr);
    const ts = RtpPacket.timestamp(ptr);
    this.lastTs = ts;
    if (!this.started) this.startMatrix(seq);
    const expected = <u16>(this.base + <u16>this.pos);
    const ahead = <i32>(<u16>(seq - expected));
    if (ahead != 0) {
      if (ahead < this.size) {
        for (let k = 0; k < ahead; k++) this.step(0, 0, 0, 0, false, false);
      } else if (<i32>(<u16>(expected - seq)) <= 2 * this.size) {
        this.counts.add(Count.MediaUnprotected); // from behind: its place is taken or given up
        return PASS;
      } else {
        // The sender jumped: finish this matrix with the places it left empty, start anew here.
        while (this.pos != 0) this.step(0, 0, 0, 0, false, false);
        this.startMatrix(seq);
      }
    }
    const payOff = RtpPacket.payloadOffset(ptr);
    const payLen = RtpPacket.payloadLength(ptr, len);
    const fits = payLen <= MAX_FEC_PAYLOAD;
    this.counts.add(fits ? Count.MediaProtected : Count.MediaUnprotected);
    this.step(ptr + <usize>payOff, payLen, ts, RtpPacket.payloadType(ptr), RtpPacket.marker(ptr), fits);
    return PASS;
  }

  private startMatrix(seq: u16): void {
    this.started = true;
    this.base = seq;
    this.pos = 0;
    this.column = 0;
    this.row = 0;
  }

  /** The packet at the next place (`present` false: the place stays empty). */
  private step(pay: usize, payLen: i32, ts: u32, pt: u8, marker: bool, present: bool): void {
    const pos = this.pos;
    const c = this.column;
    // The previous matrix's columns due at this place go out first.
    while (this.pendingNext < this.columns && this.pendingNext * this.rows <= pos) {
      this.sendColumn(this.pendingNext, present ? ts : this.lastTs);
      this.pendingNext++;
    }
    if (present) {
      const col = this.columnGroup(this.bank, c);
      if (this.rowFec) accAdd2(this.rowGroup(), col, pay, payLen, ts, pt, marker);
      else accAdd(col, pay, payLen, ts, pt, marker);
    }
    if (c == this.columns - 1) {
      if (this.rowFec) this.finishRow(present ? ts : this.lastTs);
      this.column = 0;
      this.row++;
    } else {
      this.column = c + 1;
    }
    this.pos = pos + 1;
    if (this.pos == this.size) this.finishMatrix();
  }

  private finishRow(ts: u32): void {
    const g = this.rowGroup();
    if (accCount(g) == this.columns) {
      setAccSnBase(g, <u16>(this.base + <u16>(this.row * this.columns)));
      if (this.emit(g, true, ts, this.rowSeq)) this.rowSeq++;
    }
    accReset(g);
  }

  private finishMatrix(): void {
    this.sendPending(this.lastTs); // all sent by now, unless places were skipped at the end
    for (let c = 0; c < this.columns; c++) setAccSnBase(this.columnGroup(this.bank, c), <u16>(this.base + <u16>c));
    this.bank ^= 1;
    this.pendingNext = 0;
    this.base = <u16>(this.base + <u16>this.size);
    this.pos = 0;
    this.column = 0;
    this.row = 0;
  }

  /** Sends every column of the previous matrix still waiting. */
  sendPending(ts: u32): void {
    while (this.pendingNext < this.columns) {
      this.sendColumn(this.pendingNext, ts);
      this.pendingNext++;
    }
  }

  private sendColumn(c: i32, ts: u32): void {
    const g = this.columnGroup(this.bank ^ 1, c);
    if (accCount(g) == this.rows && this.emit(g, false, ts, this.columnSeq)) this.columnSeq++;
    accReset(g);
  }

  /** Builds the FEC packet of group `g` in the output area; false when the area is full. */
  private emit(g: usize, row: bool, ts: u32, seq: u16): bool {
    const at = Output.reserve();
    if (at == 0) {
      this.counts.add(Count.FecNotSent);
      return false;
    }
    const r = scratch;
    accRecovery(g, r);
    r.row = row;
    r.offset = row ? 1 : <u8>this.columns;
    r.na = row ? <u8>this.columns : <u8>this.rows;
    writeFecHeaders(at, r, seq, ts, this.payloadType);
    const payLen = accMaxLen(g);
    memory.copy(at + <usize>(RTP_SIZE + FEC_HEADER_SIZE), accData(g), <usize>payLen);
    Output.commit(this.id, RTP_SIZE + FEC_HEADER_SIZE + payLen, 0, Dest.Forward, row ? this.rowLeg : this.columnLeg);
    this.counts.add(row ? Count.FecRowSent : Count.FecColumnSent);
    return true;
  }

  /** The segment goes: the previous matrix's columns go out now (the current one is incomplete). */
  drain(nowUs: i64): void {
    this.sendPending(this.lastTs);
  }


  /** Every group, for the state blob: the row, the current bank's columns, the previous bank's. */
  @inline groupCount(): i32 {
    return 1 + 2 * this.columns;
  }

  /** Group `k` in the blob's order. */
  group(k: i32): usize {
    if (k == 0) return this.rowGroup();
    k--;
    if (k < this.columns) return this.columnGroup(this.bank, k);
    return this.columnGroup(this.bank ^ 1, k - this.columns);
  }
}
