// The SRTP key derivation function (RFC 3711 4.3) with the AES-CM PRF (4.3.3), for a key
// derivation rate of 0 (the default, and what DTLS-SRTP and SDES in practice use): r = 0, so the
// keys depend on the label only and are derived once, at configuration time.
import { AES_SCHEDULE_SIZE, aesExpandKey } from "./aes";
import { aesCmXor } from "./ctr";

// Labels, RFC 3711 4.3.1 (SRTP) and 4.3.2 (SRTCP).
export const LABEL_SRTP_ENCRYPTION: u8 = 0x00;
export const LABEL_SRTP_AUTH: u8 = 0x01;
export const LABEL_SRTP_SALT: u8 = 0x02;
export const LABEL_SRTCP_ENCRYPTION: u8 = 0x03;
export const LABEL_SRTCP_AUTH: u8 = 0x04;
export const LABEL_SRTCP_SALT: u8 = 0x05;
/**
 * Not an SRTP label (RFC 3711 uses 0x00-0x05, RFC 6904 0x06-0x07): the PRF's output under it tells
 * one master key from another (session.ts, the key's fingerprint) and nothing about the session keys.
 */
export const LABEL_FINGERPRINT: u8 = 0xff;

const SCHEDULE: usize = memory.data(AES_SCHEDULE_SIZE, 16);
const IV: usize = memory.data(16, 16);

/**
 * Derives `outLen` bytes for `label` into `out` (caller provided):
 *   x = (label || r) XOR master_salt, r = 0;  out = AES-CM(master_key, IV = x * 2^16) keystream.
 * `masterKey` is 16 or 32 bytes (AES-128 or AES-256 PRF, RFC 6188 4.3 for the latter).
 * `masterSalt` is 14 bytes (AES-CM suites) or 12 bytes (AES-GCM, RFC 7714 12): a 12-byte salt
 * is taken as the first 12 of the 112-bit salt field with two zero bytes after it, as libsrtp
 * does ("zero appended"). Typical lengths: encryption key 16/32, auth key 20, salt 14 (AES-CM)
 * or 12 (GCM). Returns false for a bad key or salt length, or a negative `outLen`.
 * Configuration time; the temporary key schedule is wiped before returning.
 */
export function srtpKdf(
  masterKey: usize, masterKeyLen: i32, masterSalt: usize, masterSaltLen: i32,
  label: u8, out: usize, outLen: i32,
): bool {
  if (masterSaltLen != 14 && masterSaltLen != 12) return false;
  if (outLen < 0) return false;
  if (!aesExpandKey(SCHEDULE, masterKey, masterKeyLen)) return false;
  // The 56-bit key_id = label || r is right-aligned in the 112-bit salt: the label lands on
  // byte 7 of the salt (bytes 8..13 hold r, which is 0).
  v128.store(IV, i64x2.splat(0));
  memory.copy(IV, masterSalt, <usize>masterSaltLen);
  store<u8>(IV, load<u8>(IV, 7) ^ label, 7);
  memory.fill(out, 0, <usize>outLen);
  aesCmXor(SCHEDULE, IV, out, outLen);
  memory.fill(SCHEDULE, 0, <usize>AES_SCHEDULE_SIZE);
  v128.store(IV, i64x2.splat(0));
  return true;
}
