// The batched-I/O addon (runtime/native, docs/batched-io.md) as a worker uses it: one receive
// arena for all its sockets, one send batch, and the choice between it and node:dgram.
import type { Socket } from "node:dgram";
import { fileURLToPath } from "node:url";
import { DropReason } from "../abi.js";
import { loadNativeAddon, type LoadedAddon } from "../native-addon.js";
import type { SegmentStats } from "../chain/stats.js";
import type { AddressInfo } from "node:net";
import { keepTagOf, type UdpSocket } from "./segment-sockets.js";
import { TakenSocket } from "./taken-socket.js";
import { socketHandle } from "./dgram-handle.js";

export { socketHandle } from "./dgram-handle.js";

/** An attached socket, opaque to JS. */
export type NativePort = { readonly __nativePort: unique symbol };
type Arena = { readonly __arena: unique symbol };

/** The batched-I/O addon's functions (runtime/native/msm_udp.c, docs/batched-io.md). */
export interface UdpAddon {
  createArena(data: Uint8Array, meta: Int32Array, slotSize: number, result: Int32Array): Arena;
  /** onBatch(count, first): packets first .. first + count - 1 of the arena (first is 0 but for grouped ports). */
  attach(fd: number, arena: Arena, onBatch: ((count: number, first: number) => void) | null, thread?: boolean): NativePort;
  setPeer(port: NativePort, index: number, address: string, udpPort: number): boolean;
  send(port: NativePort, memory: Uint8Array, entries: Int32Array, count: number): number;
  flush(port: NativePort): number;
  queued(port: NativePort): number;
  pause(port: NativePort): void;
  resume(port: NativePort): void;
  addressOf(meta: Int32Array, index: number): string;
  /** Words of metadata per received packet in this build (META_STRIDE below when current). */
  readonly metaStride: number;
  close(port: NativePort): void;
  /**
   * A duplicate of a socket's descriptor (close-on-exec), for taking a socket over from its
   * runtime. With an owner (>= 0), a thread's end parks it instead of closing it (claimParked).
   */
  takeSocket(fd: number, closeAtExit?: boolean, owner?: number, place?: string, detail?: string): number;
  /** The socket `owner` (-1: any) parked at `place`, now the caller's (parked for newOwner in turn), or -1 (one with another detail is closed). */
  claimParked(owner: number, place: string, detail: string, newOwner: number): number;
  /** Where the sockets `owner` parked (handedOnly: handed over) are bound. */
  parkedPlaces(owner: number, handedOnly?: boolean): string[];
  /** Closes the sockets `owner` (-1: any) parked that were not claimed (`handedOnly`: those it handed over, not those its thread's end parked); how many. */
  releaseParked(owner: number, handedOnly?: boolean): number;
  /** Parks a keepable socket for another worker (a segment that moves): true; false when it is not keepable. */
  parkSocket(fd: number): boolean;
  /** The arena belongs to worker `owner` (its keepOwner), whose sockets stopReading(owner) stops reading. */
  setArenaOwner(arena: Arena, owner: number): void;
  /** From another thread, before it terminates worker `owner`: its sockets are read no more, what they hold is left for its replacement. */
  stopReading(owner: number): void;
  closeSocket(fd: number, closeAtExit?: boolean): void;
  disconnectSocket(fd: number): void;
  /** Sends with UDP GSO from now on where the kernel has it (true), or without (false). */
  setSegmentation(port: NativePort, on: boolean): boolean;
  /** Whether this kernel has UDP GSO. */
  segmentationSupported(): boolean;
  /** A new SOCK_SEQPACKET pair: [the proxy's end, a worker process's end], close-on-exec. */
  channelPair(): [number, number];
  /** A worker process sends the proxy the places of the kept sockets it closed, then a duplicate of each it keeps not sent yet; what is left for a later call (0: none; -1: the channel is broken). */
  shareKept(channel: number, owner: number): number;
  /** The proxy hands the sockets it holds parked for `owner` (at `place`, "": all; handedOnly: those it handed over) to a worker, closing its own; what is left once the worker has read (0: none; -1: broken). */
  sendParked(channel: number, owner: number, place: string, handedOnly?: boolean): number;
  /** A worker process hands over a listen socket it shared (closed here; the proxy's copy stays bound): true; false when not shared. */
  handKept(fd: number): boolean;
  /** Reads the channel: sockets sent are parked under `owner` (-1: the owner each record names), places removed close what is parked there; how many it parked. */
  receiveKept(channel: number, owner: number): number;
  /** Sockets read together after a stall, in the kernel's arrival order (2 to 8 receiving ports of one arena). */
  setGroup(ports: NativePort[]): void;
  /** Reads what the port's socket (a grouped port: its group) holds now, through its onBatch; true when it stopped at its budget with more waiting. */
  receiveNow(port: NativePort): boolean;
}

