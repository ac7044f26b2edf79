// The filter's metrics and drop reasons. Counts are gathered per context during a call and sent to
// the host once at its end (one host call per metric that moved, not one per packet). Paths are
// numbered by their place in `merge.legs` (path 0 is the first leg listed, the skew reference).
import { DropClass, DropReason, defineCounter, defineGauge, metricSet, nameDropReason } from "../../../sdk/assembly";
import { CounterBatch } from "../../../sdk/assembly/counter-batch";
import { MAX_PATHS } from "./settings";

// Drop reasons of the filter's own (README "Drop reasons").
/** A copy of a packet the merged stream already has (another path's, or the same path's twice). */
export const DROP_DUPLICATE: u32 = DropReason.FilterDefinedBase;
/** A packet of a stream the merge left behind (after a restart), or older than the merge window. */
export const DROP_STALE: u32 = DropReason.FilterDefinedBase + 1;

/** The merge's reasons as /metrics and msmctl name them: a duplicate is the merge's work, not a drop. */
export function nameMergeDropReasons(): void {
  nameDropReason(DROP_DUPLICATE, "duplicate", DropClass.Discard);
  nameDropReason(DROP_STALE, "stale", DropClass.Drop);
}

export enum Count {
  MergedLost,
  MergedLate,
  MergedHeld,
  MergedResyncs,
  MergedStale,
  MergedStray,
  MergedPassedUnkept,
  SwapLost,
  CopiesSent,
  CopiesNotSent,
  RewriteSwitches,
  RtcpRewritten,
  FeedbackMapped,
  /** Then per path: received, missed, duplicates (PATH_COUNTS each). */
  PathBase,
}
export const PATH_RECEIVED = 0;
export const PATH_MISSED = 1;
export const PATH_DUPLICATES = 2;
const PATH_COUNTS = 3;
export const COUNTS: i32 = Count.PathBase + MAX_PATHS * PATH_COUNTS;

const NAMES: string[] = [
  "merged_lost", "merged_late", "merged_held", "merged_resyncs", "merged_stale", "merged_stray",
  "merged_passed_unkept", "swap_lost", "copies_sent", "copies_not_sent", "rewrite_switches",
  "rtcp_rewritten", "feedback_mapped",
];
const PATH_NAMES: string[] = ["received", "missed", "duplicates"];

const ids = new StaticArray<i32>(COUNTS);
/** Gauges per path 1..MAX_PATHS-1 (path 0 is the reference): skew mean, skew extreme. */
const skewIds = new StaticArray<i32>(MAX_PATHS * 2);

/** Defines every metric (configure_root). */
export function defineMetrics(): void {
  for (let i = 0; i < NAMES.length; i++) unchecked((ids[i] = defineCounter(NAMES[i])));
  for (let p = 0; p < MAX_PATHS; p++) {
    for (let k = 0; k < PATH_COUNTS; k++) {
      unchecked((ids[Count.PathBase + p * PATH_COUNTS + k] = defineCounter("path" + p.toString() + "_" + PATH_NAMES[k])));
    }
    if (p == 0) continue;
    unchecked((skewIds[p * 2] = defineGauge("path" + p.toString() + "_skew_us")));
    unchecked((skewIds[p * 2 + 1] = defineGauge("path" + p.toString() + "_skew_max_us")));
  }
}

/** The window over which `path<k>_skew_max_us` keeps its extreme. */
const SKEW_WINDOW_US: i64 = 1_000_000;

/** One context's counts not yet sent to the host, and its skew gauges. */
export class Counts extends CounterBatch {
  /** Per path: the skew's running mean (gain 1/16, as RFC 3550 A.8's jitter), x16. */
  private readonly skewMean16: StaticArray<i64> = new StaticArray<i64>(MAX_PATHS);
  private readonly skewExtreme: StaticArray<i64> = new StaticArray<i64>(MAX_PATHS);
  private readonly skewWindowStart: StaticArray<i64> = new StaticArray<i64>(MAX_PATHS);
  private readonly skewSeen: StaticArray<bool> = new StaticArray<bool>(MAX_PATHS);
  private skewDirty: bool = false;

  constructor() {
    super(ids);
  }

  @inline addPath(path: i32, which: i32, n: i32 = 1): void {
    this.add(Count.PathBase + path * PATH_COUNTS + which, n);
  }

  /** One skew sample of `path` (> 0): its copy arrived `skewUs` after path 0's (negative: before). */
  skew(path: i32, skewUs: i64, nowUs: i64): void {
    if (!unchecked(this.skewSeen[path])) {
      unchecked((this.skewSeen[path] = true));
      unchecked((this.skewMean16[path] = skewUs << 4));
      unchecked((this.skewExtreme[path] = skewUs));
      unchecked((this.skewWindowStart[path] = nowUs));
    } else {
      const m = unchecked(this.skewMean16[path]);
      unchecked((this.skewMean16[path] = m + skewUs - ((m + 8) >> 4)));
      if (nowUs - unchecked(this.skewWindowStart[path]) >= SKEW_WINDOW_US) {
        unchecked((this.skewWindowStart[path] = nowUs));
        unchecked((this.skewExtreme[path] = skewUs));
      } else if (abs<i64>(skewUs) > abs<i64>(unchecked(this.skewExtreme[path]))) {
        unchecked((this.skewExtreme[path] = skewUs));
      }
    }
    this.skewDirty = true;
  }

  /** The recent mean skew of `path`, microseconds (0 before any sample). */
  skewMean(path: i32): i64 {
    return unchecked(this.skewMean16[path]) >> 4;
  }

  /** Sends what was counted as context `ctx`'s. */
  flush(ctx: u32): void {
    super.flush(ctx);
    if (this.skewDirty) {
      for (let p = 1; p < MAX_PATHS; p++) {
        if (!unchecked(this.skewSeen[p])) continue;
        metricSet(unchecked(skewIds[p * 2]), ctx, this.skewMean(p));
        metricSet(unchecked(skewIds[p * 2 + 1]), ctx, unchecked(this.skewExtreme[p]));
      }
      this.skewDirty = false;
    }
  }
}
