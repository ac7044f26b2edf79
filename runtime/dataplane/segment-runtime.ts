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
import { pendingAllowance, RING_SLOT_SIZE, SendTracker, type EgressRing } from "./egress-ring.js";
import { allSockets, closeSockets, legDestinations, type SegmentSockets } from "./segment-sockets.js";
import { SourceGate } from "./source-gate.js";
import { rewriteRtcpSsrc, rewriteRtp, rtpSsrc } from "./ssrc-rewrite.js";

/**
 * A leg's gate: the leg's own sender address when its config names one, else the segment's
 * allowed address; each leg latches its own port (FEC legs are sent from sockets of their own).
 */
function legGateConfig(config: SegmentConfig, leg: number): SegmentConfig {
  const address = config.legs[leg]?.source?.address ?? config.source.address;
  return { ...config, source: { ...config.source, address, port: undefined, rtcpPort: undefined } };
}

/** RFC 5761 section 4: with RTCP multiplexed on the RTP port, RTCP packet types are 192-223. */
function looksLikeRtcp(msg: Buffer): boolean {
  if (msg.length < 2) return false;
  const pt = msg[1]!;
  return pt >= 192 && pt <= 223;
}

const NO_SLOT = -1;
/** How long the translated media source may be silent before another SSRC takes its place (a restarted sender). */
const MEDIA_IDLE_MS = 500;

