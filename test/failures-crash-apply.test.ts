// A change that comes while a crashed worker waits out its restart delay (100 ms, up to 5 s in a
// crash loop). Before, the change was refused, 'worker 1 is not running', and a file reload is
// not tried again: an operator's edit made in that window was silently left out until the next
// one. Now the change replaces the worker at once and sets it up with the new config.
import * as assert from "uvu/assert";
import { ApplyError, validateProxyConfig, type ProxyConfigInput, type ProxyEvent } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";

const test = suite("a change while a crashed worker restarts", { timeoutMs: 60_000 });
const LO = "127.0.0.1";

type Worker = { kill(): Promise<void> };
const workersOf = (proxy: object): Worker[] => (proxy as { workers: Worker[] }).workers;

test("the change applies, the crashed worker comes back with it, a bad one is still refused", async () => {
  const [p0, p1] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (tag: number, extra: object = {}): ProxyConfigInput => ({
    workers: 2,
    filters: { counter: { path: fixture("counter") } },
    segments: [
      { name: "steady", worker: 0, listen: { address: LO, port: p0 }, destinations: [{ address: LO, port: 9 }], chain: [{ filter: "counter" }] },
      { name: "cam", worker: 1, listen: { address: LO, port: p1 }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "counter", config: { tag, ...extra } }] },
    ],
  });
  const { proxy, events } = await startProxy(config(1));
  const tx = await bindUdp();
  const exits = (): ProxyEvent[] => events.filter((e) => e.type === "worker-exit");
  try {
    for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), p1, LO);
    await waitFor(() => sink.received === 20, 5000, "20 packets through cam");

    assert.is((await segmentStats(proxy, "cam")).packetsIn, 20); // the counters the crash carries
    await workersOf(proxy)[1]!.kill(); // a crash, as a kill -9 of a worker process is under Bun
    await waitFor(() => exits().length === 1, 5000, "the worker's exit");
    await proxy.apply(validateProxyConfig(config(2))); // within the restart delay
    const cam = await segmentStats(proxy, "cam");
    assert.is(cam.stages[0]!.metrics.find((m) => m.name === "tag")?.value, 2, "the restarted worker runs the change");
    assert.is(cam.packetsIn, 20, "its counters carried over the crash");
    assert.ok(events.some((e) => e.type === "worker-restarted" && e.worker === 1));
    for (let i = 20; i < 40; i++) tx.send(indexedRtp(i), p1, LO);
    await waitFor(() => sink.received === 40, 5000, "cam forwarding again");

    // a bad config in that window is refused, naming the field, and the running config stays
    await workersOf(proxy)[1]!.kill();
    await waitFor(() => exits().length === 2, 5000, "the second exit");
    const err = await proxy.apply(validateProxyConfig(config(3, { tag: 1e9 }))).then(() => null, (e: unknown) => e);
    assert.instance(err, ApplyError);
    assert.is((err as ApplyError).committed, false);
    assert.match((err as Error).message, /tag/);
    await waitFor(async () => proxy.health().ready, 10_000, "the worker back after the refused change");
    assert.is((await segmentStats(proxy, "cam")).stages[0]!.metrics.find((m) => m.name === "tag")?.value, 2, "the running config is unchanged");
    for (let i = 40; i < 60; i++) tx.send(indexedRtp(i), p1, LO);
    await waitFor(() => sink.received === 60, 5000, "cam forwarding after the refused change");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("stage counters carried over a crash stay with their filter when a later change reorders the chain", async () => {
  const port = await freePortPair();
  const sink = await Sink.open();
  const config = (chain: string[]): ProxyConfigInput => ({
    workers: 1,
    filters: { first: { path: fixture("counter") }, second: { path: fixture("counter") } },
    segments: [{ name: "cam", listen: { address: LO, port }, destinations: [{ address: LO, port: sink.port }], chain: chain.map((filter) => ({ filter })) }],
  });
  const { proxy, events } = await startProxy(config(["first", "second"]));
  const tx = await bindUdp();
  const stage = async (filter: string) => (await segmentStats(proxy, "cam")).stages.find((st) => st.filter === filter)!;
  try {
    for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), port, LO);
    await waitFor(() => sink.received === 20, 5000, "20 packets");
    assert.is((await stage("first")).packetsIn, 20); // the counters the crash carries
    await workersOf(proxy)[0]!.kill();
    await waitFor(() => events.some((e) => e.type === "worker-restarted"), 10_000, "the worker back");
    for (let i = 20; i < 25; i++) tx.send(indexedRtp(i), port, LO);
    await waitFor(() => sink.received === 25, 5000, "5 more");
    assert.is((await stage("first")).packetsIn, 25);

    await proxy.apply(validateProxyConfig(config(["second", "first"])));
    for (const filter of ["first", "second"]) {
      const st = await stage(filter);
      assert.is(st.packetsIn, 25, `${filter}: its packets counted before the crash are still in it after the reorder`);
      assert.is(st.metrics.find((m) => m.name === "packets")?.value, 25, `${filter}: and its own counter`);
    }
    // a filter taken out and put back starts afresh, as on a worker that never restarted
    await proxy.apply(validateProxyConfig(config(["second"])));
    await proxy.apply(validateProxyConfig(config(["second", "first"])));
    assert.is((await stage("first")).packetsIn, 0);
    assert.is((await stage("second")).packetsIn, 25);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("a worker the watchdog restarts during a change's commit comes back with the change, and the change is not reported as segments NOT running", async () => {
  const port = await freePortPair();
  const sink = await Sink.open();
  // no periodic checkpoint: the only export is the swap's, in the commit, and it never returns
  const config = (stage: Record<string, unknown>): ProxyConfigInput => ({
    workers: 1, stateCheckpointMs: 0, watchdog: { stuckMs: 300 },
    filters: { misbehave: { path: fixture("misbehave") } },
    segments: [{ name: "cam", listen: { address: LO, port }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "misbehave", config: stage }] }],
  });
  const { proxy, events } = await startProxy(config({ loopIn: "export" }));
  const tx = await bindUdp();
  try {
    await proxy.apply(validateProxyConfig(config({}))); // before: 'config applied, except these segments, which are NOT running: worker 0 was stuck ...'
    assert.ok(events.some((e) => e.type === "watchdog"), "the commit's export was stuck");
    await waitFor(() => events.some((e) => e.type === "worker-restarted"), 10_000, "the worker back");
    // the stuck call counts as the stage's failure: it comes back after its restart backoff
    await waitFor(() => events.some((e) => e.type === "restarted"), 10_000, "the stage back");
    assert.equal(proxy.segmentsNotRunning, []);
    tx.send(indexedRtp(1), port, LO);
    await waitFor(() => sink.received === 1, 5000, "cam forwarding on the new config");
    // the new config runs: its stage exports without looping, so a change now applies plainly
    await proxy.apply(validateProxyConfig(config({ reject: "" })));
    assert.is(events.filter((e) => e.type === "watchdog").length, 1);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("a move off a worker whose export the watchdog ends applies (the export ran after the workers were fixed for the change: refused, 'worker 0 is not running')", async () => {
  const [pc, pm] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (stage: Record<string, unknown>, movWorker: number): ProxyConfigInput => ({
    workers: 2, stateCheckpointMs: 0, watchdog: { stuckMs: 300 },
    filters: { misbehave: { path: fixture("misbehave") }, counter: { path: fixture("counter") } },
    segments: [
      { name: "cam", worker: 0, listen: { address: LO, port: pc }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "misbehave", config: stage }] },
      { name: "mov", worker: movWorker, listen: { address: LO, port: pm }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "counter" }] },
    ],
  });
  const { proxy, events } = await startProxy(config({ loopIn: "export" }, 0));
  const tx = await bindUdp();
  try {
    await proxy.apply(validateProxyConfig(config({}, 1)));
    assert.ok(events.some((e) => e.type === "watchdog"), "the move's export was stuck");
    await waitFor(() => events.some((e) => e.type === "worker-restarted"), 10_000, "worker 0 back");
    tx.send(indexedRtp(1), pm, LO);
    await waitFor(() => sink.received === 1, 5000, "mov forwarding from worker 1");
    assert.is((await segmentStats(proxy, "mov")).worker, 1);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
