// The four packet transforms: protect and unprotect, SRTP (RFC 3711 section 3, RFC 7714
// section 8) and SRTCP (RFC 3711 section 3.4, RFC 7714 section 9). Each works in place on a
// packet at `ptr` and returns 0 or a DropReason; the new length is left in `resultLength`.
// A receiver's state changes only after a packet authenticated.
import {
  DropReason, Status, aesCtrXor, aesGcmOpen, aesGcmSeal, hmacSha1Host, loadBe16, loadBe32, storeBe32,
} from "../../../sdk/assembly";
import {
  GCM_TAG_SIZE, aesCmXor, ctEqual, gcmDecrypt, gcmEncrypt, gcmSrtcpIv, gcmSrtpIv, hmacSha1, srtpCmIv,
} from "./crypto/index";
import { ReplayState, acceptIndex, acceptRtcpIndex, estimateIndex, isFresh, senderIndex } from "./replay";
import { Session } from "./session";
import { Suite } from "./suites";

/** Length of the packet after the last successful transform. */
export let resultLength: i32 = 0;

const iv = memory.data(16);
const tag = memory.data(20);
const rocBytes = memory.data(4);
const aad = memory.data(12);
const E_FLAG: u32 = 0x80000000;
const SRTCP_INDEX_MASK: u32 = 0x7fffffff;
const SRTCP_HEADER = 8; // the first RTCP header and the sender's SSRC stay in the clear

// Each primitive runs in the host where the session holds a host key for it (see session.ts), and
// in WebAssembly otherwise, or if the host refuses the call (it then has touched nothing).

@inline function ctrXor(hostKey: i32, schedule: usize, iv16: usize, data: usize, len: i32): void {
  if (hostKey == 0 || aesCtrXor(hostKey, iv16, data, len) != Status.Ok) aesCmXor(schedule, iv16, data, len);
}

@inline function mac(hostKey: i32, state: usize, msg: usize, msgLen: i32, suffix: usize, suffixLen: i32, out: usize): void {
  if (hostKey == 0 || hmacSha1Host(hostKey, msg, msgLen, suffix, suffixLen, out) != Status.Ok) hmacSha1(state, msg, msgLen, suffix, suffixLen, out);
}

@inline function gcmSeal(hostKey: i32, state: usize, iv12: usize, aadPtr: usize, aadLen: i32, data: usize, len: i32, tagPtr: usize): void {
  if (hostKey == 0 || aesGcmSeal(hostKey, iv12, aadPtr, aadLen, data, len, tagPtr) != Status.Ok) gcmEncrypt(state, iv12, aadPtr, aadLen, data, len, tagPtr);
}

/** True when the tag matched (and the data is now plaintext). */
@inline function gcmOpen(hostKey: i32, state: usize, iv12: usize, aadPtr: usize, aadLen: i32, data: usize, len: i32, tagPtr: usize): bool {
  if (hostKey != 0) {
    const status = aesGcmOpen(hostKey, iv12, aadPtr, aadLen, data, len, tagPtr);
    if (status == Status.Ok) return true;
    if (status == Status.Failed) return false; // the tag did not match
  }
  return gcmDecrypt(state, iv12, aadPtr, aadLen, data, len, tagPtr);
}

/**
 * Length of the RTP header (fixed part, CSRCs, extension), or a negative DropReason. The padding
 * is not checked here: on the protected side it is encrypted.
 */
export function rtpHeaderLength(ptr: usize, len: i32): i32 {
  if (len < 12) return -DropReason.TooShort;
  const b0 = <i32>load<u8>(ptr);
  if (b0 >> 6 != 2) return -DropReason.BadVersion;
  let h = 12 + (b0 & 15) * 4;
  if (h > len) return -DropReason.CsrcOverrun;
  if (b0 & 0x10) {
    if (h + 4 > len) return -DropReason.ExtensionOverrun;
    h += 4 + <i32>loadBe16(ptr + <usize>h + 2) * 4;
    if (h > len) return -DropReason.ExtensionOverrun;
  }
  return h;
}

/**
 * Encrypts and authenticates an RTP packet; `room` is how far it may grow from `ptr`. An index
 * this source protected already (its sequence number came again), or one `window` or more behind
 * the highest (too old to tell), is refused: encrypting two payloads with the same index under one
 * key gives away their XOR (RFC 3711 section 9.1). A duplicate of the same packet is refused too.
 */
