// One segment's SRTP state: the sessions (downstream and, optionally, the reverse direction for
// RTCP feedback going back upstream), their source tables, and the settings. Contexts are
// pooled: a context's tables and key schedules are large, and reusing them spares the collector.
import { ContextPool, sizeClass } from "../../../sdk/assembly/context-pool";
import { SegmentContext } from "../../../sdk/assembly/context-factory";
import { LogLevel, SCRATCH, StateOrigin, Status, StateReader, StateWriter, log, setError, stateOrigin, wallUs } from "../../../sdk/assembly";
import { keyChangedTable, keyRoleConflict } from "./key-roles";
import { Session } from "./session";
import { SourceTable } from "./source-table";
import { KeyRoles, STATE_VERSION, SendClock, UNTREATED_CHECKPOINT, blobKeys, readState, windowWords, writeState } from "./state-blob";

export const PROTECT = 0;
export const UNPROTECT = 1;

/**
 * Packets a sender may send between a checkpoint and the first packet after its restore, beyond
 * which protect cannot tell its roll-over counter from the sequence number: RFC 3711's estimate
 * (appendix A) is right while the sequence numbers moved less than 2^15; the rate measured before
 * the checkpoint is taken as half of what it may have been since (bursts, a key frame).
 */
const ROC_CERTAIN_PACKETS: f64 = 32768 / 2;
/**
 * Sequence numbers protect's sources may move between two checkpoints before it asks for one at
 * once (ABI 1.8): a quarter of ROC_CERTAIN_PACKETS, so that a fast stream's last checkpoint is at
 * most this far behind when a stage fails, and a restore holds it only when the failure itself
 * took long (the watchdog's 500 ms and a restart: above about 17,500 packets a second, where a
 * checkpoint a second old held it above 9,600).
 */
export const CHECKPOINT_MOVEMENT: u64 = 4096;
/** The time in which a rate protect no longer runs at falls to half in the state's judgement. */
const RATE_HALF_LIFE_US: i64 = 10_000_000;
/**
 * A wall clock that went back more than this between a checkpoint and its restore was stepped:
 * the time since is unknown (a step of any size may hide in it), whatever the rate.
 */
const CLOCK_BACK_US: i64 = 10_000;

export class SrtpContext extends SegmentContext {
  /** What happens to downstream packets; upstream ones get the opposite with the reverse session. */
  direction: i32 = PROTECT;
  hasReverse: bool = false;
  /** Unprotect without a reverse key: let feedback go upstream in plaintext (config plainFeedback). */
  plainFeedback: bool = false;
  replayWindow: i32 = 128;
  /** Allowed SSRCs (empty: any). */
  allowed: StaticArray<u32> = new StaticArray<u32>(0);
  readonly forward: Session = new Session();
  readonly reverse: Session = new Session();
  /** Counts of this batch, reported once at its end. */
  rtpProtected: i64 = 0;
  rtpUnprotected: i64 = 0;
  rtcpProtected: i64 = 0;
  rtcpUnprotected: i64 = 0;
  /** RTP packets protect refused (srtp_replay): their index was protected already, or is too old. */
  rtpRepeatsRefused: i64 = 0;
  touched: bool = false;
  /** Packets that failed authentication since the last report, and the last one's SSRC (auth-failures.ts). */
  authFailed: i64 = 0;
  authFailedSsrc: u32 = 0;
  authFailedRtcp: bool = false;
  /** Packets unprotected since that report (to tell "every packet fails" from "a few forgeries"). */
  authPassed: i64 = 0;
  /** When the last report was logged; i64.MIN_VALUE: never. */
  authReportedUs: i64 = i64.MIN_VALUE;
  /**
   * The blob of a state this config's keys may not carry on from (key-roles.ts), kept as it came
   * and exported as it is, so that a restart or the next swap finds it again; every packet is
   * dropped (key_role_changed) while it is held. null: none.
   */
  held: Uint8Array | null = null;
  /** `held` is a newer build's blob this one cannot read (dropped as state_too_new), not a key's changed role. */
  heldNewer: bool = false;
  /** The roles of the keys before this config's (from the state it took on), exported after its own. */
  readonly roles: KeyRoles = new KeyRoles();
  /**
   * Held sends: restored from a checkpoint taken so long before, at the rate this stage protected,
   * that the sender may have moved its sequence numbers 2^15 or more since; its packets' roll-over
   * counter cannot be told then, and a wrong one would encrypt an index the failed stage used (the
   * same keystream twice, RFC 3711 section 9.1). Its RTP is dropped (roc_unknown) until a new key.
   * `sends.exportWallUs` and `sends.rate` time the exports for that judgement.
   */
  readonly sends: SendClock = new SendClock();
  /**
   * How far protect moved its sources' highest indexes since the last export (packets lost before
   * this stage count: the sender's sequence numbers moved), what checkpoint asks count; and since
   * the rate's interval began (`rateSinceUs`: at an export at least 100 ms after the one that
   * began the interval before), and the rate of the interval before.
   */
  sentSinceExport: u64 = 0;
  sentInInterval: u64 = 0;
  rateSinceUs: i64 = 0;
  lastIntervalRate: u32 = 0;
  /** sentSinceExport passed CHECKPOINT_MOVEMENT and a checkpoint was asked for (again once the next export counts afresh). */
  movementAsked: bool = false;

