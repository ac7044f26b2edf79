// Sends the lab's test stream (rtp-stream.ts) at rates that change in steps, ignoring any
// feedback: an origin that overloads a path for a while, then calms down. Run inside a namespace
// by test/congestion-breaker.test.ts. --steps "540:6,90:3" sends 540 packets/s for 6 s, then 90 packets/s for
// 3 s; the packet index (and so the sequence number) runs on across steps. Each step is bounded
// in time (its pacer's bound). Prints "step K at T" (ms since the start) as each step begins, then
// one JSON line: { "sent": N, "ms": T, "steps": [{ "first": index, "sent": N, "atMs": T }] }.
// usage: cc-rate-steps.js --address A --port P --steps RATE:SECONDS[,...] [format flags]
import { bindUdp, sendPaced } from "../udp.js";
import { FORMAT_FLAGS, formatFromFlags, parseFlags, streamPacket } from "./rtp-stream.js";

const flags = parseFlags(process.argv.slice(2), ["address", "port", "steps", ...FORMAT_FLAGS]);
const format = formatFromFlags(flags);
const address = flags.get("address");
const port = Number(flags.get("port"));
const steps = (flags.get("steps") ?? "").split(",").map((s) => s.split(":").map(Number));
if (!address || !(port > 0 && port < 65536)) throw new TypeError("needs --address and --port (1-65535)");
if (steps.length === 0 || steps.some((s) => s.length !== 2 || !(s[0]! > 0) || !(s[1]! > 0) || s[1]! > 60)) {
  throw new TypeError(`--steps: RATE:SECONDS[,...], each rate > 0 packets/s and 0 < seconds <= 60, got '${flags.get("steps")}'`);
}

const socket = await bindUdp(0, address.includes(":") ? "::" : "0.0.0.0");
const started = Date.now();
const done: { first: number; sent: number; atMs: number }[] = [];
let first = 0;
for (const [k, [rate, seconds]] of steps.entries()) {
  const count = Math.round(rate! * seconds!);
  const atMs = Date.now() - started;
  console.log(`step ${k} at ${atMs}`);
  const base = first;
  await sendPaced(socket, port, address, count, rate!, (i) => streamPacket(base + i, format));
  done.push({ first, sent: count, atMs });
  first += count;
}
for (let waited = 0; socket.getSendQueueCount() > 0 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
console.log(JSON.stringify({ sent: first, ms: Date.now() - started, steps: done }));
socket.close();
