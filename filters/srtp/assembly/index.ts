// srtp: SRTP and SRTCP protect / unprotect per segment and per SSRC (RFC 3711, RFC 7714).
// Downstream packets are protected or unprotected as the segment's `direction` says; with a
// `reverseKey`, packets flowing upstream (RTCP feedback toward the sender) get the opposite
// transform with that key. Keys never leave this module's memory: they are not logged, not in
// errors, not in metrics and not in the hot-swap state (which carries ROC, indexes, replay
// windows and a one-way fingerprint of each key, derived with its own KDF label, to tell a re-key). README.md lists the config keys and drop reasons.
import {
  Config, DropClass, DropReason, FilterPolicy, Packet, SegmentFlag, Status, askForCheckpoint, defineCounter, loadBe32, metricAdd, nameDropReason, register,
  segmentFlags,
} from "../../../sdk/assembly";
import { ContextFactory } from "../../../sdk/assembly/context-factory";
import { CHECKPOINT_MOVEMENT, PROTECT, SrtpContext, UNPROTECT, takeContext } from "./context";
import { reportAuthFailures } from "./auth-failures";
import { decodeKey } from "./keys";
import { MAX_WINDOW } from "./replay";
import { maxSourcesInState } from "./state-blob";
import { Session } from "./session";
import { findSuite, suiteNames } from "./suites";
import { protectRtcp, protectRtp, resultLength, unprotectRtcp, unprotectRtp } from "./transform";

export * from "../../../sdk/assembly/exports";

const MAX_SOURCES = 1024;
/**
 * Feedback going upstream through an unprotect stage without a reverseKey: it would leave toward
 * the SRTP side in plaintext (receivers' CNAMEs, SSRCs, reception figures), which an SRTP sender
 * cannot use anyway (RFC 3711 section 3.4: SRTCP is mandatory with SRTP).
 */
const DROP_PLAIN_FEEDBACK: u32 = DropReason.FilterDefinedBase;
/** A config that gave a key the other role than it had (key-roles.ts). */
const DROP_KEY_ROLE_CHANGED: u32 = DropReason.FilterDefinedBase + 1;
/** Held sends (context.ts): a checkpoint restored so late that the sources' roll-over counters are unknown. */
const DROP_ROC_UNKNOWN: u32 = DropReason.FilterDefinedBase + 2;
/** A state blob of a newer build (a rollback), held as it came (context.ts). */
const DROP_STATE_TOO_NEW: u32 = DropReason.FilterDefinedBase + 3;
/** Decoded master key || salt, wiped after the session keys are derived. */
const master = memory.data(64);
/** The segment's `key` while its `reverseKey` is read, to refuse the same key both ways; wiped after. */
const forwardMaster = memory.data(64);
let forwardLength: i32 = 0;

let mRtpProtected: i32 = -1;
let mRtpUnprotected: i32 = -1;
let mRtcpProtected: i32 = -1;
let mRtcpUnprotected: i32 = -1;
let mRtpRepeatsRefused: i32 = -1;

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
  else if (got == -4) cfg.fail("config key '" + keyName + "': the lifetime after '|' must be 2^N or a decimal number of packets (RFC 4568 section 6.1), and nothing else follows it");
  else if (got == -5) cfg.fail("config key '" + keyName + "': the lifetime after '|' must be at most 2^48 packets (RFC 3711 section 9.2)");
  else if (got < 0) cfg.fail("config key '" + keyName + "' must be 'inline:' + base64, or hex");
  else if (got != want) {
    cfg.fail("config key '" + keyName + "' must hold " + want.toString() + " bytes (master key and salt) for " +
      suite.name + ", it holds " + got.toString());
  } else if (allZero(master, suite.keyLength)) {
    cfg.fail("config key '" + keyName + "' has a master key of zeros only: a placeholder, not a key");
  } else if (keyName == "reverseKey" && got == forwardLength && memory.compare(master, forwardMaster, <usize>got) == 0) {
    // one key both ways: a receiver's SSRC equal to the sender's would encrypt under the same keystream (RFC 3711 section 9.1)
    cfg.fail("config key 'reverseKey' is the same as 'key': each direction needs a key of its own");
  } else {
    ok = session.derive(suite, master);
    if (!ok) cfg.fail("key derivation failed for config key '" + keyName + "'");
    if (ok && keyName == "key") {
      memory.copy(forwardMaster, master, <usize>got);
      forwardLength = got;
    }
  }
  memory.fill(master, 0, 64);
  return ok;
}

