// The load generator and the sink of the end-to-end benchmark, run as child processes (forked by
// bench/e2e.ts) so that they do not share a thread, or a process CPU account, with the relay
// under test. `node loadgen.js gen` sends; `node loadgen.js sink [ADDRESS]` receives and counts
// (on 127.0.0.1 unless ADDRESS says otherwise: the fan-out part binds 0.0.0.0 to receive what is
// sent to any address of 127/8 on one socket).
//
// Packets are RTP (V=2, PT 96) with a stamp after the 12-byte header:
// [trial id u32][index u32][send time u64], big-endian. The send time is process.hrtime.bigint()
// in nanoseconds: CLOCK_MONOTONIC, which both processes share, so the sink's receive time minus
// it is the one-way latency through the relay (and through both processes' event loops, which
// the direct path measures alone). The sink counts each index of the current trial once;
// loss = sent - counted.
//
// Destinations: a trial sends to one port or spreads its packets evenly (round robin) over
// several, the listen ports of a proxy's segments. Each port is a stream of its own: its own
// socket (connected to it), SSRC and sequence numbers, continuous over the whole run, so that a
// validating relay sees every stream in order. The index in the stamp counts over all of them.
//
// A relay that encrypts the payload (an SRTP protect stage) hides the stamp: the sink then
// counts by the RTP sequence number, which SRTP leaves in clear (one stream only; no latency).
//
// Pacing: every millisecond or so (setTimeout 1) the generator sends what is due by the clock,
// in one burst, at most four milliseconds' worth at once, so a late timer cannot turn into a huge
// burst; if it falls behind, the achieved rate it reports is lower than asked and the trial says so.
import { createSocket, type Socket } from "node:dgram";
import { cpuUsSince, replyToParent, tuneSocket } from "./load-process.js";

export type LoadgenRequest =
  | { cmd: "run"; trial: number; ports: readonly number[]; rate: number; durationMs: number; size: number }
  /** bySequence: count by the RTP sequence number (the payload is encrypted); collect then names the trial's first. */
  | { cmd: "arm"; trial: number; expect: number; bySequence?: boolean }
  | { cmd: "collect"; trial: number; firstSeq?: number }
  | { cmd: "exit" };

export type LoadgenReply =
  | { type: "ready"; port: number }
  /** firstSeq: the RTP sequence number of the trial's first packet on the first port. */
  | { type: "ran"; trial: number; sent: number; sendMs: number; cpuUs: number; sendErrors: number; lateTicks: number; firstSeq: number }
  | { type: "armed"; trial: number }
  /** bytes: the UDP payload bytes of the packets counted as received. */
  | { type: "collected"; trial: number; received: number; bytes: number; duplicates: number; stray: number; cpuUs: number; latency: LatencySummary | null };

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

/** A socket bound to a loopback port of its own, with the benchmark's buffer sizes. */
function boundSocket(): Promise<Socket> {
  const sock = createSocket("udp4");
  return new Promise((resolve) => sock.bind(0, "127.0.0.1", () => {
    tuneSocket(sock);
    resolve(sock);
  }));
}

function generator(first: Socket): void {
  // stream i: its socket, the port it is connected to (0: none), its sequence number and RTP time
  const socks: Socket[] = [first];
  const connectedTo: number[] = [0];
  const seq: number[] = [0];
  const rtpTime: number[] = [0];
  let ring: Buffer[] = [];
  let sendErrors = 0;
  const onSent = (err: Error | null): void => {
    if (err) sendErrors++;
  };

  const connect = async (ports: readonly number[]): Promise<void> => {
    for (let i = 0; i < ports.length; i++) {
      if (i === socks.length) {
        socks.push(await boundSocket());
        connectedTo.push(0);
        seq.push(0);
        rtpTime.push(0);
      }
      const sock = socks[i]!;
      if (connectedTo[i] === ports[i]) continue;
      if (connectedTo[i] !== 0) sock.disconnect();
      connectedTo[i] = ports[i]!;
      await new Promise<void>((resolve) => sock.connect(ports[i]!, "127.0.0.1", resolve));
    }
  };

  const queued = (n: number): number => {
    let q = 0;
    for (let i = 0; i < n; i++) q += socks[i]!.getSendQueueCount();
    return q;
  };

  const run = async (m: Extract<LoadgenRequest, { cmd: "run" }>): Promise<void> => {
    const streams = m.ports.length;
    await connect(m.ports);
    if (ring.length === 0 || ring[0]!.length !== m.size) {
      ring = Array.from({ length: RING }, () => {
        const b = Buffer.alloc(m.size);
        b[0] = 0x80;
        b[1] = 96;
        return b;
      });
    }
    const total = Math.max(1, Math.round((m.rate * m.durationMs) / 1000));
    const perMs = m.rate / 1000;
    const maxBurst = Math.max(1, Math.ceil(perMs * MAX_BURST_MS));
    const deadline = m.durationMs * 1.5 + 50; // bounded even when the generator cannot keep up
    const firstSeq = seq[0]!;
    sendErrors = 0;
    let sent = 0;
    let lateTicks = 0;
    let next = 0;
    let stream = 0;
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
        // never overwrite a buffer a socket may still be sending
        if (queued(streams) > RING / 2) burst = 0;
        for (let i = 0; i < burst; i++) {
          const b = ring[next]!;
          next = next + 1 === RING ? 0 : next + 1;
          b.writeUInt16BE(seq[stream]!, 2);
          b.writeUInt32BE(rtpTime[stream]! >>> 0, 4);
          b.writeUInt32BE((SSRC + stream) >>> 0, 8);
          b.writeUInt32BE(m.trial, 12);
          b.writeUInt32BE(sent, 16);
          b.writeBigUInt64BE(process.hrtime.bigint(), 20);
          seq[stream] = (seq[stream]! + 1) & 0xffff;
          rtpTime[stream] = rtpTime[stream]! + 90;
          socks[stream]!.send(b, onSent);
          sent++;
          if (++stream === streams) stream = 0;
        }
        if (burst > 0) tLast = performance.now();
        if (sent >= total || elapsed >= deadline) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    // the measured send window: first to last burst, plus the mean gap of one packet
    const sendMs = tLast - t0 + 1 / perMs;
    replyToParent({ type: "ran", trial: m.trial, sent, sendMs, cpuUs: cpuUsSince(cpu0), sendErrors, lateTicks, firstSeq });
  };

  replyToParent({ type: "ready", port: first.address().port });
  process.on("message", (m: LoadgenRequest) => {
    if (m.cmd === "run") void run(m);
    else if (m.cmd === "exit") {
      for (const s of socks) s.close();
      process.exit(0);
    }
  });
}

