// One segment inside a data-plane worker: its sockets, the batch it is collecting, its chain,
// and where packets go when they leave the chain. Media flows downstream from the sender (who
// sends to `listen`) to the destinations (from the egress sockets); RTCP feedback from the
// receivers arrives on the egress sockets and flows upstream, back to the sender.
import type { RemoteInfo, Socket } from "node:dgram";
import { Dest, DropReason, PacketFlag } from "../../sdk/abi/constants.js";
import type { ChainRunner } from "../chain/chain-runner.js";
import type { ChainStage } from "../chain/filter-pool.js";
import { PacketList } from "../chain/packet-list.js";
import { SegmentStats } from "../chain/stats.js";
import type { SegmentConfig } from "../config/proxy-config.js";
import { RING_SLOT_SIZE, SendTracker, type EgressRing } from "./egress-ring.js";
import { closeSockets, type SegmentSockets } from "./segment-sockets.js";
import { SourceGate } from "./source-gate.js";

/** RFC 5761 section 4: with RTCP multiplexed on the RTP port, RTCP packet types are 192-223. */
function looksLikeRtcp(msg: Buffer): boolean {
  if (msg.length < 2) return false;
  const pt = msg[1]!;
  return pt >= 192 && pt <= 223;
}

const NO_SLOT = -1;

export class SegmentRuntime {
  readonly stats = new SegmentStats();
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
  private closed = false;

