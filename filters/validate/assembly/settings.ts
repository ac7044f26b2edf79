// The validate filter's settings: built-in defaults, overridden key by key by the root config,
// then by each context's config. Validation happens here, at config time, never per packet.
import { Config } from "../../../sdk/assembly";

/** Most SSRCs an allowedSsrcs list may name. */
export const MAX_ALLOWED_SSRCS: i32 = 64;
/** Most sources one context may track. */
export const MAX_SOURCES_LIMIT: i32 = 1024;

const KEYS: string[] = [
  "probation", "maxDropout", "maxMisorder", "allowedSsrcs", "allowedPayloadTypes", "minSize",
  "maxSize", "rate", "maxSources", "sourceTimeoutMs", "validateRtcp", "reducedSizeRtcp",
  "holdPackets", "holdTimeoutMs", "srtp",
];
/** Keys only the root config may set: they size what the whole instance shares. */
export const ROOT_ONLY_KEYS: string[] = ["holdStorePackets"];
const ROOT_KEYS: string[] = KEYS.concat(ROOT_ONLY_KEYS);
const RATE_KEYS: string[] = ["packetsPerSecond", "bitsPerSecond", "burstPackets", "burstBits"];

/** Which direction's packets reach the filter SRTP/SRTCP-protected (the `srtp` key). */
export enum Protected {
  None = 0,
  Downstream = 1,
  Upstream = 2,
  /** Before an srtp stage that unprotects with a reverseKey: the sender's packets, and the feedback it protected on the way back. */
  Both = 3,
}
const PROTECTED_NAMES: string[] = ["none", "downstream", "upstream", "both"];

export class Settings {
  /** RFC 3550 A.1 MIN_SEQUENTIAL: in-order packets needed before a new source is valid. */
  probation: i32 = 2;
  /** RFC 3550 A.1 MAX_DROPOUT: largest forward jump still taken as in order. */
  maxDropout: i32 = 3000;
  /** RFC 3550 A.1 MAX_MISORDER: largest backward step taken as reordering. */
  maxMisorder: i32 = 100;
  /** Allowed SSRCs: the first ssrcCount entries; 0 means any SSRC. */
  ssrcCount: i32 = 0;
  ssrcs: StaticArray<u32> = new StaticArray<u32>(MAX_ALLOWED_SSRCS);
  /** Allowed payload types as a 128-bit set; ptAny means no restriction. */
  ptAny: bool = true;
  ptLow: u64 = 0;
  ptHigh: u64 = 0;
  minSize: i32 = 12;
  /** 0: no limit. */
  maxSize: i32 = 0;
  /** Per-SSRC token buckets; a rate of 0 disables that bucket, a burst of 0 means one second's worth. */
  packetsPerSecond: i64 = 0;
  bitsPerSecond: i64 = 0;
  burstPackets: i64 = 0;
  burstBits: i64 = 0;
  maxSources: i32 = 16;
  /** A full table may recycle a source silent for this long; 0 never recycles. */
  sourceTimeoutMs: i64 = 30000;
  validateRtcp: bool = true;
  /** Accept RFC 5506 reduced-size RTCP (a lone feedback packet) instead of strict A.2 compounds. */
  reducedSizeRtcp: bool = false;
  /** Probation packets held per source until it validates; 0 drops them as RFC 3550 A.1 does. */
  holdPackets: i32 = 8;
  /** Held packets of a source that has not validated are dropped after this long. */
  holdTimeoutMs: i64 = 1000;
  /** Packets of this direction are SRTP/SRTCP here: check only what is in clear. */
  srtp: Protected = Protected.None;

  copyFrom(o: Settings): void {
    this.probation = o.probation;
    this.maxDropout = o.maxDropout;
    this.maxMisorder = o.maxMisorder;
    this.ssrcCount = o.ssrcCount;
    for (let i = 0; i < o.ssrcCount; i++) unchecked((this.ssrcs[i] = o.ssrcs[i]));
    this.ptAny = o.ptAny;
    this.ptLow = o.ptLow;
    this.ptHigh = o.ptHigh;
    this.minSize = o.minSize;
    this.maxSize = o.maxSize;
    this.packetsPerSecond = o.packetsPerSecond;
    this.bitsPerSecond = o.bitsPerSecond;
    this.burstPackets = o.burstPackets;
    this.burstBits = o.burstBits;
    this.maxSources = o.maxSources;
    this.sourceTimeoutMs = o.sourceTimeoutMs;
    this.validateRtcp = o.validateRtcp;
    this.reducedSizeRtcp = o.reducedSizeRtcp;
    this.holdPackets = o.holdPackets;
    this.holdTimeoutMs = o.holdTimeoutMs;
    this.srtp = o.srtp;
  }

