// State blobs for hot swap (docs/abi.md msm_state_export / msm_state_import): a little-endian
// writer and reader over the scratch area, with sticky overflow flags instead of traps.
import { SCRATCH, SCRATCH_SIZE } from "./arena";

/** Writes a state blob into scratch. If it runs out of room, `overflow` is set and writes stop. */
@final export class StateWriter {
  length: i32 = 0;
  overflow: bool = false;

  /** Room left in bytes. */
  @inline get remaining(): i32 {
    return SCRATCH_SIZE - this.length;
  }

  reset(): void {
    this.length = 0;
    this.overflow = false;
  }

  /** Reserves `n` bytes and returns their address, or 0 (and sets overflow). */
  reserve(n: i32): usize {
    if (this.overflow || n < 0 || n > SCRATCH_SIZE - this.length) {
      this.overflow = true;
      return 0;
    }
    const at = SCRATCH + <usize>this.length;
    this.length += n;
    return at;
  }

  u8(v: u8): void {
    const at = this.reserve(1);
    if (at) store<u8>(at, v);
  }
  u16(v: u16): void {
    const at = this.reserve(2);
    if (at) store<u16>(at, v);
  }
  u32(v: u32): void {
    const at = this.reserve(4);
    if (at) store<u32>(at, v);
  }
  u64(v: u64): void {
    const at = this.reserve(8);
    if (at) store<u64>(at, v);
  }
  bytes(ptr: usize, len: i32): void {
    const at = this.reserve(len);
    if (at) memory.copy(at, ptr, <usize>len);
  }
}

/** Reads a state blob from scratch. Reading past its end sets `overflow` and yields zeros. */
@final export class StateReader {
  length: i32 = 0;
  position: i32 = 0;
  overflow: bool = false;

  @inline get remaining(): i32 {
    return this.length - this.position;
  }

  reset(len: i32): void {
    this.length = len < 0 ? 0 : len > SCRATCH_SIZE ? SCRATCH_SIZE : len;
    this.position = 0;
    this.overflow = false;
  }

  /** Consumes `n` bytes and returns their address, or 0 (and sets overflow). */
  take(n: i32): usize {
    if (this.overflow || n < 0 || n > this.length - this.position) {
      this.overflow = true;
      return 0;
    }
    const at = SCRATCH + <usize>this.position;
    this.position += n;
    return at;
  }

  u8(): u8 {
    const at = this.take(1);
    return at ? load<u8>(at) : 0;
  }
  u16(): u16 {
    const at = this.take(2);
    return at ? load<u16>(at) : 0;
  }
  u32(): u32 {
    const at = this.take(4);
    return at ? load<u32>(at) : 0;
  }
  u64(): u64 {
    const at = this.take(8);
    return at ? load<u64>(at) : 0;
  }
  /** Copies `len` bytes to `dst`; false (copying nothing) if the blob is shorter. */
  bytes(dst: usize, len: i32): bool {
    const at = this.take(len);
    if (!at) return false;
    memory.copy(dst, at, <usize>len);
    return true;
  }
}
