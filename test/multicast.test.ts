// Multicast config the kernel refuses, and destination lists too long, while a segment runs
// (loopback only: nothing here sends to a group). Each change is refused with the field named,
// nothing of it is left open (its ports can be bound again), and the running segment keeps
// forwarding through it, every packet accounted for. Multicast that works: multicast-netns.test.ts.
import * as assert from "uvu/assert";
import { createSocket } from "node:dgram";
import { ApplyError, ConfigError, validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { DropWatch, settled, unexplainedLoss } from "./lib/kernel-drops.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, sendPaced, Sink, waitFor } from "./lib/udp.js";

const test = suite("multicast refusals", { timeoutMs: 60_000 });
const LO = "127.0.0.1";
/** No interface of any test machine has it: a join or a multicast interface on it fails. */
const NOT_HERE = "10.9.9.9";

type SegmentInput = NonNullable<ProxyConfigInput["segments"]>[number];

/** Whether `address`:`port` can be bound now (nothing of a refused change holds it). */
async function bindable(address: string, port: number): Promise<boolean> {
  const s = createSocket({ type: address.includes(":") ? "udp6" : "udp4" });
  try {
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.bind(port, address, () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    s.close();
  }
}

test("a group that cannot be joined, a multicast interface that is not here, a unicast address as a group, 100,000 destinations: refused, naming the field, while a running segment keeps forwarding", async () => {
  const livePort = await freePortPair();
  const groupPort = await freePortPair();
  const sink = await Sink.open();
  const live: SegmentInput = { name: "live", listen: { address: LO, port: livePort }, destinations: [{ address: LO, port: sink.port }] };
  const { proxy } = await startProxy({ segments: [live] });
  const kernel = new DropWatch([livePort, sink.port]);
  const tx = await bindUdp();
  const count = 1500;
  // a stream through every refusal below (bounded: 1500 packets at 500/s)
  let stop = false;
  const sending = sendPaced(tx, livePort, LO, count, 500, (i) => indexedRtp(i), () => {
    if (stop) throw new Error("stopped: the test failed");
  });
  const refusals: [string, SegmentInput[], RegExp][] = [
    ["a new segment joining on an address that is not here", [live, { name: "join", listen: { address: "239.1.1.1", port: groupPort, interface: NOT_HERE }, destinations: [{ address: LO, port: 9 }] }],
      /segment 'join': listen\.interface: cannot join 239\.1\.1\.1 on 10\.9\.9\.9: ENODEV/],
    ["a source-specific join on an address that is not here", [live, { name: "ssm", listen: { address: "239.1.1.1", port: groupPort, interface: NOT_HERE }, source: { address: "10.9.9.1" }, destinations: [{ address: LO, port: 9 }] }],
      /segment 'ssm': listen\.interface: cannot join 239\.1\.1\.1 \(source-specific, sender 10\.9\.9\.1\) on 10\.9\.9\.9/],
    ["an IPv6 group on an interface that does not exist", [live, { name: "join6", listen: { address: "ff15::1", port: groupPort, interface: "nosuch0" }, destinations: [{ address: "::1", port: 9 }] }],
      /segment 'join6': listen\.interface: no interface 'nosuch0' on this host/],
    ["a leg's group on an address that is not here", [live, { name: "leg", listen: { address: LO, port: groupPort }, rtcpMux: true, destinations: [{ address: LO, port: 9 }], legs: [{ name: "b", listen: { address: "239.1.1.2", port: groupPort + 1, interface: NOT_HERE }, send: false }] }],
      /segment 'leg': legs\[0\]\.listen\.interface: cannot join 239\.1\.1\.2 on 10\.9\.9\.9/],
    ["multicast sent from an address that is not here", [live, { name: "out", listen: { address: LO, port: groupPort }, destinations: [{ address: "239.1.1.1", port: 9 }], multicast: { interface: NOT_HERE } }],
      /segment 'out': multicast\.interface: cannot send multicast from 10\.9\.9\.9: EADDRNOTAVAIL/],
    // the running segment itself moves to a group: its new sockets would bind only after the
    // commit (they take its own ports), so the join is tried before it
    ["the running segment moved onto a group it cannot join", [{ ...live, listen: { address: "239.1.1.1", port: livePort, interface: NOT_HERE } }],
      /segment 'live': listen\.interface: cannot join 239\.1\.1\.1 on 10\.9\.9\.9: ENODEV/],
  ];
  try {
    await waitFor(() => sink.received > 50, 5000, "the running segment's stream");
    for (const [label, segments, pattern] of refusals) {
      const before = sink.received;
      const refused = await proxy.apply(validateProxyConfig({ segments })).then(() => null, (err: unknown) => err);
      assert.ok(refused instanceof ApplyError && pattern.test(refused.message), `${label}: ${String(refused)}`);
      for (const port of [groupPort, groupPort + 1]) assert.ok(await bindable("0.0.0.0", port), `${label}: port ${port} still held after the refusal`);
      assert.equal((await proxy.stats()).segments.map((s) => s.name), ["live"], label);
      await waitFor(() => sink.received > before + 10, 5000, `the running segment's stream after: ${label}`);
    }
    const configRefusals: [string, SegmentInput, RegExp][] = [
      ["a unicast address as the group", { ...live, listen: { address: LO, port: livePort, interface: LO } }, /segments\[0\]\.listen\.interface: only a multicast group is joined, and listen\.address 127\.0\.0\.1 is not one/],
      ["100,000 destinations", { ...live, destinations: Array.from({ length: 100_000 }, (_, k) => ({ address: LO, port: 1024 + (k % 60_000) })) }, /segments\[0\]\.destinations: 100000 destinations, at most 4096 per segment/],
    ];
    for (const [label, seg, pattern] of configRefusals) {
      assert.throws(() => validateProxyConfig({ segments: [seg] }), (err: unknown) => err instanceof ConfigError && pattern.test((err as Error).message), label);
    }
    await sending;
    await settled(() => sink.received);
    const stats = await segmentStats(proxy, "live");
    const { missing, duplicates } = sink.tally(count);
    const problem = unexplainedLoss({ sent: count, received: count - missing, proxyDrops: stats.dropsTotal, kernel, duplicates });
    assert.is(problem, null, problem ?? "");
  } finally {
    stop = true;
    await sending.catch(() => {});
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("one multicast destination: the egress socket is not connected to the group (receivers' feedback could not reach it); one unicast destination still is", async () => {
  const [a, b] = [await freePortPair(), await freePortPair()];
  const { proxy } = await startProxy({ segments: [
    { name: "group", listen: { address: LO, port: a }, rtcpMux: true, destinations: [{ address: "239.3.3.3", port: 9 }] },
    { name: "unicast", listen: { address: LO, port: b }, rtcpMux: true, destinations: [{ address: LO, port: 9 }] },
  ] });
  try {
    assert.is((await segmentStats(proxy, "group")).ports.egressConnected, false);
    assert.is((await segmentStats(proxy, "unicast")).ports.egressConnected, true);
  } finally {
    await proxy.close();
  }
});

test.run();