  /**
   * Overrides the keys `cfg` sets; problems are recorded in `cfg` (see Config.finish). `root`:
   * this is the root config, which may also set ROOT_ONLY_KEYS (read by the caller).
   */
  apply(cfg: Config, root: bool): void {
    cfg.rootOnly(ROOT_ONLY_KEYS, root);
    cfg.rejectUnknown(root ? ROOT_KEYS : KEYS);
    this.probation = <i32>cfg.getInt("probation", this.probation, 0, 255);
    this.maxDropout = <i32>cfg.getInt("maxDropout", this.maxDropout, 1, 65535);
    this.maxMisorder = <i32>cfg.getInt("maxMisorder", this.maxMisorder, 0, 65535);
    this.applySsrcs(cfg);
    this.applyPayloadTypes(cfg);
    this.minSize = <i32>cfg.getInt("minSize", this.minSize, 12, 65535);
    this.maxSize = <i32>cfg.getInt("maxSize", this.maxSize, 0, 65535);
    const rate = cfg.getObject("rate");
    if (rate !== null) {
      rate.rejectUnknown(RATE_KEYS);
      this.packetsPerSecond = rate.getInt("packetsPerSecond", this.packetsPerSecond, 0, 10_000_000);
      this.bitsPerSecond = rate.getInt("bitsPerSecond", this.bitsPerSecond, 0, 1_000_000_000_000);
      this.burstPackets = rate.getInt("burstPackets", this.burstPackets, 0, 10_000_000);
      this.burstBits = rate.getInt("burstBits", this.burstBits, 0, 1_000_000_000_000);
    }
    this.maxSources = <i32>cfg.getInt("maxSources", this.maxSources, 1, MAX_SOURCES_LIMIT);
    this.sourceTimeoutMs = cfg.getInt("sourceTimeoutMs", this.sourceTimeoutMs, 0, 86_400_000);
    this.validateRtcp = cfg.getBool("validateRtcp", this.validateRtcp);
    this.reducedSizeRtcp = cfg.getBool("reducedSizeRtcp", this.reducedSizeRtcp);
    this.holdPackets = <i32>cfg.getInt("holdPackets", this.holdPackets, 0, 255);
    this.holdTimeoutMs = cfg.getInt("holdTimeoutMs", this.holdTimeoutMs, 1, 60_000);
    this.applyProtected(cfg);

    // Rules across keys, checked on the merged result.
    if (this.maxDropout + this.maxMisorder > 65536) {
      cfg.fail("config keys 'maxDropout' + 'maxMisorder' must not exceed 65536");
    }
    if (this.maxSize != 0 && this.maxSize < this.minSize) {
      cfg.fail("config key 'maxSize' must be 0 (no limit) or at least 'minSize'");
    }
  }

  /** Token-bucket depth in packets: the configured burst, or one second's worth. */
  @inline get effectiveBurstPackets(): i64 {
    return this.burstPackets > 0 ? this.burstPackets : this.packetsPerSecond;
  }

  /** Token-bucket depth in bits: the configured burst, or one second's worth. */
  @inline get effectiveBurstBits(): i64 {
    return this.burstBits > 0 ? this.burstBits : this.bitsPerSecond;
  }

  ssrcAllowed(ssrc: u32): bool {
    const n = this.ssrcCount;
    if (n == 0) return true;
    for (let i = 0; i < n; i++) if (unchecked(this.ssrcs[i]) == ssrc) return true;
    return false;
  }

  @inline payloadTypeAllowed(pt: u8): bool {
    if (this.ptAny) return true;
    const bits = pt < 64 ? this.ptLow : this.ptHigh;
    return ((bits >> (<u64>pt & 63)) & 1) != 0;
  }

  private applySsrcs(cfg: Config): void {
    const list = cfg.getIntArray("allowedSsrcs", 0, 0xffffffff);
    if (list === null) return;
    if (list.length == 0) {
      cfg.fail("config key 'allowedSsrcs' must not be empty (omit it to allow any SSRC)");
      return;
    }
    if (list.length > MAX_ALLOWED_SSRCS) {
      cfg.fail("config key 'allowedSsrcs' may name at most " + MAX_ALLOWED_SSRCS.toString() + " SSRCs");
      return;
    }
    for (let i = 0; i < list.length; i++) unchecked((this.ssrcs[i] = <u32>list[i]));
    this.ssrcCount = list.length;
  }

  private applyProtected(cfg: Config): void {
    const name = cfg.getString("srtp", PROTECTED_NAMES[this.srtp]);
    const i = PROTECTED_NAMES.indexOf(name);
    if (i < 0) cfg.fail("config key 'srtp' must be \"none\", \"downstream\", \"upstream\" or \"both\"");
    else this.srtp = <Protected>i;
  }

  private applyPayloadTypes(cfg: Config): void {
    const list = cfg.getIntArray("allowedPayloadTypes", 0, 127);
    if (list === null) return;
    if (list.length == 0) {
      cfg.fail("config key 'allowedPayloadTypes' must not be empty (omit it to allow any)");
      return;
    }
    let low: u64 = 0;
    let high: u64 = 0;
    for (let i = 0; i < list.length; i++) {
      const pt = <u64>list[i];
      if (pt < 64) low |= (<u64>1) << pt;
      else high |= (<u64>1) << (pt - 64);
    }
    this.ptAny = false;
    this.ptLow = low;
    this.ptHigh = high;
  }
}
