// A strict RTCP decoder written from RFC 3550 section 6 and RFC 4585 section 6, independent of the
// SDK's parser: tests decode what the SDK's RtcpWriter (or a filter using it) sent and compare.
// It throws on anything a correct writer never produces: a bad version, lengths that do not add
// up, a body that does not fill its packet exactly, non-zero fill, padding.

export interface DecodedBlock {
  ssrc: number;
  fractionLost: number;
  cumulativeLost: number;
  highestSeq: number;
  jitter: number;
  lastSr: number;
  delaySinceLastSr: number;
}

export interface SdesChunk {
  ssrc: number;
  items: { type: number; text: string }[];
}

export type DecodedRtcp =
  | { type: "SR"; ssrc: number; ntp: bigint; rtpTimestamp: number; packetCount: number; octetCount: number; blocks: DecodedBlock[] }
  | { type: "RR"; ssrc: number; blocks: DecodedBlock[] }
  | { type: "SDES"; chunks: SdesChunk[] }
  | { type: "BYE"; sources: number[]; reason: string }
  | { type: "NACK"; sender: number; media: number; pairs: { pid: number; blp: number }[]; lost: number[] }
  | { type: "PLI"; sender: number; media: number };

const utf8 = new TextDecoder("utf-8", { fatal: true });

function block(v: DataView, at: number): DecodedBlock {
  return {
    ssrc: v.getUint32(at),
    fractionLost: v.getUint8(at + 4),
    cumulativeLost: (v.getUint32(at + 4) << 8) >> 8, // the low 24 bits, sign-extended
    highestSeq: v.getUint32(at + 8),
    jitter: v.getUint32(at + 12),
    lastSr: v.getUint32(at + 16),
    delaySinceLastSr: v.getUint32(at + 20),
  };
}

/** Every sequence number a generic NACK FCI list asks for: each PID, then bit i of its BLP for PID + i + 1. */
export function nackLost(pairs: readonly { pid: number; blp: number }[]): number[] {
  const lost: number[] = [];
  for (const { pid, blp } of pairs) {
    lost.push(pid);
    for (let i = 0; i < 16; i++) if (blp & (1 << i)) lost.push((pid + i + 1) & 0xffff);
  }
  return lost;
}

function decodeOne(v: DataView, at: number, size: number): DecodedRtcp {
  const b0 = v.getUint8(at);
  const count = b0 & 0x1f;
  const pt = v.getUint8(at + 1);
  const fail = (why: string): never => {
    throw new Error(`RTCP packet at ${at} (PT ${pt}, ${size} bytes): ${why}`);
  };
  if (b0 & 0x20) fail("padding (a writer of whole packets never pads)");
  const body = (expected: number): void => {
    if (size !== expected) fail(`${expected} bytes expected from its count, the length field says ${size}`);
  };
  switch (pt) {
    case 200: {
      body(28 + 24 * count);
      const blocks = Array.from({ length: count }, (_, i) => block(v, at + 28 + 24 * i));
      return {
        type: "SR", ssrc: v.getUint32(at + 4), ntp: v.getBigUint64(at + 8), rtpTimestamp: v.getUint32(at + 16),
        packetCount: v.getUint32(at + 20), octetCount: v.getUint32(at + 24), blocks,
      };
    }
    case 201:
      body(8 + 24 * count);
      return { type: "RR", ssrc: v.getUint32(at + 4), blocks: Array.from({ length: count }, (_, i) => block(v, at + 8 + 24 * i)) };
    case 202: {
      const chunks: SdesChunk[] = [];
      let p = at + 4;
      for (let c = 0; c < count; c++) {
        if (p + 4 > at + size) fail(`chunk ${c} starts past the end`);
        const chunk: SdesChunk = { ssrc: v.getUint32(p), items: [] };
        p += 4;
        for (;;) {
          if (p >= at + size) fail(`chunk ${c} has no END item`);
          const type = v.getUint8(p);
          if (type === 0) break;
          const n = v.getUint8(p + 1);
          if (p + 2 + n > at + size) fail(`item of chunk ${c} runs past the end`);
          chunk.items.push({ type, text: utf8.decode(new Uint8Array(v.buffer, v.byteOffset + p + 2, n)) });
          p += 2 + n;
        }
        const end = (p + 4) & ~3; // the END octet, then zeros to the next 32-bit boundary (relative to a 4-aligned start)
        for (let k = p; k < end; k++) if (v.getUint8(k) !== 0) fail(`non-zero fill after chunk ${c}`);
        p = end;
        chunks.push(chunk);
      }
      if (p !== at + size) fail(`${at + size - p} bytes after the last chunk`);
      return { type: "SDES", chunks };
    }
    case 203: {
      const list = 4 + 4 * count;
      if (size < list) fail("source list past the end");
      const sources = Array.from({ length: count }, (_, i) => v.getUint32(at + 4 + 4 * i));
      let reason = "";
      if (size > list) {
        const n = v.getUint8(at + list);
        const end = (list + 1 + n + 3) & ~3;
        if (end !== size) fail(`reason of ${n} bytes does not fill the packet`);
        reason = utf8.decode(new Uint8Array(v.buffer, v.byteOffset + at + list + 1, n));
        for (let k = list + 1 + n; k < size; k++) if (v.getUint8(at + k) !== 0) fail("non-zero fill after the reason");
      }
      return { type: "BYE", sources, reason };
    }
    case 205: {
      if (count !== 1) fail(`RTPFB FMT ${count} is not a generic NACK`);
      if (size < 16) fail("NACK without an FCI entry");
      const pairs = Array.from({ length: (size - 12) / 4 }, (_, i) => ({ pid: v.getUint16(at + 12 + 4 * i), blp: v.getUint16(at + 14 + 4 * i) }));
      return { type: "NACK", sender: v.getUint32(at + 4), media: v.getUint32(at + 8), pairs, lost: nackLost(pairs) };
    }
    case 206:
      if (count !== 1) fail(`PSFB FMT ${count} is not a PLI`);
      body(12);
      return { type: "PLI", sender: v.getUint32(at + 4), media: v.getUint32(at + 8) };
    default:
      return fail("a type this decoder does not know");
  }
}

/** Decodes a compound packet; throws with the reason on anything malformed. */
export function decodeRtcp(bytes: Uint8Array): DecodedRtcp[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 || bytes.length % 4 !== 0) throw new Error(`a compound of ${bytes.length} bytes is not whole 32-bit words`);
  const out: DecodedRtcp[] = [];
  for (let at = 0; at < bytes.length;) {
    if (v.getUint8(at) >> 6 !== 2) throw new Error(`RTCP packet at ${at}: version ${v.getUint8(at) >> 6}`);
    const size = (v.getUint16(at + 2) + 1) * 4;
    if (at + size > bytes.length) throw new Error(`RTCP packet at ${at}: its length (${size} bytes) runs past the compound (${bytes.length})`);
    out.push(decodeOne(v, at, size));
    at += size;
  }
  return out;
}