/** Where install builds the addon; MSM_NATIVE_ADDON names another build. */
const ADDON_PATH = process.env.MSM_NATIVE_ADDON ?? fileURLToPath(new URL("../../../runtime/native/build/Release/msm_udp.node", import.meta.url));
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

let loaded: LoadedAddon<UdpAddon> | undefined;

/** Closes the sockets worker thread `from` parked at places (placeOf) not in `wanted` (a claim with no detail closes one). */
export function releaseParkedExcept(addon: UdpAddon, from: number, wanted: ReadonlySet<string>): void {
  for (const place of addon.parkedPlaces(from)) if (!wanted.has(place)) addon.claimParked(from, place, "", -1);
}

/** The batched-I/O addon, or null (udpAddonError() says why). The bench's load generator uses it too. */
export function loadAddon(): UdpAddon | null {
  // built from an older msm_udp.c (a checkout updated without `npm install`), its packet metadata would be misread
  loaded ??= loadNativeAddon<UdpAddon>(ADDON_PATH, "the batched-I/O addon", (a) => (a.metaStride === META_STRIDE && typeof a.receiveKept === "function" ? ""
    : `the batched-I/O addon at ${ADDON_PATH} is stale (built from an older runtime/native/msm_udp.c); rebuild it with \`node scripts/build-native.mjs\` (npm install does)`));
  return loaded.addon;
}

/** The `io` setting of the proxy config. */
export type IoSetting = "auto" | "native" | "dgram";
/** The `gso` setting of the proxy config. */
export type GsoSetting = "auto" | "off";

/** How a worker moves packets: `receive` and `send` each through the addon or node:dgram. */
export interface IoPlan {
  readonly receive: "native" | "dgram";
  readonly send: "native" | "dgram";
  /**
   * Who tells the addon a socket is readable: the runtime's libuv loop (Node), or the addon's
   * watcher thread (Bun, whose node:dgram cannot stop reading a socket: the worker takes its
   * sockets over, segment-sockets.ts takeOverSockets).
   */
  readonly watch: "loop" | "thread";
  /**
   * Whether sends use UDP generic segmentation offload: consecutive packets of one size to one
   * destination leave as one message, cut apart after the IP stack (docs/batched-io.md).
   */
  readonly gso: boolean;
  /** Why the addon is not used although the setting allowed it (empty when nothing fell back). */
  readonly note: string;
}

/**
 * Picks the I/O path: both directions through the addon, watched by libuv under Node and by the
 * addon's own thread under Bun, which has no libuv poll handles (measured: Bun's node:dgram
 * receive makes a Buffer per packet, and the garbage, its page faults and TLB shootdowns cost
 * more than the reads; docs/batched-io.md). "native" where the addon is missing is an error;
 * "auto" falls back loudly.
 */
export function planIo(setting: IoSetting, gso: GsoSetting = "auto"): IoPlan {
  if (setting === "dgram") return { receive: "dgram", send: "dgram", watch: "loop", gso: false, note: "" };
  const native = process.platform === "linux" ? loadAddon() : null;
  if (native === null) {
    const why = process.platform === "linux" ? loaded!.error : `batched I/O needs Linux, this is ${process.platform}`;
    if (setting === "native") throw new Error(`io: native: ${why}`);
    return { receive: "dgram", send: "dgram", watch: "loop", gso: false, note: `falling back to node:dgram I/O: ${why}` };
  }
  return { receive: "native", send: "native", watch: isBun ? "thread" : "loop", gso: gso === "auto" && native.segmentationSupported(), note: "" };
}

