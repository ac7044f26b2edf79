// One segment's SRTP state: the sessions (downstream and, optionally, the reverse direction for
// RTCP feedback going back upstream), their source tables, and the settings. Contexts are
// pooled: a context's tables and key schedules are large, and reusing them spares the collector.
import { ContextPool, sizeClass } from "../../../sdk/assembly/context-pool";
import { SegmentContext } from "../../../sdk/assembly/context-factory";
import { SCRATCH_SIZE, StateOrigin, Status, StateReader, StateWriter, setError, stateOrigin } from "../../../sdk/assembly";
import { ReplayState, WORDS, forgetOldKey, resumeFromCheckpoint } from "./replay";
import { Session } from "./session";

/** 2: the windows are cut to the words the context's replayWindow uses (1: all MAX_WINDOW bits, still read). */
const STATE_VERSION: u32 = 2;
/**
 * What a state blob holds besides its sources: version, window words, a count per table, the
 * tables' flags, the two key fingerprints. All of it counts: a full blob one byte over is no blob.
 */
const STATE_HEADER_BYTES = 4 + 2 + 4 + 4 + 1 + 8 + 8;

/** Words of 64 bits that a window of `window` packets uses. */
@inline function windowWords(window: i32): i32 {
  return (window + 63) >> 6;
}

/** Bytes one source takes in a state blob with windows of `window` packets. */
function sourceStateBytes(window: i32): i32 {
  return 4 + 4 + 2 + 1 + 8 + 8 + 4 + 2 * 8 * windowWords(window);
}

/**
 * The most sources (both tables together) whose state fits the state blob with windows of
 * `window` packets: the config refuses more, as a blob that does not fit is no blob at all, and a
 * hot swap or restart would then start every source again (protect at ROC 0).
 */
export function maxSourcesInState(window: i32): i32 {
  return (SCRATCH_SIZE - STATE_HEADER_BYTES) / sourceStateBytes(window);
}

export const PROTECT = 0;
export const UNPROTECT = 1;

/**
 * The per-SSRC states of one session, looked up by SSRC. A source's state is never recycled while
 * the segment (its key) lives: once `capacity` sources are tracked, a new one is refused. Forgetting
 * a sender's state would make protect start its index again at ROC 0 (the same keystream twice,
 * RFC 3711 section 9.1), and forgetting a receiver's would let its old packets be replayed
 * (section 3.3.2). A pooled table is reused for any `capacity` up to its size (a power of two).
 */
export class SourceTable {
  readonly states: StaticArray<ReplayState>;
  /** Scratch state for a source seen for the first time, kept only if its packet authenticates. */
  readonly scratch: ReplayState = new ReplayState();
  /** The sources tracked (the segment's maxSources): the first `capacity` states. */
  capacity: i32;
  /**
   * Set by a restore from a checkpoint: a source new from then on may still be one the failed stage
   * used after the checkpoint, so it starts resumed (see ReplayState.rtpResumed).
   */
  resumeNew: bool = false;

  constructor(size: i32) {
    this.states = new StaticArray<ReplayState>(size);
    for (let i = 0; i < size; i++) unchecked((this.states[i] = new ReplayState()));
    this.capacity = size;
  }

