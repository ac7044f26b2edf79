// One segment inside a data-plane worker: its sockets, the batch it is collecting, its chain,
// and where packets go when they leave the chain. Media flows downstream from the sender (who
// sends to `listen`) to the destinations (from the egress sockets); RTCP feedback from the
// receivers arrives on the egress sockets and flows upstream, back to the sender.
import { Dest, DropReason, PacketFlag } from "../abi.js";
import type { ChainRunner } from "../chain/chain-runner.js";
import type { ChainStage } from "../chain/filter-pool.js";
import type { LeavingEntry } from "../chain/leaving-entry.js";
import { PacketList } from "../chain/packet-list.js";
import { SegmentStats } from "../chain/stats.js";
import type { SegmentConfig } from "../config/proxy-config.js";
import { pendingAllowance, RING_SLOT_SIZE, SendTracker, type EgressRing } from "./egress-ring.js";
import { RECEIVE_SLOT, type BatchedIo, type NativePort } from "./batched-io.js";
import { allSockets, closeSockets, legDestinations, takeOverSockets, type SegmentSockets, type UdpSocket } from "./segment-sockets.js";
import { canonicalAddress } from "../config/endpoints.js";
import { SourceGate, VERDICT_FIRST } from "./source-gate.js";
import { rewriteRtcpSsrc, rewriteRtp, rtpSsrc } from "./ssrc-rewrite.js";
import { SegmentStreams } from "../streams/segment-streams.js";
import type { StreamTable } from "../streams/stream-table.js";
import { wallClockAt } from "../streams/wall-clock.js";

/**
 * A leg's gate: the leg's own sender address when its config names one, else the segment's
 * allowed address; each leg latches its own port (FEC legs are sent from sockets of their own).
 */
function legGateConfig(config: SegmentConfig, leg: number): SegmentConfig {
  const address = config.legs[leg]?.source?.address ?? config.source.address;
  return { ...config, source: { ...config.source, address, port: undefined, rtcpPort: undefined } };
}

/** How often refused senders are said in the log. */
const REFUSAL_NOTICE_MS = 60_000;

/** RFC 5761 section 4: with RTCP multiplexed on the RTP port, RTCP packet types are 192-223. */
function looksLikeRtcp(buf: Uint8Array, at: number, length: number): boolean {
  if (length < 2) return false;
  const pt = buf[at + 1]!;
  return pt >= 192 && pt <= 223;
}

/**
 * Whether a datagram is shaped as RTCP (or SRTCP, whose header is in the clear): version 2, an
 * RTCP packet type, at least a header and its sender's SSRC (RFC 3550 6.4). Whatever else a
 * receiver sends is refused before the chain (it would reach the sender as the proxy's); such a
 * datagram from the sender's side is no RTP stream, whichever port it came to.
 */
function isRtcpShaped(buf: Uint8Array, at: number, length: number): boolean {
  // the first packet's length field (32-bit words less one) fits the datagram
  return length >= 8 && buf[at]! >> 6 === 2 && looksLikeRtcp(buf, at, length) && (((buf[at + 2]! << 8) | buf[at + 3]!) + 1) * 4 <= length;
}

/**
 * A socket packets leave from: node:dgram's send with its tracker, or (batched I/O) the addon's
 * port, whose peer table holds the sender at SENDER_RTP / SENDER_RTCP and destination k at
 * destinationPeer(k) (RTP) and destinationPeer(k) + 1 (RTCP).
 */
interface Outlet {
  readonly socket: UdpSocket;
  readonly sends: SendTracker;
  port: NativePort | null;
  /** The sender addresses the port's peer table holds (the gate replaces its objects when they change). */
  senderRtp: { address: string; port: number } | null;
  senderRtcp: { address: string; port: number } | null;
}

const SENDER_RTP = 0;
const SENDER_RTCP = 1;
const destinationPeer = (k: number): number => 2 + 2 * k;

const NO_SLOT = -1;
/** A late timer's reads of one socket (each as much as a wakeup reads) before it fires regardless. */
const BACKLOG_READS_MAX = 16;
/** How long the translated media source may be silent before another SSRC takes its place (a restarted sender). */
const MEDIA_IDLE_MS = 500;

/** Disconnects a connected egress socket and records that it sends unconnected from now on. */
function unconnect(socket: UdpSocket | null, holder: { connectedTo: number }): void {
  try {
    socket?.disconnect();
  } catch {
    // not connected after all
  }
  holder.connectedTo = -1;
}

function peerText(p: { address: string; port: number } | null): string | null {
  return p === null ? null : `${p.address.includes(":") ? `[${p.address}]` : p.address}:${p.port}`;
}

