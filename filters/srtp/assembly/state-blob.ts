// The state blob that carries a segment's source tables through a hot swap or a checkpoint
// restore (never a key: the keys' one-way fingerprints only), and the most sources it holds.
//
// Version 5 (2026-12-06): as 4, with after the rate the packets restores judged sent while no
// stage ran and no packet came since (u32, SendClock.unseen).
// Version 4 (2026-12-06): as 3, with after the tables' newRtcpStart the wall clock of the export
// (i64 microseconds) and the rate the stage protected RTP at (u32 packets a second, the larger of
// its last two export intervals and of the rate before, halved every 10 s), and flag 8 in the flags byte: its protecting table's roll-over
// counters are unknown (context.ts, "held sends"). Version 3 (2026-12-06): u32 version, u16 words (per window), u8 receiver tables (forward 1,
// reverse 2: which table unprotects, so the record's SRTCP word is read for what it is), then per
// table: u32 count, then per source: ssrc, roc, highestSeq (u16), flags (u8: rtpSeen, started,
// rtcpSeen, rtpResumed, rtcpResumed, rekeyed, rtpFloorStale, rtcpFloorStale), highest (u48),
// rtcpHighest (u32: SRTCP indexes are 31 bits), the SRTCP word (u32: a sender's rtcpNextIndex, a
// receiver's rtcpFloor), rtpFloor (u48), the SRTP window and the SRTCP window (`words` u64 each:
// the replayWindow's; bits past it are never read). After both tables, a u8 of flags (resumeNew:
// forward 1, reverse 2; 4: a checkpoint held as it came, not yet treated as one: context.ts), the fingerprints (u64) of the forward and the reverse key, then of the key
// before each (previousKey); 0: none; then each table's newRtcpStart (u32; a blob without them
// starts new sources at 0); then the keys' roles (since 2026-12-06, in the room the tracked sources
// leave, before retired ones): u8 count, per key its fingerprint (u64) and u8 1 if it unprotected,
// 0 if it protected, newest first, at most ROLE_MEMORY (a blob without them: the current and
// previous keys with their tables' roles). A source takes as many bytes as in version 2, whose floors
// came out of the wider fields it did not need. A table's list has its tracked sources first, then
// its retired ones (SourceTable.retired) as far as the room left allows.
//
// Version 2 (2026-12-05): no receiver tables byte; per source highest (u64), rtcpHighest (u64),
// rtcpNextIndex and no floors; the trailer without the previous keys (and without the fingerprints
// or the flags from older builds). Version 1: as 2 without `words`: windows of MAX_WINDOW bits.
// A sender's send window is `highest` and the SRTP window (the same fields as a receiver's replay
// list), so a blob of a build without it imports as a sender that has not marked any index yet.
import { SCRATCH_SIZE, Status, StateReader, StateWriter, setError } from "../../../sdk/assembly";
import { ReplayState, WORDS } from "./replay";
import { SourceTable } from "./source-table";

export const STATE_VERSION: u32 = 5;
/** The flag of a checkpoint a stage held as it came (key-roles.ts): whoever takes it on treats it as a checkpoint. */
export const UNTREATED_CHECKPOINT: u8 = 4;
/** The flag of a blob whose protecting table's roll-over counters are unknown (context.ts): its RTP is held. */
const ROC_UNKNOWN: u8 = 8;
/**
 * What a blob holds besides its sources: version, window words, receiver tables, a count per
 * table, the tables' flags, four key fingerprints, the send clock (time, rate, unseen). All of it counts: a blob one byte over is no blob.
 */
const STATE_HEADER_BYTES = 4 + 2 + 1 + 4 + 4 + 1 + 4 * 8 + 2 * 4 + 8 + 4 + 4;
const U48_MAX: u64 = 0xffffffffffff;

/** Words of 64 bits that a window of `window` packets uses. */
@inline export function windowWords(window: i32): i32 {
  return (window + 63) >> 6;
}

/** Bytes one source takes in a blob with windows of `window` packets. */
function sourceStateBytes(window: i32): i32 {
  return sourceBytes(windowWords(window));
}

@inline function sourceBytes(words: i32): i32 {
  return 4 + 4 + 2 + 1 + 6 + 4 + 4 + 6 + 2 * 8 * words;
}

/**
 * The most sources (both tables together) whose state fits the blob with windows of `window`
 * packets: the config refuses more, as a blob that does not fit is no blob at all, and a hot swap
 * or restart would then start every source again (protect at ROC 0).
 */
export function maxSourcesInState(window: i32): i32 {
  return (SCRATCH_SIZE - STATE_HEADER_BYTES) / sourceStateBytes(window);
}

