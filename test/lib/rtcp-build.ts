// RTCP packets built by hand for tests (RFC 3550 6.4, RFC 3611 4.6), independent of the SDK's writer.

/** An SR from `ssrc` with only the NTP timestamp set (no report blocks). */
export function senderReport(ssrc: number, ntpSeconds: number, ntpFraction: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(ssrc, 4);
  b.writeUInt32BE(ntpSeconds, 8);
  b.writeUInt32BE(ntpFraction, 12);
  return b;
}

/** An RR from `reporter` with one block about `about`. */
export function receiverReport(reporter: number, about: number, fraction: number, cumulative: number, highest: number, jitter: number, lsr: number, dlsr: number): Buffer {
  const b = Buffer.alloc(32);
  b[0] = 0x81;
  b[1] = 201;
  b.writeUInt16BE(7, 2);
  b.writeUInt32BE(reporter, 4);
  b.writeUInt32BE(about, 8);
  b[12] = fraction;
  b.writeUIntBE(cumulative & 0xffffff, 13, 3);
  b.writeUInt32BE(highest >>> 0, 16);
  b.writeUInt32BE(jitter >>> 0, 20);
  b.writeUInt32BE(lsr >>> 0, 24);
  b.writeUInt32BE(dlsr >>> 0, 28);
  return b;
}

/** An XR with one Statistics Summary block (RFC 3611 4.6), lost and jitter flagged, duplicates not. */
export function xrSummary(reporter: number, about: number, lost: number, meanJitter: number): Buffer {
  const b = Buffer.alloc(8 + 40);
  b[0] = 0x80;
  b[1] = 207;
  b.writeUInt16BE(11, 2);
  b.writeUInt32BE(reporter, 4);
  b[8] = 6;
  b[9] = 0x80 | 0x20;
  b.writeUInt16BE(9, 10);
  b.writeUInt32BE(about, 12);
  b.writeUInt32BE(lost, 20);
  b.writeUInt32BE(meanJitter, 36);
  return b;
}

/** A BYE (RFC 3550 6.6) naming `ssrcs`, without a reason. */
export function bye(...ssrcs: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * ssrcs.length);
  b[0] = 0x80 | ssrcs.length;
  b[1] = 203;
  b.writeUInt16BE(ssrcs.length, 2);
  ssrcs.forEach((s, k) => b.writeUInt32BE(s >>> 0, 4 + 4 * k));
  return b;
}