export class SegmentRuntime {
  readonly stats = new SegmentStats();
  /** The segment's sockets as packets leave them (legs: index k - 1; null where a leg does not send). */
  private readonly outlets: { ingressRtp: Outlet; ingressRtcp: Outlet | null; egressRtp: Outlet; egressRtcp: Outlet | null; legs: (Outlet | null)[] };
  /** Every attached port, to pause and close. */
  private readonly nativePorts: NativePort[] = [];
  // the packet sendAll is sending: where it is (dgram: a ring slot or a received Buffer)
  private outMemory: Uint8Array = new Uint8Array(0);
  private outAt = 0;
  private outSlot = NO_SLOT;
  stages: ChainStage[] = [];
  config: SegmentConfig;
  readonly gate: SourceGate;
  private readonly pending: PacketList;
  private flushScheduled = false;
  private readonly flushNow = (): void => this.flush();
  private readonly egress = (list: PacketList): void => this.sendAll(list);
  /** The sockets' send trackers, in the order of `sockets`' fields. */
  private readonly ingressRtpSends: SendTracker;
  private readonly ingressRtcpSends: SendTracker;
  private readonly egressRtpSends: SendTracker;
  private readonly egressRtcpSends: SendTracker;
  /** Per leg 1.. (index k - 1): its source gate and its egress socket's send tracker. */
  private readonly legGates: SourceGate[];
  private readonly legSends: SendTracker[];
  /** Where each leg sends; rebuilt when the destinations change, not per packet. */
  private legTargets: { address: string; port: number }[][] = [];
  /** Where a mistake in the config that only traffic shows is said (once per leg): a filter sending on a leg the segment lacks. */
  onNotice: ((message: string) => void) | null = null;
  /** The segment has a redundant leg (a 2022-7 receiver): its media leg is one of two paths. */
  private redundantPaths = false;
  /** When a refused sender was last said (noticeRefusal); monotonic ms. */
  private refusalNoticedAtMs = -Infinity;
  /** Legs (bit per leg number) already said to be missing or not sending. */
  private legsNoticed = 0;
  /** Per destination, what it gets translated (payload type and SSRC, -1: kept), or null; rebuilt with the destinations. */
  private rewrites: ({ payloadType: number; ssrc: number } | null)[] = [];
  /** The SSRCs destinations get instead of the source's: their feedback is mapped back (null: none). */
  private translatedSsrcs: Set<number> | null = null;
  /**
   * The media source translation applies to (-1: none yet): the first SSRC sent downstream, or the
   * next one once it has been silent for MEDIA_IDLE_MS (a restarted sender). Other SSRCs of the
   * segment (RFC 4588 retransmission, FEC, a bundled second stream) go to translated destinations as they are.
   */
  private mediaSsrc = -1;
  private mediaSeenMs = 0;
  /** Per UDP port, the destination addresses that receive on it (symmetricRtp's demultiplexing). */
  private readonly destinationPorts = new Map<number, string[]>();
  /** Whether any destination is translated (the media source is tracked only then). */
  private translating = false;
  private closed = false;
  /** Per-stream stats (null: off, or handed to its successor: takeStreams), and the kernel's receive time of the datagram being received (0: not known). */
  streams: SegmentStreams | null;
  private kernelArrivalMs = 0;
  /** How long the datagram being received waited in the kernel before its batch was handed over, in us (0: not known). */
  private waitedUs = 0;
  /** When the batch being received was handed over (performance.now(); 0: node:dgram's packet by packet). */
  private batchAtMs = 0;
  /**
   * The wall clock less the monotonic one (performance.now()), from the addon's CLOCK_REALTIME
   * reading as it last handed a batch over (the kernel's receive stamps' clock); NaN before one.
   */
  private realtimeOffsetMs = NaN;
  /** The ports a late timer reads before it fires (a group counts once, by its first port). */
  private readonly backlogPorts: NativePort[] = [];

