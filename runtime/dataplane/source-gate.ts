// Who may send into a segment (against RTP bleed: a third party injecting media into a stream, or
// taking it over by being "learned" as the sender), and where feedback for the sender goes.
//
// Downstream, the gate latches the first sender's address and port, or admits only the `source`
// the config names. Others are refused, except while the latch is young (`learnMs`: a sender that
// rebinds as it starts is followed) or once the latched sender has been silent for `idleMs` (a
// sender that restarted on a new port). With `strict: false` every packet re-latches, as a proxy
// without this gate would. The sender's RTCP is admitted from the latched address only. Upstream,
// feedback is admitted only from the segment's destinations (unless `feedbackFrom: any`).
//
// A new sender (or the sender's RTCP address) is not learned from the packet that shows it: the
// packet enters as a *candidate*'s, and the sender latches only once the chain accepted one of
// its packets (passed it through or kept it). Else a packet the chain refuses (an SRTP packet that
// fails authentication, one validate finds malformed) would latch its source, and a host that
// keeps sending such packets would keep the stream's real sender refused for good.
import { canonicalAddress } from "../config/endpoints.js";
import type { SegmentConfig } from "../config/proxy-config.js";

export interface Peer {
  address: string;
  port: number;
}

/** screen()'s answers: the packet is refused; admitted; admitted as the candidate's; or see VERDICT_FIRST. */
export const REFUSED = -1;
export const ADMITTED = 0;
export const CANDIDATE = 1;
/**
 * Whether the packet may enter depends on the chain's verdict on the candidate heard earlier in
 * the batch (if the chain takes it, it may shut this sender out, as if each packet had latched):
 * run the batch, settle(), screen the packet again.
 */
export const VERDICT_FIRST = -2;

/** A sender (or the sender's RTCP address) heard in this batch, learned if the chain accepts one of its packets. */
interface Candidate {
  address: string;
  port: number;
  rtcp: boolean;
  firstMs: number;
  lastMs: number;
  /** Its RTP packet came when no sender was latched or the latched one was idle: it starts a new learning window. */
  startsLatch: boolean;
}

export class SourceGate {
  /** The sender's media address, once known (from the config or the first packet). */
  rtp: Peer | null = null;
  /** Where feedback for the sender goes: its RTCP address (learned, configured, or RTP port + 1). */
  rtcp: Peer | null = null;
  /** When the sender now latched was first heard (0: not heard yet), and last heard; monotonic ms. */
  private latchedAtMs = 0;
  private lastSeenMs = 0;
  /** The latched sender's RTCP address was learned from its RTCP (once per sender, when strict). */
  private rtcpLearned = false;
  private allowAddress: string | null = null;
  private destinations = new Set<string>();
  /** At most one per batch: a packet from anyone else waits for the verdict on it (VERDICT_FIRST). */
  private readonly candidate: Candidate = { address: "", port: 0, rtcp: false, firstMs: 0, lastMs: 0, startsLatch: false };
  private candidatePending = false;

  constructor(private config: SegmentConfig) {
    this.update(config);
  }

  /** Takes what can change without new sockets (source policy, destinations); keeps what it learned. */
  update(config: SegmentConfig): void {
    this.config = config;
    const s = config.source;
    this.allowAddress = s.address === undefined ? null : canonicalAddress(s.address);
    const configured = this.allowAddress !== null && s.port !== undefined;
    if (configured && (this.rtp === null || this.rtp.address !== this.allowAddress || this.rtp.port !== s.port)) {
      this.follow(this.allowAddress!, s.port!);
      this.latchedAtMs = 0;
    } else if (this.allowAddress !== null && this.rtp !== null && this.rtp.address !== this.allowAddress) {
      this.rtp = null; // the config now names another sender
      this.rtcp = null;
      this.rtcpLearned = false;
      this.latchedAtMs = 0;
    }
    this.destinations = new Set(config.destinations.map((d) => canonicalAddress(d.address)));
    this.candidatePending = false; // heard under the old policy: not learned under the new one
  }

  /** Why admitSender refused a packet from `address:port` (called after it did, for the log). */
  whyRefused(address: string, port: number, rtcp: boolean, nowMs: number): string {
    const s = this.config.source;
    if (this.allowAddress !== null && address !== this.allowAddress) return `only ${this.allowAddress} may send (source.address)`;
    if (rtcp && s.rtcpPort !== undefined && port !== s.rtcpPort) return `its RTCP comes from port ${s.rtcpPort} only (source.rtcpPort)`;
    if (!rtcp && s.port !== undefined && port !== s.port) return `its RTP comes from port ${s.port} only (source.port)`;
    const known = this.rtp;
    if (known === null) return "no sender is latched";
    if (rtcp) return `RTCP comes from the latched sender's address only (${known.address})`;
    const silentMs = Math.max(0, Math.round(nowMs - this.lastSeenMs));
    const after = s.idleMs > 0 ? `another takes its place once it has been silent for ${s.idleMs} ms (source.idleMs` : "no other takes its place (source.idleMs is 0";
    return `the sender latched is ${known.address}:${known.port}, heard ${silentMs} ms ago; ${after}; source.strict: false admits any)`;
  }

