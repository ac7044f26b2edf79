// The load generator and the sink of the end-to-end benchmark, run as child processes (forked by
// bench/e2e.ts) so that they do not share a thread, or a process CPU account, with the relay
// under test. `node loadgen.js gen` sends; `node loadgen.js sink [ADDRESS]` receives and counts
// (on 127.0.0.1 unless ADDRESS says otherwise: the fan-out part binds 0.0.0.0 to receive what is
// sent to any address of 127/8 on one socket).
//
// Packets are RTP (V=2, PT 96, one SSRC, sequence numbers continuous over the whole run so that
// a validating relay sees one in-order stream) with a stamp after the 12-byte header:
// [trial id u32][index u32][send time u64], big-endian. The send time is process.hrtime.bigint()
// in nanoseconds: CLOCK_MONOTONIC, which both processes share, so the sink's receive time minus
// it is the one-way latency through the relay (and through both processes' event loops, which
// the direct path measures alone). The sink counts each index of the current trial once;
// loss = sent - counted.
//
// Pacing: every millisecond or so (setTimeout 1) the generator sends what is due by the clock,
// in one burst, at most four milliseconds' worth, so a late timer cannot turn into a huge burst;
// if it falls behind, the achieved rate it reports is lower than asked and the trial says so.
import { createSocket } from "node:dgram";
import { cpuUsSince, replyToParent, tuneSocket } from "./load-process.js";

export type LoadgenRequest =
  | { cmd: "run"; trial: number; port: number; rate: number; durationMs: number; size: number }
  | { cmd: "arm"; trial: number; expect: number }
  | { cmd: "collect"; trial: number }
  | { cmd: "exit" };

export type LoadgenReply =
  | { type: "ready"; port: number }
  | { type: "ran"; trial: number; sent: number; sendMs: number; cpuUs: number; sendErrors: number; lateTicks: number }
  | { type: "armed"; trial: number }
  | { type: "collected"; trial: number; received: number; duplicates: number; stray: number; cpuUs: number; latency: LatencySummary | null };

/** One-way latency of the delivered packets of a trial, microseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** The stamp's end: the smallest packet the generator can send. */
export const MIN_PACKET = 28;

const SSRC = 0x4d534d42;
/** Packets in flight the generator may have queued; each has its own buffer. */
const RING = 4096;
/** Largest burst, in milliseconds' worth of packets: how far a late timer may catch up at once. */
const MAX_BURST_MS = 4;