function allZero(at: usize, length: i32): bool {
  for (let i = 0; i < length; i++) if (load<u8>(at + <usize>i) != 0) return false;
  return true;
}

/** The contexts a batch touched, whose counts are reported at its end (a batch holds at most 1024). */
const batchContexts = new StaticArray<SrtpContext | null>(1024);

function flushCounts(c: SrtpContext): void {
  if (c.rtpProtected != 0) metricAdd(mRtpProtected, c.id, c.rtpProtected);
  if (c.rtpUnprotected != 0) metricAdd(mRtpUnprotected, c.id, c.rtpUnprotected);
  if (c.rtcpProtected != 0) metricAdd(mRtcpProtected, c.id, c.rtcpProtected);
  if (c.rtcpUnprotected != 0) metricAdd(mRtcpUnprotected, c.id, c.rtcpUnprotected);
  if (c.rtpRepeatsRefused != 0) metricAdd(mRtpRepeatsRefused, c.id, c.rtpRepeatsRefused);
  c.rtpProtected = 0;
  c.rtpUnprotected = 0;
  c.rtcpProtected = 0;
  c.rtcpUnprotected = 0;
  c.rtpRepeatsRefused = 0;
  c.touched = false;
  reportAuthFailures(c);
}

/** One segment's config, read before anything is taken from the pool. */
class SrtpSettings {
  direction: i32 = PROTECT;
  suiteName: string = "";
  replayWindow: i32 = 128;
  maxSources: i32 = 16;
  ssrcs: i64[] | null = null;
  plainFeedback: bool = false;
}

class SrtpFilter extends ContextFactory<SrtpContext, SrtpSettings> {
  /** Without this stage, protect would send plaintext and unprotect would pass unauthenticated packets. */
  policy(): i32 {
    return FilterPolicy.MustFailClosed;
  }

  configureRoot(cfg: Config): Status {
    mRtpProtected = defineCounter("rtp_protected");
    mRtpUnprotected = defineCounter("rtp_unprotected");
    mRtcpProtected = defineCounter("rtcp_protected");
    mRtcpUnprotected = defineCounter("rtcp_unprotected");
    mRtpRepeatsRefused = defineCounter("rtp_repeats_refused");
    nameDropReason(DROP_PLAIN_FEEDBACK, "plain_feedback", DropClass.Drop);
    nameDropReason(DROP_KEY_ROLE_CHANGED, "key_role_changed", DropClass.Drop);
    nameDropReason(DROP_ROC_UNKNOWN, "roc_unknown", DropClass.Drop);
    nameDropReason(DROP_STATE_TOO_NEW, "state_too_new", DropClass.Drop);
    cfg.rejectUnknown([]);
    return cfg.finish();
  }

