// Sends the lab's test stream (rtp-stream.ts) and exits: run inside a namespace by
// test/lib/ns-rtp.ts. Paced at --rate packets/s, --count packets, bounded in time (the pacer's
// bound). Prints one JSON line: { "sent": N, "ms": T }.
// usage: rtp-send.js --address A --port P --count N --rate R [format flags, rtp-stream.ts]
import { bindUdp, sendPaced } from "../udp.js";
import { FORMAT_FLAGS, formatFromFlags, parseFlags, streamPacket } from "./rtp-stream.js";

const flags = parseFlags(process.argv.slice(2), ["address", "port", "count", "rate", ...FORMAT_FLAGS]);
const format = formatFromFlags(flags);
const address = flags.get("address");
const [port, count, rate] = ["port", "count", "rate"].map((k) => Number(flags.get(k)));
if (!address || !(port! > 0 && port! < 65536) || !(count! > 0) || !(rate! > 0)) {
  throw new TypeError("needs --address, --port (1-65535), --count (> 0) and --rate (> 0)");
}

const socket = await bindUdp(0, address.includes(":") ? "::" : "0.0.0.0");
const started = Date.now();
await sendPaced(socket, port!, address, count!, rate!, (i) => streamPacket(i, format));
// the last sends may still be queued in the socket: let them out before closing
for (let waited = 0; socket.getSendQueueCount() > 0 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
console.log(JSON.stringify({ sent: count, ms: Date.now() - started }));
socket.close();
