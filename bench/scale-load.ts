// The generator and the sink of the scale benchmark (bench/scale.ts), run as child processes so
// that they share neither a thread nor a CPU account with the proxy under test.
// `node scale-load.js gen` sends; `node scale-load.js sink` receives and counts. Both talk to the
// parent over IPC with the "advanced" serialization (per-stream counts travel as Uint32Array).
//
// Streams: stream i sends to 127.0.0.1:ports[i] (one proxy segment each) at `rate` packets/s.
// Packets are RTP: V=2, PT 96 (or as asked), SSRC distinct per stream, sequence numbers and
// 90 kHz timestamps continuous per stream over every trial (warm-up and measurement alike) so
// that a validating filter sees each stream in order. After the 12-byte header a stamp:
// [trial u32][stream u32][index in stream u32][send time u32], big-endian. The sink counts each
// (stream, index) of the armed trial once; per-stream loss = sent - counted. The send time is the
// machine's monotonic clock in microseconds (mod 2^32), which both processes read: the sink takes
// each counted packet's one-way latency through the proxy (its own event loop included), the
// figure a stall of the proxy's packet loop shows up in.
//
// Pacing: the streams are interleaved round robin, packet g of a trial being stream g % N's
// packet floor(g / N), due at g / (N * rate) seconds: every stream gets one packet per 1/rate
// seconds and the streams are spread evenly over that period (not all in the same millisecond).
// Every millisecond or so (setTimeout 1) the generator sends what is due by the clock, at most
// four milliseconds' worth at once (and never more than a quarter of its buffer ring), so a late
// timer cannot become a huge burst; if it falls behind, the achieved rate it reports is lower
// than asked. A trial ends when every packet is sent or at 1.5 x its duration + 50 ms.
//
// The send loop allocates nothing of its own: packets are written into a preallocated ring of
// buffers, and per-stream state lives in typed arrays.
import { createSocket } from "node:dgram";
import { SCALE_MIN_PACKET_BYTES } from "./common.js";
import type { LatencySummary } from "./loadgen.js";
import { cpuUsSince, replyToParent, tuneSocket } from "./load-process.js";

export type ScaleLoadRequest =
  /** Generator: the streams of the next trials; resets their sequence numbers and timestamps. */
  | { cmd: "setup"; ports: number[]; rate: number; size: number; payloadType: number }
  /** Generator: sends `perStream` packets on every stream, paced at the set-up rate. */
  | { cmd: "run"; trial: number; perStream: number }
  /** Sink: counts `trial` from now on (up to `perStream` indexes on each of `streams` streams). */
  | { cmd: "arm"; trial: number; streams: number; perStream: number }
  /** Sink: how many packets of the armed trial have arrived so far (to wait for a backlog to drain). */
  | { cmd: "peek" }
  | { cmd: "collect"; trial: number }
  | { cmd: "exit" };

export type ScaleLoadReply =
  | { type: "ready"; port: number }
  | { type: "setup"; streams: number }
  | {
    type: "ran"; trial: number; sent: number; perStream: Uint32Array; sendMs: number; cpuUs: number;
    sendErrors: number; lateTicks: number; blockedTicks: number;
  }
  | { type: "armed"; trial: number }
  /** `arrived`: every datagram since arming, whatever its trial (warm-up packets included). */
  | { type: "peeked"; received: number; arrived: number }
  | {
    type: "collected"; trial: number; received: number; perStream: Uint32Array; duplicates: number;
    stray: number; cpuUs: number; latency: LatencySummary | null;
  }
  | { type: "error"; message: string };


const SSRC_BASE = 0x5ca10000;
const BUFFER_BYTES = 8 << 20; // the kernel caps it at net.core.rmem_max / wmem_max
/** Packets the generator may have in flight; each has its own buffer. */
const RING = 8192;
/** Largest burst, in milliseconds' worth of packets. */
const MAX_BURST_MS = 4;
/** ...and in packets: dgram defers an addressed send to the next tick, so a burst must fit the ring. */
const MAX_BURST_PACKETS = RING / 4;
const LOOPBACK = "127.0.0.1";

/** The monotonic clock (CLOCK_MONOTONIC, the same in every process), microseconds. */
function monotonicUs(): number {
  const [sec, ns] = process.hrtime();
  return sec * 1e6 + ns / 1e3;
}

