// What the proxy reports per RTP stream (SSRC) of a segment: docs/streams.md explains every field.
// Times are wall-clock milliseconds (Unix epoch) so that hops on different proxies compare.

/** One direction of one stream at one proxy: ingress (from the sender) or egress (out of the chain). */
export interface StreamDirection {
  /** Packets counted, duplicates excluded (ingress: received; egress: sent, once whatever the fan-out). */
  packets: number;
  bytes: number;
  /** RFC 3550 A.3: extended highest sequence number - base sequence number + 1. */
  expected: number;
  /** RFC 3550 A.3: expected - packets (never below 0: duplicates are not counted as received). */
  lost: number;
  /** Packets whose sequence number was already seen (within the last 1024); a late one further back when none is missing (docs/streams.md). */
  duplicates: number;
  /** Packets that arrived after a higher sequence number (late, but not lost). */
  reordered: number;
  /** RFC 3550 A.8 interarrival jitter, converted to milliseconds with the stream's clock rate. */
  jitterMs: number;
  /** The extended highest sequence number seen (cycles << 16 | seq). */
  highestSeq: number;
  /** Wall-clock time of the first packet counted (the base sequence number's). */
  firstMs: number;
  /** Wall-clock time of the last packet. */
  lastMs: number;
  /** The last whole window (a second of the wall clock), or null before the first one ends. */
  window: StreamWindow | null;
  /** The whole window before it, or null: two proxies' reports taken at different moments share one of the two. */
  previousWindow: StreamWindow | null;
}

export interface StreamWindow {
  /** Its length in milliseconds, and when it ended (wall clock). */
  ms: number;
  endMs: number;
  expected: number;
  lost: number;
  /** lost over the sequence numbers the window settled (the range its lost were holes among), from 0 to 1 (docs/streams.md). */
  fractionLost: number;
  packetRate: number;
  bitrateBps: number;
  /**
   * Mean of (arrival or send wall-clock time - RTP timestamp / clock rate) over the window, in
   * ms: meaningless alone, but its difference between two points of the same stream is the mean
   * one-way delay between them (given clocks kept in step, as NTP or PTP keep them). null: no packet.
   */
  transitMs: number | null;
  /**
   * The A.8 jitter estimate (ms) as the window ended: two points of a stream compare it over the
   * same second (the estimate moves by milliseconds within one, on a jittery path). Absent from
   * proxies before 2026-12-07.
   */
  jitterMs?: number;
}

/** What one receiver downstream says about the stream, read from the RTCP it sends back. */
export interface ReceiverReport {
  /** The SSRC of the reporter (the receiver). */
  reporterSsrc: number;
  /** From its last RR report block (RFC 3550 6.4.1). */
  fractionLost: number;
  cumulativeLost: number;
  highestSeq: number;
  jitterMs: number;
  /**
   * This proxy's egress jitter for the stream (ms) when the report arrived: what the receiver's
   * jitter is compared with, as of the same moment (the estimates move within seconds on a
   * congested path). null: the proxy had sent none of the stream.
   */
  egressJitterMs: number | null;
  /** Round trip proxy -> receiver -> proxy from LSR/DLSR against the SRs this proxy forwarded; null: not known. */
  rttMs: number | null;
  /**
   * Loss between this proxy and the receiver over the receiver's last report interval (0..1): what
   * it reports lost since its previous report, less what this proxy's egress was missing over the
   * same span, both as RFC 3550 A.3 counts (duplicates among the received). null until two reports have come.
   */
  linkFractionLost: number | null;
  /** From its last XR Statistics Summary block (RFC 3611 4.6), or null; a field the block's flags leave out is null. */
  xr: { lost: number | null; duplicates: number | null; jitterMeanMs: number | null } | null;
  atMs: number;
}

export interface StreamStats {
  ssrc: number;
  payloadType: number;
  /** Hz; how it was found: the segment's clockRates, the static payload types of RFC 3551, or assumed (90000). */
  clockRate: number;
  clockRateFrom: "config" | "payload-type" | "assumed";
  ingress: StreamDirection | null;
  egress: StreamDirection | null;
  receivers: ReceiverReport[];
}

/** Streams of a segment beyond the proxy's `streams.max`: counted together, never per SSRC. */
export interface StreamOverflow {
  ingressPackets: number;
  egressPackets: number;
}