/**
 * Tells worker thread `owner`'s arena to read its sockets no more (see UdpAddon.stopReading): from
 * the main thread before it terminates that worker, or from the worker as it exits. A no-op
 * where the addon was never loaded.
 */
export function stopReadingOf(owner: number): void {
  if (owner >= 0) loaded?.addon?.stopReading(owner);
}

/** Why loadAddon() returned null ("" when it did not, or has not been asked). */
export function udpAddonError(): string {
  return loaded?.error ?? "";
}


/** Bytes per received packet: any UDP datagram fits, so none is ever truncated. */
export const RECEIVE_SLOT = 65536;
/** Words per received packet in `meta`: length, truncated, family, port, address [4], IPv6 scope id, kernel receive time (s, ns). */
export const META_STRIDE = 11;
/** Send entries a batch collects before it goes to the kernel. */
const SEND_CAPACITY = 1024;
/** Source addresses remembered as text (a segment hears few: its sender, its destinations). */
const ADDRESS_CACHE = 8;
/** What a remembered address is known by: family, address [4], scope id. */
const CACHE_KEY = 6;
/** A wait longer than this is taken for a step of the wall clock, not a wait (a stall that long has lost more than time). */
const MAX_WAIT_US = 10e6;
/** How often a send-only port (every port under Bun; a leg's egress socket under Node) retries what its socket could not take. */
const RETRY_MS = 1;

/** Where the addon writes the last send's outcome, and the wall clock when it last handed packets over (s, ns). */
const enum Result { Sent, Queued, Backpressure, Failed, Messages, ClockS, ClockNs, Words }

/**
 * One worker's batched I/O: the receive arena every attached socket reads into (a batch is
 * handled before the next read, so one suffices), the text of recent source addresses, and the
 * send batch. Nothing here allocates per packet.
 */
export class BatchedIo {
  readonly data: Uint8Array;
  readonly meta: Int32Array;
  private readonly result = new Int32Array(Result.Words);
  private readonly arena: Arena;
  private readonly addon: UdpAddon;
  private readonly cacheWords = new Int32Array(ADDRESS_CACHE * CACHE_KEY);
  private readonly cacheText: string[] = new Array<string>(ADDRESS_CACHE).fill("");
  private cacheNext = 0;
  // the send batch: one socket and one memory at a time
  private readonly entries = new Int32Array(SEND_CAPACITY * 3);
  private readonly counted = new Int16Array(SEND_CAPACITY);
  private count = 0;
  private port: NativePort | null = null;
  private memory: Uint8Array | null = null;
  private stats: SegmentStats | null = null;
  /** Ports attached without onBatch: the addon does not watch them, so their queues are retried on a timer. */
  private readonly sendOnly = new WeakSet<NativePort>();
  /** Send-only ports with packets waiting for their socket (retried on a timer). */
  private readonly waiting = new Set<NativePort>();
  private retryTimer: NodeJS.Timeout | undefined;

  /**
   * `keepOwner` (>= 0, the worker's number among every worker the proxy started): its listen
   * sockets outlive it for its replacement to claim (claim()): a thread's are parked when it ends
   * with them open; a process's are held by the proxy, which `keepChannel` (the worker's end of a
   * channel, -1: none) sends duplicates to (shareKept). -1: they close with the worker.
   */
  constructor(readonly plan: IoPlan, readonly slots: number, private readonly keepOwner = -1, private readonly keepChannel = -1) {
    this.addon = loadAddon()!;
    this.data = new Uint8Array(slots * RECEIVE_SLOT);
    this.meta = new Int32Array(slots * META_STRIDE);
    this.arena = this.addon.createArena(this.data, this.meta, RECEIVE_SLOT, this.result);
    if (keepOwner >= 0 && plan.watch === "loop") this.addon.setArenaOwner(this.arena, keepOwner);
  }

