// Test helpers for the replicate filter's feedback part: RTCP as receivers send it (RFC 3550 SR,
// RR, SDES, BYE, APP; RFC 4585 NACK and PLI; RFC 5104 FIR; REMB; XR), a reader for the compounds
// the filter sends the sender, and a runner that hands packets to the filter as upstream RTCP.
import { FilterHarness, PacketFlag, type HarnessOptions, type OutputPacket } from "../../../sdk/harness/index.js";
import { filterWasm } from "../../../test/lib/paths.js";

export const UPSTREAM_RTCP = PacketFlag.Upstream | PacketFlag.Rtcp;
/** The sender's media SSRCs the receivers report on. */
export const VIDEO = 0x5e1d0001;
export const AUDIO = 0x5e1d0002;
export const REPORTER = 0x0fb00001;

export const loadReplicate = (options: HarnessOptions = {}): Promise<FilterHarness> =>
  FilterHarness.load(filterWasm("replicate", true), { name: "replicate", ...options });

/** A filter with one context whose feedback config is `feedback` (reporterSsrc REPORTER unless given). */
export async function feedbackContext(feedback: Record<string, unknown> = {}): Promise<{ h: FilterHarness; ctx: number }> {
  const h = await loadReplicate();
  const ctx = h.createContext({ feedback: { reporterSsrc: REPORTER, ...feedback } });
  return { h, ctx };
}

// ---- building ----

export interface Block {
  ssrc: number;
  fractionLost?: number;
  cumulativeLost?: number;
  extendedHighest?: number;
  jitter?: number;
  lsr?: number;
  dlsr?: number;
}

/** One RTCP packet: header (V=2, `count`, `type`, length) and `body` (a multiple of 4 bytes unless padded). */
export function rtcpPacket(type: number, count: number, body: Uint8Array, padding = 0): Uint8Array {
  const size = 4 + body.length + padding;
  const b = new Uint8Array(size);
  b[0] = 0x80 | (padding > 0 ? 0x20 : 0) | (count & 0x1f);
  b[1] = type;
  new DataView(b.buffer).setUint16(2, size / 4 - 1);
  b.set(body, 4);
  if (padding > 0) b[size - 1] = padding;
  return b;
}

function words(...values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => v.setUint32(i * 4, x >>> 0));
  return b;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function blockBytes(k: Block): Uint8Array {
  return words(k.ssrc, ((k.fractionLost ?? 0) << 24) | ((k.cumulativeLost ?? 0) & 0xffffff), k.extendedHighest ?? 0,
    k.jitter ?? 0, k.lsr ?? 0, k.dlsr ?? 0);
}

export const rr = (reporter: number, blocks: readonly Block[] = []): Uint8Array =>
  rtcpPacket(201, blocks.length, concat([words(reporter), ...blocks.map(blockBytes)]));

export const sr = (sender: number, blocks: readonly Block[] = []): Uint8Array =>
  rtcpPacket(200, blocks.length, concat([words(sender, 0xe0000000, 0x12345678, 90000, 10, 1000), ...blocks.map(blockBytes)]));

export function sdes(ssrc: number, cname: string): Uint8Array {
  const text = new TextEncoder().encode(cname);
  const chunk = new Uint8Array(Math.ceil((4 + 2 + text.length + 1) / 4) * 4);
  new DataView(chunk.buffer).setUint32(0, ssrc >>> 0);
  chunk[4] = 1;
  chunk[5] = text.length;
  chunk.set(text, 6);
  return rtcpPacket(202, 1, chunk);
}

export const bye = (...ssrcs: number[]): Uint8Array => rtcpPacket(203, ssrcs.length, words(...ssrcs));
export const app = (ssrc: number): Uint8Array => rtcpPacket(204, 0, words(ssrc, 0x54455354 /* TEST */));
export const xr = (ssrc: number): Uint8Array => rtcpPacket(207, 0, words(ssrc, 0x04000002, 0x11111111, 0x22222222));
export const pli = (sender: number, media: number): Uint8Array => rtcpPacket(206, 1, words(sender, media));
export const fir = (sender: number, entries: readonly { ssrc: number; seq: number }[]): Uint8Array =>
  rtcpPacket(206, 4, words(sender, 0, ...entries.flatMap((e) => [e.ssrc, (e.seq & 0xff) << 24])));
/** REMB (draft-alvestrand-rmcat-remb): PSFB FMT 15 "REMB", one SSRC, 1 Mbit/s. */
export const remb = (sender: number, media: number): Uint8Array =>
  rtcpPacket(206, 15, words(sender, 0, 0x52454d42, 0x010f4240, media));
/** A transport-wide congestion control feedback header (RTPFB FMT 15) with a short body. */
export const twcc = (sender: number, media: number): Uint8Array => rtcpPacket(205, 15, words(sender, media, 0x00010001, 0x00000100));

/** A generic NACK for `seqs`, as a receiver packs it: an entry per run of up to 17 (PID + BLP), in order. */
export function nack(sender: number, media: number, seqs: readonly number[]): Uint8Array {
  const entries: number[] = [];
  let pid = -1;
  let blp = 0;
  for (const s of seqs) {
    const d = (s - pid) & 0xffff;
    if (pid >= 0 && d >= 1 && d <= 16) {
      blp |= 1 << (d - 1);
      continue;
    }
    if (pid >= 0) entries.push((pid << 16) | blp);
    pid = s & 0xffff;
    blp = 0;
  }
  if (pid >= 0) entries.push((pid << 16) | blp);
  return rtcpPacket(205, 1, words(sender, media, ...entries));
}

