// A congestion-controlled origin for the RFC 8867 lab (test/lib/cc-lab.ts): H.264-like RTP video at
// a target rate, 30 frames/s, each frame packetised as RFC 6184 would (one NAL unit per frame: a
// single NAL unit packet when it fits, else FU-A fragments of at most --mtu bytes of RTP). An IDR
// every 2 s (type 5, nri 3); between IDRs, odd frames are non-reference (type 1, nri 0) and even
// frames reference (type 1, nri 2). Every packet's payload starts, after the NAL or FU headers, with
// its send time (CLOCK_REALTIME in microseconds, a u64: namespaces share the clock, so a sink can
// measure one-way delay) and its index in the stream (a u32).
//
// It follows what the proxy asks on its RTCP port (RTP port + 1): the rate becomes
// min(latest TMMBR (RFC 5104 4.2.1), latest REMB (draft-alvestrand-rmcat-remb)) addressed to its
// SSRC, clamped to [--min-bps, --max-bps]; with neither, --start-bps. Rates count RTP packets,
// header included. It sends an RTCP SR every second (so the proxy learns where its RTCP goes).
// After --duration-s it stops, writes its timeline (rate changes, packets and bits sent per second)
// as JSON to --out, and prints `done {"sent":N}`.
// usage: cc-sender.js --address A --port P --local-port S --ssrc X --start-bps B --min-bps B --max-bps B --duration-s T --out FILE [--pt 96] [--mtu 1200]
import { writeFileSync } from "node:fs";
import { senderReport } from "../rtcp-build.js";
import { bindUdp } from "../udp.js";
import { parseFlags } from "./rtp-stream.js";

export interface SenderTimeline {
  readonly ssrc: number;
  /** CLOCK_REALTIME (ms) of the first frame. */
  readonly startMs: number;
  readonly sent: number;
  readonly sendErrors: number;
  /** Every change of the rate: ms since start, the new rate, what set it. */
  readonly rates: readonly { readonly t: number; readonly bps: number; readonly by: "start" | "tmmbr" | "remb" }[];
  /** Per second since start: packets and RTP bits sent. */
  readonly perSecond: readonly { readonly packets: number; readonly bits: number }[];
  /** RTCP packets received, by kind (tmmbr, remb, rr, other). */
  readonly rtcpIn: Readonly<Record<string, number>>;
}

export const FPS = 30;
export const IDR_INTERVAL_FRAMES = 2 * FPS;
/** Bytes after the NAL (or FU) headers that every packet carries: send time (u64 us) and index (u32). */
export const STAMP_BYTES = 12;
const RTP_HEADER = 12;
/** Relative frame sizes: an IDR is several P frames, non-reference frames are the smallest. */
const WEIGHT = { idr: 4, reference: 1.2, nonReference: 0.8 };
const MEAN_WEIGHT = (WEIGHT.idr + (IDR_INTERVAL_FRAMES / 2) * WEIGHT.nonReference + (IDR_INTERVAL_FRAMES / 2 - 1) * WEIGHT.reference) / IDR_INTERVAL_FRAMES;

export type FrameKind = keyof typeof WEIGHT;

export function frameKind(frame: number): FrameKind {
  const k = frame % IDR_INTERVAL_FRAMES;
  return k === 0 ? "idr" : k % 2 === 1 ? "nonReference" : "reference";
}

/** The H.264 NAL header byte of a frame of this kind. */
export function nalHeader(kind: FrameKind): number {
  return kind === "idr" ? (3 << 5) | 5 : kind === "reference" ? (2 << 5) | 1 : 1;
}

/** The RTP packets' payload lengths (NAL/FU headers included) for a NAL unit of `nalBytes` (its header byte included). */
export function packetise(nalBytes: number, mtu: number): number[] {
  const room = mtu - RTP_HEADER;
  if (nalBytes <= room) return [nalBytes];
  // FU-A: the NAL header byte goes, each fragment carries an FU indicator and an FU header
  const body = nalBytes - 1;
  const count = Math.ceil(body / (room - 2));
  const base = Math.floor(body / count);
  return Array.from({ length: count }, (_, i) => 2 + base + (i < body % count ? 1 : 0));
}

