// The load generator and the sink of the end-to-end benchmark, run as child processes (forked by
// bench/e2e.ts) so that they do not share a thread, or a process CPU account, with the relay
// under test. `node loadgen.js gen` sends; `node loadgen.js sink [ADDRESS]` receives and counts
// (on 127.0.0.1 unless ADDRESS says otherwise: the fan-out part binds 0.0.0.0 to receive what is
// sent to any address of 127/8 on one socket).
//
// Packets are RTP (V=2, PT 96) with a stamp after the 12-byte header:
// [trial id u32][index u32][send time u64], big-endian. The send time is CLOCK_MONOTONIC in
// nanoseconds (process.hrtime), which both processes share, taken just before the packet (or its
// chunk of 16: see I/O) goes to the kernel; the sink's receive time minus it is the one-way
// latency through the relay.
// The sink counts each index of the current trial once; loss = sent - counted.
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
//
// I/O: through the project's batched-I/O addon (bench/loadgen-io.ts) where it is built: a burst
// is built in a preallocated region and leaves in one sendmmsg per stream and 16 packets (a
// larger call would stamp its last packets too early, by the time the first take); the sink reads with
// recvmmsg, counts from the arena in place and takes each packet's receive time from the kernel
// (SO_TIMESTAMPNS), so the sink's event loop is no part of the latency. Without the addon both
// fall back to node:dgram (one system call, and on receive one Buffer, per packet; the receive
// time is then when the packet's event ran), print a line saying so, and say so in `io`.
import { createSocket, type Socket } from "node:dgram";
import { cpuUsSince, replyToParent, tuneSocket } from "./load-process.js";
import { BatchedReceive, BatchedSend, ioFallbackNote, monotonicNs, readU32, receiveFallback, sendFallback, udpAddon, writeU32 } from "./loadgen-io.js";

export type LoadgenRequest =
  | { cmd: "run"; trial: number; ports: readonly number[]; rate: number; durationMs: number; size: number }
  /**
   * bySequence: count by the RTP sequence number (the payload is encrypted); collect then names the trial's first.
   * latencyFrom: the index of the first packet whose latency counts (a trial's start-up left out; default 0).
   */
  | { cmd: "arm"; trial: number; expect: number; bySequence?: boolean; latencyFrom?: number }
  | { cmd: "collect"; trial: number; firstSeq?: number }
  | { cmd: "exit" };

/**
 * How a load process moves packets: "batched" (sendmmsg / recvmmsg through the addon) or
 * "dgram" (node:dgram, when the addon cannot be used: `note` says why).
 */
export interface LoadgenIo {
  readonly io: "batched" | "dgram";
  readonly note?: string;
}

export type LoadgenReply =
  | ({ type: "ready"; port: number } & LoadgenIo)
  /** firstSeq: the RTP sequence number of the trial's first packet on the first port. */
  | ({ type: "ran"; trial: number; sent: number; sendMs: number; cpuUs: number; sendErrors: number; lateTicks: number; firstSeq: number } & LoadgenIo)
  | { type: "armed"; trial: number }
  /**
   * bytes: the UDP payload bytes of the packets counted as received. timed: how many of them the
   * latency rests on (those from the arm's latencyFrom on). receiveClock: where the
   * latency's receive times came from: "kernel" (SO_TIMESTAMPNS) or "loop" (when JS saw the packet).
   */
  | ({ type: "collected"; trial: number; received: number; timed: number; bytes: number; duplicates: number; stray: number; cpuUs: number; latency: LatencySummary | null; receiveClock: "kernel" | "loop" } & LoadgenIo);

/** One-way latency of the delivered packets of a trial, microseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  /** Packets later than 1 ms (absent in results made before it was counted). */
  readonly over1ms?: number;
}

/** The stamp's end: the smallest packet the generator can send. */
export const MIN_PACKET = 28;

