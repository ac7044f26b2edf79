// HMAC-SHA1 (RFC 2104) with the pad states precomputed at key setup: per message this costs the
// message's own blocks plus two finalizations (inner padding block, one outer block).
// SRTP uses it with a 20-byte key and truncates the tag to 80 or 32 bits (RFC 3711 4.2.1).
import {
  SHA1_BLOCK_SIZE, SHA1_DIGEST_SIZE, SHA1_STATE_SIZE,
  sha1, sha1Begin, sha1Compress, sha1Finish, sha1InitialState, sha1Update,
} from "./sha1";

/** Bytes of caller-provided memory for one HMAC-SHA1 key: inner state (20) then outer state (20). */
export const HMAC_SHA1_KEY_SIZE: i32 = 2 * SHA1_STATE_SIZE;

const PAD: usize = memory.data(SHA1_BLOCK_SIZE, 16);
const INNER: usize = memory.data(SHA1_DIGEST_SIZE, 16);

/**
 * Precomputes the HMAC-SHA1 key `key` (`keyLen` >= 0 bytes; longer than 64 is hashed first, per
 * RFC 2104) into `state`, HMAC_SHA1_KEY_SIZE bytes the caller provides. Configuration time.
 * The static pad buffer is wiped afterwards; the caller should wipe `state` when retiring it.
 */
export function hmacSha1Init(state: usize, key: usize, keyLen: i32): void {
  memory.fill(PAD, 0, <usize>SHA1_BLOCK_SIZE);
  if (keyLen > SHA1_BLOCK_SIZE) sha1(key, keyLen, PAD);
  else if (keyLen > 0) memory.copy(PAD, key, <usize>keyLen);
  for (let i: usize = 0; i < <usize>SHA1_BLOCK_SIZE; i++) store<u8>(PAD + i, load<u8>(PAD + i) ^ 0x36);
  sha1InitialState(state);
  sha1Compress(state, PAD);
  // Flip ipad (0x36) to opad (0x5c).
  for (let i: usize = 0; i < <usize>SHA1_BLOCK_SIZE; i++) store<u8>(PAD + i, load<u8>(PAD + i) ^ (0x36 ^ 0x5c));
  const outer = state + <usize>SHA1_STATE_SIZE;
  sha1InitialState(outer);
  sha1Compress(outer, PAD);
  memory.fill(PAD, 0, <usize>SHA1_BLOCK_SIZE);
}

/**
 * HMAC-SHA1 of the concatenation msg || suffix under the precomputed key `state`, the full
 * 20-byte MAC written to `out` (the caller keeps the first 10 or 4 bytes). `suffixLen` may be 0:
 * SRTP passes the authenticated portion of the packet as `msg` and the 4-byte big-endian ROC as
 * `suffix` (RFC 3711 4.2), SRTCP passes everything as `msg`. `out` may overlap neither input.
 * Uses static buffers (sha1.ts): not re-entrant, allocates nothing.
 */
export function hmacSha1(
  state: usize, msg: usize, msgLen: i32, suffix: usize, suffixLen: i32, out: usize,
): void {
  sha1Begin(state, <u64>SHA1_BLOCK_SIZE);
  sha1Update(msg, msgLen);
  sha1Update(suffix, suffixLen);
  sha1Finish(INNER);
  sha1Begin(state + <usize>SHA1_STATE_SIZE, <u64>SHA1_BLOCK_SIZE);
  sha1Update(INNER, SHA1_DIGEST_SIZE);
  sha1Finish(out);
}
