// The replicate filter's settings: built-in defaults, overridden key by key by the root config,
// then by each context's config. Every limit is checked here, at config time, never per packet.
// README.md "Config" is the user's view of the same rules.
import { Config, MAX_LEGS } from "../../../sdk/assembly";

/** Legs one merge may listen on (ST 2022-7 names two; four leaves room for a third network). */
export const MAX_PATHS = 4;
export const MAX_BUFFER_MS = 5000;
export const MIN_HELD = 16;
export const MAX_HELD = 4096;
/** RFC 3550 A.1: a sequence jump beyond this is a new stream, not loss. */
export const MAX_DROPOUT = 3000;

const KEYS: string[] = ["merge", "copyToLegs", "rewrite", "feedback"];
/** `feedback` is a segment's own (the feedback part has no root defaults). */
const ROOT_SHARED_KEYS: string[] = ["merge", "copyToLegs", "rewrite"];
const MERGE_KEYS: string[] = ["legs", "bufferMs", "maxHeld"];
const REWRITE_KEYS: string[] = ["ssrc", "payloadType", "continuity"];
/** Keys only the root config may set: they size what the whole instance shares. */
const ROOT_ONLY_KEYS: string[] = ["bufferBudgetKiB"];
const ROOT_KEYS: string[] = ROOT_SHARED_KEYS.concat(ROOT_ONLY_KEYS);

export class Settings {
  /** Merge the paths (a context sets `merge`; the root's `merge` only gives defaults). */
  merge: bool = false;
  mergeLegs: i32[] = [0, 1];
  bufferMs: i32 = 50;
  maxHeld: i32 = 256;
  copyToLegs: i32[] = [];
  rewrite: bool = false;
  /** The output SSRC (-1: the first input SSRC). */
  rewriteSsrc: i64 = -1;
  /** The output payload type (-1: unchanged). */
  rewritePayloadType: i32 = -1;
  continuity: bool = true;

  copyFrom(o: Settings): void {
    this.merge = o.merge;
    this.mergeLegs = o.mergeLegs.slice(0);
    this.bufferMs = o.bufferMs;
    this.maxHeld = o.maxHeld;
    this.copyToLegs = o.copyToLegs.slice(0);
    this.rewrite = o.rewrite;
    this.rewriteSsrc = o.rewriteSsrc;
    this.rewritePayloadType = o.rewritePayloadType;
    this.continuity = o.continuity;
  }

  /**
   * Overrides the keys `cfg` sets; problems are recorded in `cfg`. `root`: the root config, which
   * may also set ROOT_ONLY_KEYS (read by the caller), and whose `merge` and `rewrite` objects are
   * defaults, not a request to merge or rewrite. The `feedback` key is the feedback part's.
   */
  apply(cfg: Config, root: bool): void {
    cfg.rootOnly(ROOT_ONLY_KEYS, root);
    cfg.rejectUnknown(root ? ROOT_KEYS : KEYS);
    const merge = cfg.getObject("merge");
    if (merge !== null) {
      if (!root) this.merge = true;
      merge.rejectUnknown(MERGE_KEYS);
      const legs = merge.getIntArray("legs", 0, MAX_LEGS - 1);
      if (legs !== null) this.mergeLegs = toI32(legs);
      this.bufferMs = <i32>merge.getInt("bufferMs", this.bufferMs, 1, MAX_BUFFER_MS);
      this.maxHeld = <i32>merge.getInt("maxHeld", this.maxHeld, MIN_HELD, MAX_HELD);
    }
    const copies = cfg.getIntArray("copyToLegs", 1, MAX_LEGS - 1);
    if (copies !== null) this.copyToLegs = toI32(copies);
    const rewrite = cfg.getObject("rewrite");
    if (rewrite !== null) {
      if (!root) this.rewrite = true;
      rewrite.rejectUnknown(REWRITE_KEYS);
      this.rewriteSsrc = rewrite.getInt("ssrc", this.rewriteSsrc, 0, 0xffffffff);
      this.rewritePayloadType = <i32>rewrite.getInt("payloadType", this.rewritePayloadType, 0, 127);
      if (this.rewritePayloadType >= 72 && this.rewritePayloadType <= 76) {
        cfg.fail("config key 'rewrite.payloadType' must not be 72-76 (read as RTCP on the wire, RFC 5761)");
      }
      this.continuity = rewrite.getBool("continuity", this.continuity);
    }
  }

  /** The rules across keys, for a context's merged settings. `feedback`: the context sets it. */
  check(cfg: Config, feedback: bool): void {
    if (!this.merge && this.copyToLegs.length == 0 && !this.rewrite && !feedback) {
      cfg.fail("config needs at least one of 'merge', 'copyToLegs', 'rewrite', 'feedback'");
    }
    const legs = this.mergeLegs;
    if (this.merge) {
      if (legs.length < 2 || legs.length > MAX_PATHS) {
        cfg.fail("config key 'merge.legs' must list 2 to " + MAX_PATHS.toString() + " legs (the paths carrying the same stream)");
      } else if (hasRepeat(legs)) {
        cfg.fail("config key 'merge.legs' names a leg twice");
      }
    }
    const copies = this.copyToLegs;
    if (copies.length > MAX_LEGS - 1 || hasRepeat(copies)) {
      cfg.fail("config key 'copyToLegs' must name each leg (1-" + (MAX_LEGS - 1).toString() + ") at most once");
    }
    for (let k = 0; this.merge && k < copies.length; k++) {
      if (legs.includes(unchecked(copies[k]))) {
        cfg.fail("config key 'copyToLegs' names leg " + unchecked(copies[k]).toString() + ", which 'merge.legs' receives on");
      }
    }
    // the host says how many legs the segment has (ABI 1.7; 0: not said): a leg it lacks never
    // delivers a path, nor takes a copy
    for (let k = 0; this.merge && k < legs.length; k++) cfg.requireLeg("merge.legs", unchecked(legs[k]));
    for (let k = 0; k < copies.length; k++) cfg.requireLeg("copyToLegs", unchecked(copies[k]));
  }
}

function toI32(a: i64[]): i32[] {
  const out = new Array<i32>(a.length);
  for (let k = 0; k < a.length; k++) unchecked((out[k] = <i32>unchecked(a[k])));
  return out;
}

function hasRepeat(a: i32[]): bool {
  for (let j = 0; j < a.length; j++) {
    for (let k = j + 1; k < a.length; k++) if (unchecked(a[j]) == unchecked(a[k])) return true;
  }
  return false;
}
