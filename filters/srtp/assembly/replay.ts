// Packet index estimation (RFC 3711 section 3.3.1 and Appendix A) and the replay list
// (section 3.3.2) for one SSRC. A receiver creates this state only for a packet that
// authenticated (a forged SSRC must not cost us a table entry), and updates it only after. A
// sender keeps the same list of the indexes it protected, and refuses one it used already.

/** Most replay-window bits a source can have (the config's replayWindow is checked against it). */
export const MAX_WINDOW = 1024;
/** Words of 64 bits in a window of MAX_WINDOW bits. */
export const WORDS = MAX_WINDOW / 64;

export class ReplayState {
  ssrc: u32 = 0;
  used: bool = false;
  /** Roll-over counter and highest sequence number seen (s_l in the RFC). */
  roc: u32 = 0;
  highestSeq: u16 = 0;
  /** Highest index accepted (receiver) or protected (sender): 2^16 * ROC + SEQ. */
  highest: u64 = 0;
  /** Has any SRTP packet of this source been accepted (receiver) or sent (sender)? */
  rtpSeen: bool = false;
  /**
   * Bit k set: index (highest - k) was accepted (receiver: the replay list) or protected (sender:
   * the send window, so that no index is encrypted twice). Word 0 holds k = 0..63.
   */
  readonly bits: StaticArray<u64> = new StaticArray<u64>(WORDS);
  /** SRTCP: highest index accepted and its window, kept apart from SRTP. */
  rtcpHighest: u64 = 0;
  rtcpSeen: bool = false;
  readonly rtcpBits: StaticArray<u64> = new StaticArray<u64>(WORDS);
  /** Sender side: next SRTCP index to use. */
  rtcpNextIndex: u32 = 0;
  /** Sender side: has this source sent yet (so that the first SEQ sets s_l). */
  started: bool = false;
  /**
   * Restored from a checkpoint (or new after such a restore), SRTP and SRTCP: the failed stage may
   * have used indexes after the checkpoint that nothing here records, so the first index accepted
   * from now on also marks every index below it as used. Only newer ones pass after that.
   */
  rtpResumed: bool = false;
  rtcpResumed: bool = false;
  /**
   * Receiver side: the key changed (a hot swap to a new `key`) and no SRTP packet authenticated
   * under the new one yet. ROC and s_l are kept as a guess (a sender that keeps its numbering
   * across the re-key), but its first packet may also come from a sender that started again at
   * ROC 0: see unprotectRtp.
   */
  rekeyed: bool = false;
  /**
   * Receiver side: what was accepted under the table's previous key (SourceTable.previousKey),
   * kept so that a config going back to it does not take that key's packets again: the highest
   * SRTP and SRTCP index accepted under it, plus 1 (0: none). See switchKey.
   */
  rtpFloor: u64 = 0;
  rtcpFloor: u32 = 0;
  /**
   * The floors may be short of what the previous key accepted (they came from a checkpoint, or
   * from a state resumed after one): on going back, the source resumes (rtpResumed) too.
   */
  rtpFloorStale: bool = false;
  rtcpFloorStale: bool = false;

  reset(ssrc: u32): void {
    this.ssrc = ssrc;
    this.used = true;
    this.roc = 0;
    this.highestSeq = 0;
    this.highest = 0;
    this.rtpSeen = false;
    this.rtcpHighest = 0;
    this.rtcpSeen = false;
    this.rtcpNextIndex = 0;
    this.started = false;
    this.rtpResumed = false;
    this.rtcpResumed = false;
    this.rekeyed = false;
    this.rtpFloor = 0;
    this.rtcpFloor = 0;
    this.rtpFloorStale = false;
    this.rtcpFloorStale = false;
    for (let i = 0; i < WORDS; i++) {
      unchecked((this.bits[i] = 0));
      unchecked((this.rtcpBits[i] = 0));
    }
  }
}

/**
 * RFC 3711 Appendix A: the ROC a received SEQ most likely belongs to, given the highest
 * SEQ seen (s_l) and the current ROC. Returns the guessed index v * 2^16 + SEQ.
 */
