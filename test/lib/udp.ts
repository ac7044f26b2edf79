// UDP helpers for tests: sinks that count by sequence number, a paced sender bounded in count and
// time, and port allocation. Everything binds to loopback only.
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { loadAddon as loadUdpAddon, type UdpAddon } from "../../runtime/dataplane/batched-io.js";

/** The batched-I/O addon; a test of it fails, never skips, where it is not built. */
export function builtUdpAddon(): UdpAddon {
  const a = loadUdpAddon();
  if (!a) throw new Error("the batched-I/O addon is not built (npm install builds it)");
  return a;
}

/** Whether 127.0.0.1:`port` can be bound now (nothing holds it: no socket, parked or kept, stayed behind). */
export async function portFree(port: number): Promise<boolean> {
  try {
    (await bindUdp(port)).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * A UDP socket bound to `port`; for port 0, one the kernel picks outside the runs freePortRun handed
 * out (a sink on a port a test meant for a segment's listen: the config refused it once in CI as
 * the segment's own listen, "every packet would come back to it").
 */
export async function bindUdp(port = 0, address = "127.0.0.1"): Promise<Socket> {
  if (port !== 0) return bindOnce(port, address);
  const passedOver: Socket[] = []; // held while another is picked, so that the kernel does not pick it again
  try {
    for (let i = 0; i < 20; i++) {
      const s = await bindOnce(0, address);
      const p = s.address().port;
      if (!handedOut.some(([first, end]) => p >= first && p < end)) return s;
      passedOver.push(s);
    }
    return await bindOnce(0, address);
  } finally {
    for (const s of passedOver) s.close();
  }
}

async function bindOnce(port: number, address: string): Promise<Socket> {
  const s = createSocket(address.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(port, address, () => {
      s.off("error", reject);
      resolve();
    });
  });
  try {
    s.setRecvBufferSize(8 << 20);
  } catch {
    // capped by the kernel
  }
  return s;
}

/**
 * Where freePortRuns picks: below Linux's ephemeral range (32768 up), so that no socket the kernel
 * numbers (a sink's, a proxy's egress: of this file, or of the file test/run.ts runs beside it)
 * takes a port handed out before the test binds it; and within this file's lane of that range
 * (MSM_TEST_LANE of MSM_TEST_LANES, set by the runner), so that two files running at once never
 * pick the same one. handedOut keeps a file's own picks apart.
 */
const PICK_LOW = 20000;
const PICK_HIGH = 32768;
/** The ports [low, high) that freePortRuns picks from in `lane` of `lanes` (the whole range without lanes). */
export function laneRange(lane: number, lanes: number): [low: number, high: number] {
  if (!(lanes > 1) || !(lane >= 0 && lane < lanes)) return [PICK_LOW, PICK_HIGH];
  const span = 2 * Math.floor((PICK_HIGH - PICK_LOW) / lanes / 2);
  return [PICK_LOW + lane * span, lane === lanes - 1 ? PICK_HIGH : PICK_LOW + (lane + 1) * span];
}
const [laneLow, laneHigh] = laneRange(Math.floor(Number(process.env.MSM_TEST_LANE)), Math.floor(Number(process.env.MSM_TEST_LANES)));

/** Runs of this many ports or more (a proxy of hundreds of segments) are picked from the top LONG_RUN_SPAN ports of the lane. */
const LONG_RUN = 64;
const LONG_RUN_SPAN = 2600;

/** An even port P with P and P+1 free (RTP and RTCP). */
export function freePortPair(address = "127.0.0.1"): Promise<number> {
  return freePortRun(2, address);
}

/** An even port P with P to P + count - 1 free (RTP, RTCP, and legs at P + 2, P + 4...). */
export async function freePortRun(count: number, address = "127.0.0.1", below = PICK_HIGH): Promise<number> {
  return (await freePortRuns(1, count, address, below))[0]!;
}

/** Port runs this process was handed: a later pick avoids them even once their probe sockets closed. */
const handedOut: [first: number, end: number][] = [];

/**
 * `runs` such ports, their runs apart and apart from every run handed out before in this process
 * (two picks in one test overlapped once in CI: the first was free again when the second probed).
 */
export async function freePortRuns(runs: number, count: number, address = "127.0.0.1", below = PICK_HIGH): Promise<number[]> {
  const found: number[] = [];
  const held: Socket[] = [];
  // long runs from the top of the lane, the rest below it: pairs a file's earlier tests scattered
  // over the whole lane once left no gap for 1000 ports in a row (batched-io in CI)
  const longFrom = laneHigh - LONG_RUN_SPAN;
  const low = count >= LONG_RUN ? longFrom : laneLow;
  const high = Math.min(below, count >= LONG_RUN ? laneHigh : longFrom);
  try {
    for (let attempt = 0; attempt < 100 * runs && found.length < runs; attempt++) {
      const p = low + 2 * Math.floor(Math.random() * ((high - count - low) / 2));
      if (handedOut.some(([first, end]) => p < end && first < p + count)) continue;
      const these: Socket[] = [];
      try {
        for (let k = 0; k < count; k++) these.push(await bindUdp(p + k, address));
        held.push(...these);
        found.push(p);
        handedOut.push([p, p + count]);
      } catch {
        for (const s of these) s.close(); // taken: try another
      }
    }
  } finally {
    for (const s of held) s.close();
  }
  if (found.length < runs) throw new Error(`no ${runs} x ${count} free ports in a row`);
  return found;
}

/** A base port P, even, with sinks bound at P + each offset (retrying where one is taken). */
export async function sinksAt(offsets: readonly number[], options: { keyOf?: (b: Buffer) => number; keep?: boolean } = {}): Promise<{ base: number; sinks: Sink[] }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePortPair();
    const sinks: Sink[] = [];
    try {
      for (const off of offsets) sinks.push(await Sink.open(base + off, options));
      return { base, sinks };
    } catch {
      for (const s of sinks) s.close();
    }
  }
  throw new Error(`no free ports at offsets ${offsets.join(", ")}`);
}

