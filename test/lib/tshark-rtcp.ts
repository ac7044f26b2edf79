// Decodes RTCP compounds with tshark (Wireshark's dissectors: a decoder we did not write): the
// compounds go into a pcap file as UDP datagrams to a port tshark is told carries RTCP, and its
// PDML output is read back one RTCP packet at a time, with every expert warning it raised.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { peer, runsOk } from "./peers.js";

export const tshark = peer("tshark", "Debian package tshark", () => runsOk("tshark", ["--version"]));

/** One RTCP (or RTP) packet as tshark dissected it: its fields in order, name and shown value. */
export interface TsharkRtcpPacket {
  fields: [string, string][];
  /** The values of every field called `name`, in order. */
  all(name: string): string[];
  /** The only value of field `name` (throws if it is absent or repeated). */
  one(name: string): string;
}

export interface TsharkDecoding {
  /** Per compound (pcap frame), its RTCP packets. */
  frames: TsharkRtcpPacket[][];
  /** Expert-info messages and malformed markers anywhere in the decoding. */
  problems: string[];
}

const PORT = 5005;

/** A pcap (Ethernet, IPv4, UDP to PORT) holding one datagram per payload. */
function pcap(payloads: readonly Uint8Array[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const records = payloads.map((p, i) => {
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(0x0800, 12);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 8 + p.length, 2);
    ip[8] = 64;
    ip[9] = 17;
    ip.writeUInt32BE(0x7f000001, 12);
    ip.writeUInt32BE(0x7f000001, 16);
    let sum = 0;
    for (let k = 0; k < 20; k += 2) sum += ip.readUInt16BE(k);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    ip.writeUInt16BE(~sum & 0xffff, 10);
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(40000, 0);
    udp.writeUInt16BE(PORT, 2);
    udp.writeUInt16BE(8 + p.length, 4);
    const frame = Buffer.concat([eth, ip, udp, p]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000 + i, 0);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    return Buffer.concat([rec, frame]);
  });
  return Buffer.concat([header, ...records]);
}

const unescape = (s: string): string =>
  s.replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&apos;/g, "'").replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16))).replace(/&amp;/g, "&");

function packet(fields: [string, string][]): TsharkRtcpPacket {
  const all = (name: string): string[] => fields.filter(([n]) => n === name).map(([, v]) => v);
  return {
    fields,
    all,
    one: (name) => {
      const v = all(name);
      if (v.length !== 1) throw new Error(`tshark shows field ${name} ${v.length} times in ${JSON.stringify(fields)}`);
      return v[0]!;
    },
  };
}

/** Decodes `compounds` with tshark. */
export const tsharkRtcp = (compounds: readonly Uint8Array[]): Promise<TsharkDecoding> => tsharkDecode(compounds, "rtcp");

/** Decodes `datagrams` with tshark as `protocol` (its RTP or RTCP dissector): per frame, that protocol's layers. */
export async function tsharkDecode(datagrams: readonly Uint8Array[], protocol: "rtp" | "rtcp"): Promise<TsharkDecoding> {
  const dir = await mkdtemp(join(tmpdir(), "msm-tshark-"));
  try {
    const file = join(dir, `${protocol}.pcap`);
    await writeFile(file, pcap(datagrams));
    const { stdout } = await promisify(execFile)("tshark", ["-r", file, "-d", `udp.port==${PORT},${protocol}`, "-T", "pdml"], { maxBuffer: 64 << 20, timeout: 60_000 });
    const problems = [...stdout.matchAll(/<field name="(_ws\.expert\.message|_ws\.malformed[^"]*)"[^>]*show="([^"]*)"/g)].map((m) => `${m[1]}: ${unescape(m[2]!)}`);
    const frames = [...stdout.matchAll(/<packet>([\s\S]*?)<\/packet>/g)].map((frame) =>
      [...frame[1]!.matchAll(new RegExp(`<proto name="${protocol}"[\\s\\S]*?<\\/proto>`, "g"))].map((proto) =>
        packet([...proto[0].matchAll(/<field name="([^"]+)"[^>]*?show="([^"]*)"/g)].map((m): [string, string] => [m[1]!, unescape(m[2]!)])),
      ),
    );
    return { frames, problems };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