const SSRC = 0x4d534d42;
/** node:dgram path: packets in flight the generator may have queued; each has its own buffer. */
const RING = 4096;
/** Packets waiting to be sent (node:dgram's or the addon's queues) above which a tick sends none. */
const QUEUE_LIMIT = RING / 2;
/** Largest burst, in milliseconds' worth of packets: how far a late timer may catch up at once. */
const MAX_BURST_MS = 4;
const TWO_32 = 4294967296;
/**
 * Packets per sendmmsg, each chunk stamped as it goes: a packet's stamp is at most a chunk's
 * sending (some 16 x 2 us on loopback) early, while the call's cost is shared by 16.
 */
const SEND_CHUNK = 16;

type Run = Extract<LoadgenRequest, { cmd: "run" }>;

/** A socket bound to a loopback port of its own, with the benchmark's buffer sizes. */
function boundSocket(): Promise<Socket> {
  const sock = createSocket("udp4");
  return new Promise((resolve) => sock.bind(0, "127.0.0.1", () => {
    tuneSocket(sock);
    resolve(sock);
  }));
}

/** Writes the RTP header and the stamp of one packet at bytes[at]. */
function writePacket(bytes: Uint8Array, at: number, seq: number, rtpTime: number, ssrc: number, trial: number, index: number, sentHi: number, sentLo: number): void {
  bytes[at] = 0x80;
  bytes[at + 1] = 96;
  bytes[at + 2] = seq >>> 8;
  bytes[at + 3] = seq;
  writeU32(bytes, at + 4, rtpTime >>> 0);
  writeU32(bytes, at + 8, ssrc >>> 0);
  writeU32(bytes, at + 12, trial);
  writeU32(bytes, at + 16, index);
  writeU32(bytes, at + 20, sentHi);
  writeU32(bytes, at + 24, sentLo);
}

/** How a fallback is reported: a line on stderr once, and the note in every reply that carries `io`. */
function ioOf(role: string, why: string): LoadgenIo {
  const note = ioFallbackNote(role, why);
  if (note === "") return { io: "batched" };
  process.stderr.write(`${note}\n`);
  return { io: "dgram", note };
}