  /**
   * Takes over a bound socket. With `onBatch` (native receive) node:dgram stops reading it and
   * each batch read goes to onBatch(count, first); packet i (first <= i < first + count) is at
   * data[i * RECEIVE_SLOT], length(i) long. `first` is 0 but for ports in a group().
   */
  attach(socket: UdpSocket, onBatch: ((count: number, first: number) => void) | null): NativePort {
    const port = socket instanceof TakenSocket
      ? this.addon.attach(socket.fd, this.arena, onBatch, onBatch !== null && this.plan.watch === "thread")
      : this.attachDgram(socket as Socket, onBatch);
    if (!onBatch) this.sendOnly.add(port);
    if (this.plan.gso) this.addon.setSegmentation(port, true);
    return port;
  }

  /** A node:dgram socket the libuv loop watches: node:dgram's handle lets go of the descriptor first. */
  private attachDgram(socket: Socket, onBatch: ((count: number, first: number) => void) | null): NativePort {
    const handle = socketHandle(socket);
    if (onBatch) handle.recvStop?.();
    try {
      return this.addon.attach(handle.fd, this.arena, onBatch);
    } catch (err) {
      if (onBatch) handle.recvStart?.();
      throw err;
    }
  }

  /**
   * Takes a socket over from node:dgram: its descriptor duplicated, node:dgram's socket closed.
   * Under Bun for the watcher thread (its node:dgram cannot stop reading); under Node because
   * node:dgram's handle, closed when a worker thread ends, would close the descriptor under the
   * addon's poll handle, and libuv aborts the process on a watcher whose descriptor is gone.
   * A worker thread's taken descriptors close with it, but for the listen sockets (keepTagOf) of a
   * worker that keeps them: parked for its replacement. A worker process's close with it; the
   * proxy keeps duplicates of its listen sockets (shareKept).
   */
  take(socket: Socket): TakenSocket {
    const local = socket.address();
    const atExit = this.plan.watch === "loop";
    const keep = this.keepOwner >= 0 ? keepTagOf(socket) : undefined;
    const handle = socketHandle(socket).fd;
    const fd = keep ? this.addon.takeSocket(handle, atExit, this.keepOwner, keep.place, keep.detail) : this.addon.takeSocket(handle, atExit);
    socket.removeAllListeners("message");
    socket.close();
    return this.taken(fd, local, atExit);
  }

  /** `hooked`: the environment's end closes (or parks) it unless closeSocket did (takeSocket's closeAtExit; every claimed one). */
  private taken(fd: number, local: AddressInfo, hooked: boolean): TakenSocket {
    const addon = this.addon;
    const parks = this.plan.watch === "loop";
    const hands = this.keepChannel >= 0;
    return new TakenSocket(fd, local, {
      disconnectSocket: (d) => addon.disconnectSocket(d),
      closeSocket: (d) => addon.closeSocket(d, hooked),
      // a thread parks it in the table every thread shares; a process leaves the proxy's copy (handKept)
      parkSocket: (d) => (parks ? addon.parkSocket(d) : hands && addon.handKept(d)),
    });
  }

  /**
   * The listen socket a worker thread left bound at `place` (placeOf) when it ended (killed,
   * crashed), with its queue, if it was set up as `detail` says; null otherwise (one set up
   * otherwise is closed, so that the place can be bound again). Kept again by this worker.
   */
  claim(place: string, detail: string, local: AddressInfo): TakenSocket | null {
    if (this.keepOwner < 0) return null;
    const fd = this.addon.claimParked(-1, place, detail, this.keepOwner);
    return fd < 0 ? null : this.taken(fd, local, true);
  }

  /** Closes the socket this worker parked at `place`, if it is still there. */
  closeParkedAt(place: string): void {
    if (this.keepOwner >= 0) this.addon.claimParked(this.keepOwner, place, "", -1);
  }

  /** Closes the sockets the worker `from` parked at places not in `wanted`: their ports may be bound otherwise now. */
  releaseParkedExcept(from: number, wanted: ReadonlySet<string>): void {
    if (from >= 0) releaseParkedExcept(this.addon, from, wanted);
  }

  /** A worker process: sends the proxy its kept listen sockets (see UdpAddon.shareKept); whether some wait for a later call. */
  shareKept(): boolean {
    return this.keepChannel >= 0 && this.keepOwner >= 0 && this.addon.shareKept(this.keepChannel, this.keepOwner) > 0;
  }

