// The SRTP/SRTCP cipher core (RFC 3711, RFC 7714): AES, AES-CM, HMAC-SHA1, AES-GCM, the SRTP KDF
// and a constant-time compare. Everything works on raw pointers into linear memory; per-key
// state lives in memory the caller provides (sizes below), allocated at configuration time;
// the per-packet functions allocate nothing and use static scratch buffers (single-threaded,
// never re-entered, as the ABI guarantees).
export { AES_SCHEDULE_SIZE, aesExpandKey, aesEncryptBlock, aesRounds } from "./aes";
export { aesCmXor, srtpCmIv } from "./ctr";
export {
  SHA1_STATE_SIZE, SHA1_BLOCK_SIZE, SHA1_DIGEST_SIZE,
  sha1, sha1InitialState, sha1Compress, sha1Begin, sha1Update, sha1Finish,
} from "./sha1";
export { HMAC_SHA1_KEY_SIZE, hmacSha1Init, hmacSha1 } from "./hmac";
export {
  GCM_KEY_SIZE, GCM_TAG_SIZE, GCM_IV_SIZE, gcmInit, gcmEncrypt, gcmDecrypt, gcmSrtpIv, gcmSrtcpIv,
} from "./gcm";
export {
  LABEL_SRTP_ENCRYPTION, LABEL_SRTP_AUTH, LABEL_SRTP_SALT,
  LABEL_SRTCP_ENCRYPTION, LABEL_SRTCP_AUTH, LABEL_SRTCP_SALT, LABEL_FINGERPRINT, srtpKdf,
} from "./kdf";
export { ctEqual } from "./compare";
