// Wireshark's view of an RTP stream, as a referee for the proxy's own figures: a capture taken by
// dumpcap on one interface of a lab's namespace, then one pass of tshark over the file for its RTP
// stream analysis (`-z rtp,streams`: per stream its packets, Lost, and the RFC 3550 A.8 jitter's
// mean and maximum) and the stream's packets one by one (arrival time, sequence number, RTP
// timestamp), from which the A.8 estimate after every packet is computed as tshark computes it
// (checked against its mean and maximum), so that it can be read after any one packet. tshark
// knows the clock rate of static payload types only (RFC 3551: 33 MP2T is 90 kHz); for a dynamic
// one it computes no jitter.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { NetnsLab, NsProcess } from "./netns.js";
import { allOf, peer, runsOk } from "./peers.js";

const execFileAsync = promisify(execFile);

export const tsharkPeer = allOf(
  peer("tshark", "Debian package tshark", () => runsOk("tshark", ["--version"])),
  peer("dumpcap", "Debian package tshark (its dependency wireshark-common)", () => runsOk("dumpcap", ["--version"])),
);

export interface CaptureResult {
  readonly file: string;
  /** What dumpcap says it captured, and what the kernel or dumpcap dropped before it was written (its own count). */
  readonly captured: number;
  readonly dropped: number;
}

export interface Capture {
  readonly process: NsProcess;
  /** Ends the capture (SIGINT: dumpcap writes what it holds) and reads its counts. */
  stop(): Promise<CaptureResult>;
}

/** Starts dumpcap on `dev` in `role`'s namespace with a capture `filter` (BPF), writing to `file`; resolves once it captures. */
export async function startCapture(lab: NetnsLab, role: string, opts: { dev: string; filter: string; file: string }): Promise<Capture> {
  // -B: a 64 MiB kernel buffer, so a busy machine delays dumpcap without losing what it captures
  const proc = lab.spawn(role, "dumpcap", ["-i", opts.dev, "-f", opts.filter, "-w", opts.file, "-B", "64", "-q"]);
  await proc.ready(/^File: /m, 20_000);
  return {
    process: proc,
    stop: async () => {
      await proc.stop("SIGINT", 5000);
      const packets = /Packets captured: (\d+)/.exec(proc.stderr());
      const onInterface = /Packets received\/dropped on interface [^:]*: (\d+)\/(\d+)/.exec(proc.stderr());
      if (!packets || !onInterface) throw new Error(`dumpcap in ${role} gave no counts:\n${proc.output().slice(-2000)}`);
      return { file: opts.file, captured: Number(packets[1]), dropped: Number(onInterface[2]) };
    },
  };
}

/** One row of `tshark -z rtp,streams`. Times in ms; jitter -1 where tshark knows no clock rate. */
export interface TsharkRtpStream {
  readonly src: string;
  readonly srcPort: number;
  readonly dst: string;
  readonly dstPort: number;
  readonly ssrc: number;
  readonly payload: string;
  readonly packets: number;
  /** Expected (from the sequence numbers, first to last) - received: negative with duplicates. */
  readonly lost: number;
  readonly maxDeltaMs: number;
  readonly meanJitterMs: number;
  readonly maxJitterMs: number;
  readonly problems: boolean;
}

const ROW = new RegExp(
  String.raw`^\s*[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+0x([0-9A-Fa-f]+)\s+(.+?)\s+(\d+)\s+(-?\d+)\s+\(-?[\d.]+%\)` +
  String.raw`\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*(X?)\s*$`,
);

/** Parses the table `tshark -q -z rtp,streams` prints (Wireshark 3.x and 4.x). */
export function parseRtpStreams(text: string): TsharkRtpStream[] {
  const rows: TsharkRtpStream[] = [];
  for (const line of text.split("\n")) {
    const m = ROW.exec(line);
    if (!m) continue;
    rows.push({
      src: m[1]!, srcPort: Number(m[2]), dst: m[3]!, dstPort: Number(m[4]), ssrc: parseInt(m[5]!, 16), payload: m[6]!,
      packets: Number(m[7]), lost: Number(m[8]), maxDeltaMs: Number(m[11]), meanJitterMs: Number(m[13]), maxJitterMs: Number(m[14]), problems: m[15] === "X",
    });
  }
  return rows;
}

/** One RTP packet of a capture: arrival time (s since the epoch, as the kernel stamped it), sequence number, timestamp. */
export interface RtpArrival {
  readonly atS: number;
  readonly seq: number;
  /** The sequence number extended past its wraps (RFC 3550 A.1's cycles), counting from the first packet's. */
  readonly extSeq: number;
  readonly timestamp: number;
}

/**
 * tshark over a capture once, UDP to `port` decoded as RTP: its RTP stream analysis (`-z
 * rtp,streams`), and every RTP packet's arrival time, sequence number and timestamp, by SSRC, in
 * arrival order (none more than 32767 behind the highest).
 */
