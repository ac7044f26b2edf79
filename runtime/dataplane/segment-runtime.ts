// One segment inside a data-plane worker: its sockets, the batch it is collecting, its chain,
// and where packets go when they leave the chain. Media flows downstream from the sender (who
// sends to `listen`) to the destinations (from the egress sockets); RTCP feedback from the
// receivers arrives on the egress sockets and flows upstream, back to the sender.
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import { Dest, DropReason, PacketFlag } from "../../sdk/abi/constants.js";
import type { ChainRunner } from "../chain/chain-runner.js";
import type { ChainStage } from "../chain/filter-pool.js";
import { PacketList } from "../chain/packet-list.js";
import { SegmentStats } from "../chain/stats.js";
import type { SegmentConfig } from "../config/proxy-config.js";
import { RING_SLOT_SIZE, type EgressRing } from "./egress-ring.js";

interface Peer {
  address: string;
  port: number;
}

/** RFC 5761 section 4: with RTCP multiplexed on the RTP port, RTCP packet types are 192-223. */
function looksLikeRtcp(msg: Buffer): boolean {
  if (msg.length < 2) return false;
  const pt = msg[1]!;
  return pt >= 192 && pt <= 223;
}

async function bindSocket(address: string, port: number, receiveBuffer: number): Promise<Socket> {
  const socket = createSocket({ type: isIPv6(address) ? "udp6" : "udp4", ipv6Only: isIPv6(address) });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once("error", onError);
    socket.bind(port, address, () => {
      socket.off("error", onError);
      resolve();
    });
  });
  try {
    socket.setRecvBufferSize(receiveBuffer);
  } catch {
    // the kernel may cap it (net.core.rmem_max); the default still works
  }
  return socket;
}

export interface SegmentSockets {
  ingressRtp: Socket;
  ingressRtcp: Socket | null;
  egressRtp: Socket;
  egressRtcp: Socket | null;
}

/** Sockets bound so far: the fixed-port ones first, the ephemeral egress ones after. */
export type PartialSockets = Omit<SegmentSockets, "egressRtp" | "egressRtcp"> & Partial<Pick<SegmentSockets, "egressRtp" | "egressRtcp">>;

function binder(config: SegmentConfig, receiveBuffer: number, opened: Socket[]) {
  return async (address: string, port: number, what: string): Promise<Socket> => {
    try {
      const s = await bindSocket(address, port, receiveBuffer);
      opened.push(s);
      return s;
    } catch (err) {
      for (const s of opened) s.close();
      throw new Error(`segment '${config.name}': cannot bind ${what} ${address}:${port}: ${(err as Error).message}`);
    }
  };
}

function egressOf(config: SegmentConfig): { address: string; port: number } {
  return { address: config.egress?.address ?? (isIPv6(config.listen.address) ? "::" : "0.0.0.0"), port: config.egress?.port ?? 0 };
}

/**
 * Binds the sockets whose ports the config names (listen, and egress when it has a port). A
 * caller with many segments binds these for all of them before any ephemeral egress socket, so
 * that a port the kernel picks for one segment's egress cannot take another's listen port.
 */
export async function openFixedSockets(config: SegmentConfig, receiveBuffer: number): Promise<PartialSockets> {
  const opened: Socket[] = [];
  const bind = binder(config, receiveBuffer, opened);
  const listen = config.listen;
  const ingressRtp = await bind(listen.address, listen.port, "listen");
  const ingressRtcp = config.rtcpMux ? null : await bind(listen.address, listen.port + 1, "listen RTCP");
  const egress = egressOf(config);
  if (egress.port === 0) return { ingressRtp, ingressRtcp };
  const egressRtp = await bind(egress.address, egress.port, "egress");
  const egressRtcp = config.rtcpMux ? null : await bind(egress.address, egress.port + 1, "egress RTCP");
  return { ingressRtp, ingressRtcp, egressRtp, egressRtcp };
}

/** Binds what openFixedSockets left (ephemeral egress); on failure closes everything. */
export async function completeSockets(config: SegmentConfig, receiveBuffer: number, partial: PartialSockets): Promise<SegmentSockets> {
  if (partial.egressRtp) return { ...partial, egressRtp: partial.egressRtp, egressRtcp: partial.egressRtcp ?? null };
  const opened: Socket[] = [partial.ingressRtp, ...(partial.ingressRtcp ? [partial.ingressRtcp] : [])];
  const bind = binder(config, receiveBuffer, opened);
  const egress = egressOf(config);
  const egressRtp = await bind(egress.address, 0, "egress");
  const egressRtcp = config.rtcpMux ? null : await bind(egress.address, 0, "egress RTCP");
  return { ingressRtp: partial.ingressRtp, ingressRtcp: partial.ingressRtcp, egressRtp, egressRtcp };
}