export function protectRtp(sess: Session, s: ReplayState, ptr: usize, len: i32, room: i32, window: i32): u32 {
  const h = rtpHeaderLength(ptr, len);
  if (h < 0) return <u32>-h;
  const suite = changetype<Suite>(sess.suite);
  if (len + suite.rtpTag > room) return DropReason.TooLarge;
  const seq = loadBe16(ptr + 2);
  const ssrc = loadBe32(ptr + 8);
  const index = senderIndex(s, seq);
  if (!isFresh(s.bits, s.highest, s.rtpSeen, index, window)) return DropReason.SrtpReplay;
  const payload = ptr + <usize>h;
  const payloadLength = len - h;
  if (suite.aead) {
    gcmSrtpIv(iv, sess.srtpSalt, ssrc, <u32>(index >> 16), seq);
    gcmSeal(sess.srtpCipherKey, sess.srtpCipher, iv, ptr, h, payload, payloadLength, ptr + <usize>len);
  } else {
    srtpCmIv(iv, sess.srtpSalt, ssrc, index);
    ctrXor(sess.srtpCipherKey, sess.srtpCipher, iv, payload, payloadLength);
    storeBe32(rocBytes, <u32>(index >> 16));
    mac(sess.srtpAuthKey, sess.srtpAuth, ptr, len, rocBytes, 4, tag); // RFC 3711 4.2: M = header || payload || ROC
    memory.copy(ptr + <usize>len, tag, <usize>suite.rtpTag);
  }
  acceptIndex(s, index);
  resultLength = len + suite.rtpTag;
  return 0;
}

/**
 * Authenticates, checks for replay, and decrypts an SRTP packet. `known` says whether `s` is
 * the source's real state; for a new source it is a blank scratch state the caller keeps only
 * if this returns 0.
 */
export function unprotectRtp(sess: Session, s: ReplayState, known: bool, ptr: usize, len: i32, window: i32): u32 {
  const suite = changetype<Suite>(sess.suite);
  const t = suite.rtpTag;
  if (len < 12 + t) return DropReason.SrtpTooShort;
  const body = len - t;
  const h = rtpHeaderLength(ptr, body);
  if (h < 0) return <u32>-h;
  const seq = loadBe16(ptr + 2);
  const ssrc = loadBe32(ptr + 8);
  let index = estimateIndex(s, seq);
  if (known && !isFresh(s.bits, s.highest, s.rtpSeen, index, window)) return DropReason.SrtpReplay;
  if (!openRtp(sess, suite, ptr, body, h, ssrc, seq, index)) {
    // the key changed: the sender may also have started again at ROC 0 with it (the data is
    // untouched by a failed check, so the packet can be tried once more). Back to an earlier key,
    // its floor still holds: a restart below what that key accepted is refused unopened.
    if (!known || !s.rekeyed || index >> 16 == 0) return DropReason.SrtpAuthFailed;
    if (!isFresh(s.bits, s.highest, s.rtpSeen, <u64>seq, window)) return DropReason.SrtpReplay;
    if (!openRtp(sess, suite, ptr, body, h, ssrc, seq, <u64>seq)) return DropReason.SrtpAuthFailed;
    index = <u64>seq;
  }
  if (s.rekeyed) {
    s.started = false; // the first packet under the new key: ROC and s_l start from its (authenticated) index
    s.rekeyed = false;
  }
  acceptIndex(s, index);
  resultLength = body;
  return 0;
}

/** Checks the tag of an SRTP packet as index `index` and, if it matches, decrypts it in place. */
function openRtp(sess: Session, suite: Suite, ptr: usize, body: i32, h: i32, ssrc: u32, seq: u16, index: u64): bool {
  const payload = ptr + <usize>h;
  if (suite.aead) {
    gcmSrtpIv(iv, sess.srtpSalt, ssrc, <u32>(index >> 16), seq);
    return gcmOpen(sess.srtpCipherKey, sess.srtpCipher, iv, ptr, h, payload, body - h, ptr + <usize>body);
  }
  storeBe32(rocBytes, <u32>(index >> 16));
  mac(sess.srtpAuthKey, sess.srtpAuth, ptr, body, rocBytes, 4, tag);
  if (!ctEqual(tag, ptr + <usize>body, suite.rtpTag)) return false;
  srtpCmIv(iv, sess.srtpSalt, ssrc, index);
  ctrXor(sess.srtpCipherKey, sess.srtpCipher, iv, payload, body - h);
  return true;
}

/**
 * Encrypts and authenticates an RTCP compound packet (E flag set). The SRTCP index is 31 bits
 * (RFC 3711 section 3.4): once this source used them all under this key, its packets are refused
 * (section 9.2: re-key) rather than the index starting again at 0 with the same keystream.
 */