/** Keys a segment's stages used, and whether each unprotected (key-roles.ts), as far back as ROLE_MEMORY keys. */
export const ROLE_MEMORY = 8;
export class KeyRoles {
  readonly keys: StaticArray<u64> = new StaticArray<u64>(ROLE_MEMORY);
  readonly receives: StaticArray<bool> = new StaticArray<bool>(ROLE_MEMORY);
  count: i32 = 0;

  clear(): void {
    this.count = 0;
  }

  /** Adds a key's role unless known already; none past ROLE_MEMORY (the oldest are the ones left out). */
  add(key: u64, receives: bool): void {
    if (key == 0) return;
    for (let i = 0; i < this.count; i++) if (unchecked(this.keys[i]) == key && unchecked(this.receives[i]) == receives) return;
    if (this.count >= ROLE_MEMORY) return;
    unchecked((this.keys[this.count] = key));
    unchecked((this.receives[this.count] = receives));
    this.count++;
  }

  addAll(other: KeyRoles): void {
    for (let i = 0; i < other.count; i++) this.add(unchecked(other.keys[i]), unchecked(other.receives[i]));
  }
}

/** The fingerprints of the keys a blob's tables were made under (0: none, or a blob of an older build). */
export class BlobKeys {
  forward: u64 = 0;
  reverse: u64 = 0;
  /** The keys before those (previousKey), 0: none. */
  forwardPrevious: u64 = 0;
  reversePrevious: u64 = 0;
  /** Which table unprotected (version 3 on; rolesKnown false before). */
  rolesKnown: bool = false;
  forwardReceives: bool = false;
  reverseReceives: bool = false;
  /** Where the blob's flags byte is (-1: none), and whether it is a checkpoint held untreated (flag 4). */
  flagsAt: i32 = -1;
  untreatedCheckpoint: bool = false;
  /** Version 4 on (`timed`): when it was exported (wall clock, us), the rate it protected RTP at (packets/s), and whether its sends were held. */
  timed: bool = false;
  exportWallUs: i64 = 0;
  sendRate: u32 = 0;
  unseen: u32 = 0;
  rocUnknown: bool = false;
  /** The blob's version when it is newer than this build reads (a build rolled back from a newer one), else 0. */
  newerVersion: u32 = 0;
  /** Every key's role the blob knows: its tables' keys, then its list (or, without one, the previous keys). */
  readonly roles: KeyRoles = new KeyRoles();
}
export const blobKeys = new BlobKeys();

/**
 * Writes both tables; `*Receives`: that table unprotects (its SRTCP word is a floor, not a next
 * index); `roles`: the keys' roles, newest first.
 */
export function writeState(
  out: StateWriter, words: i32, forward: SourceTable, reverse: SourceTable, forwardReceives: bool, reverseReceives: bool,
  forwardKey: u64, reverseKey: u64, roles: KeyRoles, sends: SendClock,
): void {
  out.u32(STATE_VERSION);
  out.u16(<u16>words);
  out.u8(<u8>((forwardReceives ? 1 : 0) | (reverseReceives ? 2 : 0)));
  // the config's limit leaves room for the tracked sources; the keys' roles go in the room left
  // (the config's limit stays what it was), then retired sources (a window grown since they were
  // retired may leave none: those are then lost, as before 2026-12-06)
  let free = SCRATCH_SIZE - STATE_HEADER_BYTES - (forward.count() + reverse.count()) * sourceBytes(words);
  const roleCount = free >= 1 ? min(roles.count, (free - 1) / ROLE_BYTES) : -1; // -1: no list at all
  if (roleCount >= 0) free -= 1 + roleCount * ROLE_BYTES;
  let room = max(free, 0) / sourceBytes(words);
  const forwardRetired = min(max(room, 0), forward.retiredCount);
  room -= forwardRetired;
  const reverseRetired = min(max(room, 0), reverse.retiredCount);
  writeTable(forward, out, words, forwardReceives, forwardRetired);
  writeTable(reverse, out, words, reverseReceives, reverseRetired);
  out.u8(<u8>((forward.resumeNew ? 1 : 0) | (reverse.resumeNew ? 2 : 0) | (sends.rocUnknown ? ROC_UNKNOWN : 0)));
  out.u64(forwardKey);
  out.u64(reverseKey);
  out.u64(forward.previousKey);
  out.u64(reverse.previousKey);
  out.u32(forward.newRtcpStart);
  out.u32(reverse.newRtcpStart);
  out.u64(<u64>sends.exportWallUs);
  out.u32(sends.rate);
  out.u32(sends.unseen);
  if (roleCount < 0) return;
  out.u8(<u8>roleCount);
  for (let i = 0; i < roleCount; i++) {
    out.u64(unchecked(roles.keys[i]));
    out.u8(unchecked(roles.receives[i]) ? 1 : 0);
  }
}

