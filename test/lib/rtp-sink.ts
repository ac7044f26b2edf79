// An RTP sink for comparisons: per sequence number, how many copies arrived, their SSRC and a
// digest of their bytes (so a rebuilt packet can be checked against the original without
// keeping it), plus the arrival order. Memory is bounded: at most 65536 sequence numbers, and
// the arrival order up to `maxOrder` entries.
import { createHash } from "node:crypto";
import type { Socket } from "node:dgram";
import { bindUdp } from "./udp.js";

const digest = (b: Uint8Array): string => createHash("sha1").update(b).digest("base64");

interface SeqRecord {
  copies: number;
  ssrc: number;
  digest: string;
  /** A copy arrived whose bytes differ from the first one's. */
  differing: boolean;
}

export class RtpSink {
  /** Datagrams received, RTP or not. */
  received = 0;
  /** Datagrams too short or not version 2. */
  notRtp = 0;
  /** Sequence numbers in arrival order (duplicates included), up to `maxOrder`. */
  readonly order: number[] = [];
  private readonly seqs = new Map<number, SeqRecord>();

  private constructor(readonly socket: Socket, private readonly maxOrder: number) {
    socket.on("message", (msg) => this.take(msg));
  }

  static async open(port = 0, options: { address?: string; maxOrder?: number } = {}): Promise<RtpSink> {
    return new RtpSink(await bindUdp(port, options.address), options.maxOrder ?? 100_000);
  }

  get port(): number {
    return this.socket.address().port;
  }

  private take(msg: Buffer): void {
    this.received++;
    if (msg.length < 12 || msg[0]! >> 6 !== 2) {
      this.notRtp++;
      return;
    }
    const seq = msg.readUInt16BE(2);
    if (this.order.length < this.maxOrder) this.order.push(seq);
    const d = digest(msg);
    const r = this.seqs.get(seq);
    if (r) {
      r.copies++;
      if (r.digest !== d) r.differing = true;
    } else {
      this.seqs.set(seq, { copies: 1, ssrc: msg.readUInt32BE(8), digest: d, differing: false });
    }
  }

  /** Copies of `seq` received. */
  copies(seq: number): number {
    return this.seqs.get(seq)?.copies ?? 0;
  }

  /** SSRC of the first copy of `seq`, or undefined. */
  ssrc(seq: number): number | undefined {
    return this.seqs.get(seq)?.ssrc;
  }

  /** Whether every copy of `seq` that arrived is byte for byte `expected` (false if none arrived). */
  identical(seq: number, expected: Uint8Array): boolean {
    const r = this.seqs.get(seq);
    return r !== undefined && !r.differing && r.digest === digest(expected);
  }

  /** Distinct sequence numbers received. */
  get distinct(): number {
    return this.seqs.size;
  }

  close(): void {
    this.socket.close();
  }
}
