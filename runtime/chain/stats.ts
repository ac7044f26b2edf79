// Counters per segment and per chain stage. Plain numbers and Maps keyed by small integers, so
// that counting on the hot path allocates nothing.
import { DropReason, MAX_LEGS } from "../abi.js";
import { sharedReasonLabel, UNNAMED_REASONS, type OwnReason } from "../filter-host/drop-reasons.js";

/**
 * Drops (or discards) by reason: the shared codes by number, a filter's own by the label it gave
 * them (its name, or filter_<code>), so that a segment whose stages use the same code for
 * different things counts each under its own name. The labels come from a table built at load:
 * counting allocates nothing.
 */
export class DropCounts {
  readonly byReason = new Map<number, number>();
  readonly byLabel = new Map<string, number>();
  total = 0;
  add(reason: number, n = 1): void {
    if (reason >= DropReason.FilterDefinedBase) {
      this.addOwn(UNNAMED_REASONS[reason - DropReason.FilterDefinedBase] ?? UNNAMED_REASONS[0]!, n);
      return;
    }
    this.byReason.set(reason, (this.byReason.get(reason) ?? 0) + n);
    this.total += n;
  }
  /** A filter's own reason, under its label (ABI 1.6: FilterInstance.ownReasons). */
  addOwn(own: OwnReason, n = 1): void {
    this.byLabel.set(own.label, (this.byLabel.get(own.label) ?? 0) + n);
    this.total += n;
  }
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [reason, n] of this.byReason) out[dropReasonName(reason)] = n;
    for (const [label, n] of this.byLabel) out[label] = (out[label] ?? 0) + n;
    return out;
  }
}

export class StageStats {
  packetsIn = 0;
  bytesIn = 0;
  packetsOut = 0;
  bytesOut = 0;
  /**
   * Packets the filter created (its output area), each one: those the host refused are drops too
   * (host_bad_descriptor, host_budget_exceeded) and not in packetsOut, so that
   * in = out - generated + held + drops + discards + bypassed holds.
   */
  generated = 0;
  held = 0;
  readonly drops = new DropCounts();
  /** Packets the filter discarded as its normal work (its own reasons of class discard, ABI 1.6): not drops. */
  readonly discards = new DropCounts();
  /** Time spent in the filter (copy in, call, read back), nanoseconds, and packets it covered. */
  busyNs = 0;
  calls = 0;
  failures = 0;
  /** Packets passed without the stage (fail-open) while it was down. */
  bypassed = 0;
  /** Timer firings put off because the stage was over its budget of firings. */
  timersDeferred = 0;
}

export class SegmentStats {
  packetsIn = 0;
  bytesIn = 0;
  packetsOut = 0;
  bytesOut = 0;
  /** Messages the sends handed to the kernel: with UDP GSO a run of packets to one destination is one. */
  messagesOut = 0;
  rtcpIn = 0;
  upstreamIn = 0;
  /** Packets received and sent per leg (0: the media). */
  readonly legPacketsIn = new Float64Array(MAX_LEGS);
  readonly legPacketsOut = new Float64Array(MAX_LEGS);
  readonly drops = new DropCounts();
  /** What its stages discarded as their normal work (a merge's duplicates), by the filters' names: not drops. */
  readonly discards = new DropCounts();
}

/** snake_case name of a DropReason (`bad_version`), or `filter_<code>` for a filter's own code. */
export function dropReasonName(reason: number): string {
  const name = (DropReason as unknown as Record<number, string | undefined>)[reason];
  if (name === undefined || reason >= DropReason.FilterDefinedBase) return `filter_${reason}`;
  return sharedReasonLabel(name);
}