/** Latency histogram: 16 buckets an octave (steps of 4.4%) from 1 us to 2^26 us (67 s). */
const BUCKETS_PER_OCTAVE = 16;
const LATENCY_BUCKETS = 26 * BUCKETS_PER_OCTAVE + 1;
const bucketOf = (us: number): number => (us < 1 ? 0 : Math.min(LATENCY_BUCKETS - 1, Math.ceil(Math.log2(us) * BUCKETS_PER_OCTAVE)));
const bucketTop = (b: number): number => 2 ** (b / BUCKETS_PER_OCTAVE);

/** One-way latency of a trial's counted packets (from the histogram: within 5%; max exact). */
function latencyOf(hist: Uint32Array, count: number, max: number): LatencySummary | null {
  if (count === 0) return null;
  const at = (q: number): number => {
    const rank = Math.ceil(q * count);
    let seen = 0;
    for (let b = 0; b < hist.length; b++) {
      seen += hist[b]!;
      if (seen >= rank) return Math.round(Math.min(bucketTop(b), max));
    }
    return Math.round(max);
  };
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: Math.round(max) };
}

function generator(): void {
  const sock = createSocket("udp4");
  let ports = new Uint16Array(0);
  let seq = new Uint16Array(0);
  let rtpTime = new Uint32Array(0);
  let tsStep = 0;
  let rate = 0;
  let ring: Buffer[] = [];
  let running = false;
  let sendErrors = 0;
  const onSent = (err: Error | null): void => {
    if (err) sendErrors++;
  };

  const setup = (m: Extract<ScaleLoadRequest, { cmd: "setup" }>): void => {
    const n = m.ports.length;
    ports = Uint16Array.from(m.ports);
    seq = new Uint16Array(n);
    rtpTime = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      // distinct, arbitrary starting points per stream, as real senders pick at random
      seq[i] = (i * 7919 + 1) & 0xffff;
      rtpTime[i] = Math.imul(i + 1, 2654435761) >>> 0;
    }
    rate = m.rate;
    tsStep = Math.max(1, Math.round(90_000 / m.rate));
    ring = Array.from({ length: RING }, () => {
      const b = Buffer.alloc(Math.max(SCALE_MIN_PACKET_BYTES, m.size));
      b[0] = 0x80;
      b[1] = m.payloadType & 0x7f;
      return b;
    });
    replyToParent({ type: "setup", streams: n });
  };

  const run = async (m: Extract<ScaleLoadRequest, { cmd: "run" }>): Promise<void> => {
    const n = ports.length;
    if (n === 0 || running) {
      replyToParent({ type: "error", message: n === 0 ? "run before setup" : "run while running" });
      return;
    }
    running = true;
    const perStream = Math.max(1, m.perStream);
    const total = n * perStream;
    const sentPer = new Uint32Array(n);
    const perMs = (n * rate) / 1000;
    const durationMs = (perStream / rate) * 1000;
    const maxBurst = Math.min(MAX_BURST_PACKETS, Math.max(1, Math.ceil(perMs * MAX_BURST_MS)));
    const deadline = durationMs * 1.5 + 50; // bounded even when the generator cannot keep up
    sendErrors = 0;
    let sent = 0;
    let stream = 0;
    let index = 0;
    let next = 0;
    let lateTicks = 0;
    let blockedTicks = 0;
    const trial = m.trial;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let tLast = t0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const elapsed = performance.now() - t0;
        const due = Math.min(total, Math.floor(elapsed * perMs) + 1);
        let burst = due - sent;
        if (burst > maxBurst) {
          burst = maxBurst;
          lateTicks++;
        }
        // never overwrite a buffer the socket may still be sending
        if (burst > 0 && sock.getSendQueueCount() > RING / 2) {
          burst = 0;
          blockedTicks++;
        }
        for (let k = 0; k < burst; k++) {
          const b = ring[next]!;
          next = next + 1 === RING ? 0 : next + 1;
          b.writeUInt16BE(seq[stream]!, 2);
          b.writeUInt32BE(rtpTime[stream]!, 4);
          b.writeUInt32BE((SSRC_BASE + stream) >>> 0, 8);
          b.writeUInt32BE(trial, 12);
          b.writeUInt32BE(stream, 16);
          b.writeUInt32BE(index, 20);
          b.writeUInt32BE(monotonicUs() % 4294967296, 24);
          seq[stream] = seq[stream]! + 1; // Uint16Array wraps
          rtpTime[stream] = rtpTime[stream]! + tsStep; // Uint32Array wraps
          sentPer[stream]++;
          sock.send(b, ports[stream]!, LOOPBACK, onSent);
          sent++;
          if (++stream === n) {
            stream = 0;
            index++;
          }
        }
        if (burst > 0) tLast = performance.now();
        if (sent >= total || elapsed >= deadline) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    running = false;
    // the measured send window: first to last burst, plus the mean gap of one packet
    const sendMs = tLast - t0 + 1 / perMs;
    replyToParent({ type: "ran", trial, sent, perStream: sentPer, sendMs, cpuUs: cpuUsSince(cpu0), sendErrors, lateTicks, blockedTicks });
  };

  sock.bind(0, LOOPBACK, () => {
    tuneSocket(sock, BUFFER_BYTES);
    replyToParent({ type: "ready", port: sock.address().port });
  });
  process.on("message", (m: ScaleLoadRequest) => {
    if (m.cmd === "setup") setup(m);
    else if (m.cmd === "run") void run(m);
    else if (m.cmd === "exit") sock.close(() => process.exit(0));
    else replyToParent({ type: "error", message: `generator: unexpected ${m.cmd}` });
  });
}

