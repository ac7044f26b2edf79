// A leg's multicast leaves on its own path (ST 2022-7 send side, docs/proxy.md "A leg's path"):
//
//   sender -> a (msm proxy) ==path A (ln0)==> b
//                           ==path B (ln1)==>
//
// The media goes to group A from a's address on ln0, with the segment's `multicast` naming ln0's
// address as its interface; leg `path-b` goes to group B. Regression: every leg took the segment's
// interface, so path B's packets left on path A's link and the two paths were one. iptables rules
// in a count each group's packets per outgoing link (and with the TTL expected: the segment's, or
// the leg's own); the lab proxy sends without UDP GSO, so a rule counts datagrams, which are
// checked against what the proxy says it sent on each leg.
import * as assert from "uvu/assert";
import type { ProxySnapshot } from "../runtime/index.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { startNsProxy, type NsProxy } from "./lib/ns-proxy.js";
import { runNsSender } from "./lib/ns-rtp.js";
import { filterWasm } from "./lib/paths.js";
import { peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";
import { sleep } from "./lib/udp.js";

const test = suite("a leg's multicast leaves on its own path (ST 2022-7 send side)", { timeoutMs: 60_000 });
const LISTEN = 46100;
const OUT = 46200;
const COUNT = 400;
const GROUPS = { 4: ["239.10.1.1", "239.10.2.1"], 6: ["ff15::10:1", "ff15::10:2"] } as const;

let lab: NetnsLab | undefined;
const theLab = (): NetnsLab => (lab ??= NetnsLab.create(["a", "b"], { parallel: [["a", "b"]] }));
test.after(() => lab?.close());

/** What left a's links: packets per `<link>:<group>` (ln0, ln1), and those of them with `hops` as TTL / hop limit. */
type Counts = Record<string, { packets: number; withHops: number }>;

/** Counts a's outgoing packets to the two groups per link while `work` runs. */
async function countOutgoing(l: NetnsLab, family: 4 | 6, hops: Record<string, number>, work: () => Promise<void>): Promise<Counts> {
  const tables = family === 4 ? "iptables" : "ip6tables";
  const hopMatch = (n: number): string[] => (family === 4 ? ["-m", "ttl", "--ttl-eq", String(n)] : ["-m", "hl", "--hl-eq", String(n)]);
  const devs = [l.link("a", "b", 0).from.dev, l.link("a", "b", 1).from.dev];
  for (const dev of devs) {
    for (const group of GROUPS[family]) {
      const key = `${dev}:${group}`;
      const rule = ["-A", "OUTPUT", "-o", dev, "-d", group, "-p", "udp", "--dport", String(OUT)];
      l.execSync("a", tables, [...rule, "-m", "comment", "--comment", `all:${key}`]);
      l.execSync("a", tables, [...rule, ...hopMatch(hops[group]!), "-m", "comment", "--comment", `hops:${key}`]);
    }
  }
  try {
    await work();
    const counts: Counts = {};
    for (const line of l.execSync("a", tables, ["-nvx", "-L", "OUTPUT"]).split("\n")) {
      const m = /^\s*(\d+)\s.*\/\* (all|hops):(\S+) \*\//.exec(line);
      if (!m) continue;
      const c = (counts[m[3]!] ??= { packets: 0, withHops: 0 });
      if (m[2] === "all") c.packets = Number(m[1]);
      else c.withHops = Number(m[1]);
    }
    return counts;
  } finally {
    l.execSync("a", tables, ["-F", "OUTPUT"]);
  }
}

/** Sends COUNT packets through a proxy in a running `segment` (copied to leg 1) and returns its stats once it has sent them. */
async function run(l: NetnsLab, segment: Record<string, unknown>): Promise<ProxySnapshot["segments"][number]> {
  const filters = { replicate: { path: filterWasm("replicate"), limits: { generatedPerSecond: 100_000 } } };
  const proxy: NsProxy = await startNsProxy(l, "a", {
    filters,
    segments: [{ name: "dual", listen: { address: "127.0.0.1", port: LISTEN }, rtcpMux: true, chain: [{ filter: "replicate", config: { copyToLegs: [1] } }], ...segment }],
  });
  try {
    const { sent } = await runNsSender(l, "a", { address: "127.0.0.1", port: LISTEN, count: COUNT, rate: 1000 });
    // until both legs have sent what came in (what the proxy drops on a busy machine is its own count, not this test's)
    let seg = (await proxy.stats()).segments[0]!;
    for (let i = 0; i < 100 && (seg.legs[0]!.packetsIn < sent || seg.legs[1]!.packetsOut < seg.legs[0]!.packetsIn); i++) {
      await sleep(50);
      seg = (await proxy.stats()).segments[0]!;
    }
    return seg;
  } finally {
    await proxy.stop();
  }
}

/** Each path's group left on its own link only, every packet the proxy sent on it, with the TTL expected. */
function judge(counts: Counts, seg: ProxySnapshot["segments"][number], family: 4 | 6): void {
  const [groupA, groupB] = GROUPS[family];
  const where = `${JSON.stringify(counts)}; proxy legs ${JSON.stringify(seg.legs)}, drops ${JSON.stringify(seg.drops)}`;
  const [media, pathB] = [seg.legs[0]!.packetsOut, seg.legs[1]!.packetsOut];
  assert.ok(media > 0 && pathB > 0, `both legs sent: ${where}`);
  assert.equal(counts[`ln1:${groupB}`], { packets: pathB, withHops: pathB }, `path B's group left on path B's link (ln1): ${where}`);
  assert.is(counts[`ln0:${groupB}`]!.packets, 0, `none of path B's group left on path A's link (ln0): ${where}`);
  assert.equal(counts[`ln0:${groupA}`], { packets: media, withHops: media }, `the media's group left on path A's link (ln0): ${where}`);
  assert.is(counts[`ln1:${groupA}`]!.packets, 0, `none of the media's group left on path B's link: ${where}`);
}

peerTest(test, netnsPeer, "IPv4, the report's config: path B names its egress address only, and leaves from that address's link with the segment's TTL", async () => {
  const l = theLab();
  const [groupA, groupB] = GROUPS[4];
  const aAddress = l.address("a", "b", 4, 0);
  let seg: ProxySnapshot["segments"][number] | undefined;
  const counts = await countOutgoing(l, 4, { [groupA]: 2, [groupB]: 2 }, async () => {
    seg = await run(l, {
      egress: { address: aAddress },
      destinations: [{ address: groupA, port: OUT }],
      multicast: { ttl: 2, interface: aAddress },
      legs: [{ name: "path-b", receive: false, egress: { address: l.address("a", "b", 4, 1) }, destinations: [{ address: groupB, port: OUT }] }],
    });
  });
  judge(counts, seg!, 4);
});

peerTest(test, netnsPeer, "IPv4, the leg's own multicast block: its interface and TTL, though it sends from the segment's address", async () => {
  const l = theLab();
  const [groupA, groupB] = GROUPS[4];
  const aAddress = l.address("a", "b", 4, 0);
  let seg: ProxySnapshot["segments"][number] | undefined;
  const counts = await countOutgoing(l, 4, { [groupA]: 2, [groupB]: 3 }, async () => {
    seg = await run(l, {
      egress: { address: aAddress },
      destinations: [{ address: groupA, port: OUT }],
      multicast: { ttl: 2, interface: aAddress },
      legs: [{ name: "path-b", receive: false, destinations: [{ address: groupB, port: OUT }], multicast: { ttl: 3, interface: l.address("a", "b", 4, 1) } }],
    });
  });
  judge(counts, seg!, 4);
});

peerTest(test, netnsPeer, "IPv6: path B's egress address finds its interface by name; the segment names path A's", async () => {
  const l = theLab();
  const [groupA, groupB] = GROUPS[6];
  let seg: ProxySnapshot["segments"][number] | undefined;
  const counts = await countOutgoing(l, 6, { [groupA]: 2, [groupB]: 2 }, async () => {
    seg = await run(l, {
      egress: { address: l.address("a", "b", 6, 0) },
      destinations: [{ address: groupA, port: OUT }],
      multicast: { ttl: 2, interface: l.link("a", "b", 0).from.dev },
      legs: [{ name: "path-b", receive: false, egress: { address: l.address("a", "b", 6, 1) }, destinations: [{ address: groupB, port: OUT }] }],
    });
  });
  judge(counts, seg!, 6);
});

test.run();
