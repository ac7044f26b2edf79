// Master keys from config: an SDES inline parameter as in an SDP a=crypto line
// (RFC 4568 section 6.1: "inline:" base64(key || salt), optionally "|lifetime" and "|MKI:len")
// or hex. Decoded straight into the caller's buffer; error messages never echo key material.

/** Returns the decoded length, or -1 on a character outside the base64 alphabet, -2 when it overflows `max`. */
export function decodeBase64(text: string, out: usize, max: i32): i32 {
  let acc: u32 = 0;
  let bits: i32 = 0;
  let n: i32 = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let v: i32 = 0;
    if (c >= 65 && c <= 90) v = c - 65;
    else if (c >= 97 && c <= 122) v = c - 71;
    else if (c >= 48 && c <= 57) v = c + 4;
    else if (c == 43 || c == 45) v = 62; // '+' (and '-' of the URL-safe alphabet)
    else if (c == 47 || c == 95) v = 63; // '/' (and '_')
    else if (c == 61) break; // '=' padding ends the data
    else return -1;
    acc = (acc << 6) | <u32>v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n >= max) return -2;
      store<u8>(out + <usize>n, <u8>(acc >> <u32>bits));
      n++;
    }
  }
  return n;
}

function hexValue(c: i32): i32 {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Returns the decoded length, or -1 on a bad character or an odd length, -2 when it overflows `max`. */
export function decodeHex(text: string, out: usize, max: i32): i32 {
  if (text.length % 2 != 0) return -1;
  const n = text.length / 2;
  if (n > max) return -2;
  for (let i = 0; i < n; i++) {
    const hi = hexValue(text.charCodeAt(2 * i));
    const lo = hexValue(text.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return -1;
    store<u8>(out + <usize>i, <u8>((hi << 4) | lo));
  }
  return n;
}

/** The most packets a master key may protect (RFC 3711 section 9.2, SRTP): a longer lifetime is no lifetime SRTP has. */
const MAX_LIFETIME: u64 = (<u64>1) << 48;

/**
 * A key lifetime (RFC 4568 section 6.1: "2^" and a power, or a decimal number of packets): 0 when
 * it is one of at most 2^48 packets, -4 when it is not a lifetime, -5 when it is longer.
 */
function checkLifetime(text: string): i32 {
  const power = text.startsWith("2^");
  const digits = power ? text.substring(2) : text;
  if (digits.length == 0) return -4;
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -4;
  }
  let start = 0; // leading zeros say nothing
  while (start < digits.length - 1 && digits.charCodeAt(start) == 0x30) start++;
  if (digits.length - start > 15) return -5; // more than 2^48 has 15 digits at most: no overflow below
  let n: u64 = 0;
  for (let i = start; i < digits.length; i++) n = n * 10 + <u64>(digits.charCodeAt(i) - 0x30);
  if (!power && n == 0) return -4; // no packets is no lifetime (2^0 is one packet)
  if (power ? n > 48 : n > MAX_LIFETIME) return -5;
  return 0;
}

/**
 * Decodes a key string into `out` (up to `max` bytes). Returns the length, or a negative code:
 * -1 not base64/hex, -2 too long, -3 an MKI (not supported), -4 what follows '|' is not a
 * lifetime, -5 a lifetime of more than 2^48 packets.
 */
export function decodeKey(text: string, out: usize, max: i32): i32 {
  if (text.startsWith("inline:")) {
    let body = text.substring(7);
    const bar = body.indexOf("|");
    if (bar >= 0) {
      // "|1:4" is an MKI, which we do not speak; "|2^31" a lifetime, checked but not enforced
      // (the operator re-keys before it runs out: README, config table)
      if (body.indexOf(":", bar) >= 0) return -3;
      const lifetime = checkLifetime(body.substring(bar + 1));
      if (lifetime < 0) return lifetime;
      body = body.substring(0, bar);
    }
    return decodeBase64(body, out, max);
  }
  return decodeHex(text, out, max);
}
