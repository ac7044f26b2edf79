// SHA-1 (FIPS 180-4 section 6.1), streaming, over static buffers: one hash in progress at a time
// (the host never re-enters a filter). Used by HMAC-SHA1 (hmac.ts) for SRTP/SRTCP
// authentication, where SHA-1's collision weakness does not matter (RFC 6194 section 3.2).

/** The SHA-1 state: five u32 words (native byte order) = 20 bytes. */
export const SHA1_STATE_SIZE: i32 = 20;
export const SHA1_BLOCK_SIZE: i32 = 64;
export const SHA1_DIGEST_SIZE: i32 = 20;

const W: usize = memory.data(320, 16); // message schedule, 80 words
const H: usize = memory.data(SHA1_STATE_SIZE, 16); // running state
const BLOCK: usize = memory.data(SHA1_BLOCK_SIZE, 16); // partial block
let fill: i32 = 0; // bytes in BLOCK
let total: u64 = 0; // bytes hashed so far, including those in BLOCK

/** Writes the FIPS 180-4 5.3.1 initial state to `state` (20 bytes). */
export function sha1InitialState(state: usize): void {
  store<u32>(state, 0x67452301);
  store<u32>(state, 0xefcdab89, 4);
  store<u32>(state, 0x98badcfe, 8);
  store<u32>(state, 0x10325476, 12);
  store<u32>(state, 0xc3d2e1f0, 16);
}

/** Runs the compression function on one 64-byte block at `block`, updating `state`. */
export function sha1Compress(state: usize, block: usize): void {
  for (let t: usize = 0; t < 16; t++) store<u32>(W + (t << 2), bswap<u32>(load<u32>(block + (t << 2))));
  // W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), addressed from q = &W[t-16].
  for (let q = W; q < W + 256; q += 4) {
    const x = load<u32>(q, 52) ^ load<u32>(q, 32) ^ load<u32>(q, 8) ^ load<u32>(q);
    store<u32>(q, rotl<u32>(x, 1), 64);
  }
  let a = load<u32>(state);
  let b = load<u32>(state, 4);
  let c = load<u32>(state, 8);
  let d = load<u32>(state, 12);
  let e = load<u32>(state, 16);
  let w = W;
  const end20 = W + 80;
  for (; w < end20; w += 4) {
    const t = rotl<u32>(a, 5) + (d ^ (b & (c ^ d))) + e + 0x5a827999 + load<u32>(w);
    e = d; d = c; c = rotl<u32>(b, 30); b = a; a = t;
  }
  const end40 = W + 160;
  for (; w < end40; w += 4) {
    const t = rotl<u32>(a, 5) + (b ^ c ^ d) + e + 0x6ed9eba1 + load<u32>(w);
    e = d; d = c; c = rotl<u32>(b, 30); b = a; a = t;
  }
  const end60 = W + 240;
  for (; w < end60; w += 4) {
    const t = rotl<u32>(a, 5) + ((b & c) | (d & (b | c))) + e + 0x8f1bbcdc + load<u32>(w);
    e = d; d = c; c = rotl<u32>(b, 30); b = a; a = t;
  }
  const end80 = W + 320;
  for (; w < end80; w += 4) {
    const t = rotl<u32>(a, 5) + (b ^ c ^ d) + e + 0xca62c1d6 + load<u32>(w);
    e = d; d = c; c = rotl<u32>(b, 30); b = a; a = t;
  }
  store<u32>(state, load<u32>(state) + a);
  store<u32>(state, load<u32>(state, 4) + b, 4);
  store<u32>(state, load<u32>(state, 8) + c, 8);
  store<u32>(state, load<u32>(state, 12) + d, 12);
  store<u32>(state, load<u32>(state, 16) + e, 16);
}

/**
 * Starts a hash from the 20-byte state at `from` (copied, not modified), as if `alreadyHashed`
 * bytes (a multiple of 64) had gone in before: HMAC starts from a precomputed pad state with 64.
 */
export function sha1Begin(from: usize, alreadyHashed: u64): void {
  memory.copy(H, from, SHA1_STATE_SIZE);
  fill = 0;
  total = alreadyHashed;
}

/** Feeds `len` (>= 0) bytes at `ptr`. Full blocks are hashed straight from `ptr`, without copying. */
export function sha1Update(ptr: usize, len: i32): void {
  if (len <= 0) return;
  total += <u64>len;
  let p = ptr;
  let n = len;
  if (fill > 0) {
    const take = min(n, SHA1_BLOCK_SIZE - fill);
    memory.copy(BLOCK + <usize>fill, p, <usize>take);
    fill += take;
    p += <usize>take;
    n -= take;
    if (fill < SHA1_BLOCK_SIZE) return;
    sha1Compress(H, BLOCK);
    fill = 0;
  }
  while (n >= SHA1_BLOCK_SIZE) {
    sha1Compress(H, p);
    p += <usize>SHA1_BLOCK_SIZE;
    n -= SHA1_BLOCK_SIZE;
  }
  if (n > 0) {
    memory.copy(BLOCK, p, <usize>n);
    fill = n;
  }
}

/** Pads (FIPS 180-4 5.1.1), hashes the last block(s) and writes the 20-byte digest to `out`. */
export function sha1Finish(out: usize): void {
  const bits = total << 3;
  store<u8>(BLOCK + <usize>fill, 0x80);
  fill++;
  if (fill > 56) {
    memory.fill(BLOCK + <usize>fill, 0, <usize>(SHA1_BLOCK_SIZE - fill));
    sha1Compress(H, BLOCK);
    fill = 0;
  }
  memory.fill(BLOCK + <usize>fill, 0, <usize>(56 - fill));
  store<u64>(BLOCK, bswap<u64>(bits), 56);
  sha1Compress(H, BLOCK);
  fill = 0;
  store<u32>(out, bswap<u32>(load<u32>(H)));
  store<u32>(out, bswap<u32>(load<u32>(H, 4)), 4);
  store<u32>(out, bswap<u32>(load<u32>(H, 8)), 8);
  store<u32>(out, bswap<u32>(load<u32>(H, 12)), 12);
  store<u32>(out, bswap<u32>(load<u32>(H, 16)), 16);
}

const IV: usize = memory.data(SHA1_STATE_SIZE, 16);

/** SHA-1 of `len` bytes at `ptr`, 20 bytes to `out`. */
export function sha1(ptr: usize, len: i32, out: usize): void {
  sha1InitialState(IV);
  sha1Begin(IV, 0);
  sha1Update(ptr, len);
  sha1Finish(out);
}