function generator(first: Socket): void {
  const addon = udpAddon();
  const io = ioOf("generator", sendFallback());
  const batched = addon ? new BatchedSend(addon) : null;
  // stream i: its socket, the port it is connected to (0: none), its sequence number and RTP time
  const socks: Socket[] = [first];
  const connectedTo: number[] = [0];
  const seq: number[] = [0];
  const rtpTime: number[] = [0];
  batched?.attach(0, first);
  // node:dgram: a ring of buffers, each held until its send completes; batched: one chunk's region
  let ring: Buffer[] = [];
  let next = 0; // the ring's next buffer, on across runs: the last run's may still be in flight
  let region = new Uint8Array(0);
  let sendErrors = 0;
  const onSent = (err: Error | null): void => {
    if (err) sendErrors++;
  };

  const connect = async (ports: readonly number[]): Promise<void> => {
    for (let i = 0; i < ports.length; i++) {
      if (i === socks.length) {
        const sock = await boundSocket();
        socks.push(sock);
        batched?.attach(i, sock);
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
    if (batched) return batched.queued(n);
    let q = 0;
    for (let i = 0; i < n; i++) q += socks[i]!.getSendQueueCount();
    return q;
  };

  /** node:dgram: one send per packet, each from a ring buffer of its own and stamped just before its send. */
  const sendEach = (m: Run, index: number, stream: number, burst: number): void => {
    const streams = m.ports.length;
    for (let i = 0; i < burst; i++) {
      const b = ring[next]!;
      next = next + 1 === RING ? 0 : next + 1;
      const t = monotonicNs();
      const hi = Math.floor(t / TWO_32);
      writePacket(b, 0, seq[stream]!, rtpTime[stream]!, SSRC + stream, m.trial, index + i, hi, t - hi * TWO_32);
      seq[stream] = (seq[stream]! + 1) & 0xffff;
      rtpTime[stream] = rtpTime[stream]! + 90;
      socks[stream]!.send(b, onSent);
      if (++stream === streams) stream = 0;
    }
  };

  /**
   * Batched: per stream, its packets of the burst (indexes index + first, + streams, ...) in
   * chunks of SEND_CHUNK, each built in the region and stamped just before its one sendmmsg.
   */
  const sendBatch = (m: Run, index: number, stream: number, burst: number): void => {
    const streams = m.ports.length;
    for (let s = 0; s < streams; s++) {
      const first = (s - stream + streams) % streams; // the burst's packet i goes to stream (stream + i) % streams
      for (let i = first; i < burst; ) {
        const t = monotonicNs();
        const hi = Math.floor(t / TWO_32);
        const lo = t - hi * TWO_32;
        let n = 0;
        for (; n < SEND_CHUNK && i < burst; n++, i += streams) {
          writePacket(region, n * m.size, seq[s]!, rtpTime[s]!, SSRC + s, m.trial, index + i, hi, lo);
          seq[s] = (seq[s]! + 1) & 0xffff;
          rtpTime[s] = rtpTime[s]! + 90;
        }
        sendErrors += batched!.send(s, region, m.size, n);
      }
    }
  };

  const run = async (m: Run): Promise<void> => {
    const streams = m.ports.length;
    await connect(m.ports);
    const total = Math.max(1, Math.round((m.rate * m.durationMs) / 1000));
    const perMs = m.rate / 1000;
    const maxBurst = Math.max(1, Math.ceil(perMs * MAX_BURST_MS));
    if (batched) {
      if (region.length < SEND_CHUNK * m.size) region = new Uint8Array(SEND_CHUNK * m.size);
    } else if (ring.length === 0 || ring[0]!.length !== m.size) {
      ring = Array.from({ length: RING }, () => Buffer.alloc(m.size));
    }
    const sendBurst = batched ? sendBatch : sendEach;
    const deadline = m.durationMs * 1.5 + 50; // bounded even when the generator cannot keep up
    const firstSeq = seq[0]!;
    sendErrors = 0;
    let sent = 0;
    let lateTicks = 0;
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
        batched?.flush(streams);
        // bounded queues (and never overwrite a ring buffer a socket may still be sending)
        if (queued(streams) > QUEUE_LIMIT) burst = 0;
        if (burst > 0) {
          sendBurst(m, sent, stream, burst);
          sent += burst;
          stream = (stream + burst) % streams;
          tLast = performance.now();
        }
        if (sent >= total || elapsed >= deadline) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    batched?.drain(streams);
    // the measured send window: first to last burst, plus the mean gap of one packet
    const sendMs = tLast - t0 + 1 / perMs;
    replyToParent({ type: "ran", trial: m.trial, sent, sendMs, cpuUs: cpuUsSince(cpu0), sendErrors, lateTicks, firstSeq, ...io } satisfies LoadgenReply);
  };

  replyToParent({ type: "ready", port: first.address().port, ...io } satisfies LoadgenReply);
  process.on("message", (m: LoadgenRequest) => {
    if (m.cmd === "run") void run(m);
    else if (m.cmd === "exit") {
      batched?.close();
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
  /** How many of latencyUs hold a sample (packets from latencyFrom on). */
  timed = 0;
  bytes = 0;
  duplicates = 0;
  stray = 0;
  /** bySequence: the sequence numbers and lengths in arrival order, counted at collect once the first is known. */
  private readonly sequences: Uint16Array;
  private readonly lengths: Uint16Array;
  private logged = 0;

  constructor(readonly trial: number, expect: number, readonly bySequence: boolean, private readonly latencyFrom = 0) {
    this.seen = new Uint8Array(expect);
    this.latencyUs = new Float64Array(bySequence ? 0 : expect);
    // room for stragglers of the trial before too
    this.sequences = new Uint16Array(bySequence ? expect * 2 + 1024 : 0);
    this.lengths = new Uint16Array(this.sequences.length);
  }

  /** The packet at bytes[at], `length` bytes long, received at `receivedNs` (CLOCK_MONOTONIC). */
  add(bytes: Uint8Array, at: number, length: number, receivedNs: number): void {
    if (this.bySequence) {
      if (length < 12 || this.logged === this.sequences.length) this.stray++;
      else {
        this.lengths[this.logged] = length;
        this.sequences[this.logged++] = (bytes[at + 2]! << 8) | bytes[at + 3]!;
      }
      return;
    }
    if (length < MIN_PACKET || readU32(bytes, at + 12) !== this.trial) {
      this.stray++;
      return;
    }
    const sentNs = readU32(bytes, at + 20) * TWO_32 + readU32(bytes, at + 24);
    this.mark(readU32(bytes, at + 16), length, (receivedNs - sentNs) / 1000);
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
      if (!this.bySequence && index >= this.latencyFrom) this.latencyUs[this.timed++] = latencyUs;
      this.received++;
    }
  }
}

async function sink(sock: Socket): Promise<void> {
  let count = new TrialCount(-1, 0, false);
  let cpu0 = process.cpuUsage();
  const addon = udpAddon();
  const why = receiveFallback();
  const io = ioOf("sink", why);
  const batched = addon && why === "" ? new BatchedReceive(addon) : null;
  // a socket of the sink's own, bound and connected to itself: it probes the kernel clock's offset
  const probe = batched ? await boundSocket() : null;
  let receiveClock: "kernel" | "loop" = "loop";
  if (batched && probe) {
    await new Promise<void>((resolve) => probe.connect(probe.address().port, "127.0.0.1", resolve));
    receiveClock = await batched.calibrate(probe);
    if (receiveClock === "loop") process.stderr.write("loadgen sink: the kernel gives no receive timestamps: latencies include the sink's event loop\n");
    const data = batched.data;
    const slot = batched.slot;
    batched.attach(sock, (n) => {
      for (let i = 0; i < n; i++) {
        if (batched.truncated(i)) count.stray++;
        else count.add(data, i * slot, batched.length(i), batched.receivedNs(i));
      }
    });
  } else {
    sock.on("message", (msg) => count.add(msg, 0, msg.length, Number(process.hrtime.bigint())));
  }
  replyToParent({ type: "ready", port: sock.address().port, ...io } satisfies LoadgenReply);
  process.on("message", (m: LoadgenRequest) => {
    if (m.cmd === "arm") {
      void (async () => {
        // again before every trial: a step of the wall clock moves the kernel's timestamps
        if (batched && probe && receiveClock === "kernel") receiveClock = await batched.calibrate(probe);
        count = new TrialCount(m.trial, m.expect, m.bySequence === true, m.latencyFrom ?? 0);
        cpu0 = process.cpuUsage();
        replyToParent({ type: "armed", trial: m.trial } satisfies LoadgenReply);
      })();
    } else if (m.cmd === "collect") {
      if (count.bySequence) count.countSequences(m.firstSeq ?? 0);
      const latency = count.bySequence ? null : summarize(count.latencyUs.subarray(0, count.timed));
      replyToParent({ type: "collected", trial: m.trial, received: count.received, timed: count.timed, bytes: count.bytes, duplicates: count.duplicates, stray: count.stray, cpuUs: cpuUsSince(cpu0), latency, receiveClock, ...io } satisfies LoadgenReply);
    } else if (m.cmd === "exit") {
      batched?.close();
      probe?.close();
      sock.close(() => process.exit(0));
    }
  });
}

function summarize(samples: Float64Array): LatencySummary | null {
  if (samples.length === 0) return null;
  const sorted = Float64Array.from(samples).sort();
  // nearest rank: the smallest sample at or above the fraction
  const at = (q: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10;
  let over1ms = 0;
  for (let i = sorted.length - 1; i >= 0 && sorted[i]! > 1000; i--) over1ms++;
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1), over1ms };
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
    void sink(sock);
  });
} else {
  process.stderr.write(`loadgen: unknown role '${process.argv[2]}' (gen | sink)\n`);
  process.exit(2);
}
