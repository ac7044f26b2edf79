// srtp: SRTP and SRTCP protect / unprotect per segment and per SSRC (RFC 3711, RFC 7714).
// Downstream packets are protected or unprotected as the segment's `direction` says; with a
// `reverseKey`, packets flowing upstream (RTCP feedback toward the sender) get the opposite
// transform with that key. Keys never leave this module's memory: they are not logged, not in
// errors, not in metrics and not in the hot-swap state (which carries only ROC, indexes and
// replay windows). README.md lists the config keys and drop reasons.
import {
  Config, ContextMap, DropReason, Filter, FilterPolicy, Packet, Status, StateReader, StateWriter,
  defineCounter, loadBe32, metricAdd, register, setError,
} from "../../../sdk/assembly";
import { PROTECT, SourceTable, SrtpContext, UNPROTECT, releaseContext, takeContext } from "./context";
import { decodeKey } from "./keys";
import { MAX_WINDOW, ReplayState } from "./replay";
import { Session } from "./session";
import { findSuite, suiteNames } from "./suites";
import { protectRtcp, protectRtp, resultLength, unprotectRtcp, unprotectRtp } from "./transform";

export * from "../../../sdk/assembly/exports";

const MAX_SOURCES = 1024;
const STATE_VERSION: u32 = 1;
/** Decoded master key || salt, wiped after the session keys are derived. */
const master = memory.data(64);

let mRtpProtected: i32 = -1;
let mRtpUnprotected: i32 = -1;
let mRtcpProtected: i32 = -1;
let mRtcpUnprotected: i32 = -1;

/** Decodes and derives one session from config key `keyName`; false (with cfg.fail) on error. */
function deriveSession(cfg: Config, keyName: string, suiteName: string, session: Session): bool {
  const suite = findSuite(suiteName);
  if (suite === null) {
    cfg.fail("config key 'suite' must be one of " + suiteNames());
    return false;
  }
  const want = suite.keyLength + suite.saltLength;
  const got = decodeKey(cfg.getString(keyName, ""), master, 64);
  let ok = false;
  if (got == -3) cfg.fail("config key '" + keyName + "': an MKI is not supported");
  else if (got < 0) cfg.fail("config key '" + keyName + "' must be 'inline:' + base64, or hex");
  else if (got != want) {
    cfg.fail("config key '" + keyName + "' must hold " + want.toString() + " bytes (master key and salt) for " +
      suite.name + ", it holds " + got.toString());
  } else {
    ok = session.derive(suite, master);
    if (!ok) cfg.fail("key derivation failed for config key '" + keyName + "'");
  }
  memory.fill(master, 0, 64);
  return ok;
}

/** The contexts a batch touched, whose counts are reported at its end (a batch holds at most 1024). */
const batchContexts = new StaticArray<SrtpContext | null>(1024);

function flushCounts(c: SrtpContext): void {
  if (c.rtpProtected != 0) metricAdd(mRtpProtected, c.id, c.rtpProtected);
  if (c.rtpUnprotected != 0) metricAdd(mRtpUnprotected, c.id, c.rtpUnprotected);
  if (c.rtcpProtected != 0) metricAdd(mRtcpProtected, c.id, c.rtcpProtected);
  if (c.rtcpUnprotected != 0) metricAdd(mRtcpUnprotected, c.id, c.rtcpUnprotected);
  c.rtpProtected = 0;
  c.rtpUnprotected = 0;
  c.rtcpProtected = 0;
  c.rtcpUnprotected = 0;
  c.touched = false;
}

class SrtpFilter extends Filter {
  private contexts: ContextMap<SrtpContext> = new ContextMap<SrtpContext>(64);

  /** Without this stage, protect would send plaintext and unprotect would pass unauthenticated packets. */
  policy(): i32 {
    return FilterPolicy.MustFailClosed;
  }

  configureRoot(cfg: Config): Status {
    mRtpProtected = defineCounter("rtp_protected");
    mRtpUnprotected = defineCounter("rtp_unprotected");
    mRtcpProtected = defineCounter("rtcp_protected");
    mRtcpUnprotected = defineCounter("rtcp_unprotected");
    cfg.rejectUnknown([]);
    return cfg.finish();
  }

