// What every state blob of this filter starts with (docs/abi.md msm_state_export): a magic, the
// format version, and whose state it is.
import { StateReader, StateWriter, Status, setError } from "../../../sdk/assembly";
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

/** Reads the header: Ok when the blob is at least `minLength` bytes of this version's state of `kind`, else refused() saying why. */
export function readStateHeader(blob: StateReader, kind: u8, minLength: i32): Status {
  if (blob.length < minLength) return refused("is truncated");
  if (blob.u32() != STATE_MAGIC) return refused("is not an fec state (wrong magic)");
  const version = blob.u16();
  if (version != STATE_VERSION) return refused("has version " + version.toString() + ", this build reads " + STATE_VERSION.toString());
  const found = blob.u8();
  if (found == kind) return Status.Ok;
  return refused(found == KIND_ENCODER ? "is an encoder's (this context decodes)" : found == KIND_DECODER ? "is a decoder's (this context encodes)" : "is of an unknown kind");
}

/** BadState, after telling the host why (every refusal says why: docs/abi.md msm_state_import). */
export function refused(why: string): Status {
  setError("fec state blob " + why);
  return Status.BadState;
}
