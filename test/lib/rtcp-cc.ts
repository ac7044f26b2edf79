// The congestion-control wire formats, encoded and decoded from their specifications alone (not
// from the congestion filter's code), so that tests can check the filter's bytes against a second
// reading of the specs and feed it packets built independently of it:
// - the transport-wide sequence number in an RFC 8285 header extension, one-byte or two-byte
//   (draft-holmer-rmcat-transport-wide-cc-extensions-01 section 2);
// - its feedback, RTPFB PT 205 FMT 15 (the same draft, section 3.1);
// - TMMBR and TMMBN, RTPFB FMT 3 and 4 (RFC 5104 sections 4.2.1 and 4.2.2);
// - REMB, PSFB PT 206 FMT 15 (draft-alvestrand-rmcat-remb-03 section 2.2).
// The decoders are strict: they throw, saying why, on anything a correct writer never produces.
import { decodeRtcp, type DecodedRtcp } from "./rtcp-decode.js";

export const TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

// ---------------------------------------------------------------------------------------------
// RTP header and the RFC 8285 one-byte header extension

/** Where an RTP packet's header extension lies (RFC 3550 5.3.1), if it has one. */
export interface RtpExtensionBlock {
  /** Offset of the 16-bit profile field (0xBEDE for one-byte elements). */
  readonly at: number;
  readonly profile: number;
  /** Bytes of extension data after the 4-byte extension header. */
  readonly length: number;
}

/** 12 + 4 x CC: where the CSRC list ends (RFC 3550 5.1). */
export const csrcEnd = (rtp: Uint8Array): number => 12 + 4 * (rtp[0]! & 0x0f);

export function rtpExtensionBlock(rtp: Uint8Array): RtpExtensionBlock | null {
  if (rtp.length < 12 || rtp[0]! >> 6 !== 2) throw new Error(`not RTP version 2 (${rtp.length} bytes)`);
  if (!(rtp[0]! & 0x10)) return null;
  const at = csrcEnd(rtp);
  if (at + 4 > rtp.length) throw new Error("the X bit is set but the extension header runs past the packet");
  const length = ((rtp[at + 2]! << 8) | rtp[at + 3]!) * 4;
  if (at + 4 + length > rtp.length) throw new Error(`the extension (${length} bytes) runs past the packet`);
  return { at, profile: (rtp[at]! << 8) | rtp[at + 1]!, length };
}

export interface ExtensionElement {
  readonly id: number;
  readonly data: Uint8Array;
}

/** The form of a header extension block (RFC 8285 4.2, 4.3): one-byte (0xBEDE) or two-byte (0x100 and 4 app bits). */
export function extensionForm(profile: number): "one-byte" | "two-byte" {
  if (profile === 0xbede) return "one-byte";
  if ((profile & 0xfff0) === 0x1000) return "two-byte";
  throw new Error(`extension profile 0x${profile.toString(16)} is neither one-byte (0xBEDE) nor two-byte (0x100x)`);
}

/**
 * The elements of an RFC 8285 header extension. One-byte form (4.2): a byte of ID (4 bits) and
 * length - 1 (4 bits), then the data; ID 15 ends the parse. Two-byte form (4.3): a byte of ID, a
 * byte of length (0 allowed), then the data. ID 0 is reserved for padding, whose bytes are 0: a
 * one-byte header of ID 0 with length bits set is neither, and refused. Throws on that, another
 * profile, or an element running past the block.
 */
export function extensionElements(rtp: Uint8Array): ExtensionElement[] {
  const block = rtpExtensionBlock(rtp);
  if (!block) return [];
  const twoByte = extensionForm(block.profile) === "two-byte";
  const out: ExtensionElement[] = [];
  const end = block.at + 4 + block.length;
  for (let p = block.at + 4; p < end;) {
    const b = rtp[p]!;
    const id = twoByte ? b : b >> 4;
    if (id === 0) {
      if (b !== 0) throw new Error(`byte 0x${b.toString(16)} at ${p}: ID 0 (padding) with a length`);
      p++;
      continue;
    }
    if (!twoByte && id === 15) break;
    if (twoByte && p + 1 >= end) throw new Error(`element ID ${id} has no length byte`);
    const n = twoByte ? rtp[p + 1]! : (b & 0x0f) + 1;
    const at = p + (twoByte ? 2 : 1);
    if (at + n > end) throw new Error(`element ID ${id} (${n} bytes) runs past the extension`);
    out.push({ id, data: rtp.slice(at, at + n) });
    p = at + n;
  }
  return out;
}