  constructor(id: u32, readonly forwardSources: SourceTable, readonly reverseSources: SourceTable) {
    super(id);
  }

  admits(ssrc: u32): bool {
    const n = this.allowed.length;
    if (n == 0) return true;
    for (let i = 0; i < n; i++) if (unchecked(this.allowed[i]) == ssrc) return true;
    return false;
  }

  exportState(out: StateWriter, nowUs: i64): Status {
    const held = this.held;
    if (held !== null) {
      out.bytes(held.dataStart, held.length);
      return Status.Ok;
    }
    this.timeExport(wallUs());
    const roles = exportedRoles;
    roles.clear();
    roles.add(this.forward.fingerprint, this.direction == UNPROTECT);
    if (this.hasReverse) roles.add(this.reverse.fingerprint, this.direction == PROTECT);
    roles.addAll(this.roles);
    writeState(out, windowWords(this.replayWindow), this.forwardSources, this.reverseSources,
      this.direction == UNPROTECT, this.direction == PROTECT && this.hasReverse, this.forward.fingerprint, this.reverse.fingerprint, roles, this.sends);
    return Status.Ok;
  }

  /**
   * The rate protect ran at since its interval began (the larger of this interval's and the one
   * before: a rate that just fell may rise again), and this export's time. An interval under 100 ms
   * (a hot swap right after a checkpoint, or a checkpoint asked for soon after the last) measures
   * nothing: the rate stays, and the interval goes on. Whatever the interval, the export's time is
   * that of the tables it writes, and the movement that asks for the next is counted afresh from it
   * (when both went with the rate's interval, a stream above about 41,000 packets a second, 4,096
   * in under 100 ms, asked once and then not again before the period's checkpoint).
   */
  private timeExport(now: i64): void {
    const s = this.sends;
    const interval = now - this.rateSinceUs;
    if (this.rateSinceUs != 0 && interval >= 100_000) {
      const rate = <u32>min<f64>(<f64>this.sentInInterval * 1e6 / <f64>interval, <f64>u32.MAX_VALUE);
      // a stream that paused may come back at the rate it had: the rate before falls off by half
      // every RATE_HALF_LIFE_US, not at once (two intervals of nothing made it 0)
      const fallen = <u32>(<f64>s.rate * Math.pow(0.5, <f64>interval / <f64>RATE_HALF_LIFE_US));
      s.rate = max(max(rate, this.lastIntervalRate), fallen);
      this.lastIntervalRate = rate;
      this.sentInInterval = 0;
      this.rateSinceUs = now;
    } else if (this.rateSinceUs == 0) {
      this.rateSinceUs = now;
    }
    s.exportWallUs = now;
    this.sentSinceExport = 0;
    this.movementAsked = false;
  }

  /** Starts timing exports: at the context's start, and after an import. */
  startClock(): void {
    this.sends.exportWallUs = wallUs();
    this.rateSinceUs = this.sends.exportWallUs;
    this.sentSinceExport = 0;
    this.sentInInterval = 0;
    this.movementAsked = false;
    this.sends.unseen = 0;
  }