function generator(): void {
  const sock = createSocket("udp4");
  let connectedTo = 0;
  let ring: Buffer[] = [];
  let seq = 0;
  let rtpTime = 0;
  let sendErrors = 0;
  const onSent = (err: Error | null): void => {
    if (err) sendErrors++;
  };

  const connect = (port: number): Promise<void> => {
    if (connectedTo === port) return Promise.resolve();
    if (connectedTo !== 0) sock.disconnect();
    connectedTo = port;
    return new Promise((resolve) => sock.connect(port, "127.0.0.1", resolve));
  };

  const run = async (m: Extract<LoadgenRequest, { cmd: "run" }>): Promise<void> => {
    await connect(m.port);
    if (ring.length === 0 || ring[0]!.length !== m.size) {
      ring = Array.from({ length: RING }, () => {
        const b = Buffer.alloc(m.size);
        b[0] = 0x80;
        b[1] = 96;
        b.writeUInt32BE(SSRC, 8);
        return b;
      });
    }
    const total = Math.max(1, Math.round((m.rate * m.durationMs) / 1000));
    const perMs = m.rate / 1000;
    const maxBurst = Math.max(1, Math.ceil(perMs * MAX_BURST_MS));
    const deadline = m.durationMs * 1.5 + 50; // bounded even when the generator cannot keep up
    sendErrors = 0;
    let sent = 0;
    let lateTicks = 0;
    let next = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let tLast = t0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        const elapsed = now - t0;
        const due = Math.min(total, Math.floor(elapsed * perMs) + 1);
        let burst = due - sent;
        if (burst > maxBurst) {
          burst = maxBurst;
          lateTicks++;
        }
        // never overwrite a buffer the socket may still be sending
        if (sock.getSendQueueCount() > RING / 2) burst = 0;
        for (let i = 0; i < burst; i++) {
          const b = ring[next]!;
          next = next + 1 === RING ? 0 : next + 1;
          b.writeUInt16BE(seq, 2);
          b.writeUInt32BE(rtpTime >>> 0, 4);
          b.writeUInt32BE(m.trial, 12);
          b.writeUInt32BE(sent, 16);
          b.writeBigUInt64BE(process.hrtime.bigint(), 20);
          seq = (seq + 1) & 0xffff;
          rtpTime += 90;
          sock.send(b, onSent);
          sent++;
        }
        if (burst > 0) tLast = performance.now();
        if (sent >= total || elapsed >= deadline) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    // the measured send window: first to last burst, plus the mean gap of one packet
    const sendMs = tLast - t0 + 1 / perMs;
    replyToParent({ type: "ran", trial: m.trial, sent, sendMs, cpuUs: cpuUsSince(cpu0), sendErrors, lateTicks });
  };

  sock.bind(0, "127.0.0.1", () => {
    tuneSocket(sock);
    replyToParent({ type: "ready", port: sock.address().port });
  });
  process.on("message", (m: LoadgenRequest) => {
    if (m.cmd === "run") void run(m);
    else if (m.cmd === "exit") sock.close(() => process.exit(0));
  });
}

function sink(address: string): void {
  const sock = createSocket("udp4");
  let trial = -1;
  let seen = new Uint8Array(0);
  let latencyUs = new Float64Array(0);
  let received = 0;
  let duplicates = 0;
  let stray = 0;
  let cpu0 = process.cpuUsage();
  sock.on("message", (msg) => {
    const now = process.hrtime.bigint();
    if (msg.length < MIN_PACKET || msg.readUInt32BE(12) !== trial) {
      stray++;
      return;
    }
    const index = msg.readUInt32BE(16);
    if (index >= seen.length) stray++;
    else if (seen[index] !== 0) duplicates++;
    else {
      seen[index] = 1;
      latencyUs[received] = Number(now - msg.readBigUInt64BE(20)) / 1000;
      received++;
    }
  });
  sock.bind(0, address, () => {
    tuneSocket(sock);
    replyToParent({ type: "ready", port: sock.address().port });
  });
  process.on("message", (m: LoadgenRequest) => {
    if (m.cmd === "arm") {
      trial = m.trial;
      seen = new Uint8Array(m.expect);
      latencyUs = new Float64Array(m.expect);
      received = duplicates = stray = 0;
      cpu0 = process.cpuUsage();
      replyToParent({ type: "armed", trial });
    } else if (m.cmd === "collect") {
      replyToParent({ type: "collected", trial: m.trial, received, duplicates, stray, cpuUs: cpuUsSince(cpu0), latency: summarize(latencyUs.subarray(0, received)) });
    } else if (m.cmd === "exit") sock.close(() => process.exit(0));
  });
}

function summarize(samples: Float64Array): LatencySummary | null {
  if (samples.length === 0) return null;
  const sorted = Float64Array.from(samples).sort();
  // nearest rank: the smallest sample at or above the fraction
  const at = (q: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1) };
}

if (!process.send) {
  process.stderr.write("bench/loadgen.js is started by bench/run.js (it needs an IPC channel)\n");
  process.exit(2);
}
process.on("disconnect", () => process.exit(0));
if (process.argv[2] === "gen") generator();
else if (process.argv[2] === "sink") sink(process.argv[3] ?? "127.0.0.1");
else {
  process.stderr.write(`loadgen: unknown role '${process.argv[2]}' (gen | sink)\n`);
  process.exit(2);
}
