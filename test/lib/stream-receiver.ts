// A receiver of the rtp-stream.ts test stream that judges continuity: which stream indices it got,
// in arrival order, and whether each packet's timestamp follows its sequence number. What a
// fan-out test needs to say "a continuous, valid RTP stream from its join on".
import type { Socket } from "node:dgram";
import { streamIndex } from "./rtp-stream.js";
import { bindUdp } from "./udp.js";

export class StreamReceiver {
  readonly indices: number[] = [];
  badTimestamps = 0;
  /** Every SSRC and payload type seen (a translated destination's are its own). */
  readonly ssrcs = new Set<number>();
  readonly payloadTypes = new Set<number>();

  private constructor(readonly socket: Socket, seq0: number) {
    socket.on("message", (m: Buffer) => {
      const i = streamIndex(m.readUInt16BE(2), seq0);
      if (m.readUInt32BE(4) !== ((1000 + i * 1500) >>> 0)) this.badTimestamps++; // rtp-stream.ts's timestamps
      this.indices.push(i);
      this.ssrcs.add(m.readUInt32BE(8));
      this.payloadTypes.add(m[1]! & 0x7f);
    });
  }

  /** A receiver on a port of its own, for the stream whose first sequence number is `seq0`. */
  static async open(seq0: number): Promise<StreamReceiver> {
    return new StreamReceiver(await bindUdp(), seq0);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** First and last index received, and the holes and out-of-order or repeated packets between. */
  continuity(): { first: number; last: number; holes: number; disorder: number } {
    let holes = 0;
    let disorder = 0;
    for (let k = 1; k < this.indices.length; k++) {
      const step = this.indices[k]! - this.indices[k - 1]!;
      if (step > 1) holes += step - 1;
      else if (step < 1) disorder++;
    }
    return { first: this.indices[0] ?? -1, last: this.indices.at(-1) ?? -1, holes, disorder };
  }

  close(): void {
    this.socket.close();
  }
}