  find(ssrc: u32): ReplayState | null {
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (s.used && s.ssrc == ssrc) return s;
    }
    return null;
  }

  /** A free slot for a new source, reset; null when all `capacity` slots are taken (the source is refused). */
  claim(ssrc: u32): ReplayState | null {
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (!s.used) {
        this.blank(s, ssrc);
        return s;
      }
    }
    return null;
  }

  /** The scratch state, blank, for a packet of a source not tracked. */
  fresh(ssrc: u32): ReplayState {
    this.blank(this.scratch, ssrc);
    return this.scratch;
  }

  private blank(s: ReplayState, ssrc: u32): void {
    s.reset(ssrc);
    s.rtpResumed = this.resumeNew;
    s.rtcpResumed = this.resumeNew;
  }

  /** After a restore from a checkpoint: no source, tracked or new, goes back behind where it goes on. */
  resumeFromCheckpoint(): void {
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (s.used) resumeFromCheckpoint(s);
    }
    this.resumeNew = true;
  }

  /** The table's key changed (a receiver's table only): see forgetOldKey. */
  forgetOldKey(): void {
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (s.used) forgetOldKey(s);
    }
  }

  /** Copies `from` (the scratch state of a packet that just authenticated) into a free slot; null when full. */
  adopt(from: ReplayState): ReplayState | null {
    const s = this.claim(from.ssrc);
    if (s === null) return null;
    s.roc = from.roc;
    s.highestSeq = from.highestSeq;
    s.highest = from.highest;
    s.rtpSeen = from.rtpSeen;
    s.started = from.started;
    s.rtcpHighest = from.rtcpHighest;
    s.rtcpSeen = from.rtcpSeen;
    s.rtcpNextIndex = from.rtcpNextIndex;
    s.rtpResumed = from.rtpResumed;
    s.rtcpResumed = from.rtcpResumed;
    s.rekeyed = from.rekeyed;
    memory.copy(changetype<usize>(s.bits), changetype<usize>(from.bits), <usize>s.bits.length << 3);
    memory.copy(changetype<usize>(s.rtcpBits), changetype<usize>(from.rtcpBits), <usize>s.rtcpBits.length << 3);
    return s;
  }

  clear(): void {
    for (let i = 0; i < this.states.length; i++) unchecked(this.states[i]).used = false;
    this.resumeNew = false;
  }

  count(): i32 {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) if (unchecked(this.states[i]).used) n++;
    return n;
  }
}

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
    const words = windowWords(this.replayWindow);
    out.u32(STATE_VERSION);
    out.u16(<u16>words);
    writeTable(this.forwardSources, out, words);
    writeTable(this.reverseSources, out, words);
    out.u8(<u8>((this.forwardSources.resumeNew ? 1 : 0) | (this.reverseSources.resumeNew ? 2 : 0)));
    out.u64(this.forward.fingerprint);
    out.u64(this.reverse.fingerprint);
    return Status.Ok;
  }

  importState(blob: StateReader, nowUs: i64): Status {
    if (blob.length == 0) return Status.Ok;
    const version = blob.u32();
    let words = WORDS;
    if (version == 2) words = <i32>blob.u16();
    else if (version != 1) {
      setError("srtp state blob of an unknown version");
      return Status.BadState;
    }
    if (words < 1 || words > WORDS) {
      setError("srtp state blob with windows of " + words.toString() + " words");
      return Status.BadState;
    }
    if (!readTable(this.forwardSources, blob, words) || !readTable(this.reverseSources, blob, words)) {
      this.forwardSources.clear();
      this.reverseSources.clear();
      setError("srtp state blob is truncated");
      return Status.BadState;
    }
    if (blob.remaining > 0) {
      // a blob of a stage restored from a checkpoint: its new sources still start resumed
      const flags = blob.u8();
      this.forwardSources.resumeNew = (flags & 1) != 0;
      this.reverseSources.resumeNew = (flags & 2) != 0;
    }
    if (blob.remaining >= 16) {
      // the keys the tables were made under (a blob of an older build has none: its tables carry on)
      const forwardKey = blob.u64();
      const reverseKey = blob.u64();
      if (this.direction == UNPROTECT) forgetIfRekeyed(this.forwardSources, forwardKey, this.forward.fingerprint);
      else if (this.hasReverse) forgetIfRekeyed(this.reverseSources, reverseKey, this.reverse.fingerprint);
    }
    if (stateOrigin() == StateOrigin.Checkpoint) {
      // A checkpoint is up to stateCheckpointMs older than the failure: the packets the old stage
      // handled since then used indexes the blob does not know. Protect skips past the SRTCP
      // indexes it counts itself; for the indexes taken from packets, each source goes on only
      // ahead of its first packet from now on (neither encrypted nor accepted a second time).
      skipRtcpIndexes(this.direction == PROTECT ? this.forwardSources : this.reverseSources);
      this.forwardSources.resumeFromCheckpoint();
      this.reverseSources.resumeFromCheckpoint();
    }
    return Status.Ok;
  }

  /** The segment is gone: its keys are wiped and the context goes back to the pool. */
  free(): void {
    this.authFailed = 0;
    this.authPassed = 0;
    this.authReportedUs = i64.MIN_VALUE;
    this.forward.wipe();
    this.reverse.wipe();
    this.forwardSources.clear();
    this.reverseSources.clear();
    pool.give(this, sizeClass(this.forwardSources.states.length));
  }
}

