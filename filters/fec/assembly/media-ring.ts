// The decoder's media buffer: a ring of `size` (a power of two) places indexed by extended
// sequence number, each with the packet's bytes and a little metadata. A place is valid for the
// sequence number it was last claimed for; packets stay after they are sent, since a later
// repair may need them. Each place also links the FEC groups whose first packet it is (one row,
// one column), so that the groups of any packet are found by arithmetic, without a search.
import { MAX_PACKET } from "../../../sdk/assembly";
import { CHUNK_SIZE } from "../../../sdk/assembly/chunks";

/** Claimed, no packet (yet): missing once a later packet came. */
export const ABSENT: u8 = 0;
/** The packet arrived. */
export const PRESENT: u8 = 1;
/** The packet was rebuilt from a repair. */
export const REBUILT: u8 = 2;
/** The packet was sent on at once without being kept (no bytes here). */
export const PASSED: u8 = 3;

const M_EXT: usize = 0; //     i64  extended sequence number the place was claimed for (-1: never)
const M_SINCE: usize = 8; //   i64  when it was claimed (for ABSENT: when it went missing), now_us clock
const M_STATE: usize = 16; //  u8
const M_LEN: usize = 18; //    u16  packet length
const M_PAYOFF: usize = 20; // u16  payload offset (after CSRCs and extension)
const M_PAYLEN: usize = 22; // u16  payload length (padding excluded)
const M_ROW: usize = 24; //    i16  repair entry of the row group starting here, or -1
const M_COL: usize = 26; //    i16  repair entry of the column group starting here, or -1
export const PLACE_META: i32 = 32;
export const PLACE_DATA: i32 = MAX_PACKET;
/** Places per chunk of packet bytes (CHUNK_SIZE / PLACE_DATA, rounded down to a power of two). */
const PLACES_SHIFT: i32 = 3;
export const PLACES_PER_CHUNK: i32 = 1 << PLACES_SHIFT;
assert(PLACES_PER_CHUNK * PLACE_DATA <= CHUNK_SIZE);

export class MediaRing {
  readonly mask: i32;

  constructor(
    readonly size: i32,
    /** size x PLACE_META bytes. */
    private readonly meta: usize,
    /** The packet bytes: chunks[first ..], PLACES_PER_CHUNK places each. */
    private readonly chunks: StaticArray<usize>,
    private readonly first: i32,
  ) {
    this.mask = size - 1;
    this.clear();
  }

  /** Every place unclaimed, no links. */
  clear(): void {
    for (let i = 0; i < this.size; i++) {
      const m = this.metaAt(i);
      memory.fill(m, 0, <usize>PLACE_META);
      store<i64>(m, -1, M_EXT);
      store<i16>(m, -1, M_ROW);
      store<i16>(m, -1, M_COL);
    }
  }

  @inline place(ext: i64): i32 {
    return <i32>ext & this.mask;
  }

  @inline private metaAt(i: i32): usize {
    return this.meta + (<usize>i << 5);
  }

  /** The packet bytes of place `i`. */
  @inline bytes(i: i32): usize {
    return unchecked(this.chunks[this.first + (i >> PLACES_SHIFT)]) + <usize>(i & (PLACES_PER_CHUNK - 1)) * <usize>PLACE_DATA;
  }

  @inline ext(i: i32): i64 {
    return load<i64>(this.metaAt(i), M_EXT);
  }

  /** Whether place `i` is claimed for `ext`. */
  @inline holds(i: i32, ext: i64): bool {
    return load<i64>(this.metaAt(i), M_EXT) == ext;
  }

  @inline state(i: i32): u8 {
    return load<u8>(this.metaAt(i), M_STATE);
  }

  @inline setState(i: i32, s: u8): void {
    store<u8>(this.metaAt(i), s, M_STATE);
  }

  /** Whether place `i` has bytes (arrived or rebuilt). */
  @inline hasBytes(i: i32): bool {
    const s = this.state(i);
    return s == PRESENT || s == REBUILT;
  }

  @inline since(i: i32): i64 {
    return load<i64>(this.metaAt(i), M_SINCE);
  }

  @inline length(i: i32): i32 {
    return <i32>load<u16>(this.metaAt(i), M_LEN);
  }

  @inline payloadOffset(i: i32): i32 {
    return <i32>load<u16>(this.metaAt(i), M_PAYOFF);
  }

  @inline payloadLength(i: i32): i32 {
    return <i32>load<u16>(this.metaAt(i), M_PAYLEN);
  }

  @inline rowLink(i: i32): i32 {
    return <i32>load<i16>(this.metaAt(i), M_ROW);
  }

  @inline setRowLink(i: i32, entry: i32): void {
    store<i16>(this.metaAt(i), <i16>entry, M_ROW);
  }

  @inline columnLink(i: i32): i32 {
    return <i32>load<i16>(this.metaAt(i), M_COL);
  }

  @inline setColumnLink(i: i32, entry: i32): void {
    store<i16>(this.metaAt(i), <i16>entry, M_COL);
  }

  /** Claims place `i` for `ext` in `state`, with no bytes (its links are the caller's). */
  claim(i: i32, ext: i64, state: u8, sinceUs: i64): void {
    const m = this.metaAt(i);
    store<i64>(m, ext, M_EXT);
    store<i64>(m, sinceUs, M_SINCE);
    store<u8>(m, state, M_STATE);
    store<u16>(m, 0, M_LEN);
    store<u16>(m, 0, M_PAYOFF);
    store<u16>(m, 0, M_PAYLEN);
  }

  /** Records the packet now in bytes(i) (length `len`, payload at `payOff`, `payLen` long) as `state`. */
  setPacket(i: i32, state: u8, len: i32, payOff: i32, payLen: i32): void {
    const m = this.metaAt(i);
    store<u8>(m, state, M_STATE);
    store<u16>(m, <u16>len, M_LEN);
    store<u16>(m, <u16>payOff, M_PAYOFF);
    store<u16>(m, <u16>payLen, M_PAYLEN);
  }

  /** Copies packet [ptr, ptr+len) into place `i` as PRESENT (len <= PLACE_DATA). */
  keep(i: i32, ptr: usize, len: i32, payOff: i32, payLen: i32): void {
    memory.copy(this.bytes(i), ptr, <usize>len);
    this.setPacket(i, PRESENT, len, payOff, payLen);
  }
}