/** Binds a segment's sockets; on failure closes what it opened and names the port. */
export async function openSegmentSockets(config: SegmentConfig, receiveBuffer: number): Promise<SegmentSockets> {
  return completeSockets(config, receiveBuffer, await openFixedSockets(config, receiveBuffer));
}

export class SegmentRuntime {
  readonly stats = new SegmentStats();
  stages: ChainStage[] = [];
  config: SegmentConfig;
  private readonly pending: PacketList;
  private flushScheduled = false;
  private readonly flushNow = (): void => this.flush();
  private readonly onSent = (err: Error | null): void => {
    if (err) this.stats.drops.add(DropReason.HostSendFailed);
  };
  private readonly egress = (list: PacketList): void => this.sendAll(list);
  /** The sender's addresses, learned from what it sends (or from config until then). */
  private sourceRtp: Peer | null = null;
  private sourceRtcp: Peer | null = null;
  private closed = false;

  constructor(
    config: SegmentConfig,
    readonly sockets: SegmentSockets,
    private readonly runner: ChainRunner,
    private readonly ring: EgressRing,
    batchSize: number,
  ) {
    this.config = config;
    this.pending = new PacketList(batchSize);
    if (config.source) {
      this.sourceRtp = { address: config.source.address, port: config.source.port };
      this.sourceRtcp = { address: config.source.address, port: config.source.rtcpPort ?? (config.rtcpMux ? config.source.port : config.source.port + 1) };
    }
    const mux = config.rtcpMux;
    sockets.ingressRtp.on("message", (msg, rinfo) => this.receive(msg, rinfo, mux && looksLikeRtcp(msg) ? PacketFlag.Rtcp : 0, true));
    sockets.ingressRtcp?.on("message", (msg, rinfo) => this.receive(msg, rinfo, PacketFlag.Rtcp, true));
    sockets.egressRtp.on("message", (msg, rinfo) =>
      this.receive(msg, rinfo, PacketFlag.Upstream | (mux && looksLikeRtcp(msg) ? PacketFlag.Rtcp : 0), false));
    sockets.egressRtcp?.on("message", (msg, rinfo) => this.receive(msg, rinfo, PacketFlag.Upstream | PacketFlag.Rtcp, false));
    for (const s of [sockets.ingressRtp, sockets.ingressRtcp, sockets.egressRtp, sockets.egressRtcp]) {
      s?.on("error", () => this.stats.drops.add(DropReason.HostSendFailed));
    }
  }

  get name(): string {
    return this.config.name;
  }

  /** Local ports, for tests and the CLI: where the sender sends and where receivers send feedback. */
  ports(): { listen: number; listenRtcp: number | null; egress: number; egressRtcp: number | null } {
    const s = this.sockets;
    return {
      listen: s.ingressRtp.address().port,
      listenRtcp: s.ingressRtcp?.address().port ?? null,
      egress: s.egressRtp.address().port,
      egressRtcp: s.egressRtcp?.address().port ?? null,
    };
  }

  /** Replaces what can change without new sockets: destinations, source, failure policy. */
  updateConfig(config: SegmentConfig): void {
    this.config = config;
    if (config.source) {
      this.sourceRtp ??= { address: config.source.address, port: config.source.port };
      this.sourceRtcp ??= { address: config.source.address, port: config.source.rtcpPort ?? config.source.port + 1 };
    }
  }

  /** Sends what is waiting; called before a chain swap so that no packet sees half of each chain. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.count === 0 || this.closed) return;
    this.runner.setClock(performance.now() * 1000, Date.now() * 1000);
    try {
      this.runner.run(this.stages, 0, this.pending, this.stats, this.egress);
    } finally {
      this.pending.clear();
    }
  }

  /** Sends packets a stage's timer produced through the rest of the chain. */
  runTimerOutputs(stageIndex: number, outCount: number): void {
    const stage = this.stages[stageIndex];
    const instance = stage?.live;
    if (!stage || !instance) return;
    this.runner.runTimerOutputs(this.stages, stageIndex, instance, outCount, this.stats, this.egress);
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    const s = this.sockets;
    for (const sock of [s.ingressRtp, s.ingressRtcp, s.egressRtp, s.egressRtcp]) {
      if (!sock) continue;
      sock.removeAllListeners("message");
      try {
        sock.close();
      } catch {
        // already closed
      }
    }
  }

