// A deterministic RTP media stream for FEC tests: what SMPTE 2022-1 encoders need (GStreamer's
// refuses anything else and stops: SSRC 0, consecutive sequence numbers) and what exercises
// recovery: payload lengths from 16 to 1300 bytes (length recovery, zero-padding of short
// payloads in the XOR), a marker on every third packet, a distinct timestamp per packet (so a FEC
// packet's timestamp tells which media packet it went out with).
// Packet i is a pure function of (i, seq0), so a rebuilt packet can be checked byte for byte.
// No CSRCs, header extension or padding: 2022-1 encoders protect the payload only.
import type { Socket } from "node:dgram";
import { sendPaced } from "./udp.js";

/** The media payload type (MP2T, what 2022-1 usually carries); GStreamer's FEC packets default to 96. */
export const MEDIA_PT = 33;

export interface StreamSpec {
  /** Sequence number of packet 0 (pick one near 65535 to cross the wrap). */
  readonly seq0: number;
  readonly count: number;
}

/** RTP packet `i` of the stream; its payload starts with the u32 index. */
export function streamPacket(i: number, seq0: number): Buffer {
  const payload = 16 + ((i * 389) % 1285);
  const b = Buffer.alloc(12 + payload);
  b[0] = 0x80;
  b[1] = MEDIA_PT | (i % 3 === 2 ? 0x80 : 0);
  b.writeUInt16BE((seq0 + i) & 0xffff, 2);
  b.writeUInt32BE((1000 + i * 1500) >>> 0, 4);
  b.writeUInt32BE(0, 8); // SSRC 0
  b.writeUInt32BE(i >>> 0, 12);
  for (let k = 16; k < b.length; k++) b[k] = (k * 131 + i * 7) & 0xff;
  return b;
}

/** The index of the packet with sequence number `seq` (streams shorter than 65536 packets). */
export const streamIndex = (seq: number, seq0: number): number => (seq - seq0) & 0xffff;

/** The sequence number of packet `i`. */
export const streamSeq = (i: number, seq0: number): number => (seq0 + i) & 0xffff;

/** Sends the stream to 127.0.0.1:`port` at `rate` packets/s (bounded: see sendPaced). */
export function sendStream(socket: Socket, port: number, spec: StreamSpec, rate: number): Promise<number> {
  return sendPaced(socket, port, "127.0.0.1", spec.count, rate, (i) => streamPacket(i, spec.seq0));
}
