// ContextMap<T>: context id -> per-context state, for the per-packet lookup. Open addressing
// with linear probing and backward-shift deletion (no tombstones), plus a one-entry cache
// because consecutive packets usually share a context. It only allocates when it grows,
// which happens in createContext, never per packet.

const EMPTY: u32 = 0; // context ids are never 0 (0 is the root)

export class ContextMap<T> {
  private keys: StaticArray<u32>;
  private values: StaticArray<T | null>;
  private mask: i32;
  private count: i32 = 0;
  private lastKey: u32 = EMPTY;
  private lastValue: T | null = null;

  constructor(initialCapacity: i32 = 16) {
    let cap = 8;
    while (cap < initialCapacity * 2) cap <<= 1;
    this.keys = new StaticArray<u32>(cap);
    this.values = new StaticArray<T | null>(cap);
    this.mask = cap - 1;
  }

  get size(): i32 {
    return this.count;
  }

  /** The state of context `ctx`, or null. */
  get(ctx: u32): T | null {
    if (ctx == this.lastKey) return this.lastValue;
    let i = slotOf(ctx, this.mask);
    while (true) {
      const k = unchecked(this.keys[i]);
      if (k == ctx) {
        const v = unchecked(this.values[i]);
        this.lastKey = ctx;
        this.lastValue = v;
        return v;
      }
      if (k == EMPTY) return null;
      i = (i + 1) & this.mask;
    }
  }

  /** Sets the state of context `ctx` (ctx != 0). */
  set(ctx: u32, value: T): void {
    if ((this.count + 1) * 2 > this.mask + 1) this.grow();
    let i = slotOf(ctx, this.mask);
    while (true) {
      const k = unchecked(this.keys[i]);
      if (k == EMPTY) {
        unchecked((this.keys[i] = ctx));
        this.count++;
        break;
      }
      if (k == ctx) break;
      i = (i + 1) & this.mask;
    }
    unchecked((this.values[i] = value));
    if (ctx == this.lastKey) this.lastValue = value;
  }

  /** Removes context `ctx` and returns its state, or null. */
  delete(ctx: u32): T | null {
    if (ctx == this.lastKey) {
      this.lastKey = EMPTY;
      this.lastValue = null;
    }
    const mask = this.mask;
    let i = slotOf(ctx, mask);
    while (true) {
      const k = unchecked(this.keys[i]);
      if (k == EMPTY) return null;
      if (k == ctx) break;
      i = (i + 1) & mask;
    }
    const removed = unchecked(this.values[i]);
    // Backward shift: move later members of the probe run into the hole.
    let hole = i;
    let j = (i + 1) & mask;
    while (true) {
      const k = unchecked(this.keys[j]);
      if (k == EMPTY) break;
      const home = slotOf(k, mask);
      // k may fill the hole if its home is not cyclically within (hole, j].
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        unchecked((this.keys[hole] = k));
        unchecked((this.values[hole] = unchecked(this.values[j])));
        hole = j;
      }
      j = (j + 1) & mask;
    }
    unchecked((this.keys[hole] = EMPTY));
    unchecked((this.values[hole] = null));
    this.count--;
    return removed;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    const cap = (this.mask + 1) << 1;
    this.keys = new StaticArray<u32>(cap);
    this.values = new StaticArray<T | null>(cap);
    this.mask = cap - 1;
    this.count = 0;
    for (let i = 0, n = oldKeys.length; i < n; i++) {
      const k = unchecked(oldKeys[i]);
      if (k != EMPTY) this.set(k, changetype<T>(unchecked(oldValues[i])));
    }
  }
}

/** Fibonacci hashing spreads sequential context ids. */
@inline function slotOf(ctx: u32, mask: i32): i32 {
  return <i32>((ctx * 0x9e3779b1) >> 16) & mask;
}
