// Cross traffic that comes in bursts: the lab's test stream (rtp-stream.ts), --count packets sent
// --burst at a time, each burst after a pause drawn uniformly from --gap-ms MIN-MAX (seeded, so a
// run can be replayed). Through a rate-limited link (a tbf queue) each burst fills the queue for a
// while, and packets of other flows that come meanwhile wait behind it: queueing delay that varies,
// the jitter a congested link adds. Run inside a namespace; bounded in time (the bursts' pauses at
// their longest, + 5 s). Prints one JSON line: { "sent": N, "ms": T }.
// usage: rtp-bursts.js --address A --port P --count N --burst B --gap-ms MIN-MAX [--seed S] [format flags, rtp-stream.ts]
import { rng } from "../random.js";
import { bindUdp, sleep } from "../udp.js";
import { FORMAT_FLAGS, formatFromFlags, parseFlags, streamPacket } from "./rtp-stream.js";

const flags = parseFlags(process.argv.slice(2), ["address", "port", "count", "burst", "gap-ms", "seed", ...FORMAT_FLAGS]);
const format = formatFromFlags(flags);
const address = flags.get("address");
const [port, count, burst] = ["port", "count", "burst"].map((k) => Number(flags.get(k)));
const gap = /^(\d+)-(\d+)$/.exec(flags.get("gap-ms") ?? "");
const [minGap, maxGap] = gap ? [Number(gap[1]), Number(gap[2])] : [NaN, NaN];
if (!address || !(port! > 0 && port! < 65536) || !(count! > 0) || !(burst! > 0) || !(minGap <= maxGap)) {
  throw new TypeError("needs --address, --port (1-65535), --count (> 0), --burst (> 0) and --gap-ms MIN-MAX");
}

const random = rng(Number(flags.get("seed") ?? 1));
const socket = await bindUdp(0, address.includes(":") ? "::" : "0.0.0.0");
const started = Date.now();
const deadline = started + Math.ceil(count! / burst!) * maxGap + 5000;
let sent = 0;
while (sent < count!) {
  if (Date.now() > deadline) throw new Error(`bursts overran their time bound (${sent}/${count} sent)`);
  for (const end = Math.min(count!, sent + burst!); sent < end;) socket.send(streamPacket(sent++, format), port!, address);
  await sleep(minGap + random() * (maxGap - minGap));
}
for (let waited = 0; socket.getSendQueueCount() > 0 && waited < 5000; waited += 10) await sleep(10);
console.log(JSON.stringify({ sent, ms: Date.now() - started }));
socket.close();
