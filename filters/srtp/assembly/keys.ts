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

/**
 * Decodes a key string into `out` (up to `max` bytes). Returns the length, or a negative code:
 * -1 not base64/hex, -2 too long, -3 an MKI (not supported).
 */
export function decodeKey(text: string, out: usize, max: i32): i32 {
  if (text.startsWith("inline:")) {
    let body = text.substring(7);
    const bar = body.indexOf("|");
    if (bar >= 0) {
      // "|2^31" is a lifetime we need not enforce; "|1:4" is an MKI, which we do not speak
      if (body.indexOf(":", bar) >= 0) return -3;
      body = body.substring(0, bar);
    }
    return decodeBase64(body, out, max);
  }
  return decodeHex(text, out, max);
}