  /** A worker process: parks the listen sockets the proxy handed it (an ended worker's), for claim(). */
  receiveKept(): void {
    if (this.keepChannel >= 0) this.addon.receiveKept(this.keepChannel, -1);
  }

  /**
   * A worker process, once a change is done (or dropped): closes what the proxy handed it and it
   * did not claim (set up otherwise, or its segment failed). Those are this process's alone: the
   * proxy let go of them as it sent them, and they would keep their ports bound.
   */
  dropUnclaimed(): void {
    if (this.keepChannel >= 0) this.addon.releaseParked(-1);
  }

  setPeer(port: NativePort, index: number, address: string, udpPort: number): void {
    if (!this.addon.setPeer(port, index, address, udpPort)) throw new Error(`batched I/O: ${address} is not an IP address`);
  }

  pause(port: NativePort): void {
    this.addon.pause(port);
  }

  /**
   * A segment's receiving sockets (media, then its legs'), read together after a stall: then each
   * has a backlog and, read one after another, a leg's few packets (FEC repair) would reach the
   * chain ahead of the media backlog they follow, or behind all of it. When a wakeup finds packets
   * that waited over 1 ms in the kernel, the group's packets are handed over in arrival order.
   */
  group(ports: NativePort[]): void {
    this.addon.setGroup(ports);
  }

  queued(port: NativePort): number {
    return this.addon.queued(port);
  }

  close(port: NativePort): void {
    this.waiting.delete(port);
    this.addon.close(port);
  }

  length(i: number): number {
    return this.meta[i * META_STRIDE]!;
  }

  truncated(i: number): boolean {
    return this.meta[i * META_STRIDE + 1] !== 0;
  }

  ipv6(i: number): boolean {
    return this.meta[i * META_STRIDE + 2] === 6;
  }

  sourcePort(i: number): number {
    return this.meta[i * META_STRIDE + 3]!;
  }

  /** The wall clock (CLOCK_REALTIME, ms) as the addon read it just before handing this batch over; 0 outside a batch. */
  callbackWallMs(): number {
    const r = this.result;
    const seconds = r[Result.ClockS]! >>> 0;
    return seconds === 0 ? 0 : seconds * 1000 + r[Result.ClockNs]! / 1e6;
  }

  /** When the kernel received packet i (wall clock, ms), or 0 when it did not say. */
  arrivalMs(i: number): number {
    const seconds = this.meta[i * META_STRIDE + 9]! >>> 0;
    return seconds === 0 ? 0 : seconds * 1000 + this.meta[i * META_STRIDE + 10]! / 1e6;
  }

  /**
   * How long packet i waited between the kernel's receive and its batch's callback, in us (0 when
   * the kernel gave no time). Both times are the wall clock's, so a clock step between them is
   * clamped, not believed.
   */
  waitedUs(i: number): number {
    const m = this.meta;
    const seconds = m[i * META_STRIDE + 9]! >>> 0;
    if (seconds === 0) return 0;
    const r = this.result;
    const waited = ((r[Result.ClockS]! >>> 0) - seconds) * 1e6 + (r[Result.ClockNs]! - m[i * META_STRIDE + 10]!) / 1000;
    return waited > 0 && waited < MAX_WAIT_US ? waited : 0;
  }

  /**
   * Reads what a receiving port's socket holds now (a grouped port: its whole group, in arrival
   * order), through its onBatch, without waiting for a wakeup: as much as a wakeup reads; true when
   * more may wait. A closed or paused port reads nothing. Never from inside an onBatch (throws).
   */
  receiveNow(port: NativePort): boolean {
    return this.addon.receiveNow(port);
  }