/** A key's fingerprint and its role in a blob's list. */
const ROLE_BYTES = 9;

/**
 * Reads both tables, their flags and previous keys, and the blob's keys into `blobKeys`. On a
 * bad blob the tables are left empty and the error set.
 */
export function readState(blob: StateReader, forward: SourceTable, reverse: SourceTable): Status {
  blobKeys.forward = 0;
  blobKeys.reverse = 0;
  blobKeys.forwardPrevious = 0;
  blobKeys.reversePrevious = 0;
  blobKeys.rolesKnown = false;
  blobKeys.roles.clear();
  blobKeys.flagsAt = -1;
  blobKeys.untreatedCheckpoint = false;
  blobKeys.timed = false;
  blobKeys.exportWallUs = 0;
  blobKeys.sendRate = 0;
  blobKeys.unseen = 0;
  blobKeys.rocUnknown = false;
  blobKeys.newerVersion = 0;
  forward.previousKey = 0;
  reverse.previousKey = 0;
  forward.newRtcpStart = 0;
  reverse.newRtcpStart = 0;
  const version = blob.u32();
  if (version > STATE_VERSION && !blob.overflow) {
    // a newer build's (a rollback): the caller holds it rather than start its sources again
    blobKeys.newerVersion = version;
    return Status.BadState;
  }
  if (version < 1 || version > STATE_VERSION) {
    setError("srtp state blob of an unknown version");
    return Status.BadState;
  }
  const words = version == 1 ? WORDS : <i32>blob.u16();
  if (words < 1 || words > WORDS) {
    setError("srtp state blob with windows of " + words.toString() + " words");
    return Status.BadState;
  }
  const receivers = version >= 3 ? <i32>blob.u8() : 0;
  blobKeys.rolesKnown = version >= 3;
  blobKeys.forwardReceives = (receivers & 1) != 0;
  blobKeys.reverseReceives = (receivers & 2) != 0;
  if (!readTable(forward, blob, version, words, (receivers & 1) != 0) || !readTable(reverse, blob, version, words, (receivers & 2) != 0)) {
    forward.clear();
    reverse.clear();
    setError("srtp state blob is truncated");
    return Status.BadState;
  }
  if (blob.remaining > 0) {
    // a blob of a stage restored from a checkpoint: its new sources still start resumed
    blobKeys.flagsAt = blob.position;
    const flags = blob.u8();
    forward.resumeNew = (flags & 1) != 0;
    reverse.resumeNew = (flags & 2) != 0;
    blobKeys.untreatedCheckpoint = (flags & UNTREATED_CHECKPOINT) != 0;
    blobKeys.rocUnknown = (flags & ROC_UNKNOWN) != 0;
  }
  if (blob.remaining >= 16) {
    // the keys the tables were made under (a blob of an older build has none: its tables carry on)
    blobKeys.forward = blob.u64();
    blobKeys.reverse = blob.u64();
  }
  if (blob.remaining >= 16) {
    forward.previousKey = blob.u64();
    reverse.previousKey = blob.u64();
    blobKeys.forwardPrevious = forward.previousKey;
    blobKeys.reversePrevious = reverse.previousKey;
  }
  if (blob.remaining >= 8) {
    forward.newRtcpStart = blob.u32();
    reverse.newRtcpStart = blob.u32();
  }
  if (version >= 4) {
    if (blob.remaining < (version >= 5 ? 16 : 12)) {
      forward.clear();
      reverse.clear();
      setError("srtp state blob is truncated");
      return Status.BadState;
    }
    blobKeys.exportWallUs = <i64>blob.u64();
    blobKeys.sendRate = blob.u32();
    if (version >= 5) blobKeys.unseen = blob.u32();
    blobKeys.timed = true;
  }
  if (!blobKeys.rolesKnown) return Status.Ok;
  const roles = blobKeys.roles;
  roles.add(blobKeys.forward, blobKeys.forwardReceives);
  roles.add(blobKeys.reverse, blobKeys.reverseReceives);
  if (blob.remaining >= 1) {
    // the roles of the keys before (a key that unprotected two configs ago may still not protect)
    const n = <i32>blob.u8();
    if (version >= 4 && blob.remaining < n * ROLE_BYTES) {
      // a list cut short would forget a key's role, and let it take the other
      forward.clear();
      reverse.clear();
      setError("srtp state blob is truncated");
      return Status.BadState;
    }
    for (let i = 0; i < n && blob.remaining >= ROLE_BYTES; i++) {
      const key = blob.u64();
      roles.add(key, blob.u8() != 0);
    }
  } else {
    // a blob without the list (2026-12-06, before it): the previous keys, with their tables' roles
    roles.add(blobKeys.forwardPrevious, blobKeys.forwardReceives);
    roles.add(blobKeys.reversePrevious, blobKeys.reverseReceives);
  }
  return Status.Ok;
}

