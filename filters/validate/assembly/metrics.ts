// The filter's metrics: packets_passed, packets_held, packets_released, packets_reordered, hold_store_full,
// drops_<reason> for every reason it can give, and the gauges sources and held. Counts are
// gathered per run of same-context packets in a batch (or per timer call) and flushed in one
// host call per metric, not one per packet.
import { DropReason, defineCounter, defineGauge, metricAdd, metricSet } from "../../../sdk/assembly";

const REASON_SLOTS = 64; // every reason this filter writes is below 64
const dropMetric = new StaticArray<i32>(REASON_SLOTS);
const pendingDrops = new StaticArray<i32>(REASON_SLOTS);
// Counters kept apart from the drops, in the order of COUNTER_NAMES.
const PASSED = 0;
const HELD = 1;
const RELEASED = 2;
const REORDERED = 3;
const STORE_FULL = 4;
const COUNTERS = 5;
const COUNTER_NAMES: string[] = ["packets_passed", "packets_held", "packets_released", "packets_reordered", "hold_store_full"];
const counterMetric = new StaticArray<i32>(COUNTERS);
const pendingCounts = new StaticArray<i32>(COUNTERS);
let pendingCountTotal: i32 = 0;
let sourcesMetric: i32 = -1;
let heldMetric: i32 = -1;
let pendingDropTotal: i32 = 0;

/** Defines the metrics (configure_root). */
export function defineMetrics(): void {
  for (let i = 0; i < COUNTERS; i++) unchecked((counterMetric[i] = defineCounter(COUNTER_NAMES[i])));
  sourcesMetric = defineGauge("sources");
  heldMetric = defineGauge("held");
  for (let i = 0; i < REASON_SLOTS; i++) unchecked((dropMetric[i] = -1));
  define(DropReason.TooShort, "drops_too_short");
  define(DropReason.BadVersion, "drops_bad_version");
  define(DropReason.BadPadding, "drops_bad_padding");
  define(DropReason.CsrcOverrun, "drops_csrc_overrun");
  define(DropReason.ExtensionOverrun, "drops_extension_overrun");
  define(DropReason.RtcpInRtpRange, "drops_rtcp_in_rtp_range");
  define(DropReason.Probation, "drops_probation");
  define(DropReason.BadSequence, "drops_bad_sequence");
  define(DropReason.RtcpBadFirst, "drops_rtcp_bad_first");
  define(DropReason.RtcpBadLength, "drops_rtcp_bad_length");
  define(DropReason.RtcpBadCompound, "drops_rtcp_bad_compound");
  define(DropReason.SsrcNotAllowed, "drops_ssrc_not_allowed");
  define(DropReason.PayloadTypeNotAllowed, "drops_payload_type_not_allowed");
  define(DropReason.TooLarge, "drops_too_large");
  define(DropReason.RateLimitPackets, "drops_rate_limit_packets");
  define(DropReason.RateLimitBits, "drops_rate_limit_bits");
  define(DropReason.TooManySources, "drops_too_many_sources");
}

function define(reason: i32, name: string): void {
  unchecked((dropMetric[reason] = defineCounter(name)));
}

@inline function count(counter: i32, n: i32): void {
  unchecked((pendingCounts[counter] += n));
  pendingCountTotal += n;
}

/** Packets let through: in place, or through the output area. */
@inline export function countPassed(n: i32 = 1): void {
  count(PASSED, n);
}

/** Packets put into the hold store. */
@inline export function countHeld(): void {
  count(HELD, 1);
}

/** Held packets sent on through the output area. */
@inline export function countReleased(n: i32): void {
  count(RELEASED, n);
}

/** Packets passed in place ahead of released ones still waiting, because the store was full. */
@inline export function countReordered(): void {
  count(REORDERED, 1);
}

/** Probation packets dropped because the hold store was full (also in drops_probation). */
@inline export function countStoreFull(): void {
  count(STORE_FULL, 1);
}

@inline export function countDrop(reason: u32): void {
  countDrops(reason, 1);
}

@inline export function countDrops(reason: u32, n: i32): void {
  unchecked((pendingDrops[<i32>reason & (REASON_SLOTS - 1)] += n));
  pendingDropTotal += n;
}

/** Reports the counts gathered since the last flush as context `ctx`'s. */
export function flushCounts(ctx: u32): void {
  if (pendingCountTotal > 0) {
    for (let i = 0; i < COUNTERS; i++) {
      const n = unchecked(pendingCounts[i]);
      if (n == 0) continue;
      metricAdd(unchecked(counterMetric[i]), ctx, n);
      unchecked((pendingCounts[i] = 0));
    }
    pendingCountTotal = 0;
  }
  if (pendingDropTotal == 0) return;
  for (let i = 0; i < REASON_SLOTS; i++) {
    const n = unchecked(pendingDrops[i]);
    if (n == 0) continue;
    metricAdd(unchecked(dropMetric[i]), ctx, n);
    unchecked((pendingDrops[i] = 0));
  }
  pendingDropTotal = 0;
}

@inline export function reportSources(ctx: u32, n: i32): void {
  metricSet(sourcesMetric, ctx, n);
}

@inline export function reportHeld(ctx: u32, n: i32): void {
  metricSet(heldMetric, ctx, n);
}