/** Which of the trial's packets arrived, and when: by the stamp, or by sequence number when the payload is opaque. */
class TrialCount {
  readonly seen: Uint8Array;
  readonly latencyUs: Float64Array;
  received = 0;
  bytes = 0;
  duplicates = 0;
  stray = 0;
  /** bySequence: the sequence numbers and lengths in arrival order, counted at collect once the first is known. */
  private readonly sequences: Uint16Array;
  private readonly lengths: Uint16Array;
  private logged = 0;

  constructor(readonly trial: number, expect: number, readonly bySequence: boolean) {
    this.seen = new Uint8Array(expect);
    this.latencyUs = new Float64Array(bySequence ? 0 : expect);
    // room for stragglers of the trial before too
    this.sequences = new Uint16Array(bySequence ? expect * 2 + 1024 : 0);
    this.lengths = new Uint16Array(this.sequences.length);
  }

  add(msg: Buffer, now: bigint): void {
    if (this.bySequence) {
      if (msg.length < 12 || this.logged === this.sequences.length) this.stray++;
      else {
        this.lengths[this.logged] = msg.length;
        this.sequences[this.logged++] = msg.readUInt16BE(2);
      }
      return;
    }
    if (msg.length < MIN_PACKET || msg.readUInt32BE(12) !== this.trial) {
      this.stray++;
      return;
    }
    this.mark(msg.readUInt32BE(16), msg.length, Number(now - msg.readBigUInt64BE(20)) / 1000);
  }

  /**
   * Counts the logged sequence numbers against the trial's first: each extends to the index
   * nearest the highest so far (RFC 3550 A.1's idea), so the stream may wrap 2^16 many times;
   * an index below 0 is a straggler of the trial before.
   */
  countSequences(firstSeq: number): void {
    let highest = -1;
    for (let i = 0; i < this.logged; i++) {
      const rel = (this.sequences[i]! - firstSeq) & 0xffff;
      const step = ((rel - (highest & 0xffff) + 0x8000) & 0xffff) - 0x8000;
      const index = highest + step;
      if (index >= 0 && index < this.seen.length) highest = Math.max(highest, index);
      this.mark(index, this.lengths[i]!, NaN);
    }
    this.logged = 0;
  }

  private mark(index: number, length: number, latencyUs: number): void {
    if (index < 0 || index >= this.seen.length) this.stray++;
    else if (this.seen[index] !== 0) this.duplicates++;
    else {
      this.seen[index] = 1;
      this.bytes += length;
      if (!this.bySequence) this.latencyUs[this.received] = latencyUs;
      this.received++;
    }
  }
}

function sink(sock: Socket): void {
  let count = new TrialCount(-1, 0, false);
  let cpu0 = process.cpuUsage();
  sock.on("message", (msg) => count.add(msg, process.hrtime.bigint()));
  replyToParent({ type: "ready", port: sock.address().port });
  process.on("message", (m: LoadgenRequest) => {
    if (m.cmd === "arm") {
      count = new TrialCount(m.trial, m.expect, m.bySequence === true);
      cpu0 = process.cpuUsage();
      replyToParent({ type: "armed", trial: m.trial });
    } else if (m.cmd === "collect") {
      if (count.bySequence) count.countSequences(m.firstSeq ?? 0);
      const latency = count.bySequence ? null : summarize(count.latencyUs.subarray(0, count.received));
      replyToParent({ type: "collected", trial: m.trial, received: count.received, bytes: count.bytes, duplicates: count.duplicates, stray: count.stray, cpuUs: cpuUsSince(cpu0), latency });
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
if (process.argv[2] === "gen") void boundSocket().then(generator);
else if (process.argv[2] === "sink") {
  const sock = createSocket("udp4");
  sock.bind(0, process.argv[3] ?? "127.0.0.1", () => {
    tuneSocket(sock);
    sink(sock);
  });
} else {
  process.stderr.write(`loadgen: unknown role '${process.argv[2]}' (gen | sink)\n`);
  process.exit(2);
}
