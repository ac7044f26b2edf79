// The protection profiles the filter speaks, by their SDP names (RFC 4568 section 6.2,
// RFC 6188 for the 256-bit AES-CM ones, RFC 7714 section 14.2 for AES-GCM).

export class Suite {
  constructor(
    readonly name: string,
    /** Master key and master salt lengths, bytes. */
    readonly keyLength: i32,
    readonly saltLength: i32,
    /** AEAD (AES-GCM): the tag is part of the ciphertext; no separate HMAC. */
    readonly aead: bool,
    /** Authentication tag on SRTP and on SRTCP, bytes. */
    readonly rtpTag: i32,
    readonly rtcpTag: i32,
  ) {}
}

// RFC 4568 section 6.2.2: the _32 suites shorten only the SRTP tag; SRTCP keeps 80 bits.
export const SUITES: Suite[] = [
  new Suite("AES_CM_128_HMAC_SHA1_80", 16, 14, false, 10, 10),
  new Suite("AES_CM_128_HMAC_SHA1_32", 16, 14, false, 4, 10),
  new Suite("AES_256_CM_HMAC_SHA1_80", 32, 14, false, 10, 10),
  new Suite("AES_256_CM_HMAC_SHA1_32", 32, 14, false, 4, 10),
  new Suite("AEAD_AES_128_GCM", 16, 12, true, 16, 16),
  new Suite("AEAD_AES_256_GCM", 32, 12, true, 16, 16),
];

export function findSuite(name: string): Suite | null {
  for (let i = 0; i < SUITES.length; i++) if (SUITES[i].name == name) return SUITES[i];
  return null;
}

export function suiteNames(): string {
  let out = "";
  for (let i = 0; i < SUITES.length; i++) out += (i > 0 ? ", " : "") + SUITES[i].name;
  return out;
}