  importState(blob: StateReader, nowUs: i64): Status {
    if (blob.length == 0) return Status.Ok;
    const status = readState(blob, this.forwardSources, this.reverseSources);
    if (status != Status.Ok && blobKeys.newerVersion != 0) {
      // Started afresh, protect would encrypt its sources from ROC 0 and SRTCP index 0 again under
      // keys the newer build used, and unprotect take its packets again: held as it came instead,
      // exported as it is, so that the newer build (rolled forward) takes it on where it was.
      const held = new Uint8Array(blob.length);
      memory.copy(held.dataStart, SCRATCH, <usize>blob.length);
      this.held = held;
      this.heldNewer = true;
      setError("srtp state blob of version " + blobKeys.newerVersion.toString() + ", written by a newer build (this one reads up to " +
        STATE_VERSION.toString() + "); starting afresh would encrypt indexes already used under the same keys (RFC 3711 section 9.1): " +
        "every packet of the segment is dropped (state_too_new) until the newer build runs it again, or the srtp stage is removed and added with new keys");
      return Status.BadState;
    }
    if (status != Status.Ok) return status;
    let conflict = keyRoleConflict(this.forward.fingerprint, this.direction == UNPROTECT, "key");
    if (conflict.length == 0 && this.hasReverse) conflict = keyRoleConflict(this.reverse.fingerprint, this.direction == PROTECT, "reverseKey");
    if (conflict.length == 0 && this.direction == PROTECT) conflict = keyChangedTable(this.forward.fingerprint, true, "key");
    if (conflict.length == 0 && this.direction == UNPROTECT && this.hasReverse) conflict = keyChangedTable(this.reverse.fingerprint, false, "reverseKey");
    if (conflict.length > 0) {
      this.forwardSources.clear();
      this.reverseSources.clear();
      const held = new Uint8Array(blob.length);
      memory.copy(held.dataStart, SCRATCH, <usize>blob.length);
      // a checkpoint is older than the failure: whoever takes it on later (a hot swap to a new key)
      // must skip past the indexes the failed stage used after it, as a restore does
      if (stateOrigin() == StateOrigin.Checkpoint && blobKeys.flagsAt >= 0) held[blobKeys.flagsAt] |= UNTREATED_CHECKPOINT;
      this.held = held;
      this.heldNewer = false;
      // the host says it (state not carried over: ...) with the segment's name
      setError(conflict + "; every packet of the segment is dropped (key_role_changed) until the config gives a new key");
      return Status.BadState;
    }
    this.roles.clear();
    this.roles.addAll(blobKeys.roles);
    const checkpoint = stateOrigin() == StateOrigin.Checkpoint || blobKeys.untreatedCheckpoint;
    if (this.direction == UNPROTECT) switchIfRekeyed(this.forwardSources, blobKeys.forward, this.forward.fingerprint, checkpoint);
    else if (this.hasReverse) switchIfRekeyed(this.reverseSources, blobKeys.reverse, this.reverse.fingerprint, checkpoint);
    if (checkpoint) {
      // A checkpoint is up to stateCheckpointMs older than the failure: the packets the old stage
      // handled since then used indexes the blob does not know. Protect skips past the SRTCP
      // indexes it counts itself; for the indexes taken from packets, each source goes on only
      // ahead of its first packet from now on (neither encrypted nor accepted a second time).
      skipRtcpIndexes(this.direction == PROTECT ? this.forwardSources : this.reverseSources);
      this.forwardSources.resumeFromCheckpoint();
      this.reverseSources.resumeFromCheckpoint();
    }
    this.takeSends(checkpoint);
    return Status.Ok;
  }

