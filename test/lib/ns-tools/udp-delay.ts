// A fixed delay on one UDP flow, for a kernel without tc netem: every datagram that arrives on
// --port leaves for --to after --delay-ms, in arrival order. Runs inside a namespace (one end of
// the longer path of a dual-path test). Prints "ready" once bound; on SIGTERM or a "stop" line,
// `report {JSON}` with what it forwarded and its socket's kernel drops, and exits.
// usage: udp-delay.js --port P --to ADDRESS:PORT --delay-ms D [--address A]
import { createInterface } from "node:readline";
import { DropWatch } from "../kernel-drops.js";
import { bindUdp } from "../udp.js";
import { parseFlags } from "./rtp-stream.js";

export interface DelayReport {
  readonly received: number;
  readonly forwarded: number;
  readonly kernelDrops: number;
}

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
// a queue in arrival order; one timer for its head keeps the order whatever the timers' jitter
const queue: { due: number; packet: Buffer }[] = [];
let timer: NodeJS.Timeout | undefined;
function drain(): void {
  timer = undefined;
  const now = performance.now();
  while (queue.length > 0 && queue[0]!.due <= now) {
    socket.send(queue.shift()!.packet, toPort, toAddress);
    forwarded++;
  }
  if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - now);
}
socket.on("message", (packet: Buffer) => {
  received++;
  queue.push({ due: performance.now() + delayMs, packet });
  timer ??= setTimeout(drain, delayMs);
});
console.log("ready");

let stopped = false;
function stop(): void {
  if (stopped) return;
  stopped = true;
  const report: DelayReport = { received, forwarded, kernelDrops: kernel.since().total };
  console.log(`report ${JSON.stringify(report)}`);
  socket.close();
  process.exit(0);
}
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "stop") stop();
});
