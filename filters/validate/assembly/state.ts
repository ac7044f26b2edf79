// The state blob carried across a hot swap: the per-SSRC table, so that probation, sequence
// and rate state survive. Layout (little-endian):
//   u32 STATE_MAGIC, u16 STATE_VERSION, u16 record size, u32 count, count x record
import { Status, StateReader, StateWriter } from "../../../sdk/assembly";
import { ValidateContext } from "./context";
import { RECORD_SIZE } from "./sources";

const STATE_MAGIC: u32 = 0x4c41564d; // "MVAL"
const STATE_VERSION: u16 = 1;
const STATE_HEADER = 12;

export function writeState(c: ValidateContext, out: StateWriter): Status {
  const t = c.sources;
  out.u32(STATE_MAGIC);
  out.u16(STATE_VERSION);
  out.u16(<u16>RECORD_SIZE);
  out.u32(<u32>t.count);
  for (let i = 0; i < t.count; i++) out.bytes(t.record(i), RECORD_SIZE);
  return Status.Ok;
}

export function readState(c: ValidateContext, blob: StateReader): Status {
  if (blob.length == 0) return Status.Ok;
  if (blob.length < STATE_HEADER) return Status.BadState;
  if (blob.u32() != STATE_MAGIC || blob.u16() != STATE_VERSION || blob.u16() != <u16>RECORD_SIZE) {
    return Status.BadState;
  }
  const count = <i32>blob.u32();
  if (count < 0 || count > blob.remaining / RECORD_SIZE || blob.remaining != count * RECORD_SIZE) {
    return Status.BadState;
  }
  c.sources.clear();
  for (let i = 0; i < count; i++) c.sources.insertCopy(blob.take(RECORD_SIZE), c.settings);
  return Status.Ok;
}
