// Counters gathered during a call and sent to the host once at its end: one metric_add per counter
// that moved, not one per packet. A filter defines its counters once (defineCounters) and gives
// each context a CounterBatch over those ids; ContextFilter calls the context's flush at the end
// of every call that touched it.
import { defineCounter, metricAdd } from "./host";

/** Defines a counter per name (at configure_root or top level); returns their ids, in order. */
export function defineCounters(names: string[]): StaticArray<i32> {
  const ids = new StaticArray<i32>(names.length);
  for (let i = 0; i < names.length; i++) unchecked((ids[i] = defineCounter(names[i])));
  return ids;
}

/** One context's counts not yet sent, by index into the ids it was made with. */
export class CounterBatch {
  private readonly pending: StaticArray<i32>;
  private dirty: bool = false;

  constructor(private readonly ids: StaticArray<i32>) {
    this.pending = new StaticArray<i32>(ids.length);
  }

  @inline add(which: i32, n: i32 = 1): void {
    unchecked((this.pending[which] += n));
    this.dirty = true;
  }

  /** Sends what was counted as context `ctx`'s. */
  flush(ctx: u32): void {
    if (!this.dirty) return;
    for (let i = 0; i < this.pending.length; i++) {
      const n = unchecked(this.pending[i]);
      if (n == 0) continue;
      metricAdd(unchecked(this.ids[i]), ctx, n);
      unchecked((this.pending[i] = 0));
    }
    this.dirty = false;
  }
}
