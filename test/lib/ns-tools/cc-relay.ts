// A propagation delay in both directions, for a kernel without tc netem: the RFC 8867 lab's path
// delay (test/lib/cc-lab.ts). For each of --count ports from --port, datagrams arriving there leave
// for the matching port from --to after --delay-ms, sent from the matching port from --from-port;
// what comes back to a --from-port socket leaves, after the same delay, from the listen socket to
// whoever last sent to it. So proxy A's destination is this relay (its feedback gate admits what
// comes back) and proxy B's sender is this relay's --from-port pair (its RTP and RTCP ports
// adjacent, as a sender's are). Prints "ready"; on a "stop" line or SIGTERM, `report {JSON}`.
// usage: cc-relay.js --port P --count N --to ADDRESS:PORT --from-port Q --delay-ms D
import type { Socket } from "node:dgram";
import { createInterface } from "node:readline";
import { DropWatch } from "../kernel-drops.js";
import { bindUdp } from "../udp.js";
import { parseFlags } from "./rtp-stream.js";

export interface RelayReport {
  readonly forward: number;
  /** Of `forward`, the datagrams that came to the first port (the RTP of the lab's flow). */
  readonly forwardRtp: number;
  /** Datagrams toward B still in the delay line at the stop: never sent on (the lab counts them as lost here). */
  readonly heldAtStop: number;
  readonly back: number;
  /** Datagrams that came back before anyone had sent on that port: nowhere to go. */
  readonly backUnrouted: number;
  readonly kernelDrops: number;
}

/** A fixed delay in arrival order: one timer, for the head of the queue. */
class DelayLine {
  private readonly queue: { due: number; send: () => void }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly delayMs: number) {}

  get length(): number {
    return this.queue.length;
  }

  push(send: () => void): void {
    this.queue.push({ due: performance.now() + this.delayMs, send });
    this.timer ??= setTimeout(() => this.drain(), this.delayMs);
  }

  private drain(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) this.queue.shift()!.send();
    if (this.queue.length > 0) this.timer = setTimeout(() => this.drain(), this.queue[0]!.due - now);
  }
}

const flags = parseFlags(process.argv.slice(2), ["port", "count", "to", "from-port", "delay-ms"]);
const [port, count, fromPort, delayMs] = ["port", "count", "from-port", "delay-ms"].map((k) => Number(flags.get(k))) as [number, number, number, number];
const to = /^(.+):(\d+)$/.exec(flags.get("to") ?? "");
if (!(port > 0) || !(count >= 1 && count <= 8) || !(fromPort > 0) || !to || !(delayMs >= 0 && delayMs <= 10_000)) {
  throw new TypeError("needs --port, --count (1-8), --to ADDRESS:PORT, --from-port and --delay-ms (0-10000)");
}
const [toAddress, toPort] = [to[1]!, Number(to[2])];
const forwardLine = new DelayLine(delayMs);
const backLine = new DelayLine(delayMs);
let forward = 0;
let forwardRtp = 0;
let back = 0;
let backUnrouted = 0;

const pairs: { near: Socket; far: Socket; lastSender?: { address: string; port: number } }[] = [];
for (let i = 0; i < count; i++) {
  const pair: (typeof pairs)[number] = { near: await bindUdp(port + i, "0.0.0.0"), far: await bindUdp(fromPort + i, "0.0.0.0") };
  pair.near.on("message", (b: Buffer, from) => {
    pair.lastSender = { address: from.address, port: from.port };
    forward++;
    if (i === 0) forwardRtp++;
    forwardLine.push(() => pair.far.send(b, toPort + i, toAddress));
  });
  pair.far.on("message", (b: Buffer) => {
    const sender = pair.lastSender;
    if (!sender) {
      backUnrouted++;
      return;
    }
    back++;
    backLine.push(() => pair.near.send(b, sender.port, sender.address));
  });
  pairs.push(pair);
}
const ports = pairs.flatMap((_, i) => [port + i, fromPort + i]);
const kernel = new DropWatch(ports);
console.log("ready");

let stopped = false;
function stop(): void {
  if (stopped) return;
  stopped = true;
  const report: RelayReport = {
    forward, forwardRtp, heldAtStop: forwardLine.length, back, backUnrouted, kernelDrops: kernel.since().total,
  };
  console.log(`report ${JSON.stringify(report)}`);
  for (const p of pairs) {
    p.near.close();
    p.far.close();
  }
  process.exit(0);
}
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "stop") stop();
});
