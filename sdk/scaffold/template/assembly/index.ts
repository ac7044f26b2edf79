// __NAME__: an MSM filter. It passes the RTP packets whose payload type the segment allows and
// drops the others, counting both. RTCP and upstream feedback go through untouched.
//
// Config of a chain stage (segments[].chain[].config in msm.yaml):
//   payloadTypes: [96, 97]    required: the RTP payload types (0-127) to pass
// Any other key is refused, so a typo in msm.yaml is an error instead of a silent no-op.
//
// The SDK guide is node_modules/msm/docs/sdk.md (per-segment state: docs/sdk-contexts.md), its
// API node_modules/msm/sdk/assembly/index.ts; the contract between a filter and the proxy is
// node_modules/msm/docs/abi.md.
import {
  Config, ContextFactory, DropReason, Packet, RtpError, RtpPacket, SegmentContext, Status,
  defineCounter, metricAdd, register,
} from "../node_modules/msm/sdk/assembly/index";
// The ABI's exports (msm_on_batch, ...). Every filter's entry file has this line.
export * from "../node_modules/msm/sdk/assembly/exports";

/** One segment's state: the RTP payload types (0-127) it allows, a set in two 64-bit words. */
class PayloadTypes extends SegmentContext {
  low: u64 = 0; // 0..63
  high: u64 = 0; // 64..127

  add(pt: u8): void {
    if (pt < 64) this.low |= (<u64>1) << pt;
    else this.high |= (<u64>1) << (pt - 64);
  }

  @inline has(pt: u8): bool {
    const word = pt < 64 ? this.low : this.high;
    return ((word >> (pt & 63)) & 1) != 0;
  }
}

// Metric ids, defined once in configureRoot. The proxy exports them per segment as
// msm_filter_<filter>_<metric>{segment="..."}.
let passedMetric: i32 = -1;
let droppedMetric: i32 = -1;

/**
 * The SDK's ContextFactory makes one PayloadTypes per segment: it reads the config with
 * readConfig, refuses a bad one with the message naming the key, and keeps the object made by
 * newContext in `this.contexts` until the segment goes.
 */
class PayloadTypeFilter extends ContextFactory<PayloadTypes, i64[]> {
  configureRoot(cfg: Config): Status {
    passedMetric = defineCounter("passed");
    droppedMetric = defineCounter("dropped");
    // Drop reasons of your own (docs/sdk.md, "Drop reasons"): codes from DropReason.FilterDefinedBase
    // (256) to 319, each named here, where the host reads the names once (a nameDropReason after
    // configureRoot aborts); unnamed, the proxy shows one as filter_256. DropClass.Discard marks the
    // filter's normal work (a duplicate), counted apart from drops. Import nameDropReason and
    // DropClass from the SDK, then:
    //   nameDropReason(DropReason.FilterDefinedBase, "too_late"); // pkt.drop(DropReason.FilterDefinedBase) counts as too_late
    //   nameDropReason(DropReason.FilterDefinedBase + 1, "duplicate", DropClass.Discard);
    cfg.rejectUnknown([]); // no module-wide settings
    return cfg.finish();
  }

  /** A segment's config: the payload types listed. */
  protected readConfig(cfg: Config): i64[] {
    cfg.rejectUnknown(["payloadTypes"]);
    const list = cfg.getIntArray("payloadTypes", 0, 127);
    if (list === null) {
      // absent (if the key was there but wrong, getIntArray already recorded why)
      cfg.fail("config key 'payloadTypes' is required: the RTP payload types (0-127) to pass");
      return [];
    }
    if (list.length == 0) cfg.fail("config key 'payloadTypes' must list at least one payload type");
    return list;
  }

  /** Called only for a config that passed. */
  protected newContext(id: u32, list: i64[], cfg: Config): PayloadTypes | null {
    const set = new PayloadTypes(id);
    for (let i = 0; i < list.length; i++) set.add(<u8>list[i]);
    return set;
  }

  onPacket(pkt: Packet): void {
    if (pkt.isRtcp || pkt.isUpstream) return; // not ours to judge: it passes
    const ctx = pkt.context;
    const set = this.contexts.get(ctx);
    if (set === null) return; // the host only sends contexts createContext accepted
    const ptr = pkt.ptr;
    const error = RtpPacket.validate(ptr, pkt.length);
    if (error != RtpError.None) {
      pkt.drop(<u32>error); // too short, not version 2, bad padding, ...
      metricAdd(droppedMetric, ctx);
      return;
    }
    if (set.has(RtpPacket.payloadType(ptr))) {
      metricAdd(passedMetric, ctx);
    } else {
      pkt.drop(DropReason.PayloadTypeNotAllowed);
      metricAdd(droppedMetric, ctx);
    }
  }
}

register(new PayloadTypeFilter());
