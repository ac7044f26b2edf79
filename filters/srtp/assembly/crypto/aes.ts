// AES-128 / AES-256 block encryption (FIPS-197), forward direction only: AES-CM (RFC 3711 4.1.1)
// and AES-GCM (RFC 7714) never run the inverse cipher.
//
// Table-based ("T-table") implementation over raw linear memory. The state is four 32-bit
// columns loaded little-endian, so byte r of a column is bits 8r..8r+7 and no byte swaps are
// needed. Te0[x] holds MixColumns(SubBytes) of x placed in row 0, i.e. bytes (2s, s, s, 3s);
// Te1..Te3 are Te0 rotated by one, two, three bytes for rows 1..3. The four tables (4 KiB) and
// the S-box are computed once, on the first key expansion (configuration time), from the field
// arithmetic of FIPS-197 section 4 rather than typed in.
//
// Timing: table lookups are indexed by key- and data-dependent bytes, so this AES is NOT
// constant-time. A process sharing a CPU cache with the proxy (another tenant on the host, a
// sibling VM without cache partitioning) can in principle recover keys by cache-timing
// (Bernstein 2005; Osvik-Shamir-Tromer 2006). A remote attacker sees the lookups only through
// network timing blurred by the JIT, the batch loop and the kernel, which is far harder but has
// been shown not impossible in the lab. This is why the filter hands its keys to the host where
// it can (ABI 1.4 crypto, session.ts): the host's AES-NI is constant-time, and this code runs only
// on a host without native crypto, which says so when it starts.
//
// SIMD: the round function is 16 scalar table lookups per round with no gather instruction in
// wasm, so it stays scalar; v128 is used where it pays (the keystream XOR in ctr.ts).

/** Bytes of caller-provided memory that hold one expanded key (AES-128 or AES-256). */
export const AES_SCHEDULE_SIZE: i32 = 256;
/** Byte offset of the round keys inside a schedule; the round count (u32) is at offset 0. */
const RK: usize = 16;

const TE: usize = memory.data(4096, 64); // Te0 | Te1 | Te2 | Te3, 256 x u32 each
const SBOX: usize = memory.data(256, 64);
const GF_EXP: usize = memory.data(512, 16); // scratch for building the tables
const GF_LOG: usize = memory.data(256, 16);
let tablesReady = false;

/** Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (FIPS-197 4.2.1). */
// @ts-ignore: decorator
@inline function xtime(b: u32): u32 {
  return ((b << 1) ^ (((b >> 7) & 1) * 0x1b)) & 0xff;
}

/** Builds the S-box (FIPS-197 5.1.1) and the four T-tables. Idempotent; configuration time. */
function initTables(): void {
  if (tablesReady) return;
  // Powers of the generator 3 give exp/log tables for inversion in GF(2^8).
  let p: u32 = 1;
  for (let i = 0; i < 255; i++) {
    store<u8>(GF_EXP + <usize>i, <u8>p);
    store<u8>(GF_EXP + <usize>(i + 255), <u8>p);
    store<u8>(GF_LOG + <usize>p, <u8>i);
    p = p ^ xtime(p); // p * 3
  }
  for (let x: u32 = 0; x < 256; x++) {
    // Multiplicative inverse (0 maps to 0), then the affine transformation.
    const inv: u32 = x == 0 ? 0 : <u32>load<u8>(GF_EXP + 255 - <usize>load<u8>(GF_LOG + <usize>x));
    let s = inv;
    for (let k: u32 = 1; k <= 4; k++) s ^= ((inv << k) | (inv >> (8 - k))) & 0xff;
    s ^= 0x63;
    store<u8>(SBOX + <usize>x, <u8>s);
    const s2 = xtime(s);
    const s3 = s2 ^ s;
    const t0 = s2 | (s << 8) | (s << 16) | (s3 << 24);
    const at = TE + (<usize>x << 2);
    store<u32>(at, t0);
    store<u32>(at, rotl<u32>(t0, 8), 1024);
    store<u32>(at, rotl<u32>(t0, 16), 2048);
    store<u32>(at, rotl<u32>(t0, 24), 3072);
  }
  tablesReady = true;
}

// @ts-ignore: decorator
@inline function subWord(w: u32): u32 {
  return <u32>load<u8>(SBOX + <usize>(w & 0xff))
    | (<u32>load<u8>(SBOX + <usize>((w >> 8) & 0xff)) << 8)
    | (<u32>load<u8>(SBOX + <usize>((w >> 16) & 0xff)) << 16)
    | (<u32>load<u8>(SBOX + <usize>(w >> 24)) << 24);
}

