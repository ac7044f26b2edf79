// Batched socket I/O for the end-to-end benchmark's generator and sink (bench/loadgen.ts): the
// project's own addon (runtime/native/msm_udp.c, docs/batched-io.md), so that the harness spends
// one system call per 16 packets sent and per batch received rather than one per packet, and leaves the CPU to the relay under test.
import type { Socket } from "node:dgram";
import { META_STRIDE, RECEIVE_SLOT, loadUdpAddon, socketHandle, udpAddonError, type UdpAddon } from "../runtime/index.js";

type Port = ReturnType<UdpAddon["attach"]>;
type Arena = ReturnType<UdpAddon["createArena"]>;

/** Where the addon writes a send's outcome: sent, queued, backpressure, failed. */
const RESULT_BACKPRESSURE = 2;
const RESULT_FAILED = 3;

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** The runtime's batched-I/O addon, or why not. MSM_LOADGEN_IO=dgram turns it off (to compare with the node:dgram harness). */
function loadAddon(): { addon: UdpAddon | null; why: string } {
  if (process.env.MSM_LOADGEN_IO === "dgram") return { addon: null, why: "MSM_LOADGEN_IO=dgram" };
  if (process.platform !== "linux") return { addon: null, why: `batched I/O needs Linux, this is ${process.platform}` };
  const addon = loadUdpAddon();
  return { addon, why: addon === null ? udpAddonError() : "" };
}

const loaded = loadAddon();

/** The addon, or null (sendFallback() says why). */
export function udpAddon(): UdpAddon | null {
  return loaded.addon;
}

/** The line a process prints when it falls back to node:dgram (empty when it does not). */
export function ioFallbackNote(role: string, why: string): string {
  return why === "" ? "" : `loadgen ${role}: falling back to node:dgram I/O (the harness's ceiling is lower): ${why}`;
}

/** Why the generator sends through node:dgram ("" when it does not). */
export function sendFallback(): string {
  return loaded.why;
}

/** Why the sink receives through node:dgram ("" when it does not): under Bun too, which has no libuv poll handles for the addon. */
export function receiveFallback(): string {
  if (loaded.addon !== null && isBun) return "Bun cannot watch a socket for the addon";
  return loaded.why;
}

/**
 * The generator's sends: one connected socket per stream, each chunk of a burst one `sendmmsg`
 * straight from the caller's memory (the call is synchronous: the memory is free again when it
 * returns). What the kernel cannot take at once waits in the addon's queue, flushed on each tick.
 */
export class BatchedSend {
  private readonly addon: UdpAddon;
  private readonly result = new Int32Array(7);
  private readonly arena: Arena;
  private readonly ports: Port[] = [];
  private entries = new Int32Array(0);
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(addon: UdpAddon) {
    this.addon = addon;
    // a send-only arena: the addon wants one for its send buffers and result words
    this.arena = addon.createArena(new Uint8Array(64), new Int32Array(META_STRIDE), 64, this.result);
  }

  /** Takes over sending on stream `i`'s socket (bound and connected by node:dgram). */
  attach(i: number, socket: Socket): void {
    this.ports[i] = this.addon.attach(socketHandle(socket).fd, this.arena, null);
  }

  /** Packets queued in the addon (sent when the socket takes them) over the first `streams` streams. */
  queued(streams: number): number {
    let q = 0;
    for (let i = 0; i < streams; i++) q += this.addon.queued(this.ports[i]!);
    return q;
  }

  /** Retries what the first `streams` streams' sockets could not take before. */
  flush(streams: number): void {
    for (let i = 0; i < streams; i++) if (this.addon.queued(this.ports[i]!) > 0) this.addon.flush(this.ports[i]!);
  }

  /**
   * Sends the `count` packets of `size` bytes at the start of `memory` on stream `stream`, in
   * one sendmmsg. Returns how many the kernel refused or the queue could not take.
   */
  send(stream: number, memory: Uint8Array, size: number, count: number): number {
    if (this.entries.length < count * 3) this.entries = new Int32Array(count * 3);
    const e = this.entries;
    for (let k = 0; k < count; k++) {
      e[k * 3] = k * size;
      e[k * 3 + 1] = size;
      e[k * 3 + 2] = -1; // the connected peer
    }
    this.addon.send(this.ports[stream]!, memory, e, count);
    return this.result[RESULT_BACKPRESSURE]! + this.result[RESULT_FAILED]!;
  }

  /** Keeps flushing after a run until every queue is empty. */
  drain(streams: number): void {
    if (this.drainTimer !== undefined) return;
    const step = (): void => {
      this.drainTimer = undefined;
      this.flush(streams);
      if (this.queued(streams) > 0) this.drainTimer = setTimeout(step, 1);
    };
    step();
  }

  close(): void {
    clearTimeout(this.drainTimer);
    for (const p of this.ports) this.addon.close(p);
  }
}