function sink(): void {
  const sock = createSocket("udp4");
  let trial = -1;
  let streams = 0;
  let perStream = 0;
  let seen = new Uint8Array(0);
  let receivedPer = new Uint32Array(0);
  let received = 0;
  let duplicates = 0;
  let stray = 0;
  const latency = new Uint32Array(LATENCY_BUCKETS);
  let maxLatency = 0;
  let cpu0 = process.cpuUsage();
  sock.on("message", (msg) => {
    if (msg.length < SCALE_MIN_PACKET_BYTES || msg.readUInt32BE(12) !== trial) {
      stray++; // too short, or another trial's (the warm-up's)
      return;
    }
    const stream = msg.readUInt32BE(16);
    const index = msg.readUInt32BE(20);
    if (stream >= streams || index >= perStream) {
      stray++;
      return;
    }
    const k = stream * perStream + index;
    if (seen[k] !== 0) duplicates++;
    else {
      seen[k] = 1;
      receivedPer[stream]++;
      received++;
      const us = (monotonicUs() - msg.readUInt32BE(24) + 4294967296) % 4294967296;
      latency[bucketOf(us)]++;
      if (us > maxLatency) maxLatency = us;
    }
  });
  sock.bind(0, LOOPBACK, () => {
    tuneSocket(sock, BUFFER_BYTES);
    replyToParent({ type: "ready", port: sock.address().port });
  });
  process.on("message", (m: ScaleLoadRequest) => {
    if (m.cmd === "arm") {
      trial = m.trial;
      streams = m.streams;
      perStream = m.perStream;
      seen = new Uint8Array(streams * perStream);
      receivedPer = new Uint32Array(streams);
      received = duplicates = stray = 0;
      latency.fill(0);
      maxLatency = 0;
      cpu0 = process.cpuUsage();
      replyToParent({ type: "armed", trial });
    } else if (m.cmd === "peek") {
      replyToParent({ type: "peeked", received, arrived: received + duplicates + stray });
    } else if (m.cmd === "collect") {
      replyToParent({ type: "collected", trial: m.trial, received, perStream: receivedPer.slice(), duplicates, stray, cpuUs: cpuUsSince(cpu0), latency: latencyOf(latency, received, maxLatency) });
    } else if (m.cmd === "exit") sock.close(() => process.exit(0));
    else replyToParent({ type: "error", message: `sink: unexpected ${m.cmd}` });
  });
}

if (!process.send) {
  process.stderr.write("bench/scale-load.js is started by bench/scale.js (it needs an IPC channel)\n");
  process.exit(2);
}
process.on("disconnect", () => process.exit(0));
if (process.argv[2] === "gen") generator();
else if (process.argv[2] === "sink") sink();
else {
  process.stderr.write(`scale-load: unknown role '${process.argv[2]}' (gen | sink)\n`);
  process.exit(2);
}
