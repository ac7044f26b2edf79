// AES-GCM (NIST SP 800-38D) as SRTP and SRTCP use it (RFC 7714): 12-byte IV, 16-byte tag.
// GHASH multiplies by H with Shoup's 4-bit tables: 16 multiples of H (256 bytes per key),
// computed at key setup, and one shared 16-entry reduction table. 8-bit tables would be about
// twice as fast for GHASH but cost 4 KiB per key and direction; with many sessions in a 16 MiB
// instance we take the smaller ones.
//
// Field elements are held as two u64, `hi` = bytes 0..7 and `lo` = bytes 8..15 read big-endian,
// so the coefficient of x^0 is the top bit of `hi` and multiplying by x is a right shift
// (SP 800-38D 6.3).
//
// Timing: like the AES tables (see aes.ts), the GHASH table lookups are indexed by secret-derived
// nibbles and are not constant-time; the same threat-model note applies. Tag comparison is
// constant-time (compare.ts).
import { AES_SCHEDULE_SIZE, aesEncryptBlock, aesExpandKey } from "./aes";
import { ctEqual } from "./compare";

/** GCM tag length used by RFC 7714 (AEAD_AES_128_GCM, AEAD_AES_256_GCM). */
export const GCM_TAG_SIZE: i32 = 16;
export const GCM_IV_SIZE: i32 = 12;
/** Bytes of caller-provided memory for one GCM key: AES schedule, then the 16-entry H table. */
export const GCM_KEY_SIZE: i32 = AES_SCHEDULE_SIZE + 256;
const TABLE: usize = <usize>AES_SCHEDULE_SIZE;

const REDUCE: usize = memory.data(128, 16); // 16 x u64: x^4 reduction of the nibble shifted out
let reduceReady = false;

const J0: usize = memory.data(16, 16); // IV || 0x00000001
const EK0: usize = memory.data(16, 16); // E(K, J0)
const CTR: usize = memory.data(16, 16);
const KS: usize = memory.data(16, 16);
const PARTIAL: usize = memory.data(16, 16);
const EXPECTED: usize = memory.data(16, 16);

let yHi: u64 = 0; // the running GHASH value Y
let yLo: u64 = 0;

// Multiplication by x (SP 800-38D algorithm 1, one step) on globals mHi/mLo.
let mHi: u64 = 0;
let mLo: u64 = 0;
function mulX(): void {
  const carry = mLo & 1;
  mLo = (mLo >> 1) | (mHi << 63);
  mHi = (mHi >> 1) ^ (carry * 0xe100000000000000);
}

function initReduce(): void {
  if (reduceReady) return;
  for (let r: u64 = 0; r < 16; r++) {
    mHi = 0;
    mLo = r;
    mulX(); mulX(); mulX(); mulX();
    store<u64>(REDUCE + (<usize>r << 3), mHi); // mLo is 0: all four bits were shifted out
  }
  reduceReady = true;
}

/**
 * Prepares a GCM key: expands `key` (16 or 32 bytes) into `state` (GCM_KEY_SIZE bytes, caller
 * provided), computes H = E(K, 0^128) and its 4-bit multiples table. Returns false for a bad key
 * length. Configuration time.
 */
export function gcmInit(state: usize, key: usize, keyLen: i32): bool {
  if (!aesExpandKey(state, key, keyLen)) return false;
  initReduce();
  v128.store(KS, i64x2.splat(0));
  aesEncryptBlock(state, KS, KS);
  const t = state + TABLE;
  // Entry n (a nibble read with its top bit as x^0) is n * H: 8 -> H, 4 -> H x, 2 -> H x^2, 1 -> H x^3.
  mHi = bswap<u64>(load<u64>(KS));
  mLo = bswap<u64>(load<u64>(KS, 8));
  v128.store(KS, i64x2.splat(0));
  for (let bit: usize = 8; bit > 0; bit >>= 1) {
    store<u64>(t + (bit << 4), mHi);
    store<u64>(t + (bit << 4), mLo, 8);
    mulX();
  }
  store<u64>(t, 0);
  store<u64>(t, 0, 8);
  for (let n: usize = 3; n < 16; n++) {
    if ((n & (n - 1)) == 0) continue; // powers of two are set
    const low = n & (~n + 1); // lowest set bit
    const a = t + (low << 4);
    const b = t + ((n ^ low) << 4);
    store<u64>(t + (n << 4), load<u64>(a) ^ load<u64>(b));
    store<u64>(t + (n << 4), load<u64>(a, 8) ^ load<u64>(b, 8), 8);
  }
  mHi = 0;
  mLo = 0;
  return true;
}

/** Y = (Y xor (hi, lo)) * H with the 4-bit table at `t` (Horner over 32 nibbles, last first). */
// @ts-ignore: decorator
@inline function ghashMix(t: usize, hi: u64, lo: u64): void {
  const xHi = yHi ^ hi;
  const xLo = yLo ^ lo;
  let zHi: u64 = 0;
  let zLo: u64 = 0;
  // the same 16 steps for the low word, then the high one: written twice on purpose, as one loop
  // over both words (or a nested one) measured about 2% slower per 1200-byte packet
  let v = xLo;
  for (let i = 0; i < 16; i++) {
    const rem = <usize>(zLo & 0xf);
    zLo = (zLo >> 4) | (zHi << 60);
    zHi = (zHi >> 4) ^ load<u64>(REDUCE + (rem << 3));
    const e = t + (<usize>(v & 0xf) << 4);
    zHi ^= load<u64>(e);
    zLo ^= load<u64>(e, 8);
    v >>= 4;
  }
  v = xHi;
  for (let i = 0; i < 16; i++) {
    const rem = <usize>(zLo & 0xf);
    zLo = (zLo >> 4) | (zHi << 60);
    zHi = (zHi >> 4) ^ load<u64>(REDUCE + (rem << 3));
    const e = t + (<usize>(v & 0xf) << 4);
    zHi ^= load<u64>(e);
    zLo ^= load<u64>(e, 8);
    v >>= 4;
  }
  yHi = zHi;
  yLo = zLo;
}

