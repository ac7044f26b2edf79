// The congestion filter's settings: built-in defaults, overridden key by key by the root config,
// then by each context's config. Every limit is checked here, at config time, never per packet.
import { Config, numberText } from "../../../sdk/assembly";

export const MODE_SENDER = 0;
export const MODE_RECEIVER = 1;

/** SSRCs followed per segment (audio and video, a few simulcast layers); a new one beyond them takes the place of one gone silent (SOURCE_IDLE_US). */
export const MAX_SOURCES = 8;
/** A followed SSRC silent this long gives its place to a new one (while all are busier, a new one is not followed). */
export const SOURCE_IDLE_US: i64 = 2_000_000;

/** The index of the smallest of times[0..n): the source silent longest, whose place a new SSRC may take. */
export function leastRecent(times: StaticArray<i64>, n: i32): i32 {
  let at = 0;
  for (let i = 1; i < n; i++) if (unchecked(times[i]) < unchecked(times[at])) at = i;
  return at;
}

/**
 * priority.renumber when not set: off. On, it needs the stream's RTX payload types
 * (rtxPayloadTypes, [] for none): retransmissions carry the origin's numbers (README "Renumbering").
 */
export const RENUMBER_DEFAULT = false;

/** The most H.264 payload types one segment lists. */
export const MAX_H264_TYPES = 8;

const KEYS: string[] = [
  "mode", "extensionId", "startBps", "minBps", "maxBps", "startup", "pacing", "priority", "signal", "circuitBreaker",
  "feedbackIntervalMs", "stripExtension",
];
/** Keys only the root config may set: they size what the whole instance shares. */
const ROOT_ONLY_KEYS: string[] = ["bufferBudgetKiB"];
const ROOT_KEYS: string[] = KEYS.concat(ROOT_ONLY_KEYS);
const STARTUP_KEYS: string[] = ["enabled", "growthPerSecond"];
const PACING_KEYS: string[] = ["factor", "burstMs", "maxQueuePackets", "maxQueueMs"];
const PRIORITY_KEYS: string[] = ["h264PayloadTypes", "nonReferenceMs", "referenceMs", "renumber", "rtxPayloadTypes"];
const SIGNAL_KEYS: string[] = ["tmmbr", "remb", "intervalMs"];
const BREAKER_KEYS: string[] = ["enabled", "factor", "intervals", "cooldownSeconds"];

export class Settings {
  mode: i32 = MODE_SENDER;
  extensionId: i32 = 5;
  startBps: f64 = 1_000_000;
  /** Whether startBps was given (root or context config): a refusal says when it was the default. */
  startGiven: bool = false;
  minBps: f64 = 150_000;
  maxBps: f64 = 10_000_000;
  startupEnabled: bool = true;
  startupGrowth: f64 = 2;
  pacingFactor: f64 = 1.1;
  burstMs: f64 = 10;
  maxQueuePackets: i32 = 128;
  maxQueueMs: f64 = 300;
  h264Types: StaticArray<i32> = new StaticArray<i32>(0);
  /** RTX (RFC 4588) payload types whose original sequence number renumbering translates. */
  rtxTypes: StaticArray<i32> = new StaticArray<i32>(0);
  /** Whether rtxPayloadTypes was given (an empty list says: this stream has no RTX). */
  rtxGiven: bool = false;
  nonReferenceMs: f64 = 30;
  referenceMs: f64 = 120;
  /** Close the gaps deliberate drops leave in the sequence numbers (renumber.ts). */
  renumber: bool = RENUMBER_DEFAULT;
  tmmbr: bool = true;
  remb: bool = true;
  signalIntervalMs: i32 = 1000;
  breakerEnabled: bool = true;
  breakerFactor: f64 = 10;
  breakerIntervals: i32 = 5;
  breakerCooldownS: i32 = 30;
  feedbackIntervalMs: i32 = 50;
  stripExtension: bool = true;

