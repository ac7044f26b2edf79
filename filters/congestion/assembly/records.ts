// Fixed-size records in chunks of the SDK's budgeted memory (sdk/assembly/chunks.ts): what a
// context keeps per packet (send times, arrival times) lives there rather than on the general
// heap, so a context the budget has no room for is refused (Status.NoSpace) instead of a heap
// that grows until the instance traps.
import { CHUNK_SIZE, giveBack, take } from "../../../sdk/assembly/chunks";

export class Records {
  private constructor(private readonly chunks: StaticArray<usize>, private readonly perChunkShift: i32, private readonly sizeShift: i32) {}

  /**
   * `count` records of `size` bytes (both powers of two, size at most CHUNK_SIZE), zeroed; null
   * when the budget or the memory cap has no room.
   */
  static create(count: i32, size: i32): Records | null {
    const perChunk = CHUNK_SIZE / size;
    const chunkCount = (count + perChunk - 1) / perChunk;
    const chunks = take(chunkCount);
    if (chunks === null) return null;
    for (let k = 0; k < chunkCount; k++) memory.fill(unchecked(chunks[k]), 0, <usize>CHUNK_SIZE);
    return new Records(chunks, <i32>ctz(perChunk), <i32>ctz(size));
  }

  /** Bytes `count` records of `size` take. */
  static bytesFor(count: i32, size: i32): i64 {
    const perChunk = CHUNK_SIZE / size;
    return <i64>((count + perChunk - 1) / perChunk) * CHUNK_SIZE;
  }

  /** Address of record `i`. */
  @inline at(i: i32): usize {
    return unchecked(this.chunks[i >> this.perChunkShift]) + (<usize>(i & ((1 << this.perChunkShift) - 1)) << this.sizeShift);
  }

  free(): void {
    giveBack(this.chunks);
  }
}