/** GHASH over `len` bytes at `ptr`, the last partial block padded with zeros. */
function ghashBytes(t: usize, ptr: usize, len: i32): void {
  let p = ptr;
  const end = ptr + <usize>len;
  while (end - p >= 16) {
    ghashMix(t, bswap<u64>(load<u64>(p)), bswap<u64>(load<u64>(p, 8)));
    p += 16;
  }
  if (p < end) {
    v128.store(PARTIAL, i64x2.splat(0));
    memory.copy(PARTIAL, p, end - p);
    ghashMix(t, bswap<u64>(load<u64>(PARTIAL)), bswap<u64>(load<u64>(PARTIAL, 8)));
  }
}

/** S = GHASH(A, C) xor E(K, J0), 16 bytes to `out`; also leaves J0 set up for the CTR pass. */
function computeTag(state: usize, aad: usize, aadLen: i32, ct: usize, len: i32, out: usize): void {
  const t = state + TABLE;
  yHi = 0;
  yLo = 0;
  ghashBytes(t, aad, aadLen);
  ghashBytes(t, ct, len);
  ghashMix(t, <u64>aadLen << 3, <u64>len << 3);
  store<u64>(out, bswap<u64>(yHi) ^ load<u64>(EK0));
  store<u64>(out, bswap<u64>(yLo) ^ load<u64>(EK0, 8), 8);
  yHi = 0;
  yLo = 0;
}

function setupJ0(state: usize, iv12: usize): void {
  memory.copy(J0, iv12, 12);
  store<u32>(J0, bswap<u32>(1), 12);
  aesEncryptBlock(state, J0, EK0);
}

/** The GCTR pass from inc32(J0), in place. */
function gctr(state: usize, data: usize, len: i32): void {
  v128.store(CTR, v128.load(J0));
  let ctr: u32 = 1;
  let p = data;
  const end = data + <usize>len;
  while (end - p >= 16) {
    ctr++; // inc32: only the last 32 bits count (SP 800-38D 6.2)
    store<u32>(CTR, bswap<u32>(ctr), 12);
    aesEncryptBlock(state, CTR, KS);
    v128.store(p, v128.xor(v128.load(p), v128.load(KS)));
    p += 16;
  }
  if (p < end) {
    ctr++;
    store<u32>(CTR, bswap<u32>(ctr), 12);
    aesEncryptBlock(state, CTR, KS);
    let k = KS;
    while (p < end) {
      store<u8>(p, load<u8>(p) ^ load<u8>(k));
      p++;
      k++;
    }
  }
}

/**
 * AES-GCM encryption in place: encrypts `len` bytes at `data` under the key `state` (gcmInit)
 * and the 12-byte `iv12`, authenticating `aadLen` bytes at `aad` too, and writes the 16-byte tag
 * to `tag` (which may be data + len, as in an SRTP packet). `aad` must not overlap `data`.
 * Static buffers: not re-entrant; allocates nothing.
 */
export function gcmEncrypt(
  state: usize, iv12: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize,
): void {
  setupJ0(state, iv12);
  gctr(state, data, len);
  computeTag(state, aad, aadLen, data, len, tag);
  v128.store(EK0, i64x2.splat(0));
}

/**
 * AES-GCM decryption in place with verification first: computes the tag over `aad` and the
 * ciphertext, compares it in constant time with the 16 bytes at `tag`, and only on a match
 * decrypts `data` and returns true. On a mismatch returns false and leaves `data` as it was (no
 * unauthenticated plaintext is ever released).
 */
export function gcmDecrypt(
  state: usize, iv12: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize,
): bool {
  setupJ0(state, iv12);
  computeTag(state, aad, aadLen, data, len, EXPECTED);
  v128.store(EK0, i64x2.splat(0));
  const ok = ctEqual(EXPECTED, tag, GCM_TAG_SIZE);
  v128.store(EXPECTED, i64x2.splat(0));
  if (!ok) return false;
  gctr(state, data, len);
  return true;
}

/**
 * Writes the RFC 7714 8.1 SRTP IV to `out12`:
 *   (0x0000 || SSRC || ROC || SEQ) XOR salt
 * with `salt12` the 12-byte session salt.
 */
export function gcmSrtpIv(out12: usize, salt12: usize, ssrc: u32, roc: u32, seq: u16): void {
  store<u16>(out12, load<u16>(salt12));
  store<u32>(out12, load<u32>(salt12, 2) ^ bswap<u32>(ssrc), 2);
  store<u32>(out12, load<u32>(salt12, 6) ^ bswap<u32>(roc), 6);
  store<u16>(out12, load<u16>(salt12, 10) ^ bswap<u16>(seq), 10);
}

/**
 * Writes the RFC 7714 9.1 SRTCP IV to `out12`:
 *   (0x0000 || SSRC || 0x0000 || 0 || SRTCP index (31 bits)) XOR salt
 */
export function gcmSrtcpIv(out12: usize, salt12: usize, ssrc: u32, index: u32): void {
  store<u16>(out12, load<u16>(salt12));
  store<u32>(out12, load<u32>(salt12, 2) ^ bswap<u32>(ssrc), 2);
  store<u16>(out12, load<u16>(salt12, 6), 6);
  store<u32>(out12, load<u32>(salt12, 8) ^ bswap<u32>(index & 0x7fffffff), 8);
}