  protected readConfig(cfg: Config): SrtpSettings {
    cfg.rejectUnknown(["direction", "suite", "key", "reverseKey", "replayWindow", "nackHistory", "maxSources", "ssrcs", "plainFeedback"]);
    const s = parsed;
    s.direction = PROTECT;
    const directionName = cfg.getString("direction", "");
    s.suiteName = cfg.getString("suite", "AES_CM_128_HMAC_SHA1_80");
    s.replayWindow = <i32>cfg.getInt("replayWindow", 128, 64, MAX_WINDOW);
    const nackHistory = <i32>cfg.getInt("nackHistory", 0, 0, MAX_WINDOW);
    s.maxSources = <i32>cfg.getInt("maxSources", 16, 1, MAX_SOURCES);
    s.ssrcs = cfg.getIntArray("ssrcs", 0, 0xffffffff);
    s.plainFeedback = cfg.getBool("plainFeedback", false);
    if (!cfg.has("key")) cfg.fail("config key 'key' is required");
    if (directionName == "unprotect") s.direction = UNPROTECT;
    else if (directionName != "protect") cfg.fail("config key 'direction' must be 'protect' or 'unprotect'");
    else if ((segmentFlags() & SegmentFlag.TranslatedDestinations) != 0) {
      // the host rewrites a translated destination's copy after the chain: SSRC and payload type
      // are authenticated bytes (RFC 3711 section 4.2, RFC 7714 section 8.2), so its tag would never match
      cfg.fail("config key 'direction': protect in a segment with a destination of its own 'ssrc' or 'payloadType': the proxy rewrites " +
        "that destination's packets after the chain, and none would authenticate there; translate in a segment before the one that protects");
    }
    if (cfg.has("plainFeedback") && (s.direction != UNPROTECT || cfg.has("reverseKey"))) {
      // set where it does nothing, it would read as if feedback went out in the clear there
      cfg.fail("config key 'plainFeedback' applies only to direction 'unprotect' without a 'reverseKey'");
    }
    const fit = maxSourcesInState(s.replayWindow) / (cfg.has("reverseKey") ? 2 : 1);
    if (s.maxSources > fit) {
      // a state that does not fit the blob is not carried at all: a hot swap or restart would start protect again at ROC 0
      cfg.fail("config key 'maxSources' (" + s.maxSources.toString() + ") must be at most " + fit.toString() + " with replayWindow " +
        s.replayWindow.toString() + (cfg.has("reverseKey") ? " and a reverseKey" : "") + ": the state of more sources would not fit the state a hot swap or restart carries");
    }
    if (nackHistory > s.replayWindow) {
      // RFC 4588 retransmissions reuse old indexes: a window smaller than the NACK history would drop them as replays
      cfg.fail("config key 'replayWindow' (" + s.replayWindow.toString() + ") must be at least 'nackHistory' (" + nackHistory.toString() + ")");
    }
    return s;
  }