  constructor(
    config: SegmentConfig,
    readonly sockets: SegmentSockets,
    private readonly runner: ChainRunner,
    private readonly ring: EgressRing,
    private readonly batchSize: number,
    /** Batched I/O (docs/batched-io.md); null: node:dgram both ways. */
    private readonly io: BatchedIo | null = null,
    streamTable: StreamTable | null = null,
  ) {
    this.config = config;
    // the addon holds the sockets alone (BatchedIo.take: Bun's node:dgram cannot stop reading,
    // Node's closes the descriptor under the addon when a worker thread ends)
    if (io) takeOverSockets(sockets, (s) => io.take(s));
    this.streams = streamTable ? new SegmentStreams(streamTable, config.clockRates) : null;
    this.gate = new SourceGate(config);
    this.pending = new PacketList(batchSize);
    // a send the kernel refused after the fact (its callback's error) is a drop of this segment
    const failed = (): void => this.stats.drops.add(DropReason.HostSendFailed);
    this.ingressRtpSends = new SendTracker(ring, failed);
    this.ingressRtcpSends = new SendTracker(ring, failed);
    this.egressRtpSends = new SendTracker(ring, failed);
    this.egressRtcpSends = new SendTracker(ring, failed);
    this.redundantPaths = config.legs.some((l) => l.redundant);
    this.legGates = config.legs.map((_, k) => new SourceGate(legGateConfig(config, k)));
    this.legSends = config.legs.map(() => new SendTracker(ring, failed));
    this.legTargets = config.legs.map((l) => legDestinations(config, l));
    const outlet = (socket: UdpSocket, sends: SendTracker): Outlet => ({ socket, sends, port: null, senderRtp: null, senderRtcp: null });
    this.outlets = {
      ingressRtp: outlet(sockets.ingressRtp, this.ingressRtpSends),
      ingressRtcp: sockets.ingressRtcp ? outlet(sockets.ingressRtcp, this.ingressRtcpSends) : null,
      egressRtp: outlet(sockets.egressRtp, this.egressRtpSends),
      egressRtcp: sockets.egressRtcp ? outlet(sockets.egressRtcp, this.egressRtcpSends) : null,
      legs: sockets.legs.map((l, k) => (l.egress ? outlet(l.egress, this.legSends[k]!) : null)),
    };
    this.setRewrites(config);
    this.setAllowances(config);
    this.setDestinationPorts(config);
    const mux = config.rtcpMux;
    const ingressRtp = (buf: Uint8Array, at: number, len: number, address: string, port: number, ipv6: boolean): void =>
      this.receive(buf, at, len, address, port, ipv6, mux && looksLikeRtcp(buf, at, len) ? PacketFlag.Rtcp : 0, true);
    const ingressRtcp = (buf: Uint8Array, at: number, len: number, address: string, port: number, ipv6: boolean): void =>
      this.receive(buf, at, len, address, port, ipv6, PacketFlag.Rtcp, true);
    // a receiver's RTCP on the media port (rtcp-mux, or a receiver that sends it there anyway) is
    // feedback like any; anything else from a receiver is refused in receive()
    const egressRtp = (buf: Uint8Array, at: number, len: number, address: string, port: number, ipv6: boolean): void =>
      this.receive(buf, at, len, address, port, ipv6, PacketFlag.Upstream | (isRtcpShaped(buf, at, len) ? PacketFlag.Rtcp : 0), false);
    const egressRtcp = (buf: Uint8Array, at: number, len: number, address: string, port: number, ipv6: boolean): void =>
      this.receive(buf, at, len, address, port, ipv6, PacketFlag.Upstream | (isRtcpShaped(buf, at, len) ? PacketFlag.Rtcp : 0), false);
    try {
      let media: NativePort | null;
      if (config.symmetricRtp) {
        // one socket each way: a packet from a destination's port is its feedback, anything else the sender's
        media = this.listen(sockets.ingressRtp, (buf, at, len, address, port, ipv6) =>
          (this.fromDestination(address, port) ? egressRtp : ingressRtp)(buf, at, len, address, port, ipv6));
        if (sockets.ingressRtcp) {
          this.listen(sockets.ingressRtcp, (buf, at, len, address, port, ipv6) =>
            (this.fromDestination(address, port) ? egressRtcp : ingressRtcp)(buf, at, len, address, port, ipv6));
        }
      } else {
        media = this.listen(sockets.ingressRtp, ingressRtp);
        if (sockets.ingressRtcp) this.listen(sockets.ingressRtcp, ingressRtcp);
        this.listen(sockets.egressRtp, egressRtp);
        if (sockets.egressRtcp) this.listen(sockets.egressRtcp, egressRtcp);
      }
      const group = [media];
      sockets.legs.forEach((l, k) => {
        if (l.ingress) group.push(this.listen(l.ingress, (buf, at, len, address, port, ipv6) => this.receiveOnLeg(buf, at, len, address, port, ipv6, k + 1)));
      });
      // after a stall, the legs' packets reach the chain in arrival order with the media's
      // (at most MAX_LEGS sockets, as the addon takes; each needs a slot of the arena: batchSize 1 or 2 merges nothing)
      const grouped = io !== null && group.length > 1 && group.length <= io.slots && group.every((p) => p !== null);
      if (grouped) io.group(group as NativePort[]);
      for (const p of this.nativePorts) if (!grouped || p === group[0] || !group.includes(p)) this.backlogPorts.push(p);
      if (io) this.attachSenders(io);
    } catch (err) {
      // a port attached to a socket that closes would watch a descriptor number the next socket may get
      for (const p of this.nativePorts) io?.close(p);
      throw err;
    }
    for (const s of allSockets(sockets)) s?.on("error", () => this.stats.drops.add(DropReason.HostSendFailed));
  }

  /**
   * Hands a socket's packets to `handle`: through node:dgram's message events, or (batched
   * receive) a batch at a time from the worker's arena, the chain running once per batch.
   */
  private listen(socket: UdpSocket, handle: (buf: Uint8Array, at: number, len: number, address: string, port: number, ipv6: boolean) => void): NativePort | null {
    const io = this.io;
    if (!io || io.plan.receive === "dgram") {
      socket.on("message", (msg, rinfo) => handle(msg, 0, msg.length, rinfo.address, rinfo.port, rinfo.family === "IPv6"));
      return null;
    }
    const data = io.data;
    const port = io.attach(socket, (count, first) => {
      this.batchAtMs = performance.now();
      const wall = io.callbackWallMs();
      if (wall > 0) this.realtimeOffsetMs = wall - this.batchAtMs;
      for (let i = first; i < first + count; i++) {
        if (io.truncated(i)) {
          this.stats.drops.add(DropReason.TooLarge);
          continue;
        }
        this.kernelArrivalMs = io.arrivalMs(i);
        this.waitedUs = io.waitedUs(i);
        handle(data, i * RECEIVE_SLOT, io.length(i), io.sourceAddress(i), io.sourcePort(i), io.ipv6(i));
      }
      this.kernelArrivalMs = 0;
      this.waitedUs = 0;
      this.batchAtMs = 0;
      this.flush(); // the arena is read again for the next batch (of any socket of the worker)
    });
    this.nativePorts.push(port);
    for (const o of this.allOutlets()) if (o.socket === socket) o.port = port;
    return port;
  }

  /** Batched sends from sockets that do not receive through the addon (Bun), and the destinations of every port. */
  private attachSenders(io: BatchedIo): void {
    for (const o of this.allOutlets()) {
      if (o.port !== null) continue;
      const port = io.attach(o.socket, null);
      this.nativePorts.push(port);
      for (const same of this.allOutlets()) if (same.socket === o.socket) same.port = port; // symmetricRtp: one socket, one port
    }
    this.setPeers();
  }

  private allOutlets(): Outlet[] {
    const o = this.outlets;
    return [o.ingressRtp, o.ingressRtcp, o.egressRtp, o.egressRtcp, ...o.legs].filter((x): x is Outlet => x !== null);
  }

