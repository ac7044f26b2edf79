// Test helpers for the congestion filter: loading it, H.264-like RTP (RFC 6184 NAL headers, so
// priority drop can classify frames), and a simulated hop (a bottleneck with a FIFO queue in
// bytes and a propagation delay) between a sender-mode and a receiver-mode instance, on the
// harnesses' clocks, with an origin that follows TMMBR. No sockets: the netns tests do that.
import { FilterHarness, PacketFlag, buildRtp, type HarnessOptions, type OutputPacket } from "../../../sdk/harness/index.js";
import { filterWasm } from "../../../test/lib/paths.js";
import { decodeTmmb, rtcpPieces } from "../../../test/lib/rtcp-cc.js";

export const SSRC = 0x0cc0_0001;
export const PT_H264 = 96;

export const loadCongestion = (options: HarnessOptions = {}): Promise<FilterHarness> =>
  FilterHarness.load(filterWasm("congestion", true), { name: "congestion", ...options });

export type FrameKind = "idr" | "ref" | "nonref";

/** One RTP packet of an H.264 frame: FU-A with the right NAL header (or a single NAL unit when `single`). */
export function h264Packet(seq: number, timestamp: number, kind: FrameKind, opts: { first: boolean; last: boolean; size: number; ssrc?: number }): Uint8Array {
  const b = buildRtp({ seq, timestamp, ssrc: opts.ssrc ?? SSRC, payloadType: PT_H264, marker: opts.last, payloadSize: opts.size });
  const nri = kind === "nonref" ? 0 : kind === "idr" ? 3 : 2;
  const type = kind === "idr" ? 5 : 1;
  b[12] = (nri << 5) | 28; // FU indicator
  b[13] = (opts.first ? 0x80 : 0) | (opts.last ? 0x40 : 0) | type; // FU header
  return b;
}

export const seqOf = (b: Uint8Array): number => (b[2]! << 8) | b[3]!;
export const tsOf = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(4);

/** RTCP packets of a compound (test/lib/rtcp-cc.ts reads them): type, FMT, bytes. */
export function rtcpPackets(b: Uint8Array): { type: number; fmt: number; bytes: Uint8Array }[] {
  return rtcpPieces(b).map((p) => ({ type: p.pt, fmt: p.fmt, bytes: p.bytes }));
}

/** The rate the TMMBR (RFC 5104 4.2.1) in compound `b` asks for, or undefined. */
export function tmmbrBps(b: Uint8Array): number | undefined {
  const p = rtcpPieces(b).find((x) => x.pt === 205 && x.fmt === 3);
  return p ? decodeTmmb(p.bytes).entries[0]!.bps : undefined;
}

export interface HopOptions {
  /** Capacity of the bottleneck over time (µs since the start) in bit/s. */
  readonly capacity: (tUs: number) => number;
  /** One-way propagation delay, µs. */
  readonly delayUs: number;
  /** Bottleneck queue bound, bytes. */
  readonly queueBytes: number;
}

export interface HopRecord {
  readonly sentUs: number;
  readonly arrivedUs: number;
  readonly size: number;
}

/**
 * A bottleneck link: packets enter with enqueue() at the harness time, leave in order at the
 * capacity of the moment, arrive after the propagation delay; a packet that finds the queue full
 * is lost (tail drop).
 */
export class Bottleneck {
  private queue: { bytes: Uint8Array; sentUs: number }[] = [];
  private queued = 0;
  private busyUntil = 0;
  private inFlight: { bytes: Uint8Array; sentUs: number; arriveUs: number }[] = [];
  lost = 0;
  readonly delivered: HopRecord[] = [];

  constructor(private readonly o: HopOptions) {}

  enqueue(bytes: Uint8Array, nowUs: number): void {
    if (this.queued + bytes.length > this.o.queueBytes) {
      this.lost++;
      return;
    }
    this.queue.push({ bytes, sentUs: nowUs });
    this.queued += bytes.length;
  }

  /** Moves the link to `nowUs`; returns the packets that arrive by then, in order. */
  advance(nowUs: number): { bytes: Uint8Array; arriveUs: number }[] {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const start = Math.max(this.busyUntil, head.sentUs);
      const done = start + (head.bytes.length * 8 * 1e6) / this.o.capacity(start);
      if (done > nowUs) break;
      this.queue.shift();
      this.queued -= head.bytes.length;
      this.busyUntil = done;
      this.inFlight.push({ ...head, arriveUs: done + this.o.delayUs });
    }
    const out: { bytes: Uint8Array; arriveUs: number }[] = [];
    while (this.inFlight.length > 0 && this.inFlight[0]!.arriveUs <= nowUs) {
      const p = this.inFlight.shift()!;
      this.delivered.push({ sentUs: p.sentUs, arrivedUs: p.arriveUs, size: p.bytes.length });
      out.push(p);
    }
    return out;
  }
}

/** Packets a sender-mode call let go downstream: passed ones and outputs for the media. */
export function downstreamOf(result: { packets: { verdict: string; bytes: Uint8Array }[]; outputs: OutputPacket[] }): Uint8Array[] {
  return [
    ...result.packets.filter((p) => p.verdict === "pass").map((p) => p.bytes),
    ...result.outputs.filter((o) => (o.flags & PacketFlag.Upstream) === 0).map((o) => o.bytes),
  ];
}
