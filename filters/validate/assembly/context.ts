// One context's state, and a pool that recycles the state of destroyed contexts (the stub
// runtime never frees, so reuse is what keeps memory bounded under segment churn).
import { Settings } from "./settings";
import { SourceTable } from "./sources";

export class ValidateContext {
  id: u32 = 0;
  settings: Settings = new Settings();
  /** Gauge value last reported for `sources` (to report only changes). */
  reportedSources: i32 = -1;
  nextFree: ValidateContext | null = null;

  constructor(readonly sources: SourceTable) {}
}

// Tables come in power-of-two capacities; free lists are kept per capacity class, so a
// recycled table always fits and never wastes more than half of itself.
const CLASSES = 11; // 1, 2, 4, ... 1024 (MAX_SOURCES_LIMIT)
const freeLists = new StaticArray<ValidateContext | null>(CLASSES);

function classOf(maxSources: i32): i32 {
  let c = 0;
  while ((1 << c) < maxSources) c++;
  return c;
}

/** A context with room for `maxSources` sources: recycled if possible, else new. */
export function takeContext(maxSources: i32): ValidateContext {
  const c = classOf(maxSources);
  const free = unchecked(freeLists[c]);
  if (free !== null) {
    unchecked((freeLists[c] = free.nextFree));
    free.nextFree = null;
    free.sources.clear();
    free.reportedSources = -1;
    return free;
  }
  return new ValidateContext(new SourceTable(1 << c));
}

/** Returns a destroyed context's state to the pool. */
export function releaseContext(ctx: ValidateContext): void {
  const c = classOf(ctx.sources.capacity);
  ctx.nextFree = unchecked(freeLists[c]);
  unchecked((freeLists[c] = ctx));
}