/**
 * A receiver's table whose key changed forgets the old key's replay lists. A sender's table never
 * does, whatever the key: forgetting its send windows would encrypt an index a second time under a
 * key used before, were the config to go back to an earlier key (a rollback).
 */
function forgetIfRekeyed(t: SourceTable, before: u64, now: u64): void {
  if (before != 0 && now != 0 && before != now) t.forgetOldKey();
}

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
  for (let i = 0; i < t.capacity; i++) {
    const s = unchecked(t.states[i]);
    if (!s.used) continue;
    const next = <u64>s.rtcpNextIndex + RTCP_CHECKPOINT_SKIP;
    s.rtcpNextIndex = next > 0x80000000 ? 0x80000000 : <u32>next; // 2^31: all used, refused from then on
  }
}

// State blob: u32 version, u16 words (per window), then per table: u32 count, then per source:
// ssrc, roc, highestSeq (u16), flags (u8: rtpSeen, started, rtcpSeen, rtpResumed, rtcpResumed,
// rekeyed; a build before the last three ignores them), highest (u64), rtcpHighest
// (u64), rtcpNextIndex, the SRTP window and the SRTCP window (`words` u64 each: the replayWindow's;
// bits past it are never read). A sender's send window is `highest` and the SRTP window (the same
// fields as a receiver's replay list), so a blob of a build without it imports as a sender that has
// not marked any index yet. Version 1 had no `words`: its windows were all MAX_WINDOW bits. After
// both tables, a u8 of flags (resumeNew: forward 1, reverse 2), then the fingerprints (u64) of the
// forward and the reverse key (0: none); both absent from older blobs and not read by older builds.
function writeTable(t: SourceTable, out: StateWriter, words: i32): void {
  out.u32(<u32>t.count());
  for (let i = 0; i < t.capacity; i++) {
    const s = t.states[i];
    if (!s.used) continue;
    out.u32(s.ssrc);
    out.u32(s.roc);
    out.u16(s.highestSeq);
    out.u8(<u8>((s.rtpSeen ? 1 : 0) | (s.started ? 2 : 0) | (s.rtcpSeen ? 4 : 0) | (s.rtpResumed ? 8 : 0) | (s.rtcpResumed ? 16 : 0) | (s.rekeyed ? 32 : 0)));
    out.u64(s.highest);
    out.u64(s.rtcpHighest);
    out.u32(s.rtcpNextIndex);
    for (let w = 0; w < words; w++) out.u64(s.bits[w]);
    for (let w = 0; w < words; w++) out.u64(s.rtcpBits[w]);
  }
}

function readTable(t: SourceTable, blob: StateReader, words: i32): bool {
  const n = <i32>blob.u32();
  for (let i = 0; i < n; i++) {
    const ssrc = blob.u32();
    if (blob.overflow) return false;
    // a smaller table than before keeps the first sources; the rest are refused as new sources
    // would be (too_many_sources), never started again with a blank state under the same key
    const claimed = i < t.capacity ? t.claim(ssrc) : null;
    const s: ReplayState = claimed !== null ? claimed : t.scratch;
    s.reset(ssrc);
    s.roc = blob.u32();
    s.highestSeq = blob.u16();
    const flags = blob.u8();
    s.rtpSeen = (flags & 1) != 0;
    s.started = (flags & 2) != 0;
    s.rtcpSeen = (flags & 4) != 0;
    s.rtpResumed = (flags & 8) != 0;
    s.rtcpResumed = (flags & 16) != 0;
    s.rekeyed = (flags & 32) != 0;
    s.highest = blob.u64();
    s.rtcpHighest = blob.u64();
    s.rtcpNextIndex = blob.u32();
    // past the blob's windows nothing is known (the window grew): taken as seen, so that an old
    // index there is refused rather than accepted, or protected, a second time
    for (let w = 0; w < WORDS; w++) s.bits[w] = w < words ? blob.u64() : ~(<u64>0);
    for (let w = 0; w < WORDS; w++) s.rtcpBits[w] = w < words ? blob.u64() : ~(<u64>0);
    if (claimed === null) t.scratch.used = false;
  }
  return !blob.overflow;
}
