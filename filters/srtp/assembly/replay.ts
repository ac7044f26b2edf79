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
 * Receiver side, after a hot swap to another key: no packet made under the old key authenticates
 * under the new one, so the replay lists of the old key guard nothing, and kept, they would refuse
 * a sender that started its numbering (and its SRTCP index) again with the new key, for up to
 * 32,768 packets. They go; ROC and s_l stay as a guess for a sender that goes on numbering.
 */
export function forgetOldKey(s: ReplayState): void {
  s.rtpSeen = false;
  s.rtcpSeen = false;
  s.rtpResumed = false; // what a failed stage may have accepted after a checkpoint was under the old key
  s.rtcpResumed = false;
  s.rekeyed = s.started;
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