/** A compound: its packets one after another. */
export const compound = (...packets: Uint8Array[]): Uint8Array => concat(packets);

// ---- reading what the filter sends ----

export interface Rtcp {
  type: number;
  /** RC, SC or FMT. */
  count: number;
  bytes: Uint8Array;
  view: DataView;
}

/** The packets of a compound, checking that their lengths add up exactly. */
export function parseCompound(b: Uint8Array): Rtcp[] {
  const out: Rtcp[] = [];
  let at = 0;
  while (at < b.length) {
    if (b.length - at < 4 || b[at]! >> 6 !== 2) throw new Error(`bad RTCP header at ${at}`);
    const size = (((b[at + 2]! << 8) | b[at + 3]!) + 1) * 4;
    if (at + size > b.length) throw new Error(`RTCP packet at ${at} overruns the compound`);
    const bytes = b.slice(at, at + size);
    out.push({ type: bytes[1]!, count: bytes[0]! & 0x1f, bytes, view: new DataView(bytes.buffer) });
    at += size;
  }
  return out;
}

export interface ParsedBlock {
  ssrc: number;
  fractionLost: number;
  cumulativeLost: number;
  extendedHighest: number;
  jitter: number;
  lsr: number;
  dlsr: number;
}

export function reportBlocks(p: Rtcp): ParsedBlock[] {
  const first = p.type === 200 ? 28 : 8;
  return Array.from({ length: p.count }, (_, i) => {
    const at = first + i * 24;
    const word = p.view.getUint32(at + 4);
    return {
      ssrc: p.view.getUint32(at),
      fractionLost: word >>> 24,
      cumulativeLost: ((word & 0xffffff) << 8) >> 8,
      extendedHighest: p.view.getUint32(at + 8),
      jitter: p.view.getUint32(at + 12),
      lsr: p.view.getUint32(at + 16),
      dlsr: p.view.getUint32(at + 20),
    };
  });
}

/** The sequence numbers a generic NACK asks for, in its order. */
export function nackSeqs(p: Rtcp): number[] {
  const seqs: number[] = [];
  for (let at = 12; at < p.bytes.length; at += 4) {
    const pid = p.view.getUint16(at);
    const blp = p.view.getUint16(at + 2);
    seqs.push(pid);
    for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) seqs.push((pid + bit + 1) & 0xffff);
  }
  return seqs;
}

export const firEntries = (p: Rtcp): { ssrc: number; seq: number }[] =>
  Array.from({ length: (p.bytes.length - 12) / 8 }, (_, i) => ({ ssrc: p.view.getUint32(12 + i * 8), seq: p.bytes[16 + i * 8]! }));

/** A compound the filter sent, read and checked against RFC 3550 6.1 and the AVPF compound rules. */
export interface Sent {
  packets: Rtcp[];
  /** The report blocks of its leading RR. */
  blocks: ParsedBlock[];
  plis: number[];
  firs: { ssrc: number; seq: number }[];
  /** NACKed sequence numbers per media SSRC, in order. */
  nacks: Map<number, number[]>;
  /** How many NACK FCI entries it used (compactness). */
  nackEntries: number;
}

/**
 * Reads an output of the filter: upstream RTCP to the sender (flags, Dest.Forward), an RR from
 * `reporter` first, an SDES with a CNAME from it next, then only feedback from `reporter`.
 */
export function readSent(o: OutputPacket, reporter = REPORTER): Sent {
  if (o.flags !== UPSTREAM_RTCP) throw new Error(`output flags ${o.flags}, want Upstream|Rtcp`);
  if (o.dest !== 0) throw new Error(`output dest ${o.dest}, want Forward`);
  if (o.bytes.length > 1200) throw new Error(`output of ${o.bytes.length} bytes`);
  const packets = parseCompound(o.bytes);
  const [first, second, ...rest] = packets;
  if (first?.type !== 201 || first.view.getUint32(4) !== reporter >>> 0) throw new Error("the compound does not start with the reporter's RR");
  if (second?.type !== 202 || second.count !== 1 || second.view.getUint32(4) !== reporter >>> 0 || second.bytes[8] !== 1) {
    throw new Error("no SDES CNAME from the reporter after the RR");
  }
  const sent: Sent = { packets, blocks: reportBlocks(first), plis: [], firs: [], nacks: new Map(), nackEntries: 0 };
  for (const p of rest) {
    if (p.view.getUint32(4) !== reporter >>> 0) throw new Error(`feedback from ${p.view.getUint32(4)}, not the reporter`);
    if (p.type === 206 && p.count === 1 && p.bytes.length === 12) sent.plis.push(p.view.getUint32(8));
    else if (p.type === 206 && p.count === 4 && p.view.getUint32(8) === 0) sent.firs.push(...firEntries(p));
    else if (p.type === 205 && p.count === 1) {
      const media = p.view.getUint32(8);
      sent.nacks.set(media, [...(sent.nacks.get(media) ?? []), ...nackSeqs(p)]);
      sent.nackEntries += (p.bytes.length - 12) / 4;
    } else throw new Error(`unexpected packet type ${p.type} fmt ${p.count} in the filter's compound`);
  }
  return sent;
}

/** Hands `packets` to the filter as one batch of upstream RTCP; returns the results and what it sent. */
export function upstream(h: FilterHarness, ctx: number, ...packets: Uint8Array[]): { reasons: number[]; sent: Sent[] } {
  const r = h.runBatch(packets.map((bytes) => ({ ctx, bytes, flags: UPSTREAM_RTCP })));
  return { reasons: r.packets.map((p) => (p.verdict === "drop" ? p.reason : -1)), sent: r.outputs.map((o) => readSent(o)) };
}