  private receive(msg: Buffer, rinfo: RemoteInfo, flags: number, fromSender: boolean): void {
    if (this.closed) return;
    const stats = this.stats;
    stats.packetsIn++;
    stats.bytesIn += msg.length;
    if (flags & PacketFlag.Rtcp) stats.rtcpIn++;
    if (!fromSender) stats.upstreamIn++;
    else this.learnSource(rinfo, (flags & PacketFlag.Rtcp) !== 0);
    if (rinfo.family === "IPv6") flags |= PacketFlag.Ipv6;
    this.pending.push(msg, 0, msg.length, flags, Dest.Forward, rinfo.port, performance.now() * 1000);
    if (this.pending.full) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  private send(sock: Socket, buf: Buffer, at: number, length: number, port: number, address: string): void {
    if (port > 65535) {
      this.stats.drops.add(DropReason.HostNoDestination);
      return;
    }
    try {
      sock.send(buf, at, length, port, address, this.onSent);
      this.stats.packetsOut++;
      this.stats.bytesOut += length;
    } catch {
      this.stats.drops.add(DropReason.HostSendFailed);
    }
  }

  private learnSource(rinfo: RemoteInfo, rtcp: boolean): void {
    const known = rtcp ? this.sourceRtcp : this.sourceRtp;
    if (known !== null && known.port === rinfo.port && known.address === rinfo.address) return;
    const peer = { address: rinfo.address, port: rinfo.port };
    if (rtcp) this.sourceRtcp = peer;
    else {
      this.sourceRtp = peer;
      if (this.sourceRtcp === null && !this.config.rtcpMux) this.sourceRtcp = { address: rinfo.address, port: rinfo.port + 1 };
      if (this.sourceRtcp === null && this.config.rtcpMux) this.sourceRtcp = peer;
    }
  }

  private sendAll(list: PacketList): void {
    const stats = this.stats;
    const destinations = this.config.destinations;
    const mux = this.config.rtcpMux;
    for (let i = 0; i < list.count; i++) {
      const flags = list.flags[i]!;
      const dest = list.dest[i]!;
      const rtcp = (flags & PacketFlag.Rtcp) !== 0;
      const upstream = (flags & PacketFlag.Upstream) !== 0;
      const toSender = dest === Dest.Reverse ? !upstream : dest === Dest.Forward ? upstream : false;
      const length = list.length[i]!;
      const mem = list.memory[i]!;
      let buf: Buffer;
      let at: number;
      if (Buffer.isBuffer(mem) && list.offset[i] === 0 && mem.length === length) {
        buf = mem; // a received datagram no filter touched: send it as it is
        at = 0;
      } else if (length > RING_SLOT_SIZE) {
        buf = Buffer.from(mem.subarray(list.offset[i]!, list.offset[i]! + length)); // rare: jumbo datagram
        at = 0;
      } else {
        if (this.ring.congested(this.sockets.egressRtp)) {
          stats.drops.add(DropReason.HostBackpressure);
          continue;
        }
        buf = this.ring.buffer;
        at = this.ring.put(mem, list.offset[i]!, length);
      }
      // aux is a port offset only on packets a filter created (on received ones it is the source port)
      const portOffset = flags & PacketFlag.Generated ? list.aux[i]! : 0;
      if (toSender) {
        const peer = rtcp ? this.sourceRtcp : this.sourceRtp;
        if (peer === null) {
          stats.drops.add(DropReason.HostNoDestination);
          continue;
        }
        const sock = rtcp && this.sockets.ingressRtcp ? this.sockets.ingressRtcp : this.sockets.ingressRtp;
        this.send(sock, buf, at, length, peer.port, peer.address);
        continue;
      }
      const sock = rtcp && this.sockets.egressRtcp ? this.sockets.egressRtcp : this.sockets.egressRtp;
      const only = dest >= Dest.DestinationIndexBase ? dest - Dest.DestinationIndexBase : -1;
      if (only >= destinations.length) {
        stats.drops.add(DropReason.HostNoDestination);
        continue;
      }
      const first = only >= 0 ? only : 0;
      const last = only >= 0 ? only : destinations.length - 1;
      for (let k = first; k <= last; k++) {
        const d = destinations[k]!;
        const port = rtcp ? (d.rtcpPort ?? (mux ? d.port : d.port + 1)) : d.port + (upstream ? 0 : portOffset);
        this.send(sock, buf, at, length, port, d.address);
      }
    }
  }
}
