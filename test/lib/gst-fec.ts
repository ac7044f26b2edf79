// GStreamer's SMPTE 2022-1 FEC elements (rtpst2022-1-fecenc / -fecdec, gst-plugins-good >= 1.20)
// as peers on 127.0.0.1, each a gst-launch-1.0 child process:
//
//   encoder: udpsrc(input) ! fecenc ! udpsink(media P); fecenc.fec_0 (column) ! udpsink(P+2);
//            fecenc.fec_1 (row) ! udpsink(P+4)
//   decoder: udpsrc(P) ! fecdec.sink; udpsrc(P+2) ! fecdec.fec_0; udpsrc(P+4) ! fecdec.fec_1;
//            fecdec ! udpsink(output)
//
// What they do and need (measured; /work/notes/gst-fec.md): the encoder stops for good (exit 1,
// "consecutive sequence numbers are required" / "SSRC == 0") at the first input packet whose
// SSRC is not 0 or whose sequence number does not follow the previous one, so a packet the kernel
// drops at its input ends it. Its first input packet starts the first matrix; a column's FEC
// packet goes out with media packet (matrix start + L*D + column*D), so the last matrix's
// columns go out only if L*D more packets follow. The decoder tells row from column by the
// header's D bit (not by pad), learns L and D from the first FEC packets, pushes a rebuilt packet
// at once (out of order), never de-duplicates (a packet rebuilt before the original arrives is
// passed twice), writes SSRC 0 into what it rebuilds, and counts nothing: recoveries() reads
// its debug log ("Recovered buffer through row|column FEC with seqnum N").
//
// Readiness: gst-launch prints "Setting pipeline to PLAYING" once every element reached PAUSED,
// and udpsrc binds its socket before that (NULL -> READY); the helper also checks that each
// port is bound. From then on the kernel queues what arrives (8 MB receive buffers).
import { Child } from "./child.js";
import { legPorts, freeLegBase, LEGS, type LegPorts } from "./fec-wire.js";
import { udpPortBound } from "./kernel-drops.js";
import { peer, runsOk, type Peer } from "./peers.js";
import { freePortPair, sleep } from "./udp.js";

export const GST_FEC: Peer = peer(
  "GStreamer with rtpst2022-1-fecenc/fecdec",
  "Debian packages gstreamer1.0-tools, gstreamer1.0-plugins-good (GStreamer 1.20 or later)",
  () => runsOk("gst-launch-1.0", ["--version"]) &&
    ["rtpst2022-1-fecenc", "rtpst2022-1-fecdec", "udpsrc", "udpsink"].every((e) => runsOk("gst-inspect-1.0", ["--exists", e])),
);

/** L columns x D rows; without row FEC it is 1-D (column FEC only, ST 2022-1 level A). */
export interface GstFecShape {
  readonly columns: number;
  readonly rows: number;
  readonly rowFec: boolean;
}

/** Starting a pipeline on a busy machine: process start, plugin loading, state changes. */
const START_MS = 15_000;
/** A pipeline lives at most this long, whatever the test does. */
const LIFE_MS = 300_000;
const RECEIVE_BUFFER = 8 << 20;
const LO = "127.0.0.1";

const udpsrc = (port: number): string[] =>
  ["udpsrc", `address=${LO}`, `port=${port}`, "reuse=false", `buffer-size=${RECEIVE_BUFFER}`, "caps=application/x-rtp"];
const udpsink = (port: number): string[] => ["udpsink", `host=${LO}`, `port=${port}`, "sync=false", "async=false"];

/** One gst-launch-1.0 pipeline: started, waited for, checked, stopped. */
export class GstPipeline {
  private constructor(readonly child: Child, readonly listens: readonly number[]) {}

  /** Starts `pipeline` and waits until it plays with its `listens` ports bound; throws with its log otherwise. `debug`: GST_DEBUG. */
  static async start(pipeline: readonly string[], listens: readonly number[], debug = "*:1,rtpst2022-1-fecdec:5"): Promise<GstPipeline> {
    const child = new Child("gst-launch-1.0", ["--no-fault", ...pipeline], {
      limitMs: LIFE_MS,
      env: { GST_DEBUG: debug, GST_DEBUG_NO_COLOR: "1" },
    });
    const p = new GstPipeline(child, listens);
    const deadline = Date.now() + START_MS;
    while (!(child.stdout.includes("Setting pipeline to PLAYING") && listens.every((p) => udpPortBound(p)))) {
      if (child.exit) throw new Error(`GStreamer pipeline did not start:\n${child.describe()}`);
      if (Date.now() > deadline) {
        await child.stop("SIGKILL");
        throw new Error(`GStreamer pipeline not playing within ${START_MS} ms:\n${child.describe()}`);
      }
      await sleep(20);
    }
    return p;
  }