/** The table's tracked sources, then the first `retired` of its retired ones. */
function writeTable(t: SourceTable, out: StateWriter, words: i32, receives: bool, retired: i32): void {
  out.u32(<u32>(t.count() + retired));
  for (let i = 0; i < t.capacity + retired; i++) {
    const s = t.sourceAt(i);
    if (s.used) writeSource(s, out, words, receives);
  }
}

function writeSource(s: ReplayState, out: StateWriter, words: i32, receives: bool): void {
  out.u32(s.ssrc);
  out.u32(s.roc);
  out.u16(s.highestSeq);
  out.u8(<u8>((s.rtpSeen ? 1 : 0) | (s.started ? 2 : 0) | (s.rtcpSeen ? 4 : 0) | (s.rtpResumed ? 8 : 0) | (s.rtcpResumed ? 16 : 0) |
    (s.rekeyed ? 32 : 0) | (s.rtpFloorStale ? 64 : 0) | (s.rtcpFloorStale ? 128 : 0)));
  writeU48(out, s.highest);
  out.u32(<u32>s.rtcpHighest);
  out.u32(receives ? s.rtcpFloor : s.rtcpNextIndex);
  writeU48(out, receives ? s.rtpFloor : 0);
  for (let w = 0; w < words; w++) out.u64(s.bits[w]);
  for (let w = 0; w < words; w++) out.u64(s.rtcpBits[w]);
}

/**
 * `receives`: the table unprotected when the blob was made. A table that changed its direction
 * since (a config that swapped protect and unprotect, under new keys: under the same key the swap
 * is held, key-roles.ts) takes no floor and a next SRTCP index of 0, as a blob of version 2 gave it.
 */
function readTable(t: SourceTable, blob: StateReader, version: u32, words: i32, receives: bool): bool {
  const n = <i32>blob.u32();
  for (let i = 0; i < n; i++) {
    const ssrc = blob.u32();
    if (blob.overflow) return false;
    // a smaller table than before keeps the first sources; the rest are refused as new sources
    // would be (too_many_sources), and carried on (retired), never started again with a blank state
    const claimed = i < t.capacity ? t.claim(ssrc) : null;
    const s: ReplayState = claimed !== null ? claimed : t.retire(ssrc);
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
    if (version >= 3) {
      s.rtpFloorStale = (flags & 64) != 0;
      s.rtcpFloorStale = (flags & 128) != 0;
      s.highest = readU48(blob);
      s.rtcpHighest = <u64>blob.u32();
      const rtcpWord = blob.u32();
      if (receives) s.rtcpFloor = rtcpWord;
      else s.rtcpNextIndex = rtcpWord;
      s.rtpFloor = readU48(blob);
    } else {
      s.highest = blob.u64();
      s.rtcpHighest = blob.u64();
      s.rtcpNextIndex = blob.u32();
    }
    // past the blob's windows nothing is known (the window grew): taken as seen, so that an old
    // index there is refused rather than accepted, or protected, a second time
    for (let w = 0; w < WORDS; w++) s.bits[w] = w < words ? blob.u64() : ~(<u64>0);
    for (let w = 0; w < WORDS; w++) s.rtcpBits[w] = w < words ? blob.u64() : ~(<u64>0);
  }
  return !blob.overflow;
}

function writeU48(out: StateWriter, v: u64): void {
  const clamped = v > U48_MAX ? U48_MAX : v;
  out.u32(<u32>clamped);
  out.u16(<u16>(clamped >> 32));
}

function readU48(blob: StateReader): u64 {
  const low = <u64>blob.u32();
  return low | (<u64>blob.u16() << 32);
}

/**
 * What a stage's blob says of its sends besides the tables: when it was exported, how fast it
 * protected RTP, and whether its roll-over counters are unknown (context.ts).
 */
export class SendClock {
  exportWallUs: i64 = 0;
  rate: u32 = 0;
  rocUnknown: bool = false;
  /**
   * Packets a restore judged the sender sent while no stage ran (rate x the time since the
   * checkpoint), kept until the first packet protected after it: a stage that fails again before
   * one passes on that much besides its own time (0: its tables are current).
   */
  unseen: u32 = 0;
}