/** Receives packets and counts them by a key the test chooses (default: a u32 at byte 12, the payload start). */
export class Sink {
  readonly keys = new Map<number, number>();
  received = 0;
  readonly packets: { bytes: Buffer; from: RemoteInfo }[] = [];

  private constructor(readonly socket: Socket, private readonly keep: boolean, private readonly keyOf: (b: Buffer) => number) {
    socket.on("message", (msg, rinfo) => {
      this.received++;
      if (this.keep) this.packets.push({ bytes: msg, from: rinfo });
      const k = this.keyOf(msg);
      this.keys.set(k, (this.keys.get(k) ?? 0) + 1);
    });
  }

  static async open(port = 0, options: { address?: string; keep?: boolean; keyOf?: (b: Buffer) => number } = {}): Promise<Sink> {
    const keyOf = options.keyOf ?? ((b: Buffer) => (b.length >= 16 ? b.readUInt32BE(12) : -1));
    return new Sink(await bindUdp(port, options.address), options.keep ?? false, keyOf);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Keys expected from..from+n-1: how many are missing and how many arrived more than once. */
  tally(n: number, from = 0): { missing: number; duplicates: number } {
    let missing = 0;
    let duplicates = 0;
    for (let i = from; i < from + n; i++) {
      const c = this.keys.get(i) ?? 0;
      if (c === 0) missing++;
      else if (c > 1) duplicates += c - 1;
    }
    return { missing, duplicates };
  }

  close(): void {
    this.socket.close();
  }
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Sends `count` packets at `rate` packets/s (bursts every millisecond), built by `make(i)`, and
 * returns how many it sent. Bounded in count and in time (rate-derived duration + 5 s).
 * `onProgress(sent)` runs between bursts; "stop" from it ends the stream there. `sent` skips
 * values when the timer is late, so never wait for an exact one (see `everyN`).
 */
export async function sendPaced(
  socket: Socket, port: number, address: string, count: number, rate: number,
  make: (i: number) => Uint8Array, onProgress?: (sent: number) => void | "stop" | Promise<void | "stop">,
): Promise<number> {
  const started = Date.now();
  const deadline = started + (count / rate) * 1000 + 5000;
  let sent = 0;
  while (sent < count) {
    if (Date.now() > deadline) throw new Error(`sender overran its time bound (${sent}/${count} sent)`);
    const due = Math.min(count, Math.floor(((Date.now() - started) / 1000) * rate) + 1);
    while (sent < due) socket.send(make(sent++), port, address);
    if ((await onProgress?.(sent)) === "stop") break;
    await new Promise((r) => setTimeout(r, 1));
  }
  return sent;
}

/**
 * A `sendPaced` progress callback that runs `each(k)` once for every multiple k·step of packets
 * sent, however many a late burst sent at once (k from 1; several calls in a row after a stall).
 */
export function everyN(step: number, each: (k: number) => void | Promise<void>): (sent: number) => Promise<void> {
  let done = 0;
  return async (sent) => {
    while (done < Math.floor(sent / step)) await each(++done);
  };
}

/** RTP packet whose payload starts with a u32 index (what Sink counts by). */
export function indexedRtp(i: number, size = 200, ssrc = 0x1234abcd, payloadType = 96): Uint8Array {
  const b = Buffer.alloc(Math.max(size, 16));
  b[0] = 0x80;
  b[1] = payloadType;
  b.writeUInt16BE(i & 0xffff, 2);
  b.writeUInt32BE((i * 3000) >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  b.writeUInt32BE(i >>> 0, 12);
  return b;
}

/** Sends packets (indexedRtp from `firstIndex`) until one more reaches `sink`: the segment at `listen` runs (bounded by `timeoutMs`). */
export async function flowsThrough(listen: number, sink: Sink, what: string, timeoutMs = 10_000, firstIndex = 0): Promise<void> {
  const tx = await bindUdp();
  try {
    const before = sink.received;
    let i = firstIndex;
    await waitFor(() => {
      tx.send(indexedRtp(i++), listen, "127.0.0.1");
      return sink.received > before;
    }, timeoutMs, what);
  } finally {
    tx.close();
  }
}