  /**
   * The blob's send timing, and whether its sends are held: still, under the same protecting key,
   * if they were; newly, if it is a checkpoint restored so long after it was taken that the sender
   * may have moved 2^15 sequence numbers or more (see `sends`). A new protecting key releases them:
   * its keystream is new whatever the index.
   */
  private takeSends(checkpoint: bool): void {
    const protecting = this.direction == PROTECT || this.hasReverse;
    const key = this.direction == PROTECT ? this.forward.fingerprint : this.reverse.fingerprint;
    const blobKey = this.direction == PROTECT ? blobKeys.forward : blobKeys.reverse;
    const sameKey = blobKey == 0 || blobKey == key;
    const s = this.sends;
    s.rate = blobKeys.sendRate;
    this.lastIntervalRate = blobKeys.sendRate;
    s.rocUnknown = protecting && sameKey && blobKeys.rocUnknown;
    // what earlier restores judged the sender sent while no stage ran, if no packet came since
    s.unseen = protecting && sameKey && !s.rocUnknown ? blobKeys.unseen : 0;
    const now = wallUs();
    if (protecting && sameKey && checkpoint && blobKeys.timed && !s.rocUnknown && (blobKeys.sendRate > 0 || s.unseen > 0)) {
      const since = now - blobKeys.exportWallUs;
      const packets = <f64>s.unseen + <f64>blobKeys.sendRate * <f64>max<i64>(since, 0) / 1e6;
      // until the first packet, the time this restore took is the next one's too
      s.unseen = <u32>min<f64>(packets, <f64>u32.MAX_VALUE);
      if (since < -CLOCK_BACK_US || packets >= ROC_CERTAIN_PACKETS) {
        s.rocUnknown = true;
        const why = since < -CLOCK_BACK_US
          ? "the wall clock went back " + (-since / 1000).toString() + " ms since it was taken, so the time between is unknown"
          : "it was taken " + (since / 1000).toString() + " ms ago, and at the " + blobKeys.sendRate.toString() + " packets a second protected before it" +
            (blobKeys.unseen > 0 ? " (after " + blobKeys.unseen.toString() + " packets judged sent while earlier restarts saw none)" : "") +
            " the sender may have moved its sequence numbers by 2^15 or more";
        log(LogLevel.Error, "restored from a checkpoint: " + why + "; the roll-over counter of its sources cannot be told, and a wrong one would encrypt indexes the failed stage used (the same keystream twice): its RTP is dropped (roc_unknown) until the config gives a new key");
      }
    }
    s.exportWallUs = now;
    this.rateSinceUs = now;
    this.sentSinceExport = 0;
    this.sentInInterval = 0;
    this.movementAsked = false;
  }

  /** The segment is gone: its keys are wiped and the context goes back to the pool. */
  free(): void {
    this.held = null;
    this.heldNewer = false;
    this.roles.clear();
    this.authFailed = 0;
    this.authPassed = 0;
    this.authReportedUs = i64.MIN_VALUE;
    this.sends.exportWallUs = 0;
    this.sends.rate = 0;
    this.sends.rocUnknown = false;
    this.rateSinceUs = 0;
    this.sentSinceExport = 0;
    this.sentInInterval = 0;
    this.movementAsked = false;
    this.lastIntervalRate = 0;
    this.sends.unseen = 0;
    this.forward.wipe();
    this.reverse.wipe();
    this.forwardSources.clear();
    this.reverseSources.clear();
    pool.give(this, sizeClass(this.forwardSources.states.length));
  }
}

/**
 * A receiver's table whose key changed switches its replay lists to the new key's, keeping the
 * old key's floors (SourceTable.switchKey). A sender's table never changes at a key change: its
 * send windows and SRTCP indexes go on across keys, so going back to an earlier key encrypts no
 * index a second time.
 */
function switchIfRekeyed(t: SourceTable, before: u64, now: u64, checkpoint: bool): void {
  if (before != 0 && now != 0 && before != now) t.switchKey(before, now, checkpoint);
}

/** What exportState writes as the keys' roles (one at a time: not allocated per export). */
const exportedRoles = new KeyRoles();

/** Destroyed contexts, by the size of their source tables. */
const pool = new ContextPool<SrtpContext>();

/** Context `id` tracking `maxSources` sources per direction: recycled if possible, else new. */
export function takeContext(id: u32, maxSources: i32): SrtpContext {
  const cls = sizeClass(maxSources);
  let c = pool.take(cls, id);
  if (c === null) c = new SrtpContext(id, new SourceTable(1 << cls), new SourceTable(1 << cls));
  c.forwardSources.capacity = maxSources;
  c.reverseSources.capacity = maxSources;
  return c;
}

/**
 * SRTCP indexes a sender skips after a restore from a checkpoint: more than one SSRC's SRTCP
 * packets between a checkpoint and a failure (4 s at a million a second), and few enough of the
 * 2^31 (512 restores) to last the key's life.
 */
export const RTCP_CHECKPOINT_SKIP: u32 = 1 << 22;

function skipRtcpIndexes(t: SourceTable): void {
  for (let i = 0; i < t.carried; i++) {
    const s = t.sourceAt(i);
    if (!s.used) continue;
    s.rtcpNextIndex = skipped(s.rtcpNextIndex);
  }
  t.newRtcpStart = skipped(t.newRtcpStart); // sources the checkpoint does not know too
}

@inline function skipped(index: u32): u32 {
  const next = <u64>index + RTCP_CHECKPOINT_SKIP;
  return next > 0x80000000 ? 0x80000000 : <u32>next; // 2^31: all used, refused from then on
}