/**
 * Expands a 16- or 32-byte key (FIPS-197 5.2) into `schedule`, AES_SCHEDULE_SIZE bytes of
 * caller-provided memory. Returns false (and writes nothing) for any other key length.
 * Configuration time; allocates nothing. The caller owns both buffers and should zero the
 * schedule when the key is retired.
 */
export function aesExpandKey(schedule: usize, key: usize, keyLen: i32): bool {
  if (keyLen != 16 && keyLen != 32) return false;
  initTables();
  const nk = keyLen >> 2;
  const rounds = nk + 6;
  const words = (rounds + 1) << 2;
  store<u32>(schedule, <u32>rounds);
  const w = schedule + RK;
  for (let i = 0; i < nk; i++) store<u32>(w + (<usize>i << 2), load<u32>(key + (<usize>i << 2)));
  let rcon: u32 = 1;
  for (let i = nk; i < words; i++) {
    let t = load<u32>(w + (<usize>(i - 1) << 2));
    if (i % nk == 0) {
      // RotWord moves byte 1 to byte 0: a right rotation in little-endian columns.
      t = subWord(rotr<u32>(t, 8)) ^ rcon;
      rcon = xtime(rcon);
    } else if (nk > 6 && i % nk == 4) {
      t = subWord(t);
    }
    store<u32>(w + (<usize>i << 2), load<u32>(w + (<usize>(i - nk) << 2)) ^ t);
  }
  return true;
}

/** The number of rounds of an expanded key (10 or 14). */
export function aesRounds(schedule: usize): i32 {
  return <i32>load<u32>(schedule);
}

// Byte r of a column indexes table Te<r> (the immediate offset selects the table).
// @ts-ignore: decorator
@inline function te0(c: u32): u32 {
  return load<u32>(TE + (<usize>(c & 0xff) << 2));
}
// @ts-ignore: decorator
@inline function te1(c: u32): u32 {
  return load<u32>(TE + (<usize>((c >> 8) & 0xff) << 2), 1024);
}
// @ts-ignore: decorator
@inline function te2(c: u32): u32 {
  return load<u32>(TE + (<usize>((c >> 16) & 0xff) << 2), 2048);
}
// @ts-ignore: decorator
@inline function te3(c: u32): u32 {
  return load<u32>(TE + (<usize>(c >> 24) << 2), 3072);
}

// @ts-ignore: decorator
@inline function sb(column: u32, row: i32): u32 {
  return <u32>load<u8>(SBOX + <usize>((column >> (<u32>row << 3)) & 0xff)) << (<u32>row << 3);
}

/**
 * Encrypts one 16-byte block: `dst` = AES(schedule, `src`). `src` and `dst` may be the same
 * address; neither needs alignment. Allocates nothing.
 */
export function aesEncryptBlock(schedule: usize, src: usize, dst: usize): void {
  let rk = schedule + RK;
  let s0 = load<u32>(src) ^ load<u32>(rk);
  let s1 = load<u32>(src, 4) ^ load<u32>(rk, 4);
  let s2 = load<u32>(src, 8) ^ load<u32>(rk, 8);
  let s3 = load<u32>(src, 12) ^ load<u32>(rk, 12);
  const last = rk + (<usize>load<u32>(schedule) << 4);
  rk += 16;
  // Rounds 1 .. Nr-1: SubBytes + ShiftRows + MixColumns through the tables, then AddRoundKey.
  // ShiftRows: output column c takes row r from input column c + r.
  while (rk < last) {
    const t0 = te0(s0) ^ te1(s1) ^ te2(s2) ^ te3(s3) ^ load<u32>(rk);
    const t1 = te0(s1) ^ te1(s2) ^ te2(s3) ^ te3(s0) ^ load<u32>(rk, 4);
    const t2 = te0(s2) ^ te1(s3) ^ te2(s0) ^ te3(s1) ^ load<u32>(rk, 8);
    const t3 = te0(s3) ^ te1(s0) ^ te2(s1) ^ te3(s2) ^ load<u32>(rk, 12);
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
    rk += 16;
  }
  // Final round: no MixColumns.
  store<u32>(dst, (sb(s0, 0) | sb(s1, 1) | sb(s2, 2) | sb(s3, 3)) ^ load<u32>(rk));
  store<u32>(dst, (sb(s1, 0) | sb(s2, 1) | sb(s3, 2) | sb(s0, 3)) ^ load<u32>(rk, 4), 4);
  store<u32>(dst, (sb(s2, 0) | sb(s3, 1) | sb(s0, 2) | sb(s1, 3)) ^ load<u32>(rk, 8), 8);
  store<u32>(dst, (sb(s3, 0) | sb(s0, 1) | sb(s1, 2) | sb(s2, 3)) ^ load<u32>(rk, 12), 12);
}
