// AES counter mode (RFC 3711 4.1.1, "AES-CM"; also the CTR of NIST SP 800-38A) and the SRTP /
// SRTCP counter IV. The keystream is E(k, IV) || E(k, IV + 1 mod 2^128) || ..., XORed into the
// data; encryption and decryption are the same operation.
import { aesEncryptBlock } from "./aes";

const COUNTER: usize = memory.data(16, 16);
const KEYSTREAM: usize = memory.data(16, 16);

/** Adds one to the 128-bit big-endian counter at `c`. */
// @ts-ignore: decorator
@inline function increment128(c: usize): void {
  let i: usize = 16;
  // Almost always one byte; the loop only carries on 0xff -> 0x00.
  do {
    i--;
    const b = <u32>load<u8>(c + i) + 1;
    store<u8>(c + i, <u8>b);
    if (b < 0x100) return;
  } while (i > 0);
}

/**
 * XORs the AES-CM keystream for `iv16` into `len` bytes at `data`, in place (encrypts or
 * decrypts). `schedule` is an expanded key (aes.ts, 128 or 256 bits); `iv16` is the 16-byte
 * initial counter block, read and not modified. The counter is the whole 128-bit block
 * (increments carry across all 16 bytes, as RFC 3711 and SP 800-38A specify). `len` >= 0; any
 * alignment. Uses two static 16-byte buffers: not re-entrant, allocates nothing.
 */
export function aesCmXor(schedule: usize, iv16: usize, data: usize, len: i32): void {
  v128.store(COUNTER, v128.load(iv16));
  let p = data;
  const end = data + <usize>len;
  while (end - p >= 16) {
    aesEncryptBlock(schedule, COUNTER, KEYSTREAM);
    v128.store(p, v128.xor(v128.load(p), v128.load(KEYSTREAM)));
    increment128(COUNTER);
    p += 16;
  }
  if (p < end) {
    aesEncryptBlock(schedule, COUNTER, KEYSTREAM);
    let k = KEYSTREAM;
    while (p < end) {
      store<u8>(p, load<u8>(p) ^ load<u8>(k));
      p++;
      k++;
    }
  }
}

/**
 * Writes the AES-CM IV of RFC 3711 4.1.1 to `out16`:
 *   IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)
 * with `salt14` the 14-byte session salt k_s, `ssrc` the packet's SSRC and `index` the 48-bit
 * SRTP packet index (ROC * 2^16 + SEQ) or, for SRTCP, the 31-bit SRTCP index. Only the low 48
 * bits of `index` are used.
 */
export function srtpCmIv(out16: usize, salt14: usize, ssrc: u32, index: u64): void {
  // k_s * 2^16: the salt in bytes 0..13, bytes 14..15 zero.
  memory.copy(out16, salt14, 14);
  store<u16>(out16, 0, 14);
  // SSRC * 2^64: bytes 4..7. i * 2^16: bytes 8..13 (48 bits, big-endian).
  store<u32>(out16, load<u32>(out16, 4) ^ bswap<u32>(ssrc), 4);
  store<u16>(out16, load<u16>(out16, 8) ^ bswap<u16>(<u16>(index >> 32)), 8);
  store<u32>(out16, load<u32>(out16, 10) ^ bswap<u32>(<u32>index), 10);
}