/** Datagrams one recvmmsg reads at most. */
const RECEIVE_SLOTS = 256;
/** Self-sent probes per calibration of the kernel's clock against CLOCK_MONOTONIC. */
const PROBES = 32;

/**
 * The sink's receive: `recvmmsg` into one arena, and onBatch(count) with packet i at
 * data[i * slot], length(i) bytes long, received at receivedNs(i) (CLOCK_MONOTONIC, ns).
 *
 * The receive time is the kernel's (SO_TIMESTAMPNS, taken as the datagram enters the receive
 * path toward the socket), which is CLOCK_REALTIME: `calibrate` finds its offset from CLOCK_MONOTONIC by sending
 * probes to itself, each stamped with process.hrtime just before its sendmmsg; the smallest
 * (kernel time - stamp) is the offset plus the shortest loopback hop (a few microseconds), so the
 * latencies may read that much short. Without kernel timestamps every packet of a batch gets
 * the time the batch reached JS.
 */
export class BatchedReceive {
  readonly data = new Uint8Array(RECEIVE_SLOTS * RECEIVE_SLOT);
  readonly slot = RECEIVE_SLOT;
  private readonly meta = new Int32Array(RECEIVE_SLOTS * META_STRIDE);
  private readonly result = new Int32Array(7);
  private readonly addon: UdpAddon;
  private readonly arena: Arena;
  private port: Port | null = null;
  /** Kernel time = (s - baseSec) * 1e9 + ns - offsetNs on CLOCK_MONOTONIC; NaN until calibrated. */
  private baseSec = 0;
  private offsetNs = NaN;
  /** CLOCK_MONOTONIC when the current batch reached JS: the receive time of packets the kernel did not stamp. */
  private batchNs = 0;
  /** How the last batch's packets were timed. */
  clock: "kernel" | "loop" = "loop";

  constructor(addon: UdpAddon) {
    this.addon = addon;
    this.arena = addon.createArena(this.data, this.meta, RECEIVE_SLOT, this.result);
  }

  /** Takes over reading `socket` (node:dgram stops reading it). */
  attach(socket: Socket, onBatch: (count: number) => void): void {
    const handle = socketHandle(socket);
    handle.recvStop?.();
    this.port = this.addon.attach(handle.fd, this.arena, (count) => {
      this.batchNs = monotonicNs();
      onBatch(count);
    });
  }

  length(i: number): number {
    return this.meta[i * META_STRIDE]!;
  }

  truncated(i: number): boolean {
    return this.meta[i * META_STRIDE + 1] !== 0;
  }

  receivedNs(i: number): number {
    const s = this.meta[i * META_STRIDE + 9]! >>> 0;
    if (s === 0 || this.offsetNs !== this.offsetNs) return this.batchNs;
    return (s - this.baseSec) * 1e9 + this.meta[i * META_STRIDE + 10]! - this.offsetNs;
  }

  /**
   * Measures the kernel clock's offset from CLOCK_MONOTONIC with probes through a socket of its
   * own (`probe`: bound and connected to itself). Resolves how packets will be timed.
   */
  async calibrate(probe: Socket): Promise<"kernel" | "loop"> {
    const handle = socketHandle(probe);
    handle.recvStop?.();
    const packet = new Uint8Array(8);
    const entries = Int32Array.of(0, 8, -1);
    let best = Infinity;
    let wake: (() => void) | null = null;
    const port = this.addon.attach(handle.fd, this.arena, (count) => {
      for (let i = 0; i < count; i++) {
        const s = this.meta[i * META_STRIDE + 9]! >>> 0;
        if (s === 0) continue;
        if (this.offsetNs !== this.offsetNs && best === Infinity) this.baseSec = s;
        const sentNs = readU32(this.data, i * RECEIVE_SLOT) * 4294967296 + readU32(this.data, i * RECEIVE_SLOT + 4);
        best = Math.min(best, (s - this.baseSec) * 1e9 + this.meta[i * META_STRIDE + 10]! - sentNs);
      }
      wake?.();
    });
    try {
      for (let k = 0; k < PROBES; k++) {
        let timer: NodeJS.Timeout | undefined;
        const got = new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, 100); // a lost probe does not stall the calibration
        });
        const t = monotonicNs();
        writeU32(packet, 0, Math.floor(t / 4294967296));
        writeU32(packet, 4, t % 4294967296);
        this.addon.send(port, packet, entries, 1);
        await got;
        clearTimeout(timer);
      }
    } finally {
      this.addon.close(port);
    }
    if (best !== Infinity) this.offsetNs = best;
    this.clock = this.offsetNs === this.offsetNs ? "kernel" : "loop";
    return this.clock;
  }

  close(): void {
    if (this.port) this.addon.close(this.port);
    this.port = null;
  }
}

/** CLOCK_MONOTONIC in nanoseconds, as a number: exact for 104 days of uptime (2^53 ns), to 2 ns for 208. */
export function monotonicNs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e9 + ns;
}

export function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}