export async function readRtp(file: string, port: number): Promise<{ rows: TsharkRtpStream[]; packets: Map<number, RtpArrival[]> }> {
  const { stdout } = await execFileAsync("tshark", [
    "-r", file, "-d", `udp.port==${port},rtp`,
    "-T", "fields", "-e", "rtp.ssrc", "-e", "frame.time_epoch", "-e", "rtp.seq", "-e", "rtp.timestamp", "-z", "rtp,streams",
  ], { maxBuffer: 256 << 20, timeout: 60_000 });
  const rows = parseRtpStreams(stdout);
  if (!/RTP Streams/.test(stdout)) throw new Error(`tshark printed no RTP stream table:\n${stdout.slice(-2000)}`);
  const packets = new Map<number, RtpArrival[]>();
  const highest = new Map<number, number>();
  for (const line of stdout.split("\n")) {
    const f = /^0x([0-9a-f]+)\t([\d.]+)\t(\d+)\t(\d+)$/.exec(line);
    if (!f) continue;
    const [ssrc, atS, seq, timestamp] = [parseInt(f[1]!, 16), Number(f[2]), Number(f[3]), Number(f[4])];
    // the extension nearest the highest so far
    const top = highest.get(ssrc);
    const extSeq = top === undefined ? seq : top + ((((seq - top) & 0xffff) ^ 0x8000) - 0x8000);
    highest.set(ssrc, Math.max(top ?? extSeq, extSeq));
    let list = packets.get(ssrc);
    if (!list) packets.set(ssrc, (list = []));
    list.push({ atS, seq, extSeq, timestamp });
  }
  return { rows, packets };
}

/** Packets missing in the capture among the sequence numbers from its first packet's to `extSeq`: RFC 3550 A.3's loss up to there. */
export function lostUpTo(packets: readonly RtpArrival[], extSeq: number): number {
  if (packets.length === 0) return 0;
  const first = packets[0]!.extSeq;
  return extSeq - first + 1 - packets.filter((p) => p.extSeq <= extSeq).length;
}

/**
 * The RFC 3550 A.8 jitter estimate after each packet, in ms, as tshark's analysis computes it:
 * D = |(arrival - previous arrival) - (timestamp - previous timestamp) / clock rate|, over
 * consecutive packets in arrival order, J += (D - J) / 16, starting at 0.
 */
export function jitterSeries(packets: readonly RtpArrival[], clockRate: number): number[] {
  const series: number[] = [];
  let j = 0;
  for (let i = 0; i < packets.length; i++) {
    if (i > 0) {
      const [p, q] = [packets[i - 1]!, packets[i]!];
      const tsDelta = ((q.timestamp - p.timestamp) | 0) / clockRate; // wraps as 32-bit
      const d = Math.abs((q.atS - p.atS) - tsDelta) * 1000;
      j += (d - j) / 16;
    }
    series.push(j);
  }
  return series;
}

/** One stream of a capture as tshark analyses it, and its figures after any one of its packets. */
export interface StreamAnalysis {
  /** tshark's row (`-z rtp,streams`). */
  readonly row: TsharkRtpStream;
  readonly arrivals: readonly RtpArrival[];
  /** The A.8 estimate after each packet (ms), in arrival order. */
  readonly jitter: readonly number[];
  /** Loss (A.3, from the first packet) and jitter after the packet with extended sequence number `extSeq`; null: not in the capture. */
  after(extSeq: number): { lost: number; jitterMs: number } | null;
  /**
   * The extended sequence numbers of the packets that may be the last one a window ending at
   * `endMs` (wall clock) counted, as this capture timed them: the last captured before
   * `endMs - earlyMs`, and every one captured from then to `endMs + lateMs` (the capture's and the
   * proxy's stamps of one packet differ by microseconds).
   */
  aroundEnd(endMs: number, earlyMs: number, lateMs: number): number[];
}

/**
 * SSRC `ssrc` of UDP to `port` in a capture: tshark's row, and the A.8 series recomputed from its
 * per-packet fields, checked to be tshark's (its mean, over every packet but the first, and its
 * maximum, to the 3 decimals it prints, within one unit of the last) so that figures after one packet are tshark's too.
 */
export async function analyseStream(file: string, port: number, ssrc: number, clockRate: number): Promise<StreamAnalysis> {
  const read = await readRtp(file, port);
  const rows = read.rows.filter((r) => r.ssrc === ssrc >>> 0);
  if (rows.length !== 1) throw new Error(`tshark shows SSRC ${ssrc} ${rows.length} times in ${file}: ${JSON.stringify(rows)}`);
  const row = rows[0]!;
  const arrivals = read.packets.get(ssrc >>> 0) ?? [];
  const jitter = jitterSeries(arrivals, clockRate);
  const mean = jitter.slice(1).reduce((x, y) => x + y, 0) / Math.max(1, jitter.length - 1);
  const max = Math.max(...jitter);
  // to one unit of the 3rd decimal: tshark's own doubles may land on the other side of a rounding
  // boundary (CI: 9.073504 here, 9.073 printed)
  const printed = 0.001 + 1e-9;
  if (arrivals.length !== row.packets || Math.abs(mean - row.meanJitterMs) > printed || Math.abs(max - row.maxJitterMs) > printed) {
    throw new Error(`the A.8 series from tshark's fields is not tshark's: ${arrivals.length} packets, mean ${mean}, max ${max}; tshark: ${JSON.stringify(row)}`);
  }
  const index = new Map(arrivals.map((p, i) => [p.extSeq, i]));
  return {
    row, arrivals, jitter,
    after: (extSeq) => {
      const i = index.get(extSeq);
      return i === undefined ? null : { lost: lostUpTo(arrivals, extSeq), jitterMs: jitter[i]! };
    },
    aroundEnd: (endMs, earlyMs, lateMs) => {
      const out: number[] = [];
      let before = -1;
      arrivals.forEach((p, i) => {
        const ms = p.atS * 1000;
        if (ms < endMs - earlyMs) before = i;
        else if (ms <= endMs + lateMs) out.push(p.extSeq);
      });
      return before >= 0 ? [arrivals[before]!.extSeq, ...out] : out;
    },
  };
}