  /** Writes the destinations into the ports' peer tables (at start and when they change). */
  private setPeers(): void {
    const io = this.io;
    if (!io) return;
    const mux = this.config.rtcpMux;
    for (const o of [this.outlets.egressRtp, this.outlets.egressRtcp]) {
      if (!o) continue;
      this.config.destinations.forEach((d, k) => {
        io.setPeer(o.port!, destinationPeer(k), d.address, d.port);
        io.setPeer(o.port!, destinationPeer(k) + 1, d.address, d.rtcpPort ?? (mux ? d.port : d.port + 1));
      });
    }
    this.outlets.legs.forEach((o, k) => {
      if (o) this.legTargets[k]!.forEach((d, j) => io.setPeer(o.port!, destinationPeer(j), d.address, d.port));
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** Local ports, for tests and the CLI: where the sender sends and where receivers send feedback. */
  ports(): {
    listen: number; listenRtcp: number | null; egress: number; egressRtcp: number | null; egressConnected: boolean; sender: string | null;
    legs: { name: string; listen: number | null; egress: number | null; egressConnected: boolean; sender: string | null }[];
  } {
    const s = this.sockets;
    return {
      listen: s.ingressRtp.address().port,
      listenRtcp: s.ingressRtcp?.address().port ?? null,
      egress: s.egressRtp.address().port,
      egressRtcp: s.egressRtcp?.address().port ?? null,
      egressConnected: s.connectedTo >= 0,
      sender: peerText(this.gate.rtp),
      legs: this.config.legs.map((l, k) => ({
        name: l.name,
        listen: s.legs[k]!.ingress?.address().port ?? null,
        egress: s.legs[k]!.egress?.address().port ?? null,
        egressConnected: s.legs[k]!.connectedTo >= 0,
        sender: peerText(this.legGates[k]!.rtp),
      })),
    };
  }

  /** Sends not yet completed on this segment's sockets. */
  get pendingSends(): number {
    let n = this.ingressRtpSends.count + this.ingressRtcpSends.count + this.egressRtpSends.count + this.egressRtcpSends.count;
    for (const t of this.legSends) n += t.count;
    if (this.io && !this.closed) for (const p of this.nativePorts) n += this.io.queued(p);
    return n;
  }

  /** Replaces what can change without new sockets: destinations (the legs' too), source policy, failure policy. */
  updateConfig(config: SegmentConfig): void {
    const c = this.sockets.connectedTo;
    if (c >= 0) {
      const was = this.config.destinations[c]!;
      const now = config.destinations[c];
      if (config.destinations.length !== 1 || !now || now.address !== was.address || now.port !== was.port) this.disconnect();
    }
    const targets = config.legs.map((l) => legDestinations(config, l));
    this.sockets.legs.forEach((l, k) => {
      const was = this.legTargets[k]?.[l.connectedTo];
      const now = targets[k]!;
      if (l.connectedTo >= 0 && (now.length !== 1 || now[0]!.address !== was?.address || now[0]!.port !== was.port)) this.disconnectLeg(k);
    });
    this.legTargets = targets;
    this.legsNoticed = 0; // a changed config (legs, chain) is said again if still wrong
    this.setRewrites(config);
    this.setAllowances(config);
    this.config = config;
    this.redundantPaths = config.legs.some((l) => l.redundant);
    this.setDestinationPorts(config);
    this.setPeers();
    this.gate.update(config);
    this.legGates.forEach((g, k) => g.update(legGateConfig(config, k)));
    if (this.streams) this.streams.setClockRates(config.clockRates);
  }

  /** Sends in flight each egress socket may have: a fan-out's batch puts one per destination in flight at once. */
  private setAllowances(config: SegmentConfig): void {
    this.egressRtpSends.maxPending = this.egressRtcpSends.maxPending = pendingAllowance(config.destinations.length, this.batchSize);
    this.legSends.forEach((t, k) => (t.maxPending = pendingAllowance(this.legTargets[k]!.length, this.batchSize)));
  }

  /** Whether `address:port` is a destination's RTP or RTCP port (symmetricRtp: its packets are feedback). */
  private fromDestination(address: string, port: number): boolean {
    const addresses = this.destinationPorts.get(port);
    return addresses !== undefined && addresses.includes(address);
  }

  private setDestinationPorts(config: SegmentConfig): void {
    this.destinationPorts.clear();
    const add = (port: number, address: string): void => {
      const list = this.destinationPorts.get(port);
      if (!list) this.destinationPorts.set(port, [address]);
      else if (!list.includes(address)) list.push(address);
    };
    for (const d of config.destinations) {
      add(d.port, canonicalAddress(d.address));
      add(d.rtcpPort ?? (config.rtcpMux ? d.port : d.port + 1), canonicalAddress(d.address));
    }
  }

  private setRewrites(config: SegmentConfig): void {
    this.rewrites = config.destinations.map((d) =>
      d.ssrc === undefined && d.payloadType === undefined ? null : { payloadType: d.payloadType ?? -1, ssrc: d.ssrc ?? -1 });
    this.translating = this.rewrites.some((r) => r !== null);
    const ssrcs = config.destinations.flatMap((d) => (d.ssrc === undefined ? [] : [d.ssrc]));
    this.translatedSsrcs = ssrcs.length > 0 ? new Set(ssrcs) : null;
  }

  /** Sends what is waiting; called before a chain swap so that no packet sees half of each chain. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.count === 0 || this.closed) return;
    this.runner.setClock(performance.now() * 1000, Date.now() * 1000);
    this.runner.keptOrigin = false;
    try {
      this.runner.run(this.stages, 0, this.pending, this.stats, this.egress);
    } finally {
      this.pending.clear();
      // a new sender latches only if the chain accepted a packet of it (source-gate.ts)
      this.gate.settle(this.runner.keptOrigin); // no-op when route() settled it
    }
  }

  /** Sends packets a stage's timer produced through the rest of the chain. */
  runTimerOutputs(stageIndex: number, outCount: number): void {
    const stage = this.stages[stageIndex];
    const instance = stage?.live;
    if (!stage || !instance) return;
    this.runner.runTimerOutputs(this.stages, stageIndex, instance, outCount, this.stats, this.egress);
  }

  /**
   * The segment is going away: stop receiving, send what is waiting, let each stage hand over
   * what it holds (msm_context_drain, through the rest of the chain). The sockets stay open for
   * the sends in flight; close() follows.
   */
  drain(): void {
    if (this.closed) return;
    this.stopReceiving();
    this.flush();
    this.runner.setClock(performance.now() * 1000, Date.now() * 1000);
    this.runner.drain(this.stages, this.stats, this.egress);
  }

  /**
   * A stage is leaving a chain that goes on (a reload removed it, or its state could not move to
   * its successor), and `stages` is the new chain: the stage hands over what it holds
   * (msm_context_drain), which enters the new chain at `entry` (leaving-entry.ts). The stage is not
   * called again: what the new stages make of those packets follows the new chain.
   */
  drainLeaving(stage: ChainStage, entry: LeavingEntry): void {
    if (this.closed) return;
    this.runner.setClock(performance.now() * 1000, Date.now() * 1000);
    this.runner.drainLeaving(stage, this.stages, entry.downFrom, entry.upFrom, this.stats, this.egress);
  }

  /**
   * Reads what the segment's sockets hold now, for a timer of its chain that fires late: after a
   * stall the event loop runs timers before it polls, and a timer that gives up waiting (a merge's
   * gap, FEC's repair) would otherwise give up on packets that came meanwhile. node:dgram cannot.
   */
  receiveBacklog(): void {
    const io = this.io;
    if (this.closed || !io) return;
    for (const p of this.backlogPorts) {
      // a wakeup's worth at a time, until the socket is empty (bounded: a sender faster than the
      // reads must not keep the timer from firing)
      for (let round = 0; round < BACKLOG_READS_MAX && !this.closed && io.receiveNow(p); round++);
    }
  }

  /** Stops taking packets in (the sockets stay open for the sends in flight). */
  stopReceiving(): void {
    for (const sock of allSockets(this.sockets)) sock?.removeAllListeners("message");
    if (this.io && !this.closed) for (const p of this.nativePorts) this.io.pause(p);
  }

  /** Its per-stream stats, for its successor on new sockets (a reload): it counts streams no more. */
  takeStreams(): SegmentStreams | null {
    const streams = this.streams;
    this.streams = null;
    return streams;
  }

  /** Closes the sockets (after drain(): what was waiting has been sent); `handOver`: see closeSockets. */
  close(handOver = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.io) for (const p of this.nativePorts) this.io.close(p);
    closeSockets(this.sockets, handOver);
    this.streams?.close();
    for (const t of [this.ingressRtpSends, this.ingressRtcpSends, this.egressRtpSends, this.egressRtcpSends, ...this.legSends]) t.abandon();
  }

  /** A packet on leg `leg` (1..): RTP from the sender's address, admitted by the leg's own gate. */
  private receiveOnLeg(buf: Uint8Array, at: number, len: number, address: string, port: number, ipv6: boolean, leg: number): void {
    if (this.closed) return;
    const stats = this.stats;
    stats.packetsIn++;
    stats.bytesIn += len;
    stats.legPacketsIn[leg]++;
    const nowMs = performance.now();
    // the media's new sender is heard in this batch: the chain's verdict on it first (a leg hears only a known sender)
    if (!this.legSenderKnown(leg, address) && this.gate.senderPending(address)) this.flush();
    if (!this.legSenderKnown(leg, address) || !this.legGates[leg - 1]!.admitSender(address, port, false, nowMs)) {
      stats.drops.add(DropReason.HostSourceRefused);
      return;
    }
    const streams = this.streams;
    if (streams && this.config.legs[leg - 1]!.redundant && !looksLikeRtcp(buf, at, len)) {
      // another path of the media's own stream: the ingress is what the paths deliver together
      streams.time[0] = this.kernelArrivalMs || this.wallMs(nowMs);
      streams.ingressCopy(buf, at, len);
    }
    this.enqueue(buf, at, len, port, ipv6 ? PacketFlag.Ipv6 : 0, leg, nowMs, 0);
  }

  /**
   * Whether a leg's packet comes from an address the leg may hear: the one its config (or the
   * segment's `source`) names, else the media's latched sender. Without that, anyone could latch
   * an FEC leg first and feed the decoder repair of their own making.
   */
  private legSenderKnown(leg: number, address: string): boolean {
    if (this.config.legs[leg - 1]?.source?.address !== undefined || this.config.source.address !== undefined) return true; // the gate checks it
    const media = this.gate.rtp;
    return media !== null && media.address === address;
  }

  private receive(buf: Uint8Array, at: number, len: number, address: string, port: number, ipv6: boolean, flags: number, fromSender: boolean): void {
    if (this.closed) return;
    const stats = this.stats;
    stats.packetsIn++;
    stats.bytesIn += len;
    if (fromSender && (flags & PacketFlag.Rtcp) === 0) stats.legPacketsIn[0]++; // per leg: media downstream, as legPacketsOut
    const rtcp = (flags & PacketFlag.Rtcp) !== 0;
    if (rtcp) stats.rtcpIn++;
    const nowMs = performance.now();
    let origin = 0;
    if (fromSender) {
      origin = this.gate.screen(address, port, rtcp, nowMs);
      if (origin === VERDICT_FIRST) {
        // a new sender was heard in this batch: the chain's verdict on it decides whether this one may enter
        this.flush();
        origin = this.gate.screen(address, port, rtcp, nowMs);
      }
      if (origin < 0) {
        stats.drops.add(DropReason.HostSourceRefused);
        if (nowMs - this.refusalNoticedAtMs >= REFUSAL_NOTICE_MS) this.noticeRefusal(address, port, rtcp, nowMs);
        return;
      }
      const streams = this.streams;
      // RTCP sent to the RTP port of a segment without rtcpMux goes on as it came, but is no
      // stream: its header read as RTP made one of an SR's NTP seconds or an SDES's length
      if (!rtcp && streams && !isRtcpShaped(buf, at, len)) {
        streams.time[0] = this.kernelArrivalMs || this.wallMs(nowMs);
        // with a redundant leg, the media leg is one path of two, and may be the slower one
        if (this.redundantPaths) streams.ingressCopy(buf, at, len);
        else streams.ingress(buf, at, len);
      }
    } else {
      stats.upstreamIn++;
      if (!this.gate.admitFeedback(address)) {
        stats.drops.add(DropReason.HostFeedbackRefused);
        return;
      }
      if (!rtcp) {
        // receivers send feedback, not media: forwarded, a receiver's RTP would reach the sender
        // as if from the proxy (and a protect-upstream stage would sign it with the sender's key)
        stats.drops.add(DropReason.HostUpstreamNotRtcp);
        return;
      }
      // a translated destination reports under the SSRC it was given: the chain and the sender see their own
      if (this.translatedSsrcs !== null && this.mediaSsrc >= 0 && rewriteRtcpSsrc(buf, at, len, -1, this.mediaSsrc, this.translatedSsrcs) < 0) {
        stats.drops.add(DropReason.HostRtcpTooManyPackets);
        return;
      }
    }
    if (ipv6) flags |= PacketFlag.Ipv6;
    this.enqueue(buf, at, len, port, flags, 0, nowMs, origin);
  }

  /** `origin` 1: the packet is the gate's candidate's, learned if the chain accepts the packet. */
  private enqueue(buf: Uint8Array, at: number, len: number, port: number, flags: number, leg: number, nowMs: number, origin: number): void {
    // arrival: when the kernel received it (a stalled loop reads a backlog late; filters that time
    // arrivals, such as congestion's feedback or a merge's wait, see when packets came)
    const arrivalUs = this.batchAtMs > 0 ? this.batchAtMs * 1000 - this.waitedUs : nowMs * 1000;
    this.pending.push(buf, at, len, flags, Dest.Forward, port, leg, arrivalUs, origin);
    if (this.pending.full) this.flush();
    else if (!this.flushScheduled && this.io?.plan.receive !== "native") {
      // node:dgram hands over one datagram per event: the batch is what arrived before the loop idles
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  /** The connected egress socket is about to send elsewhere: it sends unconnected from now on. */
  private disconnect(): void {
    unconnect(this.sockets.egressRtp, this.sockets);
  }

  private disconnectLeg(k: number): void {
    const l = this.sockets.legs[k]!;
    unconnect(l.egress, l);
  }

  /** One node:dgram send, tracked: `slot` is the ring offset the buffer holds (NO_SLOT for one outside the ring). */
  private send(sock: UdpSocket, sends: SendTracker, buf: Buffer, at: number, slot: number, length: number, port: number, address: string | null): boolean {
    if (sends.full || (slot !== NO_SLOT && !this.ring.hold(slot))) {
      this.stats.drops.add(DropReason.HostBackpressure);
      return false;
    }
    sends.push(slot);
    try {
      if (address === null) sock.send(buf, at, length, sends.onSent); // connected
      else sock.send(buf, at, length, port, address, sends.onSent);
      this.stats.packetsOut++;
      this.stats.messagesOut++;
      this.stats.bytesOut += length;
      return true;
    } catch {
      if (sends.unpush() !== NO_SLOT) this.ring.release(slot);
      this.stats.drops.add(DropReason.HostSendFailed);
      return false;
    }
  }

  /**
   * Makes packet i of `list` the one to send. node:dgram sends later, from memory that must not
   * change until then: a received datagram no filter touched is sent as it is, anything else is
   * copied into the ring. Batched sends are made before the chain runs again: none is copied.
   */
  private takePacket(list: PacketList, i: number): boolean {
    const length = list.length[i]!;
    const mem = list.memory[i]!;
    this.outSlot = NO_SLOT;
    if (this.io || (Buffer.isBuffer(mem) && list.offset[i] === 0 && mem.length === length)) {
      this.outMemory = mem;
      this.outAt = list.offset[i]!;
    } else if (length > RING_SLOT_SIZE) {
      this.outMemory = Buffer.from(mem.subarray(list.offset[i]!, list.offset[i]! + length)); // rare: jumbo datagram
      this.outAt = 0;
    } else {
      const at = this.ring.put(mem, list.offset[i]!, length);
      if (at < 0) {
        this.stats.drops.add(DropReason.HostBackpressure);
        return false;
      }
      this.outMemory = this.ring.buffer;
      this.outAt = at;
      this.outSlot = at;
    }
    return true;
  }

  /**
   * Sends the packet takePacket chose from `outlet` to its peer `peer` (batched) or port/address
   * (node:dgram; address null: the connected peer). `leg` >= 0: counted in that leg's media out.
   */
  private emit(outlet: Outlet, length: number, peer: number, port: number, address: string | null, leg: number): void {
    if (this.io) {
      this.io.add(outlet.port!, this.outMemory, this.outAt, length, address === null ? -1 : peer, leg);
    } else if (this.send(outlet.socket, outlet.sends, this.outMemory as Buffer, this.outAt, this.outSlot, length, port, address) && leg >= 0) {
      this.stats.legPacketsOut[leg]++;
    }
  }

  private sendAll(list: PacketList): void {
    this.io?.begin(this.stats);
    try {
      this.route(list);
    } finally {
      this.io?.flush();
    }
  }

  /**
   * The wall clock at `monotonicMs` (performance.now()): under batched I/O from the addon's
   * CLOCK_REALTIME reading, the clock of the kernel's receive stamps, so that a proxy's dwell
   * (egress less arrival) has no calibration error in it; else the calibrated wall clock.
   */
  private wallMs(monotonicMs: number): number {
    return Number.isNaN(this.realtimeOffsetMs) ? wallClockAt(monotonicMs) : monotonicMs + this.realtimeOffsetMs;
  }

  /** Where each packet of `list` goes: back to the sender, to the destinations (all or one), or out on a leg. */
  private route(list: PacketList): void {
    const stats = this.stats;
    const streams = this.streams;
    const nowMs = this.translating || streams ? performance.now() : 0;
    const wallMs = streams ? this.wallMs(nowMs) : 0;
    if (streams) streams.time[0] = wallMs;
    const destinations = this.config.destinations;
    const mux = this.config.rtcpMux;
    const s = this.sockets;
    const o = this.outlets;
    // a candidate's packet left the chain: it is the sender from now on, for what this list sends
    // back to it too (a stage's answer to the sender's RTCP goes where that RTCP came from)
    for (let i = 0; this.gate.pending && i < list.count; i++) {
      if (list.origin[i] !== 0) {
        this.gate.settle(true);
        break;
      }
    }
    for (let i = 0; i < list.count; i++) {
      const flags = list.flags[i]!;
      const dest = list.dest[i]!;
      const rtcp = (flags & PacketFlag.Rtcp) !== 0;
      const upstream = (flags & PacketFlag.Upstream) !== 0;
      const toSender = dest === Dest.Reverse ? !upstream : dest === Dest.Forward ? upstream : false;
      const only = dest >= Dest.DestinationIndexBase ? dest - Dest.DestinationIndexBase : -1;
      const leg = list.leg[i]!;
      const nowhere = leg !== 0
        ? !this.legCanSend(leg, only, upstream || dest === Dest.Reverse)
        : toSender ? (rtcp ? this.gate.rtcp : this.gate.rtp) === null : only >= destinations.length;
      if (nowhere) {
        stats.drops.add(DropReason.HostNoDestination);
        if (leg !== 0 && (this.legsNoticed & (1 << leg)) === 0) this.noticeLeg(leg, upstream || dest === Dest.Reverse);
        continue;
      }
      const length = list.length[i]!;
      if (!this.takePacket(list, i)) continue;
      if (leg !== 0) {
        this.sendOnLeg(leg, only, length);
        continue;
      }
      if (streams) {
        // what receivers report is read as it goes to the sender, after the chain (which may have unprotected it)
        if (toSender) {
          if (rtcp) streams.upstreamRtcp(this.outMemory, this.outAt, length, wallMs);
        } else if (rtcp) streams.downstreamRtcp(this.outMemory, this.outAt, length, wallMs);
        else if (!isRtcpShaped(this.outMemory, this.outAt, length)) { // RTCP on the RTP port: no stream (see receive)
          streams.time[1] = list.arrivalUs[i]! / 1000 + (wallMs - nowMs);
          streams.egress(this.outMemory, this.outAt, length);
        }
      }
      if (toSender) {
        const outlet = rtcp && o.ingressRtcp !== null ? o.ingressRtcp : o.ingressRtp;
        const peer = (rtcp ? this.gate.rtcp : this.gate.rtp)!;
        this.emit(outlet, length, this.senderPeer(outlet, rtcp), peer.port, peer.address, -1);
        continue;
      }
      const useRtcp = rtcp && o.egressRtcp !== null;
      const outlet = useRtcp ? o.egressRtcp! : o.egressRtp;
      if (this.io && !rtcp && only < 0 && s.connectedTo < 0 && !this.translating) {
        // media to every destination as it is, from an unconnected socket: their peers in one go
        this.io.addToPeers(outlet.port!, this.outMemory, this.outAt, length, destinationPeer(0), 2, destinations.length, 0);
        continue;
      }
      const first = only >= 0 ? only : 0;
      const last = only >= 0 ? only : destinations.length - 1;
      const ssrc = this.translating && !rtcp ? rtpSsrc(this.outMemory, this.outAt, length) : -1;
      if (this.translating && !rtcp) this.noteMedia(ssrc, nowMs);
      const translatable = rtcp || ssrc === this.mediaSsrc;
      for (let k = first; k <= last; k++) {
        const d = destinations[k]!;
        const port = rtcp ? (d.rtcpPort ?? (mux ? d.port : d.port + 1)) : d.port;
        let address: string | null = d.address;
        if (!useRtcp && s.connectedTo >= 0) {
          if (k === s.connectedTo && port === d.port) address = null;
          else this.disconnect(); // another destination, or its own RTCP port (rtcpMux with rtcpPort): send unconnected from now on
        }
        const peer = destinationPeer(k) + (rtcp ? 1 : 0);
        const rewrite = this.rewrites[k];
        if (rewrite && translatable) this.emitTranslated(rewrite, rtcp, outlet, length, peer, port, address);
        else this.emit(outlet, length, peer, port, address, rtcp ? -1 : 0);
      }
    }
  }

  /** The peer-table index of the sender's RTP or RTCP address on `outlet`, written there when the gate learned a new one. */
  private senderPeer(outlet: Outlet, rtcp: boolean): number {
    if (!this.io) return -1;
    const peer = (rtcp ? this.gate.rtcp : this.gate.rtp)!;
    if (rtcp ? outlet.senderRtcp !== peer : outlet.senderRtp !== peer) {
      this.io.flush(); // sends already collected go to the address they were collected for
      this.io.setPeer(outlet.port!, rtcp ? SENDER_RTCP : SENDER_RTP, peer.address, peer.port);
      if (rtcp) outlet.senderRtcp = peer;
      else outlet.senderRtp = peer;
    }
    return rtcp ? SENDER_RTCP : SENDER_RTP;
  }

  /** The media source translation applies to: kept while it sends, replaced after MEDIA_IDLE_MS of silence. */
  private noteMedia(ssrc: number, nowMs: number): void {
    if (ssrc === this.mediaSsrc) this.mediaSeenMs = nowMs;
    else if (ssrc >= 0 && (this.mediaSsrc < 0 || nowMs - this.mediaSeenMs > MEDIA_IDLE_MS)) {
      this.mediaSsrc = ssrc;
      this.mediaSeenMs = nowMs;
    }
  }

  /** A copy of the packet for one translated destination: its own ring slot (a jumbo datagram: a buffer of its own), rewritten there, then sent. */
  private emitTranslated(
    rewrite: { payloadType: number; ssrc: number }, rtcp: boolean, outlet: Outlet, length: number, peer: number, port: number, address: string | null,
  ): void {
    const memory = this.outMemory;
    const at = this.outAt;
    const slot = this.outSlot;
    let target: Buffer;
    let copy: number;
    let copySlot = NO_SLOT;
    if (length > RING_SLOT_SIZE) {
      target = Buffer.from(memory.subarray(at, at + length)); // rare: jumbo datagram, as takePacket does
      copy = 0;
    } else {
      // batched sends reach the kernel before the ring comes round again (a batch holds far fewer than its slots)
      copy = this.ring.put(memory, at, length);
      if (copy < 0) {
        this.stats.drops.add(DropReason.HostBackpressure);
        return;
      }
      target = this.ring.buffer;
      copySlot = copy;
    }
    if (!rtcp) rewriteRtp(target, copy, length, rewrite.payloadType, rewrite.ssrc);
    else if (rewrite.ssrc >= 0 && this.mediaSsrc >= 0 && rewriteRtcpSsrc(target, copy, length, this.mediaSsrc, rewrite.ssrc) < 0) {
      this.stats.drops.add(DropReason.HostRtcpTooManyPackets); // this destination's copy; the others' go on
      return;
    }
    this.outMemory = target;
    this.outAt = copy;
    this.outSlot = copySlot;
    this.emit(outlet, length, peer, port, address, rtcp ? -1 : 0);
    this.outMemory = memory;
    this.outAt = at;
    this.outSlot = slot;
  }

  /** Says once a minute why senders are refused: a sender restarted from a new port sees nothing arrive, and only a counter says why. */
  private noticeRefusal(address: string, port: number, rtcp: boolean, nowMs: number): void {
    this.refusalNoticedAtMs = nowMs;
    this.onNotice?.(`refusing ${rtcp ? "RTCP" : "RTP"} from ${address}:${port} (host_source_refused): ${this.gate.whyRefused(address, port, rtcp, nowMs)}; said at most once a minute`);
  }

  /** Says once why packets a filter sends on leg `leg` go nowhere: the filter's config names a leg the segment's does not give it. */
  private noticeLeg(leg: number, upstream: boolean): void {
    this.legsNoticed |= 1 << leg;
    const legs = this.config.legs;
    const why = leg > legs.length
      ? `which the segment does not have (it has ${legs.length === 0 ? "no legs" : `${legs.length}: ${legs.map((l, k) => `${k + 1} ${l.name}`).join(", ")}`})`
      : upstream ? `toward the sender, which legs never carry` : !this.sockets.legs[leg - 1]?.egress ? `which does not send (send: false)` : `to a destination it does not have`;
    this.onNotice?.(`a filter sent packets on leg ${leg}, ${why}: they are dropped (host_no_destination); a filter's legs are the segment's legs[] (docs/proxy.md, "Legs")`);
  }

  /**
   * Whether a packet may leave on leg `leg` (1..): legs carry media downstream only, so a leg the
   * segment lacks, one that only receives, a packet going upstream or a destination index past
   * the leg's list has nowhere to go.
   */
  private legCanSend(leg: number, only: number, upstream: boolean): boolean {
    const targets = this.legTargets[leg - 1];
    return !upstream && targets !== undefined && !!this.sockets.legs[leg - 1]?.egress && only < targets.length;
  }

  /** Sends on leg `leg` (legCanSend said yes) from its socket to its destinations: all, or destination `only`. */
  private sendOnLeg(leg: number, only: number, length: number): void {
    const sockets = this.sockets.legs[leg - 1]!;
    const targets = this.legTargets[leg - 1]!;
    const outlet = this.outlets.legs[leg - 1]!;
    const first = only >= 0 ? only : 0;
    const last = only >= 0 ? only : targets.length - 1;
    for (let k = first; k <= last; k++) {
      const d = targets[k]!;
      let address: string | null = d.address;
      if (sockets.connectedTo >= 0) {
        if (k === sockets.connectedTo) address = null;
        else this.disconnectLeg(leg - 1);
      }
      this.emit(outlet, length, destinationPeer(k), d.port, address, leg);
    }
  }
}
