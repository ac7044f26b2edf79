// Test-only entry (not the filter): exports the cipher core and a static buffer so that
// filters/srtp/test/crypto.test.ts can drive it from Node and compare with node:crypto.
// Never built by scripts/build-filters.mjs (it only builds assembly/index.ts).
export {
  AES_SCHEDULE_SIZE, aesExpandKey, aesEncryptBlock, aesRounds,
  aesCmXor, srtpCmIv,
  sha1, HMAC_SHA1_KEY_SIZE, hmacSha1Init, hmacSha1,
  GCM_KEY_SIZE, gcmInit, gcmEncrypt, gcmDecrypt, gcmSrtpIv, gcmSrtcpIv,
  srtpKdf, ctEqual,
} from "./index";

/** Size of the buffer at `buffer()`, which the test lays out as it likes. */
export const BUFFER_SIZE: i32 = 65536;
const BUFFER: usize = memory.data(BUFFER_SIZE, 64);

export function buffer(): usize {
  return BUFFER;
}

/** A fixed-size bump allocation: successive calls advance by the same amount unless something else allocated in between. */
export function heapProbe(): usize {
  return heap.alloc(1);
}
