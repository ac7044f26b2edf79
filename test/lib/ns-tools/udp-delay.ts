// A fixed delay on one UDP flow, for a kernel without tc netem: every datagram that arrives on
// --port leaves for --to after --delay-ms, in arrival order. Runs inside a namespace (one end of
// the longer path of a dual-path test). Prints "ready" once bound; on SIGTERM or a "stop" line,
// `report {JSON}` with what it forwarded, its socket's kernel drops and how many datagrams it may
// have delayed by more than --delay-ms + LATE_MS (a busy machine stalls it too), and exits.
// usage: udp-delay.js --port P --to ADDRESS:PORT --delay-ms D [--address A]
import { createInterface } from "node:readline";
import { DropWatch } from "../kernel-drops.js";
import { bindUdp } from "../udp.js";
import { parseFlags } from "./rtp-stream.js";

export interface DelayReport {
  readonly received: number;
  readonly forwarded: number;
  readonly kernelDrops: number;
  /** Datagrams sent more than LATE_MS after their due time, or read right after a stall of the loop (they may have waited that long in the kernel). */
  readonly late: number;
  /** Their RTP sequence numbers (the first 100,000). */
  readonly lateSeqs: readonly number[];
}

/** Lateness this tool owns up to: a dual-path test's margin is larger. */
const LATE_MS = 5;

const flags = parseFlags(process.argv.slice(2), ["port", "to", "delay-ms", "address"]);
const port = Number(flags.get("port"));
const delayMs = Number(flags.get("delay-ms"));
const to = /^(.+):(\d+)$/.exec(flags.get("to") ?? "");
if (!(port > 0 && port < 65536) || !to || !(delayMs >= 0 && delayMs <= 10_000)) {
  throw new TypeError("needs --port (1-65535), --to ADDRESS:PORT and --delay-ms (0-10000)");
}
const [toAddress, toPort] = [to[1]!.replace(/^\[|\]$/g, ""), Number(to[2])];
const socket = await bindUdp(port, flags.get("address") ?? "0.0.0.0");
const kernel = new DropWatch([port]);
let received = 0;
let forwarded = 0;
let late = 0;
const lateSeqs: number[] = [];
function markLate(packet: Buffer): void {
  late++;
  if (lateSeqs.length < 100_000 && packet.length >= 4) lateSeqs.push(packet.readUInt16BE(2));
}
// The loop's stalls, seen from a 1 ms tick: after one, the loop runs its timers before it reads,
// so the datagrams read within a tick of it may have waited as long in the kernel (node:dgram
// gives no receive time).
let tick = performance.now();
let stallSeenAt = -Infinity;
setInterval(() => {
  const now = performance.now();
  if (now - tick > LATE_MS) stallSeenAt = now;
  tick = now;
}, 1).unref();
// a queue in arrival order; one timer for its head keeps the order whatever the timers' jitter
const queue: { due: number; packet: Buffer; late: boolean }[] = [];
let timer: NodeJS.Timeout | undefined;
function drain(): void {
  timer = undefined;
  while (queue.length > 0 && queue[0]!.due <= performance.now()) {
    const head = queue.shift()!;
    // the clock read per packet, and again when the send is done: descheduled in the middle of
    // this loop, or before the send left, the rest went out later than one reading shows
    if (performance.now() - head.due > LATE_MS && !head.late) {
      head.late = true;
      markLate(head.packet);
    }
    socket.send(head.packet, toPort, toAddress, () => {
      if (performance.now() - head.due > LATE_MS && !head.late) {
        head.late = true;
        markLate(head.packet);
      }
    });
    forwarded++;
  }
  if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - performance.now());
}
socket.on("message", (packet: Buffer) => {
  received++;
  const now = performance.now();
  const stalled = now - stallSeenAt < 2 || now - tick > LATE_MS;
  if (stalled) markLate(packet);
  queue.push({ due: now + delayMs, packet, late: stalled });
  timer ??= setTimeout(drain, delayMs);
});
console.log("ready");

let stopped = false;
function stop(): void {
  if (stopped) return;
  stopped = true;
  const report: DelayReport = { received, forwarded, kernelDrops: kernel.since().total, late, lateSeqs };
  console.log(`report ${JSON.stringify(report)}`);
  socket.close();
  process.exit(0);
}
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "stop") stop();
});
