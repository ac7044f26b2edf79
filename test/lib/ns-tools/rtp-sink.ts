// Receives the lab's test stream (rtp-stream.ts) inside a namespace and, when told to stop (a
// "stop" line on stdin, or SIGTERM), prints one line `report {JSON}`: what arrived, what is
// missing and in which bursts, duplicates, packets that were not the stream's or not intact, and
// its socket's kernel drops (/proc/net/udp of its own namespace). Prints "ready" once bound and
// "received N" every 100 ms while packets come.
// usage: rtp-sink.js --port P --count N [--address A] [format flags, rtp-stream.ts]
import { createInterface } from "node:readline";
import { DropWatch } from "../kernel-drops.js";
import { Sink } from "../udp.js";
import { FORMAT_FLAGS, formatFromFlags, parseFlags, streamIndex } from "./rtp-stream.js";

export interface SinkReport {
  /** Datagrams received, whatever they were. */
  readonly received: number;
  /** Packets 0..count-1 that never arrived. */
  readonly missing: number;
  readonly duplicates: number;
  /** Packets that arrived after a later packet of the stream (out of order). */
  readonly reordered: number;
  /** Their RTP sequence numbers (the first 100,000), but for those before the first packet that arrived. */
  readonly reorderedSeqs: readonly number[];
  /** The highest packet index received (-1: none). */
  readonly highest: number;
  /** The index of the first packet that arrived (-1: none). */
  readonly first: number;
  /** The lowest packet index received (-1: none): every packet before it is missing. */
  readonly lowest: number;
  /** Datagrams that were not an intact packet of the stream (wrong SSRC, sequence, length or bytes). */
  readonly corrupt: number;
  /** Runs of consecutive missing packets: how many, their mean and longest length, and how many of each length. */
  readonly bursts: { readonly count: number; readonly mean: number; readonly max: number; readonly lengths: Record<number, number> };
  /** Datagrams the kernel dropped on the sink's socket (its receive queue was full). */
  readonly kernelDrops: number;
}

const flags = parseFlags(process.argv.slice(2), ["port", "count", "address", ...FORMAT_FLAGS]);
const format = formatFromFlags(flags);
const port = Number(flags.get("port"));
const count = Number(flags.get("count"));
if (!(port > 0 && port < 65536) || !(count > 0)) throw new TypeError("needs --port (1-65535) and --count (> 0)");

let corrupt = 0;
let reordered = 0;
const reorderedSeqs: number[] = [];
let highest = -1;
let first = -1;
let lowest = -1;
const sink = await Sink.open(port, {
  address: flags.get("address") ?? "0.0.0.0",
  keyOf: (b) => {
    const i = streamIndex(b, format);
    if (i >= 0 && (lowest < 0 || i < lowest)) lowest = i;
    if (i < 0) corrupt++;
    else if (first < 0) first = highest = i;
    else if (i < highest) {
      reordered++;
      if (i > first && reorderedSeqs.length < 100_000) reorderedSeqs.push(b.readUInt16BE(2));
    }
    else highest = i;
    return i;
  },
});
const kernel = new DropWatch([port]);
console.log("ready");

let shown = 0;
const progress = setInterval(() => {
  if (sink.received === shown) return;
  shown = sink.received;
  console.log(`received ${shown}`);
}, 100);

function bursts(): SinkReport["bursts"] {
  const lengths: Record<number, number> = {};
  let run = 0;
  let runs = 0;
  let total = 0;
  let max = 0;
  for (let i = 0; i <= count; i++) {
    if (i < count && !sink.keys.has(i)) {
      run++;
      continue;
    }
    if (run === 0) continue;
    lengths[run] = (lengths[run] ?? 0) + 1;
    runs++;
    total += run;
    max = Math.max(max, run);
    run = 0;
  }
  return { count: runs, mean: runs > 0 ? total / runs : 0, max, lengths };
}

let stopped = false;
function stop(): void {
  if (stopped) return;
  stopped = true;
  clearInterval(progress);
  const { missing, duplicates } = sink.tally(count);
  const report: SinkReport = { received: sink.received, missing, duplicates, reordered, reorderedSeqs, highest, first, lowest, corrupt, bursts: bursts(), kernelDrops: kernel.since().total };
  console.log(`report ${JSON.stringify(report)}`);
  sink.close();
  process.exit(0);
}
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "stop") stop();
});
