// The session keys derived from one master key (RFC 3711 section 4.3, key derivation rate 0):
// cipher state, HMAC state and salt, for SRTP and for SRTCP. One block of memory per session,
// allocated once and reused (no garbage per key change), wiped when the session is retired.
// Where the host computes crypto (ABI 1.4), each key is also handed to it (a handle per key):
// hardware AES and SHA, constant-time; the WebAssembly state stays ready as the fallback.
import { CryptoAlg, cryptoKeyCreate, cryptoKeyDrop, hostHasCrypto } from "../../../sdk/assembly";
import {
  AES_SCHEDULE_SIZE, GCM_KEY_SIZE, HMAC_SHA1_KEY_SIZE, LABEL_FINGERPRINT, LABEL_SRTCP_AUTH, LABEL_SRTCP_ENCRYPTION,
  LABEL_SRTCP_SALT, LABEL_SRTP_AUTH, LABEL_SRTP_ENCRYPTION, LABEL_SRTP_SALT,
  aesExpandKey, gcmInit, hmacSha1Init, srtpKdf,
} from "./crypto/index";
import { Suite } from "./suites";

const CIPHER_SIZE: usize = GCM_KEY_SIZE > AES_SCHEDULE_SIZE ? GCM_KEY_SIZE : AES_SCHEDULE_SIZE;
const HALF: usize = CIPHER_SIZE + HMAC_SHA1_KEY_SIZE + 16;
const AUTH_KEY_LENGTH = 20; // HMAC-SHA1 session authentication key (RFC 3711 section 4.2.1)

/** The last derived cipher key (the largest is 32 bytes) and auth key, kept until handed to the host, then wiped. */
const cipherKey = memory.data(32);
const authKey = memory.data(AUTH_KEY_LENGTH);
const fingerprintOut = memory.data(8);

/** The host's handle for a key, or 0 (no room, or refused): that key then runs in WebAssembly. */
function hostKey(alg: CryptoAlg, key: usize, len: i32): i32 {
  const handle = cryptoKeyCreate(alg, key, len);
  return handle > 0 ? handle : 0;
}

export class Session {
  readonly base: usize = heap.alloc(2 * HALF);
  suite: Suite | null = null;
  /** The host's handles for the same keys (> 0), or 0: use the WebAssembly crypto. */
  srtpCipherKey: i32 = 0;
  srtpAuthKey: i32 = 0;
  srtcpCipherKey: i32 = 0;
  srtcpAuthKey: i32 = 0;
  /**
   * Tells this master key from another (0: no key): the KDF's output under a label SRTP does not
   * use, so it gives nothing of the keys away. The state blob carries it, so that a hot swap can
   * tell that the key changed (context.ts).
   */
  fingerprint: u64 = 0;

  @inline get srtpCipher(): usize { return this.base; }
  @inline get srtpAuth(): usize { return this.base + CIPHER_SIZE; }
  @inline get srtpSalt(): usize { return this.base + CIPHER_SIZE + HMAC_SHA1_KEY_SIZE; }
  @inline get srtcpCipher(): usize { return this.base + HALF; }
  @inline get srtcpAuth(): usize { return this.base + HALF + CIPHER_SIZE; }
  @inline get srtcpSalt(): usize { return this.base + HALF + CIPHER_SIZE + HMAC_SHA1_KEY_SIZE; }

  /** Derives every session key from master key || master salt at `master`. */
  derive(suite: Suite, master: usize): bool {
    this.dropHostKeys();
    this.suite = suite;
    const ok = this.deriveHalves(suite, master) &&
      srtpKdf(master, suite.keyLength, master + <usize>suite.keyLength, suite.saltLength, LABEL_FINGERPRINT, fingerprintOut, 8);
    this.fingerprint = ok ? load<u64>(fingerprintOut) | 1 : 0; // never 0, which means "no key"
    memory.fill(cipherKey, 0, 32);
    memory.fill(authKey, 0, AUTH_KEY_LENGTH);
    return ok;
  }

  private deriveHalves(suite: Suite, master: usize): bool {
    const key = master;
    const salt = master + <usize>suite.keyLength;
    const host = hostHasCrypto();
    const cipherAlg = suite.aead ? CryptoAlg.AesGcm : CryptoAlg.AesCtr;
    if (!this.half(suite, key, salt, LABEL_SRTP_ENCRYPTION, LABEL_SRTP_AUTH, LABEL_SRTP_SALT, this.srtpCipher, this.srtpAuth, this.srtpSalt)) return false;
    if (host) {
      this.srtpCipherKey = hostKey(cipherAlg, cipherKey, suite.keyLength);
      if (!suite.aead) this.srtpAuthKey = hostKey(CryptoAlg.HmacSha1, authKey, AUTH_KEY_LENGTH);
    }
    if (!this.half(suite, key, salt, LABEL_SRTCP_ENCRYPTION, LABEL_SRTCP_AUTH, LABEL_SRTCP_SALT, this.srtcpCipher, this.srtcpAuth, this.srtcpSalt)) return false;
    if (host) {
      this.srtcpCipherKey = hostKey(cipherAlg, cipherKey, suite.keyLength);
      if (!suite.aead) this.srtcpAuthKey = hostKey(CryptoAlg.HmacSha1, authKey, AUTH_KEY_LENGTH);
    }
    return true;
  }

  /** Overwrites every key byte, here and in the host. */
  wipe(): void {
    memory.fill(this.base, 0, 2 * HALF);
    this.suite = null;
    this.fingerprint = 0;
    this.dropHostKeys();
  }

  private dropHostKeys(): void {
    if (this.srtpCipherKey > 0) cryptoKeyDrop(this.srtpCipherKey);
    if (this.srtpAuthKey > 0) cryptoKeyDrop(this.srtpAuthKey);
    if (this.srtcpCipherKey > 0) cryptoKeyDrop(this.srtcpCipherKey);
    if (this.srtcpAuthKey > 0) cryptoKeyDrop(this.srtcpAuthKey);
    this.srtpCipherKey = 0;
    this.srtpAuthKey = 0;
    this.srtcpCipherKey = 0;
    this.srtcpAuthKey = 0;
  }

  private half(suite: Suite, key: usize, salt: usize, encLabel: u8, authLabel: u8, saltLabel: u8, cipher: usize, auth: usize, saltOut: usize): bool {
    const kl = suite.keyLength;
    const sl = suite.saltLength;
    if (!srtpKdf(key, kl, salt, sl, encLabel, cipherKey, kl)) return false;
    const ok = suite.aead ? gcmInit(cipher, cipherKey, kl) : aesExpandKey(cipher, cipherKey, kl);
    if (!ok) return false;
    if (!suite.aead) {
      if (!srtpKdf(key, kl, salt, sl, authLabel, authKey, AUTH_KEY_LENGTH)) return false;
      hmacSha1Init(auth, authKey, AUTH_KEY_LENGTH);
    }
    return srtpKdf(key, kl, salt, sl, saltLabel, saltOut, sl);
  }
}
