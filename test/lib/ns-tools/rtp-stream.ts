// The test stream of the namespace lab: RTP with a fixed SSRC and consecutive sequence numbers,
// packets of varied lengths whose payload starts with the packet's index (a u32, what
// test/lib/udp.ts Sink counts by) and goes on with bytes derived from the index. A sink can so
// tell a packet that arrived intact from one rebuilt wrong (an FEC decoder's mistake).

export interface StreamFormat {
  readonly ssrc: number;
  /** Sequence number of packet 0; packet i carries (firstSeq + i) mod 2^16. */
  readonly firstSeq: number;
  readonly payloadType: number;
  /** Whole RTP packet, header included: packet sizes spread over [minSize, maxSize]. */
  readonly minSize: number;
  readonly maxSize: number;
}

export const DEFAULT_STREAM: StreamFormat = { ssrc: 0x4d534d31, firstSeq: 40000, payloadType: 96, minSize: 200, maxSize: 1200 };

const HEADER = 12;

export function streamPacketSize(i: number, f: StreamFormat): number {
  const spread = f.maxSize - f.minSize + 1;
  return f.minSize + ((Math.imul(i, 0x9e3779b1) >>> 0) % spread);
}

const fill = (i: number, k: number): number => (i * 131 + k * 7) & 0xff;

export function streamPacket(i: number, f: StreamFormat): Buffer {
  const b = Buffer.alloc(streamPacketSize(i, f));
  b[0] = 0x80;
  b[1] = f.payloadType & 0x7f;
  b.writeUInt16BE((f.firstSeq + i) & 0xffff, 2);
  b.writeUInt32BE((i * 3000) >>> 0, 4);
  b.writeUInt32BE(f.ssrc >>> 0, 8);
  b.writeUInt32BE(i >>> 0, HEADER);
  for (let k = HEADER + 4; k < b.length; k++) b[k] = fill(i, k);
  return b;
}

/** The packet's index if it is packet i of the stream, intact; -1 otherwise. */
export function streamIndex(b: Buffer, f: StreamFormat): number {
  if (b.length < HEADER + 4 || b[0] !== 0x80 || (b[1]! & 0x7f) !== f.payloadType || b.readUInt32BE(8) !== f.ssrc >>> 0) return -1;
  const i = b.readUInt32BE(HEADER);
  if (b.readUInt16BE(2) !== ((f.firstSeq + i) & 0xffff) || b.length !== streamPacketSize(i, f)) return -1;
  for (let k = HEADER + 4; k < b.length; k++) if (b[k] !== fill(i, k)) return -1;
  return i;
}

/** Command-line flags for a format: --ssrc, --first-seq, --pt, --min-size, --max-size. */
export function formatArgs(f: StreamFormat): string[] {
  return ["--ssrc", String(f.ssrc), "--first-seq", String(f.firstSeq), "--pt", String(f.payloadType), "--min-size", String(f.minSize), "--max-size", String(f.maxSize)];
}

/** Reads `--name value` pairs; every flag must be known and given a value. */
export function parseFlags(argv: readonly string[], known: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!.replace(/^--/, "");
    if (!argv[i]!.startsWith("--") || !known.includes(name) || argv[i + 1] === undefined) {
      throw new TypeError(`bad flag '${argv[i]}' (known: ${known.map((k) => `--${k}`).join(" ")}, each with a value)`);
    }
    flags.set(name, argv[i + 1]!);
  }
  return flags;
}

export const FORMAT_FLAGS = ["ssrc", "first-seq", "pt", "min-size", "max-size"];

export function formatFromFlags(flags: Map<string, string>): StreamFormat {
  const num = (name: string, fallback: number): number => {
    const v = flags.get(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new TypeError(`--${name}: a whole number >= 0, got '${v}'`);
    return n;
  };
  const f = {
    ssrc: num("ssrc", DEFAULT_STREAM.ssrc),
    firstSeq: num("first-seq", DEFAULT_STREAM.firstSeq),
    payloadType: num("pt", DEFAULT_STREAM.payloadType),
    minSize: num("min-size", DEFAULT_STREAM.minSize),
    maxSize: num("max-size", DEFAULT_STREAM.maxSize),
  };
  if (f.minSize < HEADER + 4 || f.maxSize < f.minSize || f.maxSize > 65507) throw new TypeError(`sizes: need ${HEADER + 4} <= min-size <= max-size <= 65507`);
  return f;
}