/** Disconnects a connected egress socket and records that it sends unconnected from now on. */
function unconnect(socket: Socket | null, holder: { connectedTo: number }): void {
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
  /** Whether any destination is translated (the media source is tracked only then). */
  private translating = false;
  private closed = false;

  constructor(
    config: SegmentConfig,
    readonly sockets: SegmentSockets,
    private readonly runner: ChainRunner,
    private readonly ring: EgressRing,
    private readonly batchSize: number,
  ) {
    this.config = config;
    this.gate = new SourceGate(config);
    this.pending = new PacketList(batchSize);
    // a send the kernel refused after the fact (its callback's error) is a drop of this segment
    const failed = (): void => this.stats.drops.add(DropReason.HostSendFailed);
    this.ingressRtpSends = new SendTracker(ring, failed);
    this.ingressRtcpSends = new SendTracker(ring, failed);
    this.egressRtpSends = new SendTracker(ring, failed);
    this.egressRtcpSends = new SendTracker(ring, failed);
    this.legGates = config.legs.map((_, k) => new SourceGate(legGateConfig(config, k)));
    this.legSends = config.legs.map(() => new SendTracker(ring, failed));
    this.legTargets = config.legs.map((l) => legDestinations(config, l));
    this.setRewrites(config);
    this.setAllowances(config);
    const mux = config.rtcpMux;
    sockets.ingressRtp.on("message", (msg, rinfo) => this.receive(msg, rinfo, mux && looksLikeRtcp(msg) ? PacketFlag.Rtcp : 0, true));
    sockets.ingressRtcp?.on("message", (msg, rinfo) => this.receive(msg, rinfo, PacketFlag.Rtcp, true));
    sockets.egressRtp.on("message", (msg, rinfo) =>
      this.receive(msg, rinfo, PacketFlag.Upstream | (mux && looksLikeRtcp(msg) ? PacketFlag.Rtcp : 0), false));
    sockets.egressRtcp?.on("message", (msg, rinfo) => this.receive(msg, rinfo, PacketFlag.Upstream | PacketFlag.Rtcp, false));
    sockets.legs.forEach((l, k) => l.ingress?.on("message", (msg, rinfo) => this.receiveOnLeg(msg, rinfo, k + 1)));
    for (const s of allSockets(sockets)) s?.on("error", () => this.stats.drops.add(DropReason.HostSendFailed));
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
    this.setRewrites(config);
    this.setAllowances(config);
    this.config = config;
    this.gate.update(config);
    this.legGates.forEach((g, k) => g.update(legGateConfig(config, k)));
  }

  /** Sends in flight each egress socket may have: a fan-out's batch puts one per destination in flight at once. */
  private setAllowances(config: SegmentConfig): void {
    this.egressRtpSends.maxPending = this.egressRtcpSends.maxPending = pendingAllowance(config.destinations.length, this.batchSize);
    this.legSends.forEach((t, k) => (t.maxPending = pendingAllowance(this.legTargets[k]!.length, this.batchSize)));
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

  /**
   * A stage is leaving a chain that goes on (a reload removed it, or its state could not move to
   * its successor): it hands over what it holds (msm_context_drain), and that runs through `after`,
   * the stages of the new chain that followed it in the old one.
   */
  drainLeaving(stage: ChainStage, after: readonly ChainStage[]): void {
    if (this.closed) return;
    this.runner.setClock(performance.now() * 1000, Date.now() * 1000);
    this.runner.drainStage([stage, ...after], 0, this.stats, this.egress);
  }

  /** Stops taking packets in (the sockets stay open for the sends in flight). */
  stopReceiving(): void {
    for (const sock of allSockets(this.sockets)) sock?.removeAllListeners("message");
  }

  /** Closes the sockets (after drain(): what was waiting has been sent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSockets(this.sockets);
    for (const t of [this.ingressRtpSends, this.ingressRtcpSends, this.egressRtpSends, this.egressRtcpSends, ...this.legSends]) t.abandon();
  }

  /** A packet on leg `leg` (1..): RTP from the sender's address, admitted by the leg's own gate. */
  private receiveOnLeg(msg: Buffer, rinfo: RemoteInfo, leg: number): void {
    if (this.closed) return;
    const stats = this.stats;
    stats.packetsIn++;
    stats.bytesIn += msg.length;
    stats.legPacketsIn[leg]++;
    const nowMs = performance.now();
    if (!this.legSenderKnown(leg, rinfo.address) || !this.legGates[leg - 1]!.admitSender(rinfo.address, rinfo.port, false, nowMs)) {
      stats.drops.add(DropReason.HostSourceRefused);
      return;
    }
    this.enqueue(msg, rinfo, rinfo.family === "IPv6" ? PacketFlag.Ipv6 : 0, leg, nowMs);
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

  private receive(msg: Buffer, rinfo: RemoteInfo, flags: number, fromSender: boolean): void {
    if (this.closed) return;
    const stats = this.stats;
    stats.packetsIn++;
    stats.bytesIn += msg.length;
    if (fromSender && (flags & PacketFlag.Rtcp) === 0) stats.legPacketsIn[0]++; // per leg: media downstream, as legPacketsOut
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
      // a translated destination reports under the SSRC it was given: the chain and the sender see their own
      if (this.translatedSsrcs !== null && rtcp && this.mediaSsrc >= 0) rewriteRtcpSsrc(msg, 0, msg.length, -1, this.mediaSsrc, this.translatedSsrcs);
    }
    if (rinfo.family === "IPv6") flags |= PacketFlag.Ipv6;
    this.enqueue(msg, rinfo, flags, 0, nowMs);
  }

  private enqueue(msg: Buffer, rinfo: RemoteInfo, flags: number, leg: number, nowMs: number): void {
    this.pending.push(msg, 0, msg.length, flags, Dest.Forward, rinfo.port, leg, nowMs * 1000);
    if (this.pending.full) this.flush();
    else if (!this.flushScheduled) {
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

  /** One send, tracked: `slot` is the ring offset the buffer holds (NO_SLOT for one outside the ring). */
  private send(sock: Socket, sends: SendTracker, buf: Buffer, at: number, slot: number, length: number, port: number, address: string | null): boolean {
    if (sends.full || (slot !== NO_SLOT && !this.ring.hold(slot))) {
      this.stats.drops.add(DropReason.HostBackpressure);
      return false;
    }
    sends.push(slot);
    try {
      if (address === null) sock.send(buf, at, length, sends.onSent); // connected
      else sock.send(buf, at, length, port, address, sends.onSent);
      this.stats.packetsOut++;
      this.stats.bytesOut += length;
      return true;
    } catch {
      if (sends.unpush() !== NO_SLOT) this.ring.release(slot);
      this.stats.drops.add(DropReason.HostSendFailed);
      return false;
    }
  }

  private sendAll(list: PacketList): void {
    const stats = this.stats;
    const nowMs = this.translating ? performance.now() : 0;
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
      const leg = list.leg[i]!;
      const nowhere = leg !== 0
        ? !this.legCanSend(leg, only, upstream || dest === Dest.Reverse)
        : toSender ? (rtcp ? this.gate.rtcp : this.gate.rtp) === null : only >= destinations.length;
      if (nowhere) {
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
      if (leg !== 0) {
        this.sendOnLeg(leg, only, buf, at, slot, length);
        continue;
      }
      if (toSender) {
        const peer = (rtcp ? this.gate.rtcp : this.gate.rtp)!;
        const useRtcp = rtcp && s.ingressRtcp !== null;
        this.send(useRtcp ? s.ingressRtcp! : s.ingressRtp, useRtcp ? this.ingressRtcpSends : this.ingressRtpSends, buf, at, slot, length, peer.port, peer.address);
        continue;
      }
      const useRtcp = rtcp && s.egressRtcp !== null;
      const sock = useRtcp ? s.egressRtcp! : s.egressRtp;
      const sends = useRtcp ? this.egressRtcpSends : this.egressRtpSends;
      const first = only >= 0 ? only : 0;
      const last = only >= 0 ? only : destinations.length - 1;
      const ssrc = rtcp ? -1 : rtpSsrc(buf, at, length);
      if (this.translating && !rtcp) this.noteMedia(ssrc, nowMs);
      const translatable = rtcp || ssrc === this.mediaSsrc;
      for (let k = first; k <= last; k++) {
        const d = destinations[k]!;
        const port = rtcp ? (d.rtcpPort ?? (mux ? d.port : d.port + 1)) : d.port;
        let address: string | null = d.address;
        if (!useRtcp && s.connectedTo >= 0) {
          if (k === s.connectedTo) address = null;
          else this.disconnect(); // another destination: send unconnected from now on
        }
        const rewrite = this.rewrites[k];
        const sent = rewrite && translatable
          ? this.sendTranslated(rewrite, rtcp, sock, sends, buf, at, length, port, address)
          : this.send(sock, sends, buf, at, slot, length, port, address);
        if (sent && !rtcp) stats.legPacketsOut[0]++;
      }
    }
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
  private sendTranslated(
    rewrite: { payloadType: number; ssrc: number }, rtcp: boolean, sock: Socket, sends: SendTracker,
    buf: Buffer, at: number, length: number, port: number, address: string | null,
  ): boolean {
    let target: Buffer;
    let copy: number;
    let slot = NO_SLOT;
    if (length > RING_SLOT_SIZE) {
      target = Buffer.from(buf.subarray(at, at + length)); // rare: jumbo datagram, as sendAll does
      copy = 0;
    } else {
      copy = this.ring.put(buf, at, length);
      if (copy < 0) {
        this.stats.drops.add(DropReason.HostBackpressure);
        return false;
      }
      target = this.ring.buffer;
      slot = copy;
    }
    if (!rtcp) rewriteRtp(target, copy, length, rewrite.payloadType, rewrite.ssrc);
    else if (rewrite.ssrc >= 0 && this.mediaSsrc >= 0) rewriteRtcpSsrc(target, copy, length, this.mediaSsrc, rewrite.ssrc);
    return this.send(sock, sends, target, copy, slot, length, port, address);
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
  private sendOnLeg(leg: number, only: number, buf: Buffer, at: number, slot: number, length: number): void {
    const sockets = this.sockets.legs[leg - 1]!;
    const targets = this.legTargets[leg - 1]!;
    const sock = sockets.egress!;
    const sends = this.legSends[leg - 1]!;
    const first = only >= 0 ? only : 0;
    const last = only >= 0 ? only : targets.length - 1;
    for (let k = first; k <= last; k++) {
      const d = targets[k]!;
      let address: string | null = d.address;
      if (sockets.connectedTo >= 0) {
        if (k === sockets.connectedTo) address = null;
        else this.disconnectLeg(leg - 1);
      }
      if (this.send(sock, sends, buf, at, slot, length, d.port, address)) this.stats.legPacketsOut[leg]++;
    }
  }
}