export function protectRtcp(sess: Session, s: ReplayState, ptr: usize, len: i32, room: i32): u32 {
  if (len < SRTCP_HEADER) return DropReason.TooShort;
  const suite = changetype<Suite>(sess.suite);
  if (len + 4 + suite.rtcpTag > room) return DropReason.TooLarge;
  const ssrc = loadBe32(ptr + 4);
  const index = s.rtcpNextIndex;
  if (index > SRTCP_INDEX_MASK) return DropReason.SrtpReplay;
  s.rtcpNextIndex = index + 1; // 2^31 at most: every index used
  const eIndex = E_FLAG | index;
  const body = ptr + SRTCP_HEADER;
  const bodyLength = len - SRTCP_HEADER;
  if (suite.aead) {
    // RFC 7714 9.2: AAD = header || E || index; the trailer goes after the tag
    memory.copy(aad, ptr, SRTCP_HEADER);
    storeBe32(aad + SRTCP_HEADER, eIndex);
    gcmSrtcpIv(iv, sess.srtcpSalt, ssrc, index);
    gcmSeal(sess.srtcpCipherKey, sess.srtcpCipher, iv, aad, 12, body, bodyLength, ptr + <usize>len);
    storeBe32(ptr + <usize>len + GCM_TAG_SIZE, eIndex);
    resultLength = len + GCM_TAG_SIZE + 4;
  } else {
    srtpCmIv(iv, sess.srtcpSalt, ssrc, <u64>index);
    ctrXor(sess.srtcpCipherKey, sess.srtcpCipher, iv, body, bodyLength);
    storeBe32(ptr + <usize>len, eIndex);
    mac(sess.srtcpAuthKey, sess.srtcpAuth, ptr, len + 4, 0, 0, tag); // RFC 3711 3.4: the tag covers E || index too
    memory.copy(ptr + <usize>len + 4, tag, <usize>suite.rtcpTag);
    resultLength = len + 4 + suite.rtcpTag;
  }
  return 0;
}

/** Authenticates, checks for replay, and decrypts an SRTCP packet. See unprotectRtp for `known`. */
export function unprotectRtcp(sess: Session, s: ReplayState, known: bool, ptr: usize, len: i32, window: i32): u32 {
  const suite = changetype<Suite>(sess.suite);
  const t = suite.rtcpTag;
  if (len < SRTCP_HEADER + 4 + t) return DropReason.SrtpTooShort;
  const trailer = suite.aead ? len - 4 : len - t - 4;
  const eIndex = loadBe32(ptr + <usize>trailer);
  const index = eIndex & SRTCP_INDEX_MASK;
  const encrypted = (eIndex & E_FLAG) != 0;
  const ssrc = loadBe32(ptr + 4);
  if (known && !isFresh(s.rtcpBits, s.rtcpHighest, s.rtcpSeen, <u64>index, window)) return DropReason.SrtpReplay;
  const body = ptr + SRTCP_HEADER;
  if (suite.aead) {
    // An unencrypted (E = 0) SRTCP packet under AEAD authenticates the whole packet as AAD
    // (RFC 7714 9.3); senders we interoperate with always encrypt, so it is refused.
    if (!encrypted) return DropReason.SrtpAuthFailed;
    memory.copy(aad, ptr, SRTCP_HEADER);
    storeBe32(aad + SRTCP_HEADER, eIndex);
    gcmSrtcpIv(iv, sess.srtcpSalt, ssrc, index);
    const cipherLength = trailer - GCM_TAG_SIZE - SRTCP_HEADER;
    if (!gcmOpen(sess.srtcpCipherKey, sess.srtcpCipher, iv, aad, 12, body, cipherLength, body + <usize>cipherLength)) return DropReason.SrtpAuthFailed;
    resultLength = SRTCP_HEADER + cipherLength;
  } else {
    mac(sess.srtcpAuthKey, sess.srtcpAuth, ptr, len - t, 0, 0, tag);
    if (!ctEqual(tag, ptr + <usize>(len - t), t)) return DropReason.SrtpAuthFailed;
    if (encrypted) {
      srtpCmIv(iv, sess.srtcpSalt, ssrc, <u64>index);
      ctrXor(sess.srtcpCipherKey, sess.srtcpCipher, iv, body, trailer - SRTCP_HEADER);
    }
    resultLength = trailer;
  }
  acceptRtcpIndex(s, <u64>index);
  return 0;
}
