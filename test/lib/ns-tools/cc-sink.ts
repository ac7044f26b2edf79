// The receiver of the RFC 8867 lab (test/lib/cc-lab.ts): a plain RTP receiver of cc-sender.ts's
// stream. It records every packet (arrival time, index, RTP length, one-way delay from the send
// time the packet carries), prints a line per second (`second {JSON}`: packets, bits/s, median
// one-way delay), and sends an RTCP RR every second about the stream to where the stream's RTCP
// comes from (the SR's source; before one came, the RTP source's port + 1). On a "stop" line or
// SIGTERM it writes its report (the packets, its sockets' kernel drops) as JSON to --out and
// prints `report {"received":N,...}` without the packets.
// usage: cc-sink.js --port P --ssrc X --out FILE
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { DropWatch } from "../kernel-drops.js";
import { receiverReport } from "../rtcp-build.js";
import { bindUdp } from "../udp.js";
import { realtimeUs, STAMP_BYTES } from "./cc-sender.js";
import { parseFlags } from "./rtp-stream.js";

export interface SinkPackets {
  readonly ssrc: number;
  readonly received: number;
  /** Datagrams on the RTP port that were not the stream's packets. */
  readonly foreign: number;
  readonly kernelDrops: number;
  readonly rrSent: number;
  /** One row per packet, in arrival order: CLOCK_REALTIME arrival (ms), index, RTP length, one-way delay (us). */
  readonly packets: readonly (readonly [number, number, number, number])[];
}

/** Where the stamp starts in an RTP packet of the stream (after CSRCs, a header extension, the NAL or FU headers); -1 if it has none. */
export function stampOffset(b: Buffer): number {
  if (b.length < 12 || b[0]! >> 6 !== 2) return -1;
  let at = 12 + 4 * (b[0]! & 0x0f);
  if (b[0]! & 0x10) {
    if (at + 4 > b.length) return -1;
    at += 4 + 4 * b.readUInt16BE(at + 2);
  }
  if (at >= b.length) return -1;
  at += (b[at]! & 0x1f) === 28 ? 2 : 1;
  return at + STAMP_BYTES <= b.length ? at : -1;
}

const flags = parseFlags(process.argv.slice(2), ["port", "ssrc", "out"]);
const port = Number(flags.get("port"));
const ssrc = Number(flags.get("ssrc"));
const out = flags.get("out");
if (!(port > 0 && port < 65535) || !Number.isInteger(ssrc) || !out) throw new TypeError("needs --port (1-65534), --ssrc and --out");

const rtp = await bindUdp(port, "0.0.0.0");
const rtcp = await bindUdp(port + 1, "0.0.0.0");
const kernel = new DropWatch([port, port + 1]);
const packets: [number, number, number, number][] = [];
let foreign = 0;
let rrSent = 0;
let rtpFrom: { address: string; port: number } | undefined;
let rtcpFrom: { address: string; port: number } | undefined;
// RFC 3550 A.1/A.3 reception statistics, enough for an RR
let baseSeq = -1;
let maxSeq = 0;
let cycles = 0;
let expectedPrior = 0;
let receivedPrior = 0;
let lastSr = 0;
let lastSrAt = 0;

rtp.on("message", (b: Buffer, from) => {
  const at = stampOffset(b);
  if (at < 0 || b.readUInt32BE(8) !== ssrc >>> 0) {
    foreign++;
    return;
  }
  const now = realtimeUs();
  rtpFrom = { address: from.address, port: from.port };
  packets.push([Math.round(now / 1000), b.readUInt32BE(at + 8), b.length, now - Number(b.readBigUInt64BE(at))]);
  const seq = b.readUInt16BE(2);
  if (baseSeq < 0) baseSeq = maxSeq = seq;
  else if (((seq - maxSeq) & 0xffff) < 0x8000 && seq !== maxSeq) {
    if (seq < maxSeq) cycles += 0x10000;
    maxSeq = seq;
  }
});

rtcp.on("message", (b: Buffer, from) => {
  if (b.length >= 20 && b[1] === 200) {
    rtcpFrom = { address: from.address, port: from.port };
    lastSr = b.readUInt32BE(10) >>> 0; // the middle 32 bits of the NTP timestamp
    lastSrAt = Date.now();
  }
});

function sendReceiverReport(): void {
  const to = rtcpFrom ?? (rtpFrom && { address: rtpFrom.address, port: rtpFrom.port + 1 });
  if (!to || baseSeq < 0) return;
  const extendedMax = cycles + maxSeq;
  const expected = extendedMax - baseSeq + 1;
  const lost = Math.max(0, expected - packets.length);
  const [expectedInterval, receivedInterval] = [expected - expectedPrior, packets.length - receivedPrior];
  [expectedPrior, receivedPrior] = [expected, packets.length];
  const lostInterval = expectedInterval - receivedInterval;
  const fraction = expectedInterval > 0 && lostInterval > 0 ? Math.min(255, Math.floor((lostInterval * 256) / expectedInterval)) : 0;
  const dlsr = lastSrAt > 0 ? Math.round(((Date.now() - lastSrAt) / 1000) * 65536) : 0;
  rtcp.send(receiverReport(0x5eed0000 + (ssrc & 0xffff), ssrc >>> 0, fraction, lost, extendedMax >>> 0, 0, lastSr, dlsr), to.port, to.address);
  rrSent++;
}

let shown = 0;
const perSecond = setInterval(() => {
  sendReceiverReport();
  const recent = packets.slice(shown);
  shown = packets.length;
  const delays = recent.map((p) => p[3]).sort((x, y) => x - y);
  const bits = recent.reduce((sum, p) => sum + p[2] * 8, 0);
  console.log(`second ${JSON.stringify({ packets: recent.length, bps: bits, medianDelayMs: delays.length > 0 ? delays[delays.length >> 1]! / 1000 : null })}`);
}, 1000);
console.log("ready");

let stopped = false;
function stop(): void {
  if (stopped) return;
  stopped = true;
  clearInterval(perSecond);
  const report: SinkPackets = { ssrc, received: packets.length, foreign, kernelDrops: kernel.since().total, rrSent, packets };
  writeFileSync(out!, JSON.stringify(report));
  console.log(`report ${JSON.stringify({ ...report, packets: undefined })}`);
  rtp.close();
  rtcp.close();
  process.exit(0);
}
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "stop") stop();
});