  createContext(ctx: u32, cfg: Config): Status {
    cfg.rejectUnknown(["direction", "suite", "key", "reverseKey", "replayWindow", "nackHistory", "maxSources", "ssrcs"]);
    const directionName = cfg.getString("direction", "");
    const suiteName = cfg.getString("suite", "AES_CM_128_HMAC_SHA1_80");
    const window = <i32>cfg.getInt("replayWindow", 128, 64, MAX_WINDOW);
    const nackHistory = <i32>cfg.getInt("nackHistory", 0, 0, MAX_WINDOW);
    const maxSources = <i32>cfg.getInt("maxSources", 16, 1, MAX_SOURCES);
    const ssrcs = cfg.getIntArray("ssrcs", 0, 0xffffffff);
    if (!cfg.has("key")) cfg.fail("config key 'key' is required");
    let direction = PROTECT;
    if (directionName == "unprotect") direction = UNPROTECT;
    else if (directionName != "protect") cfg.fail("config key 'direction' must be 'protect' or 'unprotect'");
    if (nackHistory > window) {
      // RFC 4588 retransmissions reuse old indexes: a window smaller than the NACK history would drop them as replays
      cfg.fail("config key 'replayWindow' (" + window.toString() + ") must be at least 'nackHistory' (" + nackHistory.toString() + ")");
    }
    if (cfg.ok && this.contexts.get(ctx) !== null) {
      setError("context " + ctx.toString() + " already exists");
      return Status.BadArgument;
    }
    const status0 = cfg.finish();
    if (status0 != Status.Ok) return status0;

    const c = takeContext(maxSources);
    const ok = deriveSession(cfg, "key", suiteName, c.forward) &&
      (!cfg.has("reverseKey") || deriveSession(cfg, "reverseKey", suiteName, c.reverse));
    const status = cfg.finish();
    if (!ok || status != Status.Ok) {
      releaseContext(c);
      return status != Status.Ok ? status : Status.BadConfig;
    }
    c.id = ctx;
    c.direction = direction;
    c.hasReverse = cfg.has("reverseKey");
    c.replayWindow = window;
    const n = ssrcs === null ? 0 : ssrcs.length;
    c.allowed = new StaticArray<u32>(n);
    for (let i = 0; i < n; i++) c.allowed[i] = <u32>ssrcs![i];
    this.contexts.set(ctx, c);
    return Status.Ok;
  }

  destroyContext(ctx: u32): void {
    const c = this.contexts.delete(ctx);
    if (c !== null) releaseContext(c);
  }

  /** Runs every packet, then reports each touched context's counts once: one host call per batch, not per packet. */
  onBatch(count: i32): void {
    let touched = 0;
    for (let i = 0; i < count; i++) {
      const p = Packet.at(i);
      const c = this.contexts.get(p.context);
      if (c === null) continue;
      if (!c.touched) {
        c.touched = true;
        if (touched < count) unchecked((batchContexts[touched++] = c));
      }
      this.transform(p, c);
    }
    for (let i = 0; i < touched; i++) flushCounts(unchecked(batchContexts[i])!);
  }

