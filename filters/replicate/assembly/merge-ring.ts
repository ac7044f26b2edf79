// The merge's window: a ring of `size` (a power of two) places indexed by extended sequence
// number. Every place of the window has metadata (its state, which paths brought a copy and when:
// for duplicates, per-path loss and skew); only held packets use its bytes. Memory comes from
// the SDK's chunk pool: the metadata chunks first, then the bytes, then the per-path candidate
// slots (two a path: a new stream's first packet, and the one that confirmed it while the output
// area was full).
import { MAX_PACKET } from "../../../sdk/assembly";
import { CHUNK_SIZE } from "../../../sdk/assembly/chunks";
import { MAX_PATHS } from "./settings";

/** Claimed, no copy yet: missing once a later packet came. */
export const ABSENT: u8 = 0;
/** A copy arrived and waits in the place's bytes for the packets before it. */
export const HELD: u8 = 1;
/** Sent on (in place, or from the bytes). */
export const SENT: u8 = 2;
/** Given up: bufferMs passed, or the window moved past it, with no copy. */
export const LOST: u8 = 3;

const M_EXT: usize = 0; //      i64  extended sequence number the place was claimed for (-1: never)
const M_SINCE: usize = 8; //    i64  when it was claimed (for ABSENT: when it went missing), now_us clock
const M_STATE: usize = 16; //   u8
const M_SEEN: usize = 17; //    u8   bit k: path k brought a copy
const M_LEN: usize = 18; //     u16  held packet's length
const M_ARRIVAL: usize = 24; // i64 x MAX_PATHS: each path's copy's arrival time
export const PLACE_META: i32 = 64;
const META_SHIFT: usize = 6;
export const PLACE_DATA: i32 = MAX_PACKET;
const PLACES_SHIFT: i32 = 3;
/** Places' bytes per chunk. */
export const PLACES_PER_CHUNK: i32 = 1 << PLACES_SHIFT;
assert(PLACES_PER_CHUNK * PLACE_DATA <= CHUNK_SIZE);
assert(2 * MAX_PATHS * PLACE_DATA <= CHUNK_SIZE);
assert(M_ARRIVAL + <usize>MAX_PATHS * 8 <= <usize>PLACE_META);

/** Places rounded up to a power of two. */
export function ringSize(maxHeld: i32): i32 {
  let n = 16;
  while (n < maxHeld) n <<= 1;
  return n;
}

/** Chunks a merge of `size` places takes: metadata, bytes, and one for the candidates. */
export function ringChunks(size: i32): i32 {
  return (size * PLACE_META + CHUNK_SIZE - 1) / CHUNK_SIZE + size / PLACES_PER_CHUNK + 1;
}

export class MergeRing {
  readonly mask: i32;
  private readonly dataFirst: i32;
  /** 2 x MAX_PATHS slots of PLACE_DATA bytes: per path, a candidate and its confirmation (see Merge). */
  readonly candidates: usize;

  constructor(readonly size: i32, private readonly chunks: StaticArray<usize>) {
    this.mask = size - 1;
    this.dataFirst = (size * PLACE_META + CHUNK_SIZE - 1) / CHUNK_SIZE;
    this.candidates = unchecked(chunks[chunks.length - 1]);
    this.clear();
  }

  /** Every place unclaimed. */
  clear(): void {
    for (let i = 0; i < this.size; i++) {
      const m = this.metaAt(i);
      memory.fill(m, 0, <usize>PLACE_META);
      store<i64>(m, -1, M_EXT);
    }
  }

  @inline place(ext: i64): i32 {
    return <i32>ext & this.mask;
  }

  @inline private metaAt(i: i32): usize {
    const perChunk = CHUNK_SIZE / PLACE_META;
    return unchecked(this.chunks[i / perChunk]) + (<usize>(i % perChunk) << META_SHIFT);
  }

  /** The bytes of place `i`. */
  @inline bytes(i: i32): usize {
    return unchecked(this.chunks[this.dataFirst + (i >> PLACES_SHIFT)]) + <usize>(i & (PLACES_PER_CHUNK - 1)) * <usize>PLACE_DATA;
  }

  @inline ext(i: i32): i64 {
    return load<i64>(this.metaAt(i), M_EXT);
  }
  @inline holds(i: i32, ext: i64): bool {
    return load<i64>(this.metaAt(i), M_EXT) == ext;
  }
  @inline state(i: i32): u8 {
    return load<u8>(this.metaAt(i), M_STATE);
  }
  @inline setState(i: i32, s: u8): void {
    store<u8>(this.metaAt(i), s, M_STATE);
  }
  @inline since(i: i32): i64 {
    return load<i64>(this.metaAt(i), M_SINCE);
  }
  @inline seen(i: i32): u8 {
    return load<u8>(this.metaAt(i), M_SEEN);
  }
  @inline length(i: i32): i32 {
    return <i32>load<u16>(this.metaAt(i), M_LEN);
  }
  @inline arrival(i: i32, path: i32): i64 {
    return load<i64>(this.metaAt(i) + M_ARRIVAL + (<usize>path << 3));
  }

  /** Records path `path`'s copy arriving at `at`. */
  @inline arrive(i: i32, path: i32, at: i64): void {
    const m = this.metaAt(i);
    store<i64>(m + M_ARRIVAL + (<usize>path << 3), at);
    store<u8>(m, <u8>(<i32>load<u8>(m, M_SEEN) | (1 << path)), M_SEEN);
  }

  /** Claims place `i` for `ext` in `state` since `sinceUs`, with no copy. */
  claim(i: i32, ext: i64, state: u8, sinceUs: i64): void {
    const m = this.metaAt(i);
    memory.fill(m, 0, <usize>PLACE_META);
    store<i64>(m, ext, M_EXT);
    store<i64>(m, sinceUs, M_SINCE);
    store<u8>(m, state, M_STATE);
  }

  /** Copies packet [ptr, ptr+len) into place `i` as HELD (len <= PLACE_DATA). */
  keep(i: i32, ptr: usize, len: i32): void {
    memory.copy(this.bytes(i), ptr, <usize>len);
    const m = this.metaAt(i);
    store<u16>(m, <u16>len, M_LEN);
    store<u8>(m, HELD, M_STATE);
  }

  /** Candidate slot of `path`. */
  @inline candidate(path: i32): usize {
    return this.candidates + <usize>path * <usize>PLACE_DATA;
  }

  /** Slot of the packet that confirmed `path`'s candidate while the restart had to wait. */
  @inline confirmation(path: i32): usize {
    return this.candidates + <usize>(MAX_PATHS + path) * <usize>PLACE_DATA;
  }
}
