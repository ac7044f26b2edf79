// What every state blob of this filter starts with (docs/abi.md msm_state_export): a magic, the
// format version, and whose state it is.
import { StateReader, StateWriter } from "../../../sdk/assembly";
export const STATE_MAGIC: u32 = 0x4345464d; // "MFEC"
export const STATE_VERSION: u16 = 2; // 2: a decoder place carries its age, not a time on the old worker's clock
export const KIND_ENCODER: u8 = 1;
export const KIND_DECODER: u8 = 2;

/** Writes the blob's header for a state of `kind`. */
export function writeStateHeader(out: StateWriter, kind: u8): void {
  out.u32(STATE_MAGIC);
  out.u16(STATE_VERSION);
  out.u8(kind);
}

/** Reads the header: whether the blob is at least `minLength` bytes of this version's state of `kind`. */
export function readStateHeader(blob: StateReader, kind: u8, minLength: i32): bool {
  return blob.length >= minLength && blob.u32() == STATE_MAGIC && blob.u16() == STATE_VERSION && blob.u8() == kind;
}
