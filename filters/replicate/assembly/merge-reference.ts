// Every path's copies of the last places, kept beyond the merge's window: a copy that comes
// behind the window is told by it from a sender restart. A copy of a place another path brought
// and this path did not is a lagging path's (stale, and its skew still counts); one of a place this
// path brought itself is a restart going back. Any path may be the laggard, path 0 too.
//
// Per place (ext & (places - 1)), 32 bytes: its extended sequence number (-1: none), which paths
// brought it, and each one's arrival (low 32 bits of microseconds: a difference of two is right
// while under 35 minutes). Memory comes from the SDK's chunk pool.
import { CHUNK_SIZE } from "../../../sdk/assembly/chunks";
import { MAX_PATHS } from "./settings";

const R_EXT: usize = 0; //      i64
const R_SEEN: usize = 8; //     u8   bit k: path k brought a copy
const R_ARRIVAL: usize = 16; // u32 x MAX_PATHS
const ENTRY_SHIFT: usize = 5;
const PER_CHUNK: i32 = CHUNK_SIZE >> <i32>ENTRY_SHIFT;
assert(R_ARRIVAL + <usize>MAX_PATHS * 4 <= (<usize>1 << ENTRY_SHIFT));

/** Places remembered for a window of `size` places: twice the window, at least 1024. */
export function referencePlaces(size: i32): i32 {
  return size * 2 > 1024 ? size * 2 : 1024;
}

/** Chunks the reference of a window of `size` places takes. */
export function referenceChunks(size: i32): i32 {
  return referencePlaces(size) / PER_CHUNK;
}

export class MergeReference {
  readonly places: i32;

  constructor(size: i32, private readonly chunks: StaticArray<usize>) {
    this.places = referencePlaces(size);
    this.clear();
  }

  /** Nothing remembered (a new stream's extended numbers start again). */
  clear(): void {
    for (let r = 0; r < this.places; r++) store<i64>(this.entry(<i64>r), -1, R_EXT);
  }

  @inline private entry(ext: i64): usize {
    const r = <i32>ext & (this.places - 1);
    return unchecked(this.chunks[r / PER_CHUNK]) + (<usize>(r & (PER_CHUNK - 1)) << ENTRY_SHIFT);
  }

  /** Path `path`'s copy of `ext` arrived at `at`. */
  remember(ext: i64, path: i32, at: i64): void {
    const e = this.entry(ext);
    if (load<i64>(e, R_EXT) != ext) {
      store<i64>(e, ext, R_EXT);
      store<u8>(e, 0, R_SEEN);
    }
    store<u8>(e, <u8>(<i32>load<u8>(e, R_SEEN) | (1 << path)), R_SEEN);
    store<u32>(e + R_ARRIVAL + (<usize>path << 2), <u32>at);
  }

  /** The paths whose copy of `ext` is remembered (0: none, or no longer). */
  seen(ext: i64): i32 {
    const e = this.entry(ext);
    return load<i64>(e, R_EXT) == ext ? <i32>load<u8>(e, R_SEEN) : 0;
  }

  /** `at` less path `path`'s arrival of `ext` (which `seen` lists), microseconds. */
  since(ext: i64, path: i32, at: i64): i64 {
    return <i64>(<i32>(<u32>at - load<u32>(this.entry(ext) + R_ARRIVAL + (<usize>path << 2))));
  }
}
