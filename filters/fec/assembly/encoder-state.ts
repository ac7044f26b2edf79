// The encoder's state blob: the matrix in flight (its row group and column groups) and the
// previous matrix's columns not yet sent, so that a hot swap mid-matrix loses no repair.
// Layout (little-endian):
//   u32 STATE_MAGIC, u16 version, u8 KIND_ENCODER, u8 L, u8 D, u8 rowFec,
//   u8 started, u16 base, u16 pos, u8 bank, u8 pendingNext, u16 rowSeq, u16 columnSeq, u32 lastTs,
//   u16 n groups (1 + 2L: row, current columns, previous columns), then per group
//   u8 carried (0: left out, starts empty), and if 1: ACC_META bytes of fields + the payload XOR.
// A group left out for want of room starts empty; its count then never reaches the group size,
// so no FEC is sent for it (never a wrong one). A blob of another shape carries only the FEC
// sequence numbers.
import { StateOrigin, Status, StateReader, StateWriter, stateOrigin } from "../../../sdk/assembly";
import { ACC_META, accCount, accData, accMaxLen, accReset } from "./accumulator";
import { encoderChunks, Encoder } from "./encoder";
import { take } from "../../../sdk/assembly/chunks";
import { Settings } from "./settings";
import { KIND_ENCODER, readStateHeader, refused, writeStateHeader } from "./state-format";
import { MAX_FEC_PAYLOAD } from "./wire";

const FIXED = 4 + 2 + 1 + 3 + 1 + 2 + 2 + 1 + 1 + 2 + 2 + 4 + 2;

export function writeEncoderState(e: Encoder, out: StateWriter): Status {
  writeStateHeader(out, KIND_ENCODER);
  out.u8(<u8>e.columns);
  out.u8(<u8>e.rows);
  out.u8(e.rowFec ? 1 : 0);
  out.u8(e.started ? 1 : 0);
  out.u16(e.base);
  out.u16(<u16>e.pos);
  out.u8(<u8>e.bank);
  out.u8(<u8>e.pendingNext);
  out.u16(e.rowSeq);
  out.u16(e.columnSeq);
  out.u32(e.lastTs);
  const n = e.groupCount();
  out.u16(<u16>n);
  for (let k = 0; k < n; k++) {
    const g = e.group(k);
    const bytes = ACC_META + accMaxLen(g);
    // keep one byte for each group after this one
    if (accCount(g) > 0 && out.remaining >= 1 + bytes + (n - 1 - k)) {
      out.u8(1);
      out.bytes(g, bytes);
    } else {
      out.u8(0);
    }
  }
  return Status.Ok;
}

export function readEncoderState(e: Encoder, blob: StateReader): Status {
  if (blob.length == 0) return Status.Ok;
  const header = readStateHeader(blob, KIND_ENCODER, FIXED);
  if (header != Status.Ok) return header;
  const columns = <i32>blob.u8();
  const rows = <i32>blob.u8();
  const rowFec = blob.u8() != 0;
  const sameShape = columns == e.columns && rows == e.rows && rowFec == e.rowFec;
  const started = blob.u8() != 0;
  const base = blob.u16();
  const pos = <i32>blob.u16();
  const bank = <i32>blob.u8();
  const pendingNext = <i32>blob.u8();
  const rowSeq = blob.u16();
  const columnSeq = blob.u16();
  const lastTs = blob.u32();
  const n = <i32>blob.u16();
  if (blob.overflow) return refused("is truncated");
  e.rowSeq = rowSeq;
  e.columnSeq = columnSeq;
  if (!sameShape) return Status.Ok; // a new matrix shape: the next packet starts a matrix
  if (n != e.groupCount() || pos >= e.size || bank > 1 || pendingNext > e.columns) return refused("has a matrix position out of range");
  if (!groupsWellFormed(e, blob)) return refused("has a group record that is truncated or out of range");
  e.started = started;
  e.base = base;
  e.pos = pos;
  e.column = pos % e.columns;
  e.row = pos / e.columns;
  e.bank = bank;
  e.pendingNext = pendingNext;
  e.lastTs = lastTs;
  for (let k = 0; k < n; k++) {
    const g = e.group(k);
    accReset(g);
    if (blob.u8() == 0) continue;
    blob.bytes(g, ACC_META);
    blob.bytes(accData(g), accMaxLen(g));
  }
  return Status.Ok;
}

/** Whether every group record that follows is whole and in range, leaving the reader where it was. */
function groupsWellFormed(e: Encoder, blob: StateReader): bool {
  const start = blob.position;
  const n = e.groupCount();
  let ok = true;
  for (let k = 0; k < n && ok; k++) {
    if (blob.u8() == 0) continue;
    const meta = blob.take(ACC_META);
    if (meta == 0) {
      ok = false;
      break;
    }
    const limit = k == 0 ? e.columns : e.rows;
    ok = accMaxLen(meta) <= MAX_FEC_PAYLOAD && accCount(meta) <= limit && blob.take(accMaxLen(meta)) != 0;
  }
  ok = ok && !blob.overflow && blob.remaining == 0;
  blob.position = start;
  blob.overflow = false;
  return ok;
}

/** The encoder with its state carried across a hot swap (the blob above): the class the filter makes. */
class EncoderWithState extends Encoder {
  exportState(out: StateWriter, now: i64): Status {
    return writeEncoderState(this, out);
  }

  importState(blob: StateReader, nowUs: i64): Status {
    // a checkpoint's matrix is up to a second old and the failed instance ran on past it: a fresh
    // matrix from the next packet, rather than repair over packets it may never have covered
    if (stateOrigin() != StateOrigin.Swap) return Status.Ok;
    return readEncoderState(this, blob);
  }
}

/** A new encoder for `s`, or null when its buffers do not fit (chunks.takeFailure() says why). */
export function newEncoder(id: u32, s: Settings): Encoder | null {
  const chunks = take(encoderChunks(s));
  return chunks === null ? null : new EncoderWithState(id, s, chunks);
}