  constructor(
    config: SegmentConfig,
    readonly sockets: SegmentSockets,
    private readonly runner: ChainRunner,
    private readonly ring: EgressRing,
    batchSize: number,
  ) {
    this.config = config;
    this.gate = new SourceGate(config);
    this.pending = new PacketList(batchSize);
    // a send the kernel refused after the fact (its callback's error) is a drop of this segment
    const failed = (): void => this.stats.drops.add(DropReason.HostSendFailed);
    this.ingressRtpSends = new SendTracker(ring, undefined, failed);
    this.ingressRtcpSends = new SendTracker(ring, undefined, failed);
    this.egressRtpSends = new SendTracker(ring, undefined, failed);
    this.egressRtcpSends = new SendTracker(ring, undefined, failed);
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
  ports(): { listen: number; listenRtcp: number | null; egress: number; egressRtcp: number | null; egressConnected: boolean; sender: string | null } {
    const s = this.sockets;
    const sender = this.gate.rtp;
    return {
      listen: s.ingressRtp.address().port,
      listenRtcp: s.ingressRtcp?.address().port ?? null,
      egress: s.egressRtp.address().port,
      egressRtcp: s.egressRtcp?.address().port ?? null,
      egressConnected: s.connectedTo >= 0,
      sender: sender === null ? null : `${sender.address.includes(":") ? `[${sender.address}]` : sender.address}:${sender.port}`,
    };
  }

  /** Sends not yet completed on this segment's sockets. */
  get pendingSends(): number {
    return this.ingressRtpSends.count + this.ingressRtcpSends.count + this.egressRtpSends.count + this.egressRtcpSends.count;
  }

  /** Replaces what can change without new sockets: destinations, source policy, failure policy. */
  updateConfig(config: SegmentConfig): void {
    const c = this.sockets.connectedTo;
    if (c >= 0) {
      const was = this.config.destinations[c]!;
      const now = config.destinations[c];
      if (config.destinations.length !== 1 || !now || now.address !== was.address || now.port !== was.port) this.disconnect();
    }
    this.config = config;
    this.gate.update(config);
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

  /** Stops taking packets in (the sockets stay open for the sends in flight). */
  stopReceiving(): void {
    const s = this.sockets;
    for (const sock of [s.ingressRtp, s.ingressRtcp, s.egressRtp, s.egressRtcp]) sock?.removeAllListeners("message");
  }

  /** Closes the sockets (after drain(): what was waiting has been sent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSockets(this.sockets);
    for (const t of [this.ingressRtpSends, this.ingressRtcpSends, this.egressRtpSends, this.egressRtcpSends]) t.abandon();
  }

  private receive(msg: Buffer, rinfo: RemoteInfo, flags: number, fromSender: boolean): void {
    if (this.closed) return;
    const stats = this.stats;
    stats.packetsIn++;
    stats.bytesIn += msg.length;
    const rtcp = (flags & PacketFlag.Rtcp) !== 0;
    if (rtcp) stats.rtcpIn++;
    const nowMs = performance.now();
    if (fromSender) {
      if (!this.gate.admitSender(rinfo.address, rinfo.port, rtcp, nowMs)) {
        stats.drops.add(DropReason.HostSourceRefused);
        return;
      }
    } else {
      stats.upstreamIn++;
      if (!this.gate.admitFeedback(rinfo.address)) {
        stats.drops.add(DropReason.HostFeedbackRefused);
        return;
      }
    }
    if (rinfo.family === "IPv6") flags |= PacketFlag.Ipv6;
    this.pending.push(msg, 0, msg.length, flags, Dest.Forward, rinfo.port, nowMs * 1000);
    if (this.pending.full) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  /** The connected egress socket is about to send elsewhere: it sends unconnected from now on. */
  private disconnect(): void {
    try {
      this.sockets.egressRtp.disconnect();
    } catch {
      // not connected after all
    }
    this.sockets.connectedTo = -1;
  }

  /** One send, tracked: `slot` is the ring offset the buffer holds (NO_SLOT for one outside the ring). */
  private send(sock: Socket, sends: SendTracker, buf: Buffer, at: number, slot: number, length: number, port: number, address: string | null): void {
    if (sends.full || (slot !== NO_SLOT && !this.ring.hold(slot))) {
      this.stats.drops.add(DropReason.HostBackpressure);
      return;
    }
    sends.push(slot);
    try {
      if (address === null) sock.send(buf, at, length, sends.onSent); // connected
      else sock.send(buf, at, length, port, address, sends.onSent);
      this.stats.packetsOut++;
      this.stats.bytesOut += length;
    } catch {
      if (sends.unpush() !== NO_SLOT) this.ring.release(slot);
      this.stats.drops.add(DropReason.HostSendFailed);
    }
  }

  private sendAll(list: PacketList): void {
    const stats = this.stats;
    const destinations = this.config.destinations;
    const mux = this.config.rtcpMux;
    const s = this.sockets;
    for (let i = 0; i < list.count; i++) {
      const flags = list.flags[i]!;
      const dest = list.dest[i]!;
      const rtcp = (flags & PacketFlag.Rtcp) !== 0;
      const upstream = (flags & PacketFlag.Upstream) !== 0;
      const toSender = dest === Dest.Reverse ? !upstream : dest === Dest.Forward ? upstream : false;
      const only = dest >= Dest.DestinationIndexBase ? dest - Dest.DestinationIndexBase : -1;
      if ((toSender ? (rtcp ? this.gate.rtcp : this.gate.rtp) === null : only >= destinations.length)) {
        stats.drops.add(DropReason.HostNoDestination);
        continue;
      }
      const length = list.length[i]!;
      const mem = list.memory[i]!;
      let buf: Buffer;
      let at: number;
      let slot = NO_SLOT;
      if (Buffer.isBuffer(mem) && list.offset[i] === 0 && mem.length === length) {
        buf = mem; // a received datagram no filter touched: send it as it is
        at = 0;
      } else if (length > RING_SLOT_SIZE) {
        buf = Buffer.from(mem.subarray(list.offset[i]!, list.offset[i]! + length)); // rare: jumbo datagram
        at = 0;
      } else {
        at = this.ring.put(mem, list.offset[i]!, length);
        if (at < 0) {
          stats.drops.add(DropReason.HostBackpressure);
          continue;
        }
        buf = this.ring.buffer;
        slot = at;
      }
      if (toSender) {
        const peer = (rtcp ? this.gate.rtcp : this.gate.rtp)!;
        const useRtcp = rtcp && s.ingressRtcp !== null;
        this.send(useRtcp ? s.ingressRtcp! : s.ingressRtp, useRtcp ? this.ingressRtcpSends : this.ingressRtpSends, buf, at, slot, length, peer.port, peer.address);
        continue;
      }
      // aux is a port offset only on packets a filter created (on received ones it is the source port)
      const portOffset = flags & PacketFlag.Generated && !upstream ? list.aux[i]! : 0;
      const useRtcp = rtcp && s.egressRtcp !== null;
      const sock = useRtcp ? s.egressRtcp! : s.egressRtp;
      const sends = useRtcp ? this.egressRtcpSends : this.egressRtpSends;
      const first = only >= 0 ? only : 0;
      const last = only >= 0 ? only : destinations.length - 1;
      for (let k = first; k <= last; k++) {
        const d = destinations[k]!;
        const port = rtcp ? (d.rtcpPort ?? (mux ? d.port : d.port + 1)) : d.port + portOffset;
        if (port > 65535) {
          stats.drops.add(DropReason.HostNoDestination);
          continue;
        }
        let address: string | null = d.address;
        if (!useRtcp && s.connectedTo >= 0) {
          if (k === s.connectedTo && port === d.port) address = null;
          else this.disconnect(); // a port offset, or another destination: send unconnected from now on
        }
        this.send(sock, sends, buf, at, slot, length, port, address);
      }
    }
  }
}