  /**
   * Whether a packet from `address:port` may enter downstream: REFUSED, ADMITTED (the latched
   * sender, or RTCP that teaches nothing), CANDIDATE (a new sender, or the sender's RTCP from a
   * new port: settle() learns it if the chain accepts one of its packets), or VERDICT_FIRST.
   * `nowMs`: a monotonic clock.
   */
  screen(address: string, port: number, rtcp: boolean, nowMs: number): number {
    const s = this.config.source;
    if (this.allowAddress !== null && address !== this.allowAddress) return REFUSED;
    if (rtcp ? s.rtcpPort !== undefined && port !== s.rtcpPort : s.port !== undefined && port !== s.port) return REFUSED;
    if (this.candidatePending) {
      const c = this.candidate;
      if (c.port !== port || c.rtcp !== rtcp || c.address !== address) return VERDICT_FIRST;
      c.lastMs = nowMs;
      return CANDIDATE;
    }
    if (rtcp) {
      // strict: only the latched sender's address. Before its first RTP packet RTCP is admitted
      // (FFmpeg sends its first sender report before its first RTP packet); the sender that then
      // latches points feedback at itself again. Feedback's target is learned once per sender.
      if (s.strict && this.rtp !== null && address !== this.rtp.address) return REFUSED;
      // before a sender latched, RTCP from a host no config names goes downstream but does not
      // aim the receivers' feedback at that host: its source may be forged (a victim's), which
      // made the proxy reflect every destination's reports there until a sender turned up
      if (s.strict && this.rtp === null && this.allowAddress === null) return ADMITTED;
      const current = this.rtcp;
      if ((s.strict && this.rtcpLearned) || (current !== null && current.port === port && current.address === address)) return ADMITTED;
      return this.propose(address, port, true, nowMs, false);
    }
    const known = this.rtp;
    if (known !== null && known.port === port && known.address === address) {
      if (this.latchedAtMs === 0) this.latchedAtMs = nowMs;
      this.lastSeenMs = nowMs;
      return ADMITTED;
    }
    const idle = this.latchedAtMs !== 0 && s.idleMs > 0 && nowMs - this.lastSeenMs >= s.idleMs;
    const young = this.latchedAtMs === 0 || nowMs - this.latchedAtMs < s.learnMs;
    if (s.strict && !young && !idle) return REFUSED;
    return this.propose(address, port, false, nowMs, this.latchedAtMs === 0 || idle);
  }

  /** The chain ran the batch: the candidate is learned if it `accepted` one of its packets, else forgotten. */
  settle(accepted: boolean): void {
    if (!this.candidatePending) return;
    this.candidatePending = false;
    if (!accepted) return;
    const c = this.candidate;
    if (c.rtcp) {
      this.rtcp = { address: c.address, port: c.port };
      this.rtcpLearned = true;
      return;
    }
    // a new sender: in the learning window the window is not extended; after silence, one starts
    if (c.startsLatch) this.latchedAtMs = c.firstMs;
    this.lastSeenMs = c.lastMs;
    this.follow(c.address, c.port);
  }

  /** Whether a candidate waits for the chain's verdict. */
  get pending(): boolean {
    return this.candidatePending;
  }

  /** Whether a new sender at `address` waits for the chain's verdict (its media in this batch, not yet settled). */
  senderPending(address: string): boolean {
    return this.candidatePending && !this.candidate.rtcp && this.candidate.address === address;
  }

  /** screen() and, at once, the verdict that its packet was accepted (legs, whose media's sender is known already). */
  admitSender(address: string, port: number, rtcp: boolean, nowMs: number): boolean {
    const verdict = this.screen(address, port, rtcp, nowMs); // never VERDICT_FIRST: no candidate waits
    if (verdict === CANDIDATE) this.settle(true);
    return verdict >= ADMITTED;
  }

  private propose(address: string, port: number, rtcp: boolean, nowMs: number, startsLatch: boolean): number {
    const c = this.candidate;
    c.address = address;
    c.port = port;
    c.rtcp = rtcp;
    c.firstMs = c.lastMs = nowMs;
    c.startsLatch = startsLatch;
    this.candidatePending = true;
    return CANDIDATE;
  }

  /** Whether feedback from `address` (on an egress socket) may go upstream: only from a destination. */
  admitFeedback(address: string): boolean {
    return this.config.feedbackFrom === "any" || this.destinations.has(address);
  }

  /**
   * Follows a (new) sender: its feedback goes to its configured RTCP port, else RTP port + 1 (or
   * the RTP port with rtcpMux). A sender on port 65535 has no port + 1: its feedback goes nowhere
   * until its own RTCP shows where (sent to port 65536, it killed the worker on batched I/O).
   */
  private follow(address: string, port: number): void {
    this.rtp = { address, port };
    this.rtcpLearned = false;
    const s = this.config.source;
    const rtcpPort = s.rtcpPort ?? (this.config.rtcpMux ? port : port + 1);
    this.rtcp = rtcpPort > 65535 ? null : { address, port: rtcpPort };
  }
}
