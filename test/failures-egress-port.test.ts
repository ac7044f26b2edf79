// A segment whose egress port the kernel picked sends from that port again after its worker
// restarts (a crash, the watchdog) or after it moves to another worker. Before, the new worker
// bound a new port, and the next hop, whose strict source gate latched the old one, refused the
// stream (host_source_refused) until the old port had been silent for its idleMs (5 s): every
// worker restart cost the hop after it 5 s of video, not the tens of milliseconds the docs say.
import * as assert from "uvu/assert";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";

const test = suite("egress port kept across a worker restart or a move", { timeoutMs: 60_000 });
const LO = "127.0.0.1";

type Worker = { kill(): Promise<void> };
const workersOf = (proxy: object): Worker[] => (proxy as { workers: Worker[] }).workers;

test("the next hop's strict source gate keeps admitting the stream", async () => {
  const [p1, p2] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  // first -> second (its source gate latches first's egress port, no learning window) -> sink
  const config = (firstWorker: number): ProxyConfigInput => ({
    workers: 2,
    filters: { counter: { path: fixture("counter") } },
    segments: [
      { name: "first", worker: firstWorker, listen: { address: LO, port: p1 }, destinations: [{ address: LO, port: p2 }], chain: [{ filter: "counter" }] },
      { name: "second", worker: 1, listen: { address: LO, port: p2 }, destinations: [{ address: LO, port: sink.port }], source: { learnMs: 0, idleMs: 60_000 }, chain: [] },
    ],
  });
  const { proxy, events } = await startProxy(config(0));
  const tx = await bindUdp();
  let i = 0;
  const sendAndWait = async (n: number, what: string): Promise<void> => {
    const want = sink.received + n;
    for (let k = 0; k < n; k++) tx.send(indexedRtp(i++), p1, LO);
    await waitFor(() => sink.received >= want, 5000, `${what}: ${JSON.stringify((await segmentStats(proxy, "second")).drops)}`);
  };
  try {
    await sendAndWait(10, "before");
    const port = (await segmentStats(proxy, "first")).ports.egress;

    await workersOf(proxy)[0]!.kill();
    await waitFor(() => events.some((e) => e.type === "worker-restarted" && e.worker === 0), 10_000, "worker 0 back");
    assert.is((await segmentStats(proxy, "first")).ports.egress, port, "the same egress port after the restart");
    await sendAndWait(10, "after the restart");

    await proxy.apply(validateProxyConfig(config(1)));
    assert.is((await segmentStats(proxy, "first")).ports.egress, port, "the same egress port after the move");
    await sendAndWait(10, "after the move");

    // moved back off a worker that has just crashed: its replacement has no segments yet, the
    // port comes from what the crashed one last reported
    await workersOf(proxy)[1]!.kill();
    await proxy.apply(validateProxyConfig(config(0)));
    assert.is((await segmentStats(proxy, "first")).ports.egress, port, "the same egress port after a move off a crashed worker");
    await sendAndWait(10, "after the move off a crashed worker");
    assert.is((await segmentStats(proxy, "second")).drops.host_source_refused ?? 0, 0);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
