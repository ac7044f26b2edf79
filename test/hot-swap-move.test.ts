// A segment moved to another worker (its `worker` changed) is a change like any other: before,
// the new worker bound the segment's ports while the old one still held them, and every such
// change was refused as "the port is taken (another process holds it)", naming the proxy itself.
// Now the segment leaves its old worker at the commit and binds on the new one once the ports are
// free; its counters go on from the old worker's and its filters' state goes with it.
import * as assert from "uvu/assert";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { StateOrigin } from "../runtime/abi.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";

const test = suite("segment moved between workers", { timeoutMs: 60_000 });
const LO = "127.0.0.1";

test("a segment moved to another worker runs there, its counters and state carried", async () => {
  const [listen, other] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (camWorker: number, otherWorker: number): ProxyConfigInput => ({
    workers: 2,
    filters: { counter: { path: fixture("counter") } },
    segments: [
      { name: "cam", worker: camWorker, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "counter" }] },
      { name: "other", worker: otherWorker, listen: { address: LO, port: other }, destinations: [{ address: LO, port: 9 }], chain: [{ filter: "counter" }] },
    ],
  });
  const { proxy, events } = await startProxy(config(0, 1));
  const tx = await bindUdp();
  let i = 0;
  const sendAndWait = async (n: number): Promise<void> => {
    const want = sink.received + n;
    for (let k = 0; k < n; k++) tx.send(indexedRtp(i++), listen, LO);
    await waitFor(() => sink.received >= want, 5000, `${n} packets through cam`);
  };
  try {
    await sendAndWait(50);
    const before = await segmentStats(proxy, "cam");
    assert.is(before.packetsIn, 50);

    // both segments swap workers in one change (each takes the other's), then cam alone moves back
    await proxy.apply(validateProxyConfig(config(1, 0)));
    let moves = events.filter((e) => e.type === "segment-moved");
    assert.equal(moves.map((e) => e.type === "segment-moved" && [e.segment, e.from, e.to]).sort(), [["cam", 0, 1], ["other", 1, 0]]);
    let cam = await segmentStats(proxy, "cam");
    assert.is((cam as { worker?: number }).worker, 1, "cam runs on worker 1");
    assert.is(cam.packetsIn, 50, "the counters go on from the old worker's");
    const stage = cam.stages[0]!;
    assert.is(stage.packetsIn, 50, "the stage's counters too");
    assert.is(stage.metrics.find((m) => m.name === "packets")?.value, 50, "and the filter's own");
    assert.is(stage.metrics.find((m) => m.name === "imported")?.value, 50, "the filter's state came along");
    assert.is(stage.metrics.find((m) => m.name === "import_origin")?.value, StateOrigin.Checkpoint);

    await sendAndWait(30);
    await proxy.apply(validateProxyConfig(config(0, 0)));
    moves = events.filter((e) => e.type === "segment-moved");
    assert.is(moves.length, 3);
    await sendAndWait(20);
    cam = await segmentStats(proxy, "cam");
    assert.is((cam as { worker?: number }).worker, 0);
    assert.is(cam.packetsIn, 100, "every packet counted once across both moves");
    assert.is(cam.stages[0]!.metrics.find((m) => m.name === "packets")?.value, 100);
    assert.is(sink.tally(100).missing, 0);
    assert.is(sink.tally(100).duplicates, 0);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