  private transform(p: Packet, c: SrtpContext): void {
    let session = c.forward;
    let table = c.forwardSources;
    let direction = c.direction;
    if (p.isUpstream) {
      if (!c.hasReverse) return; // feedback passes untouched unless a reverse key is set
      session = c.reverse;
      table = c.reverseSources;
      direction = c.direction == PROTECT ? UNPROTECT : PROTECT;
    }
    const ptr = p.ptr;
    const len = p.length;
    const rtcp = p.isRtcp;
    const minimum = rtcp ? 8 : 12;
    if (len < minimum) {
      p.drop(direction == UNPROTECT ? DropReason.SrtpTooShort : DropReason.TooShort);
      return;
    }
    const ssrc = loadBe32(ptr + (rtcp ? 4 : 8));
    if (!c.admits(ssrc)) {
      p.drop(DropReason.SrtpUnknownSsrc);
      return;
    }
    const room = <i32>(p.slotEnd - ptr);
    let known = table.find(ssrc);
    let reason: u32;
    if (direction == PROTECT) {
      const s = known !== null ? known : table.claim(ssrc);
      s.lastSeenUs = p.arrivalUs; // the descriptor's clock: no host call per packet
      reason = rtcp ? protectRtcp(session, s, ptr, len, room) : protectRtp(session, s, ptr, len, room);
      if (reason == 0) {
        if (rtcp) c.rtcpProtected++;
        else c.rtpProtected++;
      }
    } else {
      const s = known !== null ? known : table.scratch;
      if (known === null) s.reset(ssrc);
      reason = rtcp
        ? unprotectRtcp(session, s, known !== null, ptr, len, c.replayWindow)
        : unprotectRtp(session, s, known !== null, ptr, len, c.replayWindow);
      if (reason == 0) {
        s.lastSeenUs = p.arrivalUs;
        if (known === null) table.adopt(s); // a new source counts only once it authenticated
        if (rtcp) c.rtcpUnprotected++;
        else c.rtpUnprotected++;
      }
    }
    if (reason != 0) p.drop(reason);
    else p.resize(ptr, resultLength);
  }

  exportState(ctx: u32, out: StateWriter): Status {
    const c = this.contexts.get(ctx);
    if (c === null) return Status.BadArgument;
    out.u32(STATE_VERSION);
    writeTable(c.forwardSources, out);
    writeTable(c.reverseSources, out);
    return Status.Ok;
  }

  importState(ctx: u32, blob: StateReader): Status {
    const c = this.contexts.get(ctx);
    if (c === null) return Status.BadArgument;
    if (blob.length == 0) return Status.Ok;
    if (blob.u32() != STATE_VERSION) {
      setError("srtp state blob of an unknown version");
      return Status.BadState;
    }
    if (!readTable(c.forwardSources, blob) || !readTable(c.reverseSources, blob)) {
      c.forwardSources.clear();
      c.reverseSources.clear();
      setError("srtp state blob is truncated");
      return Status.BadState;
    }
    return Status.Ok;
  }
}

// State blob, per table: u32 count, then per source: ssrc, roc, highestSeq (u16), flags (u8:
// rtpSeen, started, rtcpSeen), highest (u64), rtcpHighest (u64), rtcpNextIndex, the two windows.
function writeTable(t: SourceTable, out: StateWriter): void {
  out.u32(<u32>t.count());
  for (let i = 0; i < t.capacity; i++) {
    const s = t.states[i];
    if (!s.used) continue;
    out.u32(s.ssrc);
    out.u32(s.roc);
    out.u16(s.highestSeq);
    out.u8(<u8>((s.rtpSeen ? 1 : 0) | (s.started ? 2 : 0) | (s.rtcpSeen ? 4 : 0)));
    out.u64(s.highest);
    out.u64(s.rtcpHighest);
    out.u32(s.rtcpNextIndex);
    for (let w = 0; w < s.bits.length; w++) out.u64(s.bits[w]);
    for (let w = 0; w < s.rtcpBits.length; w++) out.u64(s.rtcpBits[w]);
  }
}

function readTable(t: SourceTable, blob: StateReader): bool {
  const n = <i32>blob.u32();
  for (let i = 0; i < n; i++) {
    const ssrc = blob.u32();
    if (blob.overflow) return false;
    // a smaller table than before keeps the first sources; the rest start again when they authenticate
    const s: ReplayState = i < t.capacity ? t.claim(ssrc) : t.scratch;
    s.reset(ssrc);
    s.roc = blob.u32();
    s.highestSeq = blob.u16();
    const flags = blob.u8();
    s.rtpSeen = (flags & 1) != 0;
    s.started = (flags & 2) != 0;
    s.rtcpSeen = (flags & 4) != 0;
    s.highest = blob.u64();
    s.rtcpHighest = blob.u64();
    s.rtcpNextIndex = blob.u32();
    for (let w = 0; w < s.bits.length; w++) s.bits[w] = blob.u64();
    for (let w = 0; w < s.rtcpBits.length; w++) s.rtcpBits[w] = blob.u64();
    if (i >= t.capacity) t.scratch.used = false;
  }
  return !blob.overflow;
}

register(new SrtpFilter());