/** The transport-wide sequence number in element `id` (draft section 2: 2 bytes of data), or undefined. */
export function transportSeqOf(rtp: Uint8Array, id: number): number | undefined {
  const found = extensionElements(rtp).filter((e) => e.id === id);
  if (found.length === 0) return undefined;
  if (found.length > 1) throw new Error(`element ID ${id} appears ${found.length} times`);
  const e = found[0]!;
  if (e.data.length !== 2) throw new Error(`transport-wide sequence number element of ${e.data.length} bytes (2 expected)`);
  return (e.data[0]! << 8) | e.data[1]!;
}

/**
 * `rtp` with a transport-wide sequence number element (ID `id`, value `seq`) added: a new
 * one-byte-header extension (8 bytes: 0xBEDE, length 1, the element, one padding byte) when it had
 * none, or the element appended after the last element of its extension, in the block's own form
 * (one-byte: 3 bytes, two-byte: 4), the block padded with zeros to a whole word.
 */
export function withTransportSeq(rtp: Uint8Array, id: number, seq: number): Uint8Array {
  const block = rtpExtensionBlock(rtp);
  if (!block) {
    const at = csrcEnd(rtp);
    const out = new Uint8Array(rtp.length + 8);
    out.set(rtp.subarray(0, at));
    out[0] = out[0]! | 0x10;
    out.set([0xbe, 0xde, 0x00, 0x01, (id << 4) | 1, (seq >> 8) & 0xff, seq & 0xff, 0x00], at);
    out.set(rtp.subarray(at), at + 8);
    return out;
  }
  const element = extensionForm(block.profile) === "one-byte" ? [(id << 4) | 1, (seq >> 8) & 0xff, seq & 0xff] : [id, 2, (seq >> 8) & 0xff, seq & 0xff];
  // the used part of the old data (trailing padding trimmed), the element, then zeros to a word
  const data = rtp.subarray(block.at + 4, block.at + 4 + block.length);
  let used = data.length;
  while (used > 0 && data[used - 1] === 0) used--;
  const words = Math.ceil((used + element.length) / 4);
  const grown = new Uint8Array(words * 4);
  grown.set(data.subarray(0, used));
  grown.set(element, used);
  const out = new Uint8Array(rtp.length - block.length + grown.length);
  out.set(rtp.subarray(0, block.at + 2));
  out[block.at + 2] = words >> 8;
  out[block.at + 3] = words & 0xff;
  out.set(grown, block.at + 4);
  out.set(rtp.subarray(block.at + 4 + block.length), block.at + 4 + grown.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// RTCP framing

/** One RTCP packet of a compound: its header fields and its bytes (RFC 3550 6.4.1, RFC 4585 6.1). */
export interface RtcpPiece {
  readonly pt: number;
  /** The 5-bit count / FMT field. */
  readonly fmt: number;
  readonly bytes: Uint8Array;
}

/** Splits a compound into its packets; throws when a length does not add up. */
export function rtcpPieces(compound: Uint8Array): RtcpPiece[] {
  if (compound.length < 4 || compound.length % 4 !== 0) throw new Error(`a compound of ${compound.length} bytes is not whole 32-bit words`);
  const out: RtcpPiece[] = [];
  for (let at = 0; at < compound.length;) {
    if (compound[at]! >> 6 !== 2) throw new Error(`RTCP packet at ${at}: version ${compound[at]! >> 6}`);
    const size = (((compound[at + 2]! << 8) | compound[at + 3]!) + 1) * 4;
    if (at + size > compound.length) throw new Error(`RTCP packet at ${at}: its length (${size} bytes) runs past the compound (${compound.length})`);
    out.push({ pt: compound[at + 1]!, fmt: compound[at]! & 0x1f, bytes: compound.slice(at, at + size) });
    at += size;
  }
  return out;
}

/** The RTCP header (V=2, P, count/FMT, PT, length) for a packet of `size` bytes. */
function header(b: Uint8Array, fmt: number, pt: number, size: number, padded = false): void {
  b[0] = 0x80 | (padded ? 0x20 : 0) | fmt;
  b[1] = pt;
  b[2] = ((size / 4 - 1) >> 8) & 0xff;
  b[3] = (size / 4 - 1) & 0xff;
}

const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/** The packet's length without its RTCP padding (P bit: the last byte counts the padding). */
function unpadded(p: Uint8Array, what: string): number {
  if (!(p[0]! & 0x20)) return p.length;
  const n = p[p.length - 1]!;
  if (n === 0 || n > p.length - 12) throw new Error(`${what}: padding count ${n} in a packet of ${p.length} bytes`);
  return p.length - n;
}

// ---------------------------------------------------------------------------------------------
// Transport-wide feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1)

/** Packet status symbols (3.1.1): 00 not received, 01 received with a small delta, 10 large or negative, 11 reserved. */
export const Status = { NotReceived: 0, Small: 1, Large: 2 } as const;

/** A packet status chunk (3.1.2-3.1.4). */
export type Chunk =
  /** T = 0: `symbol` repeated `length` (13 bits) times. */
  | { readonly kind: "run"; readonly symbol: number; readonly length: number }
  /** T = 1, S = 0: 14 one-bit symbols (0 not received, 1 small delta), first in the high bit. */
  | { readonly kind: "vector1"; readonly symbols: readonly number[] }
  /** T = 1, S = 1: 7 two-bit symbols. */
  | { readonly kind: "vector2"; readonly symbols: readonly number[] };

export function encodeChunk(c: Chunk): number {
  switch (c.kind) {
    case "run":
      return ((c.symbol & 3) << 13) | (c.length & 0x1fff);
    case "vector1":
      if (c.symbols.length > 14) throw new Error("a one-bit vector holds 14 symbols");
      return 0x8000 | c.symbols.reduce((v, s, i) => v | ((s & 1) << (13 - i)), 0);
    case "vector2":
      if (c.symbols.length > 7) throw new Error("a two-bit vector holds 7 symbols");
      return 0xc000 | c.symbols.reduce((v, s, i) => v | ((s & 3) << (12 - 2 * i)), 0);
  }
}

export function decodeChunk(v: number): Chunk {
  if (!(v & 0x8000)) return { kind: "run", symbol: (v >> 13) & 3, length: v & 0x1fff };
  if (!(v & 0x4000)) return { kind: "vector1", symbols: Array.from({ length: 14 }, (_, i) => (v >> (13 - i)) & 1) };
  return { kind: "vector2", symbols: Array.from({ length: 7 }, (_, i) => (v >> (12 - 2 * i)) & 3) };
}

/** A feedback packet's fields exactly as they go on the wire: any chunks and deltas, consistent or not. */
export interface TwccWire {
  readonly senderSsrc: number;
  readonly mediaSsrc: number;
  readonly baseSeq: number;
  readonly statusCount: number;
  /** 24-bit signed, in 64 ms units. */
  readonly referenceTime: number;
  readonly fbCount: number;
  readonly chunks: readonly Chunk[];
  /** Receive deltas in 250 us units, each written in 1 byte (unsigned) or 2 (signed). */
  readonly deltas: readonly { readonly ticks: number; readonly bytes: 1 | 2 }[];
  /** RTCP padding (P bit, count in the last byte) after the zero fill; 0: none. */
  readonly padding?: number;
}

/** Writes `w` as it stands (a hostile test's tool as much as a correct writer's). */
export function encodeTwccWire(w: TwccWire): Uint8Array {
  const body = 20 + 2 * w.chunks.length + w.deltas.reduce((n, d) => n + d.bytes, 0);
  const filled = Math.ceil(body / 4) * 4;
  const size = filled + (w.padding ?? 0);
  if (size % 4 !== 0) throw new Error("RTCP padding must keep the packet whole words");
  const b = new Uint8Array(size);
  header(b, 15, 205, size, (w.padding ?? 0) > 0);
  put32(b, 4, w.senderSsrc >>> 0);
  put32(b, 8, w.mediaSsrc >>> 0);
  b[12] = (w.baseSeq >> 8) & 0xff;
  b[13] = w.baseSeq & 0xff;
  b[14] = (w.statusCount >> 8) & 0xff;
  b[15] = w.statusCount & 0xff;
  put32(b, 16, (((w.referenceTime & 0xffffff) << 8) | (w.fbCount & 0xff)) >>> 0);
  let p = 20;
  for (const c of w.chunks) {
    const v = encodeChunk(c);
    b[p++] = v >> 8;
    b[p++] = v & 0xff;
  }
  for (const d of w.deltas) {
    if (d.bytes === 1) b[p++] = d.ticks & 0xff;
    else {
      b[p++] = (d.ticks >> 8) & 0xff;
      b[p++] = d.ticks & 0xff;
    }
  }
  if (w.padding) b[size - 1] = w.padding;
  return b;
}

/** One packet a feedback reports on: its sequence number and, if received, its delta from the previous arrival (250 us units). */
export interface TwccReport {
  readonly seq: number;
  /** null: not received. */
  readonly deltaTicks: number | null;
}

/** The symbol a delta needs (3.1.5): 1 byte for 0..255 ticks (0 to 63.75 ms), 2 bytes otherwise. */
export const symbolFor = (deltaTicks: number | null): number =>
  deltaTicks === null ? Status.NotReceived : deltaTicks >= 0 && deltaTicks <= 255 ? Status.Small : Status.Large;

/**
 * Chunks for a list of symbols, greedily: a run-length chunk where 7 or more equal symbols follow
 * (or the rest is one symbol), else a one-bit vector where the next 14 (or the rest) need no large
 * symbol, else a two-bit vector of 7. A last vector's unused symbols are 0.
 */
export function chunksFor(symbols: readonly number[]): Chunk[] {
  const out: Chunk[] = [];
  for (let i = 0; i < symbols.length;) {
    let run = 1;
    while (i + run < symbols.length && symbols[i + run] === symbols[i] && run < 0x1fff) run++;
    if (run >= 7 || i + run === symbols.length) {
      out.push({ kind: "run", symbol: symbols[i]!, length: run });
      i += run;
      continue;
    }
    const next14 = symbols.slice(i, i + 14);
    if (next14.every((s) => s !== Status.Large)) {
      out.push({ kind: "vector1", symbols: next14 });
      i += next14.length;
    } else {
      const next7 = symbols.slice(i, i + 7);
      out.push({ kind: "vector2", symbols: next7 });
      i += next7.length;
    }
  }
  return out;
}

/** A correct feedback packet about `reports` (consecutive sequence numbers from `baseSeq`). */
export function encodeTwcc(f: {
  senderSsrc: number;
  mediaSsrc: number;
  baseSeq: number;
  referenceTime: number;
  fbCount: number;
  reports: readonly (number | null)[];
}): Uint8Array {
  const symbols = f.reports.map(symbolFor);
  const deltas = f.reports.flatMap((d) => (d === null ? [] : [{ ticks: d, bytes: symbolFor(d) === Status.Small ? (1 as const) : (2 as const) }]));
  for (const d of deltas) if (d.bytes === 2 && (d.ticks < -32768 || d.ticks > 32767)) throw new Error(`delta of ${d.ticks} ticks does not fit 16 bits`);
  return encodeTwccWire({ ...f, statusCount: f.reports.length, chunks: chunksFor(symbols), deltas });
}

export interface TwccFeedback {
  readonly senderSsrc: number;
  readonly mediaSsrc: number;
  readonly baseSeq: number;
  readonly statusCount: number;
  /** Sign-extended, 64 ms units. */
  readonly referenceTime: number;
  readonly fbCount: number;
  readonly chunks: Chunk[];
  /** One per status, from baseSeq (wrapping at 16 bits). */
  readonly reports: TwccReport[];
  /** Arrival times of the received packets: reference time x 64 ms plus the running sum of the deltas (us). */
  readonly arrivalsUs: Map<number, number>;
}

/** Decodes one FMT 15 packet; throws on anything malformed (reserved symbol, overrun, non-zero fill, bytes left over). */
export function decodeTwcc(p: Uint8Array): TwccFeedback {
  const fail = (why: string): never => {
    throw new Error(`transport-wide feedback (${p.length} bytes): ${why}`);
  };
  if (p.length < 20) fail("shorter than its 20-byte fixed part");
  if ((p[0]! & 0x1f) !== 15 || p[1] !== 205) fail(`FMT ${p[0]! & 0x1f} PT ${p[1]} is not RTPFB FMT 15`);
  if ((((p[2]! << 8) | p[3]!) + 1) * 4 !== p.length) fail("its length field is not its size");
  const end = unpadded(p, "transport-wide feedback");
  const baseSeq = (p[12]! << 8) | p[13]!;
  const statusCount = (p[14]! << 8) | p[15]!;
  const referenceTime = (u32(p, 16) >> 8) | 0; // arithmetic shift: the 24-bit field sign-extended
  if (statusCount === 0) fail("a status count of 0");
  const chunks: Chunk[] = [];
  const symbols: number[] = [];
  let at = 20;
  while (symbols.length < statusCount) {
    if (at + 2 > end) fail(`chunks end after ${symbols.length} of ${statusCount} statuses`);
    const c = decodeChunk((p[at]! << 8) | p[at + 1]!);
    at += 2;
    chunks.push(c);
    const left = statusCount - symbols.length;
    if (c.kind === "run") {
      if (c.length === 0) fail(`run-length chunk ${chunks.length - 1} of length 0`);
      if (c.length > left) fail(`run-length chunk ${chunks.length - 1} of ${c.length} past the status count (${left} left)`);
      for (let k = 0; k < c.length; k++) symbols.push(c.symbol);
    } else {
      symbols.push(...c.symbols.slice(0, left));
      if (c.symbols.slice(left).some((s) => s !== 0)) fail(`vector chunk ${chunks.length - 1} has symbols set past the status count`);
    }
  }
  if (symbols.some((s) => s === 3)) fail("the reserved symbol 11");
  const reports: TwccReport[] = [];
  const arrivalsUs = new Map<number, number>();
  let clock = referenceTime * 64_000;
  symbols.forEach((s, k) => {
    const seq = (baseSeq + k) & 0xffff;
    if (s === Status.NotReceived) {
      reports.push({ seq, deltaTicks: null });
      return;
    }
    const bytes = s === Status.Small ? 1 : 2;
    if (at + bytes > end) fail(`the delta of sequence ${seq} runs past the packet`);
    const ticks = bytes === 1 ? p[at]! : (((p[at]! << 8) | p[at + 1]!) << 16) >> 16;
    at += bytes;
    clock += ticks * 250;
    reports.push({ seq, deltaTicks: ticks });
    arrivalsUs.set(seq, clock);
  });
  if (end - at >= 4) fail(`${end - at} bytes after the last delta (more than the zero fill)`);
  for (let k = at; k < end; k++) if (p[k] !== 0) fail(`non-zero fill at byte ${k}`);
  return {
    senderSsrc: u32(p, 4), mediaSsrc: u32(p, 8), baseSeq, statusCount, referenceTime, fbCount: p[19]!, chunks, reports, arrivalsUs,
  };
}

// ---------------------------------------------------------------------------------------------
// Exponent and mantissa (RFC 5104 4.2.1.1: bitrate = mantissa x 2^exp; REMB uses the same form)

/** The smallest exponent whose mantissa (`bits` wide, rounded down) holds `bps`. */
export function expMantissa(bps: number, bits: number): { exp: number; mantissa: number } {
  if (!Number.isInteger(bps) || bps < 0) throw new Error(`bitrate ${bps} is not a non-negative integer`);
  let exp = 0;
  while (bps / 2 ** exp >= 2 ** bits) exp++;
  if (exp > 63) throw new Error(`bitrate ${bps} does not fit`);
  return { exp, mantissa: Math.floor(bps / 2 ** exp) };
}

// ---------------------------------------------------------------------------------------------
// TMMBR / TMMBN (RFC 5104 4.2.1, 4.2.2): RTPFB FMT 3 / 4, media SSRC 0, 8-byte FCI entries

export interface TmmbEntry {
  readonly ssrc: number;
  /** Maximum total media bit rate: mantissa (17 bits) x 2^exp (6 bits). */
  readonly bps: number;
  readonly exp: number;
  readonly mantissa: number;
  /** Measured overhead, bytes per packet (9 bits). */
  readonly overhead: number;
}

export function encodeTmmb(kind: "TMMBR" | "TMMBN", senderSsrc: number, entries: readonly { ssrc: number; bps: number; overhead: number }[]): Uint8Array {
  const size = 12 + 8 * entries.length;
  const b = new Uint8Array(size);
  header(b, kind === "TMMBR" ? 3 : 4, 205, size);
  put32(b, 4, senderSsrc >>> 0);
  entries.forEach((e, k) => {
    const { exp, mantissa } = expMantissa(e.bps, 17);
    if (e.overhead < 0 || e.overhead > 511) throw new Error(`overhead ${e.overhead} does not fit 9 bits`);
    put32(b, 12 + 8 * k, e.ssrc >>> 0);
    put32(b, 16 + 8 * k, ((exp << 26) | (mantissa << 9) | e.overhead) >>> 0);
  });
  return b;
}

export interface Tmmb {
  readonly kind: "TMMBR" | "TMMBN";
  readonly senderSsrc: number;
  readonly entries: TmmbEntry[];
}

/** Decodes one TMMBR (FMT 3) or TMMBN (FMT 4); throws unless the media SSRC is 0 and the FCI is whole entries (TMMBR: at least one). */
export function decodeTmmb(p: Uint8Array): Tmmb {
  const fmt = p[0]! & 0x1f;
  const kind = fmt === 3 ? "TMMBR" : fmt === 4 ? "TMMBN" : null;
  const fail = (why: string): never => {
    throw new Error(`${kind ?? "TMMB?"} (${p.length} bytes): ${why}`);
  };
  if (!kind || p[1] !== 205) fail(`FMT ${fmt} PT ${p[1]} is not RTPFB FMT 3 or 4`);
  const end = unpadded(p, kind!);
  if (end < 12 || (end - 12) % 8 !== 0) fail("its FCI is not whole 8-byte entries");
  if (kind === "TMMBR" && end === 12) fail("no FCI entry");
  if (u32(p, 8) !== 0) fail(`media SSRC ${u32(p, 8)}: must be 0 (4.2.1.1, 4.2.2.1)`);
  const entries = Array.from({ length: (end - 12) / 8 }, (_, k): TmmbEntry => {
    const w = u32(p, 16 + 8 * k);
    const exp = w >>> 26;
    const mantissa = (w >>> 9) & 0x1ffff;
    return { ssrc: u32(p, 12 + 8 * k), exp, mantissa, bps: mantissa * 2 ** exp, overhead: w & 0x1ff };
  });
  return { kind: kind!, senderSsrc: u32(p, 4), entries };
}

// ---------------------------------------------------------------------------------------------
// REMB (draft-alvestrand-rmcat-remb-03 2.2): PSFB FMT 15, media SSRC 0, "REMB", count, exp 6 / mantissa 18, SSRCs

export function encodeRemb(senderSsrc: number, bps: number, ssrcs: readonly number[]): Uint8Array {
  if (ssrcs.length > 255) throw new Error("REMB lists at most 255 SSRCs");
  const size = 20 + 4 * ssrcs.length;
  const b = new Uint8Array(size);
  header(b, 15, 206, size);
  put32(b, 4, senderSsrc >>> 0);
  b.set([0x52, 0x45, 0x4d, 0x42], 12); // "REMB"
  const { exp, mantissa } = expMantissa(bps, 18);
  put32(b, 16, ((ssrcs.length << 24) | (exp << 18) | mantissa) >>> 0);
  ssrcs.forEach((s, k) => put32(b, 20 + 4 * k, s >>> 0));
  return b;
}

export interface Remb {
  readonly senderSsrc: number;
  readonly bps: number;
  readonly exp: number;
  readonly mantissa: number;
  readonly ssrcs: number[];
}

export function decodeRemb(p: Uint8Array): Remb {
  const fail = (why: string): never => {
    throw new Error(`REMB (${p.length} bytes): ${why}`);
  };
  if ((p[0]! & 0x1f) !== 15 || p[1] !== 206) fail(`FMT ${p[0]! & 0x1f} PT ${p[1]} is not PSFB FMT 15`);
  const end = unpadded(p, "REMB");
  if (end < 20) fail("shorter than its 20-byte fixed part");
  if (String.fromCharCode(...p.subarray(12, 16)) !== "REMB") fail("no 'REMB' identifier");
  if (u32(p, 8) !== 0) fail(`media SSRC ${u32(p, 8)}: must be 0`);
  const count = p[16]!;
  if (end !== 20 + 4 * count) fail(`${count} SSRCs do not fill ${end - 20} bytes`);
  const w = u32(p, 16);
  const exp = (w >>> 18) & 0x3f;
  const mantissa = w & 0x3ffff;
  return { senderSsrc: u32(p, 4), exp, mantissa, bps: mantissa * 2 ** exp, ssrcs: Array.from({ length: count }, (_, k) => u32(p, 20 + 4 * k)) };
}

// ---------------------------------------------------------------------------------------------
// A compound, decoded: the congestion-control packets by this file, the rest by rtcp-decode.ts

export type CcRtcp =
  | { readonly type: "TWCC"; readonly twcc: TwccFeedback }
  | { readonly type: "TMMBR" | "TMMBN"; readonly tmmb: Tmmb }
  | { readonly type: "REMB"; readonly remb: Remb }
  | DecodedRtcp;

export function decodeCcCompound(compound: Uint8Array): CcRtcp[] {
  return rtcpPieces(compound).map((piece): CcRtcp => {
    if (piece.pt === 205 && piece.fmt === 15) return { type: "TWCC", twcc: decodeTwcc(piece.bytes) };
    if (piece.pt === 205 && (piece.fmt === 3 || piece.fmt === 4)) {
      const tmmb = decodeTmmb(piece.bytes);
      return { type: tmmb.kind, tmmb };
    }
    if (piece.pt === 206 && piece.fmt === 15) return { type: "REMB", remb: decodeRemb(piece.bytes) };
    return decodeRtcp(piece.bytes)[0]!;
  });
}

// ---------------------------------------------------------------------------------------------
// A model feedback receiver: what a receiving proxy (or any transport-cc peer) would report

/** An empty receiver report (RFC 3550 6.4.2, no blocks): the head of a feedback compound. */
export function emptyReceiverReport(ssrc: number): Uint8Array {
  const b = new Uint8Array(8);
  header(b, 0, 201, 8);
  put32(b, 4, ssrc >>> 0);
  return b;
}

/**
 * Records the arrival of stamped packets and writes the feedback about them with this file's
 * encoder: every number from the first not reported yet to the highest seen, deltas from the
 * arrival times rounded to 250 us, behind an empty RR as a receiving proxy sends it.
 */
export class TwccRecorder {
  private readonly arrivals = new Map<number, number>();
  private highest = -1;
  private nextToReport = -1;
  fbCount = 0;

  constructor(readonly senderSsrc: number, readonly mediaSsrc: number) {}

  /** Packet with transport-wide number `seq` (16 bits) arrived at `arrivalUs`. */
  record(seq: number, arrivalUs: number): void {
    const ext = this.highest < 0 ? seq : this.highest + ((((seq - this.highest) & 0xffff) ^ 0x8000) - 0x8000);
    if (this.nextToReport < 0) this.nextToReport = ext;
    if (ext < this.nextToReport) return; // reported already as lost: too late
    this.arrivals.set(ext, arrivalUs);
    this.highest = Math.max(this.highest, ext);
  }

  /** The compound [empty RR][feedback] about what is new, or null when nothing is. */
  feedback(): Uint8Array | null {
    if (this.nextToReport < 0 || this.highest < this.nextToReport) return null;
    const first = this.nextToReport;
    const count = Math.min(this.highest - first + 1, 0xffff);
    const received = [...Array(count).keys()].map((k) => this.arrivals.get(first + k)).filter((a): a is number => a !== undefined);
    const refUnits = received.length > 0 ? Math.floor(received[0]! / 64_000) : 0;
    let prevTick = refUnits * 256;
    const reports = Array.from({ length: count }, (_, k) => {
      const at = this.arrivals.get(first + k);
      if (at === undefined) return null;
      const tick = Math.round(at / 250);
      const delta = tick - prevTick;
      prevTick = tick;
      return delta;
    });
    for (let k = 0; k < count; k++) this.arrivals.delete(first + k);
    this.nextToReport = first + count;
    const fb = encodeTwcc({ senderSsrc: this.senderSsrc, mediaSsrc: this.mediaSsrc, baseSeq: first & 0xffff, referenceTime: ((refUnits % 2 ** 24) << 8) >> 8, fbCount: this.fbCount++ & 0xff, reports });
    const rr = emptyReceiverReport(this.senderSsrc);
    const out = new Uint8Array(rr.length + fb.length);
    out.set(rr);
    out.set(fb, rr.length);
    return out;
  }
}
