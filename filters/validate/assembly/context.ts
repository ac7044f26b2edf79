// One context's state, and a pool that recycles the state of destroyed contexts: the source
// records are raw memory (heap.alloc), which the collector does not free, so reuse is what keeps
// memory bounded under segment churn.
import { QUEUE_SIZE, initQueue } from "./hold-store";
import { Settings } from "./settings";
import { SourceTable } from "./sources";

export class ValidateContext {
  id: u32 = 0;
  settings: Settings = new Settings();
  /** Gauge value last reported for `sources` (to report only changes). */
  reportedSources: i32 = -1;
  /**
   * Packets on their way out through the output area, in order: the held packets of sources
   * that validated, and the packets that arrived behind them (a queue in the hold store).
   */
  readonly release: usize = heap.alloc(QUEUE_SIZE);
  /** Packets of this context in the hold store (source queues and `release`). */
  held: i32 = 0;
  /** Gauge value last reported for `held`. */
  reportedHeld: i32 = -1;
  /** The batch in which this context last sent a packet through the output area. */
  emitEpoch: u32 = 0;
  /** Timer armed: expire held packets / send more of `release`. */
  expiryArmed: bool = false;
  drainArmed: bool = false;
  nextFree: ValidateContext | null = null;

  constructor(readonly sources: SourceTable) {
    initQueue(this.release);
  }

  /** Back to the state of a new context (its held packets already freed). */
  reset(): void {
    this.sources.clear();
    this.reportedSources = -1;
    initQueue(this.release);
    this.held = 0;
    this.reportedHeld = -1;
    this.emitEpoch = 0;
    this.expiryArmed = false;
    this.drainArmed = false;
  }
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
    free.reset();
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
