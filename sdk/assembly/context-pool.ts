// Recycles the contexts of destroyed segments. A context whose buffers are raw memory (heap.alloc,
// which the collector never frees) or large (tables, key schedules) is worth reusing: under
// segment churn the pool keeps memory flat instead of growing until the collector catches up.
// Contexts come in size classes (powers of two of the filter's own measure, say its source
// table's capacity), one free list per class, so a reused context always has the size asked for.
import { SegmentContext } from "./context-factory";

/** Classes 0 .. 15: sizes 1 .. 32768. */
const CLASSES = 16;

/** The class of a context sized for `n` (1 .. 32768): n rounded up to a power of two, as its log2. */
export function sizeClass(n: i32): i32 {
  return n <= 1 ? 0 : 32 - clz<i32>(n - 1);
}

export class ContextPool<C extends SegmentContext> {
  private readonly heads: StaticArray<SegmentContext | null> = new StaticArray<SegmentContext | null>(CLASSES);

  /** A pooled context of class `cls`, now with id `id`, or null (make a new one). Reset it before use. */
  take(cls: i32, id: u32): C | null {
    assert(<u32>cls < <u32>CLASSES, "ContextPool: size class out of range (sizeClass of at most 32768)");
    const c = unchecked(this.heads[cls]);
    if (c === null) return null;
    unchecked((this.heads[cls] = c.pooledNext));
    c.pooledNext = null;
    c.id = id;
    c.touchedCall = 0;
    return changetype<C>(c);
  }

  /** Keeps `c` (a destroyed segment's, of class `cls`) for reuse. */
  give(c: C, cls: i32): void {
    assert(<u32>cls < <u32>CLASSES, "ContextPool: size class out of range (sizeClass of at most 32768)");
    c.pooledNext = unchecked(this.heads[cls]);
    unchecked((this.heads[cls] = c));
  }
}