export function estimateIndex(s: ReplayState, seq: u16): u64 {
  let v: i64 = <i64>s.roc;
  const sl = <i32>s.highestSeq;
  const q = <i32>seq;
  if (sl < 32768) {
    if (q - sl > 32768) v = v - 1;
  } else {
    if (sl - 32768 > q) v = v + 1;
  }
  if (v < 0) v = 0; // before the first wrap there is no ROC - 1: treat as a (late) packet of ROC 0
  return (<u64>v << 16) | <u64>seq;
}

/** True if `index` is new: inside the window and not yet seen, or ahead of the highest. */
export function isFresh(bits: StaticArray<u64>, highest: u64, seen: bool, index: u64, window: i32): bool {
  if (!seen || index > highest) return true;
  const age = highest - index;
  if (age >= <u64>window) return false; // too old to tell: RFC 3711 3.3.2 says drop
  const word = <i32>(age >> 6);
  return (unchecked(bits[word]) & (<u64>1 << (age & 63))) == 0;
}

/** Records an accepted index, sliding the window forward when it is the new highest. */
export function markSeen(bits: StaticArray<u64>, highest: u64, seen: bool, index: u64): u64 {
  if (!seen) {
    for (let i = 0; i < WORDS; i++) unchecked((bits[i] = 0));
    unchecked((bits[0] = 1));
    return index;
  }
  if (index > highest) {
    shiftWindow(bits, index - highest);
    unchecked((bits[0] = bits[0] | 1));
    return index;
  }
  const age = highest - index;
  if (age < <u64>MAX_WINDOW) {
    const word = <i32>(age >> 6);
    unchecked((bits[word] = bits[word] | (<u64>1 << (age & 63))));
  }
  return highest;
}

/** Moves every bit `by` places toward older (bit k becomes bit k + by). */
function shiftWindow(bits: StaticArray<u64>, by: u64): void {
  if (by >= <u64>MAX_WINDOW) {
    for (let i = 0; i < WORDS; i++) unchecked((bits[i] = 0));
    return;
  }
  const words = <i32>(by >> 6);
  const shift = <u64>(by & 63);
  for (let i = WORDS - 1; i >= 0; i--) {
    const from = i - words;
    let v: u64 = from >= 0 ? unchecked(bits[from]) << shift : 0;
    if (shift != 0 && from - 1 >= 0) v |= unchecked(bits[from - 1]) >> (64 - shift);
    unchecked((bits[i] = v));
  }
}

/**
 * After a packet authenticated (receiver) or was protected (sender): update ROC and s_l as RFC
 * 3711 section 3.3.1 says, and mark the index in the window.
 */
export function acceptIndex(s: ReplayState, index: u64): void {
  const roc = <u32>(index >> 16);
  const seq = <u16>(index & 0xffff);
  if (!s.started) {
    s.roc = roc;
    s.highestSeq = seq;
    s.started = true;
  } else if (roc > s.roc) {
    s.roc = roc;
    s.highestSeq = seq;
  } else if (roc == s.roc && seq > s.highestSeq) {
    s.highestSeq = seq;
  }
  s.highest = markSeen(s.bits, s.highest, s.rtpSeen, index);
  s.rtpSeen = true;
  if (s.rtpResumed) {
    markAllSeen(s.bits);
    s.rtpResumed = false;
  }
}

/** After an SRTCP packet authenticated: marks its index in the SRTCP replay list. */
export function acceptRtcpIndex(s: ReplayState, index: u64): void {
  s.rtcpHighest = markSeen(s.rtcpBits, s.rtcpHighest, s.rtcpSeen, index);
  s.rtcpSeen = true;
  if (s.rtcpResumed) {
    markAllSeen(s.rtcpBits);
    s.rtcpResumed = false;
  }
}

/**
 * After a restore from a checkpoint: every index in the window counts as used, and the first index
 * taken from now on (ahead of the highest, the only kind that passes) marks all below it too.
 */