  copyFrom(o: Settings): void {
    this.mode = o.mode;
    this.extensionId = o.extensionId;
    this.startBps = o.startBps;
    this.startGiven = o.startGiven;
    this.minBps = o.minBps;
    this.maxBps = o.maxBps;
    this.startupEnabled = o.startupEnabled;
    this.startupGrowth = o.startupGrowth;
    this.pacingFactor = o.pacingFactor;
    this.burstMs = o.burstMs;
    this.maxQueuePackets = o.maxQueuePackets;
    this.maxQueueMs = o.maxQueueMs;
    this.h264Types = o.h264Types;
    this.rtxTypes = o.rtxTypes;
    this.rtxGiven = o.rtxGiven;
    this.nonReferenceMs = o.nonReferenceMs;
    this.referenceMs = o.referenceMs;
    this.renumber = o.renumber;
    this.tmmbr = o.tmmbr;
    this.remb = o.remb;
    this.signalIntervalMs = o.signalIntervalMs;
    this.breakerEnabled = o.breakerEnabled;
    this.breakerFactor = o.breakerFactor;
    this.breakerIntervals = o.breakerIntervals;
    this.breakerCooldownS = o.breakerCooldownS;
    this.feedbackIntervalMs = o.feedbackIntervalMs;
    this.stripExtension = o.stripExtension;
  }

  /** Overrides the keys `cfg` sets; problems are recorded in `cfg`, naming the key. `root`: the filter's root config. */
  apply(cfg: Config, root: bool): void {
    cfg.rootOnly(ROOT_ONLY_KEYS, root);
    cfg.rejectUnknown(root ? ROOT_KEYS : KEYS);
    if (cfg.has("mode")) {
      const mode = cfg.getString("mode", "");
      if (mode == "sender") this.mode = MODE_SENDER;
      else if (mode == "receiver") this.mode = MODE_RECEIVER;
      else cfg.fail("config key 'mode' must be 'sender' or 'receiver'");
    }
    // RFC 8285 4.2: one-byte IDs 1-14 (0 is padding, 15 reserved)
    this.extensionId = <i32>cfg.getInt("extensionId", this.extensionId, 1, 14);
    if (cfg.has("startBps")) this.startGiven = true;
    this.startBps = cfg.getNumber("startBps", this.startBps, 10_000, 10_000_000_000);
    this.minBps = cfg.getNumber("minBps", this.minBps, 10_000, 10_000_000_000);
    this.maxBps = cfg.getNumber("maxBps", this.maxBps, 10_000, 10_000_000_000);
    const startup = cfg.getObject("startup");
    if (startup !== null) {
      startup.rejectUnknown(STARTUP_KEYS);
      this.startupEnabled = startup.getBool("enabled", this.startupEnabled);
      // above the 12% a second of the steady increase, and at most 4x: the increase is capped at
      // 1.5 x what the receiver acknowledged anyway
      this.startupGrowth = startup.getNumber("growthPerSecond", this.startupGrowth, 1.2, 4);
    }
    const pacing = cfg.getObject("pacing");
    if (pacing !== null) {
      pacing.rejectUnknown(PACING_KEYS);
      this.pacingFactor = pacing.getNumber("factor", this.pacingFactor, 1, 10);
      this.burstMs = pacing.getNumber("burstMs", this.burstMs, 1, 1000);
      this.maxQueuePackets = <i32>pacing.getInt("maxQueuePackets", this.maxQueuePackets, 8, 4096);
      this.maxQueueMs = pacing.getNumber("maxQueueMs", this.maxQueueMs, 10, 10_000);
    }
    const priority = cfg.getObject("priority");
    if (priority !== null) {
      priority.rejectUnknown(PRIORITY_KEYS);
      const types = payloadTypes(cfg, priority, "h264PayloadTypes");
      if (types !== null) this.h264Types = types;
      const rtx = payloadTypes(cfg, priority, "rtxPayloadTypes");
      if (rtx !== null) {
        this.rtxTypes = rtx;
        this.rtxGiven = true;
      }
      this.nonReferenceMs = priority.getNumber("nonReferenceMs", this.nonReferenceMs, 0, 10_000);
      this.referenceMs = priority.getNumber("referenceMs", this.referenceMs, 0, 10_000);
      this.renumber = priority.getBool("renumber", this.renumber);
    }
    const signal = cfg.getObject("signal");
    if (signal !== null) {
      signal.rejectUnknown(SIGNAL_KEYS);
      this.tmmbr = signal.getBool("tmmbr", this.tmmbr);
      this.remb = signal.getBool("remb", this.remb);
      this.signalIntervalMs = <i32>signal.getInt("intervalMs", this.signalIntervalMs, 100, 60_000);
    }
    const breaker = cfg.getObject("circuitBreaker");
    if (breaker !== null) {
      breaker.rejectUnknown(BREAKER_KEYS);
      this.breakerEnabled = breaker.getBool("enabled", this.breakerEnabled);
      this.breakerFactor = breaker.getNumber("factor", this.breakerFactor, 1, 1000);
      this.breakerIntervals = <i32>breaker.getInt("intervals", this.breakerIntervals, 1, 600);
      this.breakerCooldownS = <i32>breaker.getInt("cooldownSeconds", this.breakerCooldownS, 0, 86_400);
    }
    this.feedbackIntervalMs = <i32>cfg.getInt("feedbackIntervalMs", this.feedbackIntervalMs, 10, 1000);
    this.stripExtension = cfg.getBool("stripExtension", this.stripExtension);
  }

