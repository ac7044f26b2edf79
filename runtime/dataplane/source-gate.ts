// Who may send into a segment (against RTP bleed: a third party injecting media into a stream, or
// taking it over by being "learned" as the sender), and where feedback for the sender goes.
//
// Downstream, the gate latches the first sender's address and port, or admits only the `source`
// the config names. Others are refused, except while the latch is young (`learnMs`: a sender that
// rebinds as it starts is followed) or once the latched sender has been silent for `idleMs` (a
// sender that restarted on a new port). With `strict: false` every packet re-latches, as a proxy
// without this gate would. The sender's RTCP is admitted from the latched address only. Upstream,
// feedback is admitted only from the segment's destinations (unless `feedbackFrom: any`).
import { canonicalAddress } from "../config/endpoints.js";
import type { SegmentConfig } from "../config/proxy-config.js";

export interface Peer {
  address: string;
  port: number;
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

  /** Whether a packet from `address:port` may enter downstream; learns the sender. `nowMs`: a monotonic clock. */
  admitSender(address: string, port: number, rtcp: boolean, nowMs: number): boolean {
    const s = this.config.source;
    if (this.allowAddress !== null && address !== this.allowAddress) return false;
    if (rtcp) {
      if (s.rtcpPort !== undefined && port !== s.rtcpPort) return false;
      // strict: only the latched sender's address. Before its first RTP packet RTCP is admitted
      // (FFmpeg sends its first sender report before its first RTP packet); the sender that then
      // latches points feedback at itself again. Feedback's target is learned once per sender.
      if (s.strict && this.rtp !== null && address !== this.rtp.address) return false;
      // before a sender latched, RTCP from a host no config names goes downstream but does not
      // aim the receivers' feedback at that host: its source may be forged (a victim's), which
      // made the proxy reflect every destination's reports there until a sender turned up
      if (s.strict && this.rtp === null && this.allowAddress === null) return true;
      if (!s.strict || !this.rtcpLearned) {
        this.rtcp = { address, port };
        this.rtcpLearned = true;
      }
      return true;
    }
    if (s.port !== undefined && port !== s.port) return false;
    const known = this.rtp;
    if (known !== null && known.port === port && known.address === address) {
      if (this.latchedAtMs === 0) this.latchedAtMs = nowMs;
      this.lastSeenMs = nowMs;
      return true;
    }
    const idle = this.latchedAtMs !== 0 && s.idleMs > 0 && nowMs - this.lastSeenMs >= s.idleMs;
    const young = this.latchedAtMs === 0 || nowMs - this.latchedAtMs < s.learnMs;
    if (s.strict && !young && !idle) return false;
    // a new sender: in the learning window the window is not extended; after silence, one starts
    if (this.latchedAtMs === 0 || idle) this.latchedAtMs = nowMs;
    this.lastSeenMs = nowMs;
    this.follow(address, port);
    return true;
  }

  /** Whether feedback from `address` (on an egress socket) may go upstream: only from a destination. */
  admitFeedback(address: string): boolean {
    return this.config.feedbackFrom === "any" || this.destinations.has(address);
  }

  /** Follows a (new) sender: its feedback goes to its configured RTCP port, else RTP port + 1 (or the RTP port with rtcpMux). */
  private follow(address: string, port: number): void {
    this.rtp = { address, port };
    this.rtcpLearned = false;
    const s = this.config.source;
    this.rtcp = { address, port: s.rtcpPort ?? (this.config.rtcpMux ? port : port + 1) };
  }
}
