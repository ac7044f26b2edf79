// The batched-I/O addon sends a fan-out's unconnected IPv4 datagrams with DF set (runtime/native/
// msm_udp.c, send_unfragmented), which spares the kernel an IP ID per datagram. A datagram larger
// than the link's MTU must still leave, fragmented, as it did without DF: checked in a network
// namespace of its own whose loopback has a 1,400-byte MTU (needs root and iproute2).
import * as assert from "uvu/assert";
import { fileURLToPath } from "node:url";
import { ADDON_CHILD_PRELUDE } from "./lib/addon-child.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";

const test = suite("batched-io: DF on unconnected IPv4 sends");
const BATCHED_IO = fileURLToPath(new URL("../runtime/dataplane/batched-io.js", import.meta.url));
const MTU = 1400;

// Runs in the namespace: one send call of a datagram that fits the MTU and one that does not, from
// an attached send-only socket to its peer 0; prints what arrived and the namespace's IP counters.
const CHILD = `${ADDON_CHILD_PRELUDE}
const fragOks = () => {
  const lines = readFileSync("/proc/net/snmp", "utf8").split("\\n").filter((l) => l.startsWith("Ip:"));
  const names = lines[0].split(/\\s+/), values = lines[1].split(/\\s+/);
  return Number(values[names.indexOf("FragOKs")]);
};
addon.setPeer(port, 0, "127.0.0.1", rx.address().port);
const memory = new Uint8Array(4000).fill(7);
const before = fragOks();
const accepted = addon.send(port, memory, new Int32Array([0, 1200, 0, 0, 3000, 0]), 2);
const outcome = Array.from(result);
await new Promise((r) => setTimeout(r, 300));
console.log(JSON.stringify({ accepted, outcome, lengths, fragmented: fragOks() - before }));
addon.close(port);
rx.close();
tx.close();
`;

peerTest(test, netnsPeer, "a datagram over the MTU still leaves, fragmented; one under it leaves whole", () => {
  const lab = NetnsLab.create(["df"]);
  try {
    lab.execSync("df", "ip", ["link", "set", "lo", "mtu", String(MTU)]);
    const out = lab.execSync("df", process.execPath, ["--input-type=module", "-e", CHILD, BATCHED_IO]);
    const r = JSON.parse(out.trim().split("\n").pop()!) as { accepted: number; outcome: number[]; lengths: number[]; fragmented: number };
    assert.is(r.accepted, 2, `both sends taken (sent, queued, backpressure, failed: ${r.outcome.join(", ")})`);
    assert.is(r.outcome[3], 0, "no send failed");
    assert.equal([...r.lengths].sort((a, b) => a - b), [1200, 3000], "both datagrams arrived whole");
    assert.is(r.fragmented, 1, "the 3,000-byte datagram was fragmented, the 1,200-byte one was not");
  } finally {
    lab.close();
  }
}, { timeoutMs: 30_000 });

test.run();