export function resumeFromCheckpoint(s: ReplayState): void {
  markAllSeen(s.bits);
  markAllSeen(s.rtcpBits);
  s.rtpResumed = true;
  s.rtcpResumed = true;
}

/**
 * Receiver side, after a hot swap from one key to another. No packet made under the old key
 * authenticates under the new one, so the old key's replay lists guard nothing while the new key
 * holds; kept, they would refuse a sender that started its numbering (and its SRTCP index) again
 * with the new key, for up to 32,768 packets. So they give way to the new key's, and what the old
 * key accepted shrinks to its floors (its highest SRTP and SRTCP index), kept for a config that
 * goes back to it. `back`: the new key is the one before the old (a rollback), whose floors this
 * source holds: every index at or below them counts as seen again, so a packet captured under that
 * key is not taken a second time; indexes above pass, forward only. Otherwise (a key new to this
 * table) the lists start empty. Either way ROC and s_l stay a guess for the first packet under
 * the new key (see unprotectRtp). `stale`: the state comes from a checkpoint, which may be short
 * of what the old key accepted since.
 */
export function switchKey(s: ReplayState, back: bool, stale: bool): void {
  const rtpFloor: u64 = s.rtpSeen ? saturatingFloor(s.highest) : 0;
  const rtcpFloor: u32 = s.rtcpSeen ? <u32>s.rtcpHighest + 1 : 0; // SRTCP indexes are 31 bits
  const rtpStale = stale || s.rtpResumed;
  const rtcpStale = stale || s.rtcpResumed;
  if (back) {
    restoreFloor(s);
  } else {
    s.rtpSeen = false;
    s.rtcpSeen = false;
    s.rtpResumed = false; // what a failed stage may have accepted after a checkpoint was under the old key
    s.rtcpResumed = false;
  }
  s.rtpFloor = rtpFloor;
  s.rtcpFloor = rtcpFloor;
  s.rtpFloorStale = rtpStale;
  s.rtcpFloorStale = rtcpStale;
  s.rekeyed = s.started;
}

/** The SRTP floor of highest index `highest`, kept below 2^48 (the blob holds 48 bits; an index that high needed a new key long before). */
@inline function saturatingFloor(highest: u64): u64 {
  const floor = highest + 1;
  return floor > MAX_FLOOR ? MAX_FLOOR : floor;
}
const MAX_FLOOR: u64 = 0xffffffffffff;

/** Going back to the key whose floors `s` holds: its lists, everything at or below the floors seen. */
function restoreFloor(s: ReplayState): void {
  if (s.rtpFloor != 0) {
    s.highest = s.rtpFloor - 1;
    s.rtpSeen = true;
    markAllSeen(s.bits);
    // the ROC guess: the later of where the stream is and where this key left it (a sender that
    // kept the key all along, or went back to the numbering it had under it)
    if (!s.started || s.highest > ((<u64>s.roc << 16) | <u64>s.highestSeq)) {
      s.roc = <u32>(s.highest >> 16);
      s.highestSeq = <u16>(s.highest & 0xffff);
      s.started = true;
    }
  } else {
    s.rtpSeen = false;
  }
  if (s.rtcpFloor != 0) {
    s.rtcpHighest = <u64>(s.rtcpFloor - 1);
    s.rtcpSeen = true;
    markAllSeen(s.rtcpBits);
  } else {
    s.rtcpSeen = false;
  }
  s.rtpResumed = s.rtpFloorStale;
  s.rtcpResumed = s.rtcpFloorStale;
}

function markAllSeen(bits: StaticArray<u64>): void {
  for (let i = 0; i < WORDS; i++) unchecked((bits[i] = ~(<u64>0)));
}

/**
 * Sender side: the index a packet with sequence `seq` gets, estimated as the receiver will
 * (RFC 3711 section 3.3.1); the first packet of a source starts at ROC 0. Changes nothing: once
 * the packet is protected, acceptIndex records it (ROC, s_l and the send window).
 */
export function senderIndex(s: ReplayState, seq: u16): u64 {
  return s.started ? estimateIndex(s, seq) : <u64>seq;
}