/** CLOCK_REALTIME in microseconds, finer than Date.now(). */
export const realtimeUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** The rate a TMMBR or REMB in `rtcp` asks of `ssrc` (bits/s), or null; a compound is walked packet by packet. */
export function requestedRates(rtcp: Buffer, ssrc: number): { tmmbr?: number; remb?: number; kinds: string[] } {
  const out: { tmmbr?: number; remb?: number; kinds: string[] } = { kinds: [] };
  for (let at = 0; at + 4 <= rtcp.length;) {
    const fmt = rtcp[at]! & 0x1f;
    const pt = rtcp[at + 1]!;
    const end = at + 4 * (rtcp.readUInt16BE(at + 2) + 1);
    if ((rtcp[at]! >> 6) !== 2 || end > rtcp.length) break;
    if (pt === 205 && fmt === 3) {
      out.kinds.push("tmmbr");
      // FCI entries of 8 bytes after the sender and media SSRCs: SSRC, exp (6) mantissa (17) overhead (9)
      for (let f = at + 12; f + 8 <= end; f += 8) {
        if (rtcp.readUInt32BE(f) !== ssrc >>> 0) continue;
        const word = rtcp.readUInt32BE(f + 4);
        out.tmmbr = ((word >>> 9) & 0x1ffff) * 2 ** (word >>> 26);
      }
    } else if (pt === 206 && fmt === 15 && end - at >= 20 && rtcp.toString("latin1", at + 12, at + 16) === "REMB") {
      out.kinds.push("remb");
      const count = rtcp[at + 16]!;
      const exp = rtcp[at + 17]! >> 2;
      const mantissa = ((rtcp[at + 17]! & 3) << 16) | rtcp.readUInt16BE(at + 18);
      for (let k = 0; k < count && at + 20 + 4 * k + 4 <= end; k++) {
        if (rtcp.readUInt32BE(at + 20 + 4 * k) === ssrc >>> 0) out.remb = mantissa * 2 ** exp;
      }
    } else out.kinds.push(pt === 201 ? "rr" : pt === 200 ? "sr" : "other");
    at = end;
  }
  return out;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), ["address", "port", "local-port", "ssrc", "start-bps", "min-bps", "max-bps", "duration-s", "out", "pt", "mtu"]);
  const num = (name: string, fallback?: number): number => {
    const v = flags.get(name);
    const n = v === undefined ? fallback : Number(v);
    if (n === undefined || !Number.isFinite(n) || n < 0) throw new TypeError(`--${name}: a number >= 0 is needed, got '${v}'`);
    return n;
  };
  const address = flags.get("address");
  const out = flags.get("out");
  if (!address || !out) throw new TypeError("needs --address and --out");
  const [port, localPort, ssrc, minBps, maxBps, durationS] = [num("port"), num("local-port"), num("ssrc"), num("min-bps"), num("max-bps"), num("duration-s")];
  const startBps = num("start-bps");
  const payloadType = num("pt", 96);
  const mtu = num("mtu", 1200);
  if (!(minBps <= startBps && startBps <= maxBps)) throw new TypeError("needs --min-bps <= --start-bps <= --max-bps");
  if (mtu < RTP_HEADER + 2 + STAMP_BYTES + 1) throw new TypeError(`--mtu: at least ${RTP_HEADER + 2 + STAMP_BYTES + 1}`);

  const rtp = await bindUdp(localPort, "0.0.0.0");
  const rtcp = await bindUdp(localPort + 1, "0.0.0.0");
  const startMs = Date.now();
  const rates: { t: number; bps: number; by: "start" | "tmmbr" | "remb" }[] = [{ t: 0, bps: startBps, by: "start" }];
  const perSecond: { packets: number; bits: number }[] = [];
  const rtcpIn: Record<string, number> = {};
  let rate = startBps;
  let latest: { tmmbr?: number; remb?: number } = {};
  let sent = 0;
  let sendErrors = 0;
  let octets = 0;

  rtcp.on("message", (msg: Buffer) => {
    const asked = requestedRates(msg, ssrc);
    for (const k of asked.kinds) rtcpIn[k] = (rtcpIn[k] ?? 0) + 1;
    if (asked.tmmbr === undefined && asked.remb === undefined) return;
    latest = { ...latest, ...(asked.tmmbr !== undefined && { tmmbr: asked.tmmbr }), ...(asked.remb !== undefined && { remb: asked.remb }) };
    const wanted = Math.min(latest.tmmbr ?? Infinity, latest.remb ?? Infinity);
    const next = Math.round(Math.min(maxBps, Math.max(minBps, wanted)));
    if (next === rate) return;
    rate = next;
    rates.push({ t: Date.now() - startMs, bps: rate, by: asked.tmmbr !== undefined ? "tmmbr" : "remb" });
  });

  const sendReport = (): void => {
    const ntpMs = Date.now() + 2_208_988_800_000;
    const sr = senderReport(ssrc, Math.floor(ntpMs / 1000) >>> 0, Math.floor(((ntpMs % 1000) / 1000) * 2 ** 32) >>> 0);
    sr.writeUInt32BE(sent >>> 0, 20);
    sr.writeUInt32BE(octets >>> 0, 24);
    rtcp.send(sr, port + 1, address);
  };
  sendReport();
  const reports = setInterval(sendReport, 1000);

  // every send counted when done: a socket closed with sends in flight loses them
  let inFlight = 0;
  const onSent = (err: Error | null): void => {
    inFlight--;
    if (err) sendErrors++;
  };
  let seq = Math.floor(Math.random() * 0x10000);
  const frames = Math.round(durationS * FPS);
  for (let frame = 0; frame < frames; frame++) {
    const due = startMs + (frame * 1000) / FPS;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const kind = frameKind(frame);
    const nalBytes = Math.max(1 + STAMP_BYTES, Math.round(((rate / 8 / FPS) * WEIGHT[kind]) / MEAN_WEIGHT));
    const payloads = packetise(nalBytes, mtu);
    const second = Math.floor((Date.now() - startMs) / 1000);
    while (perSecond.length <= second) perSecond.push({ packets: 0, bits: 0 });
    payloads.forEach((length, i) => {
      const b = Buffer.alloc(RTP_HEADER + Math.max(length, 2 + STAMP_BYTES));
      b[0] = 0x80;
      b[1] = (i === payloads.length - 1 ? 0x80 : 0) | payloadType;
      b.writeUInt16BE(seq, 2);
      seq = (seq + 1) & 0xffff;
      b.writeUInt32BE((frame * (90_000 / FPS)) >>> 0, 4);
      b.writeUInt32BE(ssrc >>> 0, 8);
      const nal = nalHeader(kind);
      let at = RTP_HEADER;
      if (payloads.length === 1) b[at++] = nal;
      else {
        b[at++] = (nal & 0xe0) | 28; // FU indicator: F and NRI of the NAL, type 28
        b[at++] = (i === 0 ? 0x80 : 0) | (i === payloads.length - 1 ? 0x40 : 0) | (nal & 0x1f); // FU header: S, E, type
      }
      b.writeBigUInt64BE(BigInt(realtimeUs()), at);
      b.writeUInt32BE(sent >>> 0, at + 8);
      inFlight++;
      rtp.send(b, port, address, onSent);
      sent++;
      octets += b.length - RTP_HEADER;
      perSecond[second]!.packets++;
      perSecond[second]!.bits += b.length * 8;
    });
  }
  clearInterval(reports);
  for (let waited = 0; inFlight > 0 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  const timeline: SenderTimeline = { ssrc, startMs, sent, sendErrors, rates, perSecond, rtcpIn };
  writeFileSync(out, JSON.stringify(timeline));
  console.log(`done ${JSON.stringify({ sent })}`);
  rtp.close();
  rtcp.close();
}

// imported by the lab for its helpers; run as a tool
if (process.argv[1]?.endsWith("cc-sender.js")) await main();
