// One context's state, and the pool that recycles the state of destroyed contexts: the source
// records are raw memory (heap.alloc), which the collector does not free, so reuse is what keeps
// memory bounded under segment churn.
import { ContextPool, sizeClass } from "../../../sdk/assembly/context-pool";
import { SegmentContext } from "../../../sdk/assembly/context-factory";
import { QUEUE_SIZE, initQueue } from "./hold-store";
import { Settings } from "./settings";
import { SourceTable } from "./sources";

export class ValidateContext extends SegmentContext {
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

  constructor(id: u32, readonly sources: SourceTable) {
    super(id);
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

// Tables come in power-of-two capacities, pooled by capacity: a recycled table always fits and
// never wastes more than half of itself.
const pool = new ContextPool<ValidateContext>();

/** Context `id` with room for `maxSources` sources: recycled if possible, else new. */
export function takeContext(id: u32, maxSources: i32): ValidateContext {
  const cls = sizeClass(maxSources);
  const free = pool.take(cls, id);
  if (free !== null) {
    free.reset();
    return free;
  }
  return new ValidateContext(id, new SourceTable(1 << cls));
}

/** Returns a destroyed context's state to the pool. */
export function releaseContext(c: ValidateContext): void {
  pool.give(c, sizeClass(c.sources.capacity));
}