  protected newContext(id: u32, s: SrtpSettings, cfg: Config): SrtpContext | null {
    const c = takeContext(id, s.maxSources);
    const hasReverse = cfg.has("reverseKey");
    const derived = deriveSession(cfg, "key", s.suiteName, c.forward) &&
      (!hasReverse || deriveSession(cfg, "reverseKey", s.suiteName, c.reverse));
    memory.fill(forwardMaster, 0, 64);
    forwardLength = 0;
    if (!derived) {
      c.free(); // wipes what was derived
      return null; // deriveSession failed the config, naming the key
    }
    c.direction = s.direction;
    c.hasReverse = hasReverse;
    c.replayWindow = s.replayWindow;
    c.plainFeedback = s.plainFeedback;
    const ssrcs = s.ssrcs;
    const n = ssrcs === null ? 0 : ssrcs.length;
    c.allowed = new StaticArray<u32>(n);
    for (let i = 0; i < n; i++) c.allowed[i] = <u32>ssrcs![i];
    c.startClock();
    return c;
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
    if (c.held !== null) {
      p.drop(c.heldNewer ? DROP_STATE_TOO_NEW : DROP_KEY_ROLE_CHANGED);
      return;
    }
    let session = c.forward;
    let table = c.forwardSources;
    let direction = c.direction;
    if (p.isUpstream) {
      if (!c.hasReverse) {
        // without a reverse key: SRTCP toward a plain sender passes as it is; plain RTCP toward an
        // SRTP sender would leak, so it goes only if the config says so
        if (c.direction == UNPROTECT && !c.plainFeedback) p.drop(DROP_PLAIN_FEEDBACK);
        return;
      }
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
    if (!rtcp && <u32>load<u8>(ptr + 1) - 200 < 5) {
      // RTCP (SR .. APP) sent to the RTP port of a segment without rtcpMux: RTP payload types 72-76
      // with the marker bit are reserved so that the two are told apart (RFC 3551 section 6). As
      // RTP, protect would take a source slot for good under an SSRC read from the NTP time, and
      // send it on as SRTP no receiver can read; unprotect would count SRTCP as failed SRTP
      p.drop(DropReason.RtcpInRtpRange);
      return;
    }
    const ssrc = loadBe32(ptr + (rtcp ? 4 : 8));
    // `ssrcs` lists the sender's sources: feedback going upstream is the receivers', under SSRCs of their own
    if (!p.isUpstream && !c.admits(ssrc)) {
      p.drop(DropReason.SrtpUnknownSsrc);
      return;
    }
    const room = <i32>(p.slotEnd - ptr);
    let known = table.find(ssrc);
    let reason: u32;
    if (direction == PROTECT) {
      if (!rtcp && c.sends.rocUnknown) {
        p.drop(DROP_ROC_UNKNOWN);
        return;
      }
      const s = known !== null ? known : table.claim(ssrc);
      if (s === null) {
        reason = DropReason.TooManySources; // the table is full: refused, no other sender's state is given up
      } else {
        // the rate a restore judges is that of the sequence numbers, not of the packets: those
        // lost before this stage moved them too (the first step after a restore is the time the
        // stage was down, not a rate: it counts one)
        const highestBefore = s.highest;
        const stepCounts = s.rtpSeen && !s.rtpResumed;
        reason = rtcp ? protectRtcp(session, s, ptr, len, room) : protectRtp(session, s, ptr, len, room, c.replayWindow);
        if (reason == 0) {
          // A restore from a checkpoint without this source would start it at ROC 0 again; had
          // it rolled over since its first packet, the indexes before would be encrypted a second
          // time (RFC 3711 section 9.1). The proxy takes a checkpoint at once, so that the window
          // in which it could is milliseconds, not stateCheckpointMs (README "Protect never
          // encrypts an index twice"). Only once something was protected: a refused first packet
          // leaves no state (no slot taken) and costs no round, however many SSRCs come so
          if (known === null) askForCheckpoint();
          if (rtcp) c.rtcpProtected++;
          else {
            c.rtpProtected++;
            c.sends.unseen = 0; // the table is current again
            const moved: u64 = !stepCounts ? 1 : s.highest > highestBefore ? s.highest - highestBefore : 0;
            c.sentSinceExport += moved;
            c.sentInInterval += moved;
            if (c.sentSinceExport >= CHECKPOINT_MOVEMENT && !c.movementAsked) {
              c.movementAsked = true;
              askForCheckpoint();
            }
          }
        } else if (reason == DropReason.SrtpReplay) {
          if (!rtcp) c.rtpRepeatsRefused++; // SRTCP: its 2^31 indexes are used up
        } else if (known === null) {
          s.used = false; // a malformed first packet (nothing protected, the state untouched) takes no slot
        }
      }
    } else {
      const s = known !== null ? known : table.fresh(ssrc);
      reason = rtcp
        ? unprotectRtcp(session, s, known !== null, ptr, len, c.replayWindow)
        : unprotectRtp(session, s, known !== null, ptr, len, c.replayWindow);
      // a new source counts only once it authenticated, and only if there is room for it
      if (reason == 0 && known === null && table.adopt(s) === null) reason = DropReason.TooManySources;
      if (reason == 0) {
        if (rtcp) c.rtcpUnprotected++;
        else c.rtpUnprotected++;
        c.authPassed++;
      } else if (reason == DropReason.SrtpAuthFailed) {
        c.authFailed++;
        c.authFailedSsrc = ssrc;
        c.authFailedRtcp = rtcp;
      }
    }
    if (reason != 0) p.drop(reason);
    else p.resize(ptr, resultLength);
  }
}

/** The config being read (newContext copies what the context keeps). */
const parsed = new SrtpSettings();

register(new SrtpFilter());
