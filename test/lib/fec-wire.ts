// SMPTE ST 2022-1 FEC on the wire, for tests: the three legs of a stream (media on port P, column
// FEC on P+2, row FEC on P+4) and the 16-byte FEC header that follows a FEC packet's RTP header.
import { freePortRun, freePortRuns } from "./udp.js";

export type Leg = "media" | "column" | "row";
export const LEGS: readonly Leg[] = ["media", "column", "row"];

/** The ports of one endpoint's legs. */
export type LegPorts = Readonly<Record<Leg, number>>;

/** The standard layout: media on `base`, column FEC on base+2, row FEC on base+4. */
export const legPorts = (base: number): LegPorts => ({ media: base, column: base + 2, row: base + 4 });

/** A base port P whose legs P, P+2, P+4 (and their RTCP ports P+1, P+3, P+5) are free on `address` now. */
export async function freeLegBase(address = "127.0.0.1"): Promise<number> {
  return freePortRun(6, address);
}

/** `count` such bases whose ports do not overlap, for the endpoints of one test. */
export function freeLegBases(count: number, address = "127.0.0.1"): Promise<number[]> {
  return freePortRuns(count, 6, address);
}

/** The FEC header's fields (ST 2022-1 section 8, after RFC 2733), as received. */
export interface FecHeader {
  /** RTP header of the FEC packet. */
  readonly rtp: { readonly seq: number; readonly timestamp: number; readonly ssrc: number; readonly payloadType: number; readonly marker: boolean; readonly padding: boolean; readonly extension: boolean };
  readonly snBase: number;
  readonly lengthRecovery: number;
  readonly e: number;
  readonly ptRecovery: number;
  readonly mask: number;
  readonly tsRecovery: number;
  readonly n: number;
  /** 0: column FEC (the first FEC stream), 1: row FEC. */
  readonly d: number;
  readonly type: number;
  readonly index: number;
  readonly offset: number;
  readonly na: number;
  readonly snBaseExt: number;
  /** The XOR of the protected payloads (as long as the longest of them). */
  readonly payloadLength: number;
}

/** Parses a FEC packet (plain 12-byte RTP header, no CSRCs, as every 2022-1 encoder sends); null if it is too short. */
export function parseFecPacket(b: Uint8Array): FecHeader | null {
  if (b.length < 12 + 16 || b[0]! >> 6 !== 2) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const f = 12;
  return {
    rtp: {
      seq: v.getUint16(2), timestamp: v.getUint32(4), ssrc: v.getUint32(8), payloadType: b[1]! & 0x7f,
      marker: (b[1]! & 0x80) !== 0, padding: (b[0]! & 0x20) !== 0, extension: (b[0]! & 0x10) !== 0,
    },
    snBase: v.getUint16(f),
    lengthRecovery: v.getUint16(f + 2),
    e: b[f + 4]! >> 7,
    ptRecovery: b[f + 4]! & 0x7f,
    mask: (b[f + 5]! << 16) | (b[f + 6]! << 8) | b[f + 7]!,
    tsRecovery: v.getUint32(f + 8),
    n: b[f + 12]! >> 7,
    d: (b[f + 12]! >> 6) & 1,
    type: (b[f + 12]! >> 3) & 7,
    index: b[f + 12]! & 7,
    offset: b[f + 13]!,
    na: b[f + 14]!,
    snBaseExt: b[f + 15]!,
    payloadLength: b.length - 12 - 16,
  };
}

/** What a FEC packet over a group carries, computed from the group's media packets. */
export interface ReferenceFec {
  readonly snBase: number;
  readonly lengthRecovery: number;
  readonly ptRecovery: number;
  readonly tsRecovery: number;
  /** The marker bits XORed: 2022-1 encoders carry it in the FEC packet's RTP marker bit. */
  readonly marker: boolean;
  /** The payloads XORed, each zero-padded to the longest. */
  readonly payload: Buffer;
}

/**
 * The recovery fields of a FEC packet over `media` (in group order; plain RTP packets: 12-byte
 * header, no CSRCs, extension or padding, whose payload is everything after the header).
 */
export function referenceFec(media: readonly Uint8Array[]): ReferenceFec {
  if (media.length === 0) throw new RangeError("a FEC group has at least one packet");
  const longest = Math.max(...media.map((p) => p.length - 12));
  const payload = Buffer.alloc(longest);
  let lengthRecovery = 0;
  let ptRecovery = 0;
  let tsRecovery = 0;
  let marker = false;
  for (const p of media) {
    const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
    lengthRecovery ^= p.length - 12;
    ptRecovery ^= p[1]! & 0x7f;
    tsRecovery = (tsRecovery ^ v.getUint32(4)) >>> 0;
    marker = marker !== ((p[1]! & 0x80) !== 0);
    for (let k = 12; k < p.length; k++) payload[k - 12]! ^= p[k]!;
  }
  return { snBase: new DataView(media[0]!.buffer, media[0]!.byteOffset).getUint16(2), lengthRecovery, ptRecovery, tsRecovery, marker, payload };
}
