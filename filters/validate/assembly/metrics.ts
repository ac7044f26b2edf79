// The filter's counters: packets_passed, and drops_<reason> for every reason it can give.
// Counts are gathered per run of same-context packets in a batch and flushed in one host
// call per metric, not one per packet.
import { DropReason, defineCounter, defineGauge, metricAdd, metricSet } from "../../../sdk/assembly";

const REASON_SLOTS = 64; // every reason this filter writes is below 64
const dropMetric = new StaticArray<i32>(REASON_SLOTS);
const pendingDrops = new StaticArray<i32>(REASON_SLOTS);
let passedMetric: i32 = -1;
let sourcesMetric: i32 = -1;
let pendingPassed: i32 = 0;
let pendingDropTotal: i32 = 0;

/** Defines the metrics (configure_root). */
export function defineMetrics(): void {
  passedMetric = defineCounter("packets_passed");
  sourcesMetric = defineGauge("sources");
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

@inline export function countPassed(): void {
  pendingPassed++;
}

@inline export function countDrop(reason: u32): void {
  unchecked((pendingDrops[<i32>reason & (REASON_SLOTS - 1)] += 1));
  pendingDropTotal++;
}

/** Reports the counts gathered since the last flush as context `ctx`'s. */
export function flushCounts(ctx: u32): void {
  if (pendingPassed > 0) {
    metricAdd(passedMetric, ctx, pendingPassed);
    pendingPassed = 0;
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

@inline export function reportSources(ctx: u32, count: i32): void {
  metricSet(sourcesMetric, ctx, count);
}