  /** Throws with the pipeline's log if it has stopped (the encoder stops on a gap or a non-zero SSRC). */
  assertRunning(): void {
    if (this.child.exit) throw new Error(`GStreamer pipeline stopped:\n${this.child.describe()}`);
  }

  /** SIGINT (gst-launch stops the pipeline), SIGKILL after 3 s; safe to call twice. */
  async stop(): Promise<void> {
    await this.child.stop("SIGINT", 3000);
  }
}

/** Whether a pipeline failed because a port was taken meanwhile (worth another port). */
const portTaken = (err: unknown): boolean => /Address already in use|Could not get\/set settings from\/on resource/i.test(String(err));

/** Starts `make(port)` on a fresh free port until one is not taken meanwhile (3 tries). */
async function onFreePort<P, T>(pick: () => Promise<P>, make: (port: P) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await make(await pick());
    } catch (err) {
      if (attempt >= 3 || !portTaken(err)) throw err;
    }
  }
}

export interface GstFecEncoder {
  /** The pipeline, for assertRunning() and stop(). */
  readonly pipeline: GstPipeline;
  /** Where it takes RTP (SSRC 0, consecutive sequence numbers). */
  readonly input: number;
  readonly target: LegPorts;
}

/**
 * Starts an encoder that takes RTP on `input` (a free port if not given) and sends media, column
 * and row FEC to `target` (P, P+2, P+4). `pt`: the FEC packets' payload type (GStreamer: 96).
 */
export async function startGstFecEncoder(o: { shape: GstFecShape; target: LegPorts; input?: number; pt?: number }): Promise<GstFecEncoder> {
  const make = async (input: number): Promise<GstFecEncoder> => {
    const pipeline = await GstPipeline.start([
      ...udpsrc(input), "!",
      "rtpst2022-1-fecenc", "name=enc", `columns=${o.shape.columns}`, `rows=${o.shape.rows}`,
      "enable-column-fec=true", `enable-row-fec=${o.shape.rowFec}`, `pt=${o.pt ?? 96}`, "!",
      ...udpsink(o.target.media),
      "enc.fec_0", "!", ...udpsink(o.target.column),
      "enc.fec_1", "!", ...udpsink(o.target.row),
    ], [input]);
    return { pipeline, input, target: o.target };
  };
  return o.input === undefined ? onFreePort(() => freePortPair(), make) : make(o.input);
}

/** One packet the decoder rebuilt, from its log. */
export interface GstRecovery {
  readonly seq: number;
  readonly via: "row" | "column";
}

export interface GstFecDecoder {
  readonly pipeline: GstPipeline;
  /** Where it listens: media P, column FEC P+2, row FEC P+4. */
  readonly listen: LegPorts;
  readonly output: number;
  /** What it rebuilt so far, in order (a packet rebuilt before its original arrived is listed too). */
  recoveries(): GstRecovery[];
}

/**
 * Starts a decoder listening on `listen` (a free P, P+2, P+4 if not given) that sends media, the
 * rebuilt packets included, to 127.0.0.1:`output`. `sizeTimeMs` (GStreamer's size-time,
 * default here 5000): how long it keeps media and FEC packets for recovery, by arrival time;
 * a column FEC packet comes up to 2*L*D packets after the first packet of its matrix.
 */
export async function startGstFecDecoder(o: { output: number; listen?: LegPorts; sizeTimeMs?: number }): Promise<GstFecDecoder> {
  const make = async (base: LegPorts): Promise<GstFecDecoder> => {
    const pipeline = await GstPipeline.start([
      "rtpst2022-1-fecdec", "name=dec", `size-time=${BigInt(o.sizeTimeMs ?? 5000) * 1_000_000n}`, "!", ...udpsink(o.output),
      ...udpsrc(base.media), "!", "dec.sink",
      ...udpsrc(base.column), "!", "dec.fec_0",
      ...udpsrc(base.row), "!", "dec.fec_1",
    ], LEGS.map((leg) => base[leg]));
    const recoveries = (): GstRecovery[] =>
      [...pipeline.child.stderr.matchAll(/Recovered buffer through (row|column) FEC with seqnum (\d+)/g)]
        .map((m) => ({ seq: Number(m[2]), via: m[1] as "row" | "column" }));
    return { pipeline, listen: base, output: o.output, recoveries };
  };
  return o.listen === undefined ? onFreePort(async () => legPorts(await freeLegBase()), make) : make(o.listen);
}
