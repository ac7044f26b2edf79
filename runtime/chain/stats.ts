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
  /** Adds what `other` counted (a segment's counts carried to its successor). */
  addFrom(other: DropCounts): void {
    for (const [reason, n] of other.byReason) this.byReason.set(reason, (this.byReason.get(reason) ?? 0) + n);
    for (const [label, n] of other.byLabel) this.byLabel.set(label, (this.byLabel.get(label) ?? 0) + n);
    this.total += other.total;
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

  /**
   * Adds what a segment's predecessor counted (the same segment, bound afresh by a reload), so
   * that its counters go on. `legOf` maps a leg's index there to its index here (-1: gone): legs
   * are matched by name, as a change may add or remove some.
   */
  addFrom(before: SegmentStats, legOf: (index: number) => number): void {
    this.packetsIn += before.packetsIn;
    this.bytesIn += before.bytesIn;
    this.packetsOut += before.packetsOut;
    this.bytesOut += before.bytesOut;
    this.messagesOut += before.messagesOut;
    this.rtcpIn += before.rtcpIn;
    this.upstreamIn += before.upstreamIn;
    for (let k = 0; k < MAX_LEGS; k++) {
      const to = legOf(k);
      if (to < 0) continue;
      this.legPacketsIn[to] += before.legPacketsIn[k]!;
      this.legPacketsOut[to] += before.legPacketsOut[k]!;
    }
    this.drops.addFrom(before.drops);
    this.discards.addFrom(before.discards);
  }
}

/** snake_case name of a DropReason (`bad_version`), or `filter_<code>` for a filter's own code. */
export function dropReasonName(reason: number): string {
  const name = (DropReason as unknown as Record<number, string | undefined>)[reason];
  if (name === undefined || reason >= DropReason.FilterDefinedBase) return `filter_${reason}`;
  return sharedReasonLabel(name);
}
