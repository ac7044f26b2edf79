// The session keys derived from one master key (RFC 3711 section 4.3, key derivation rate 0):
// cipher state, HMAC state and salt, for SRTP and for SRTCP. One block of memory per session,
// allocated once and reused (no garbage per key change), wiped when the session is retired.
import {
  AES_SCHEDULE_SIZE, GCM_KEY_SIZE, HMAC_SHA1_KEY_SIZE, LABEL_SRTCP_AUTH, LABEL_SRTCP_ENCRYPTION,
  LABEL_SRTCP_SALT, LABEL_SRTP_AUTH, LABEL_SRTP_ENCRYPTION, LABEL_SRTP_SALT,
  aesExpandKey, gcmInit, hmacSha1Init, srtpKdf,
} from "./crypto/index";
import { Suite } from "./suites";

const CIPHER_SIZE: usize = GCM_KEY_SIZE > AES_SCHEDULE_SIZE ? GCM_KEY_SIZE : AES_SCHEDULE_SIZE;
const HALF: usize = CIPHER_SIZE + HMAC_SHA1_KEY_SIZE + 16;
const AUTH_KEY_LENGTH = 20; // HMAC-SHA1 session authentication key (RFC 3711 section 4.2.1)

/** Scratch for one derived key before it is expanded: the largest is a 32-byte AES key. */
const derived = memory.data(32);

export class Session {
  readonly base: usize = heap.alloc(2 * HALF);
  suite: Suite | null = null;

  @inline get srtpCipher(): usize { return this.base; }
  @inline get srtpAuth(): usize { return this.base + CIPHER_SIZE; }
  @inline get srtpSalt(): usize { return this.base + CIPHER_SIZE + HMAC_SHA1_KEY_SIZE; }
  @inline get srtcpCipher(): usize { return this.base + HALF; }
  @inline get srtcpAuth(): usize { return this.base + HALF + CIPHER_SIZE; }
  @inline get srtcpSalt(): usize { return this.base + HALF + CIPHER_SIZE + HMAC_SHA1_KEY_SIZE; }

  /** Derives every session key from master key || master salt at `master`. */
  derive(suite: Suite, master: usize): bool {
    this.suite = suite;
    const key = master;
    const salt = master + <usize>suite.keyLength;
    return this.half(suite, key, salt, LABEL_SRTP_ENCRYPTION, LABEL_SRTP_AUTH, LABEL_SRTP_SALT, this.srtpCipher, this.srtpAuth, this.srtpSalt)
      && this.half(suite, key, salt, LABEL_SRTCP_ENCRYPTION, LABEL_SRTCP_AUTH, LABEL_SRTCP_SALT, this.srtcpCipher, this.srtcpAuth, this.srtcpSalt);
  }

  /** Overwrites every key byte. */
  wipe(): void {
    memory.fill(this.base, 0, 2 * HALF);
    this.suite = null;
  }

  private half(suite: Suite, key: usize, salt: usize, encLabel: u8, authLabel: u8, saltLabel: u8, cipher: usize, auth: usize, saltOut: usize): bool {
    const kl = suite.keyLength;
    const sl = suite.saltLength;
    if (!srtpKdf(key, kl, salt, sl, encLabel, derived, kl)) return false;
    const ok = suite.aead ? gcmInit(cipher, derived, kl) : aesExpandKey(cipher, derived, kl);
    if (!ok) return false;
    if (!suite.aead) {
      if (!srtpKdf(key, kl, salt, sl, authLabel, derived, AUTH_KEY_LENGTH)) return false;
      hmacSha1Init(auth, derived, AUTH_KEY_LENGTH);
    }
    if (!srtpKdf(key, kl, salt, sl, saltLabel, saltOut, sl)) return false;
    memory.fill(derived, 0, 32);
    return true;
  }
}