  /** Rules across keys, checked once the context's config is complete. */
  check(cfg: Config): void {
    if (this.minBps > this.maxBps) cfg.fail("config key 'minBps' (" + numberText(this.minBps) + ") is above 'maxBps' (" + numberText(this.maxBps) + ")");
    if (this.startBps < this.minBps || this.startBps > this.maxBps) {
      // the values, and whether startBps is the default: a 'maxBps' set alone below 1 Mbit/s is refused here
      cfg.fail("config key 'startBps' (" + numberText(this.startBps) + (this.startGiven ? "" : ", the default: set it too")
        + ") must lie between 'minBps' (" + numberText(this.minBps) + ") and 'maxBps' (" + numberText(this.maxBps) + ")");
    }
    if (this.nonReferenceMs > this.referenceMs) cfg.fail("config key 'priority.nonReferenceMs' is above 'priority.referenceMs': non-reference frames must go first");
    if (this.renumber && !this.rtxGiven) {
      cfg.fail("config key 'priority.renumber' needs 'priority.rtxPayloadTypes': list the stream's RTX payload types ([] when it has none); "
        + "an RTX packet not known as one would reach the receiver with the origin's number for the packet it repeats");
    }
    for (let i = 0; i < this.rtxTypes.length; i++) {
      if (this.isH264(unchecked(this.rtxTypes[i]))) cfg.fail("config key 'priority.rtxPayloadTypes' lists " + unchecked(this.rtxTypes[i]).toString() + ", which 'priority.h264PayloadTypes' lists too");
    }
  }

  isRtx(pt: i32): bool {
    const t = this.rtxTypes;
    for (let i = 0; i < t.length; i++) if (unchecked(t[i]) == pt) return true;
    return false;
  }

  isH264(pt: i32): bool {
    const t = this.h264Types;
    for (let i = 0; i < t.length; i++) if (unchecked(t[i]) == pt) return true;
    return false;
  }
}

/** A list of payload types under `priority` (at most MAX_H264_TYPES), or null when it is not given. */
function payloadTypes(cfg: Config, priority: Config, key: string): StaticArray<i32> | null {
  const types = priority.getIntArray(key, 0, 127);
  if (types === null) return null;
  if (types.length > MAX_H264_TYPES) cfg.fail("config key 'priority." + key + "' lists more than " + MAX_H264_TYPES.toString() + " payload types");
  const out = new StaticArray<i32>(min(types.length, MAX_H264_TYPES));
  for (let i = 0; i < out.length; i++) out[i] = <i32>types[i];
  return out;
}