  /** Packet i's source address as node:dgram writes it; text made only for an address not seen lately. */
  sourceAddress(i: number): string {
    const m = this.meta;
    const at = i * META_STRIDE + 2;
    const w = this.cacheWords;
    for (let k = 0; k < ADDRESS_CACHE; k++) {
      const c = k * CACHE_KEY;
      if (w[c] === m[at] && w[c + 1] === m[at + 2] && w[c + 2] === m[at + 3] && w[c + 3] === m[at + 4] && w[c + 4] === m[at + 5] && w[c + 5] === m[at + 6]) {
        return this.cacheText[k]!;
      }
    }
    const text = this.addon.addressOf(m, i);
    const k = this.cacheNext;
    this.cacheNext = (k + 1) % ADDRESS_CACHE;
    w[k * CACHE_KEY] = m[at]!;
    for (let j = 1; j < CACHE_KEY; j++) w[k * CACHE_KEY + j] = m[at + j + 1]!;
    this.cacheText[k] = text;
    return text;
  }

  /** Starts collecting a segment's sends: counters go to `stats`. */
  begin(stats: SegmentStats): void {
    this.stats = stats;
  }

  /**
   * Adds a send of memory[offset, offset + length) from `port` to its peer `peer` (-1: the
   * connected one). `leg` >= 0 counts it in that leg's media packets out once sent.
   */
  add(port: NativePort, memory: Uint8Array, offset: number, length: number, peer: number, leg: number): void {
    if (this.count > 0 && (port !== this.port || memory !== this.memory || this.count === SEND_CAPACITY)) this.flush();
    this.port = port;
    this.memory = memory;
    const e = this.count * 3;
    this.entries[e] = offset;
    this.entries[e + 1] = length;
    this.entries[e + 2] = peer;
    this.counted[this.count++] = leg;
  }

  /**
   * Adds `count` sends of one packet, to peers `first`, `first + step`, ...: a fan-out's copies
   * written in one loop, not a call and a destination lookup each (at 1,000 destinations that
   * per-copy step was 2.9% of the worker's time, the kernel's send most of the rest).
   */
  addToPeers(port: NativePort, memory: Uint8Array, offset: number, length: number, first: number, step: number, count: number, leg: number): void {
    let peer = first;
    let left = count;
    while (left > 0) {
      if (this.count > 0 && (port !== this.port || memory !== this.memory || this.count === SEND_CAPACITY)) this.flush();
      this.port = port;
      this.memory = memory;
      const n = Math.min(left, SEND_CAPACITY - this.count);
      const entries = this.entries;
      const counted = this.counted;
      let e = this.count * 3;
      for (let j = this.count; j < this.count + n; j++, e += 3, peer += step) {
        entries[e] = offset;
        entries[e + 1] = length;
        entries[e + 2] = peer;
        counted[j] = leg;
      }
      this.count += n;
      left -= n;
    }
  }

  /** Sends what was added; every send is counted (out, or a drop of the segment). */
  flush(): void {
    const count = this.count;
    if (count === 0) return;
    this.count = 0;
    const port = this.port!;
    const stats = this.stats!;
    const accepted = this.addon.send(port, this.memory!, this.entries, count);
    for (let i = 0; i < count; i++) {
      const length = this.entries[i * 3 + 1]!;
      if (length < 0) continue;
      stats.packetsOut++;
      stats.bytesOut += length;
      const leg = this.counted[i]!;
      if (leg >= 0) stats.legPacketsOut[leg]!++;
    }
    // a queued packet leaves later in a message of its own
    stats.messagesOut += this.result[Result.Messages]! + this.result[Result.Queued]!;
    if (accepted < count) {
      const r = this.result;
      if (r[Result.Backpressure]! > 0) stats.drops.add(DropReason.HostBackpressure, r[Result.Backpressure]!);
      if (r[Result.Failed]! > 0) stats.drops.add(DropReason.HostSendFailed, r[Result.Failed]!);
    }
    if (this.result[Result.Queued]! > 0 && this.sendOnly.has(port)) this.retryLater(port);
    this.memory = null;
  }

  /** A send-only port's socket was full: its queue is retried until it empties. */
  private retryLater(port: NativePort): void {
    this.waiting.add(port);
    this.armRetry();
  }

  private armRetry(): void {
    if (this.retryTimer || this.waiting.size === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const p of this.waiting) if (this.addon.flush(p) === 0) this.waiting.delete(p);
      this.armRetry();
    }, RETRY_MS);
  }
}
