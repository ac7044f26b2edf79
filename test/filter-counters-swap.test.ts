// A filter's own counters go on across a hot swap as the host's do: a real proxy runs the
// validate filter, its config changes three times (the stage's config: a new context in the same
// instance; the filter's root config: a new instance; the listen port: new sockets, the chain
// rebuilt and bound after the commit), and validate's counters keep every count from before,
// equal to the host's own count of the stage at each step.
import * as assert from "uvu/assert";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";

const test = suite("filter counters across a hot swap", { timeoutMs: 60_000 });

type Stage = Awaited<ReturnType<typeof segmentStats>>["stages"][number];
const metric = (st: Stage, name: string): number => {
  const m = st.metrics.find((x) => x.name === name);
  assert.ok(m, `validate exports ${name}`);
  return m!.value!;
};

test("validate's counters carry on through a new context and a new instance, matching the host's count", async () => {
  const sink = await Sink.open();
  let listen = await freePortPair();
  const config = (stage: Record<string, unknown>, root: Record<string, unknown>): ProxyConfigInput => ({
    workers: 1,
    filters: { validate: { path: filterWasm("validate"), config: root } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "validate", config: stage }] }],
  });
  const { proxy, events } = await startProxy(config({}, {}));
  const tx = await bindUdp();
  let seq = 0;
  /** Sends `good` packets of the stream and one of RTP version 1 (dropped as bad_version), then waits until the stage saw them all. */
  const round = async (good: number): Promise<Stage> => {
    const before = (await segmentStats(proxy, "cam")).stages[0]!.packetsIn;
    const bad = indexedRtp(seq, 200);
    bad[0] = 0x40; // version 1
    tx.send(bad, listen, "127.0.0.1");
    for (let i = 0; i < good; i++) tx.send(indexedRtp(seq++), listen, "127.0.0.1");
    // what the kernel drops on a busy machine never reaches the stage: wait for what can
    await waitFor(async () => (await segmentStats(proxy, "cam")).stages[0]!.packetsIn >= before + good + 1, 3000, "the stage to see the round").catch(() => {});
    return (await segmentStats(proxy, "cam")).stages[0]!;
  };
  const agrees = (st: Stage, label: string): void => {
    // every packet validate passed (released ones included) left the stage
    assert.is(metric(st, "packets_passed"), st.packetsOut, `${label}: passed = the host's packets out`);
    assert.is(metric(st, "drops_bad_version"), st.drops.bad_version ?? 0, `${label}: bad_version drops = the host's`);
  };
  try {
    const first = await round(300);
    agrees(first, "first chain");
    assert.ok(first.packetsOut >= 250 && metric(first, "drops_bad_version") === 1, "the first chain counted");

    await proxy.apply(validateProxyConfig(config({ maxSize: 1400 }, {}))); // a new context in the same instance
    const second = await round(300);
    agrees(second, "after the stage's config changed");
    assert.ok(metric(second, "packets_passed") > metric(first, "packets_passed"), "went on from the first count");
    assert.is(metric(second, "drops_bad_version"), 2, "the drop counter went on too");

    await proxy.apply(validateProxyConfig(config({ maxSize: 1400 }, { holdStorePackets: 128 }))); // a new instance
    const third = await round(300);
    agrees(third, "after the filter's root config changed");
    assert.ok(metric(third, "packets_passed") > metric(second, "packets_passed"), "went on from the second count");
    assert.is(metric(third, "drops_bad_version"), 3);

    listen = await freePortPair(); // new sockets: the segment's chain is rebuilt and bound after the commit
    await proxy.apply(validateProxyConfig(config({ maxSize: 1400 }, { holdStorePackets: 128 })));
    const fourth = await round(300);
    agrees(fourth, "after the segment's listen port moved");
    assert.ok(metric(fourth, "packets_passed") > metric(third, "packets_passed"), "went on from the third count");
    assert.is(metric(fourth, "drops_bad_version"), 4);

    const swaps = events.filter((e) => e.type === "swap");
    assert.is(swaps.length, 3, "every change carried the chain's state");
    assert.is(third.digest, first.digest);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("an entry keyed anew (a control plane's canary beside it, other limits) carries the stage's state and counters when it names the same filter (metricsName); an unrelated one does not", async () => {
  const sink = await Sink.open();
  const listen = await freePortPair();
  const config = (key: string, metricsName: string | undefined): ProxyConfigInput => ({
    workers: 1,
    filters: { [key]: { path: filterWasm("validate"), ...(metricsName ? { metricsName } : {}) } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: key, config: {} }] }],
  });
  const { proxy, events } = await startProxy(config("validate", "validate"));
  const tx = await bindUdp();
  let seq = 0;
  const round = async (n: number): Promise<Stage> => {
    const before = (await segmentStats(proxy, "cam")).stages[0]!.packetsIn;
    for (let i = 0; i < n; i++) tx.send(indexedRtp(seq++), listen, "127.0.0.1");
    await waitFor(async () => (await segmentStats(proxy, "cam")).stages[0]!.packetsIn >= before + n, 3000, "the stage to see the round").catch(() => {});
    return (await segmentStats(proxy, "cam")).stages[0]!;
  };
  try {
    const first = await round(200);
    await proxy.apply(validateProxyConfig(config("validate-1-0-0", "validate")));
    const second = await round(200);
    const swaps = events.filter((e) => e.type === "swap");
    assert.equal(swaps.at(-1)!.type === "swap" && swaps.at(-1)!.carried, ["validate-1-0-0"], "the state went to the stage keyed anew");
    assert.ok(metric(second, "packets_passed") > metric(first, "packets_passed"), `its counters went on: ${metric(first, "packets_passed")} then ${metric(second, "packets_passed")}`);
    await proxy.apply(validateProxyConfig(config("other", undefined)));
    const third = await round(50);
    assert.equal(events.filter((e) => e.type === "swap").at(-1)!.type === "swap" && (events.filter((e) => e.type === "swap").at(-1) as { fresh: string[] }).fresh, ["other"], "another filter's name: a new stage");
    assert.ok(metric(third, "packets_passed") < metric(second, "packets_passed"), "its counters start afresh");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("two stages of one filter (an SRTP edge's unprotect and protect) whose entry is keyed anew: each takes its own predecessor's state", async () => {
  const sink = await Sink.open();
  const listen = await freePortPair();
  // two entries of one filter (a chain names an entry once), both keyed anew
  const config = (suffix: string): ProxyConfigInput => ({
    workers: 1,
    filters: { [`first${suffix}`]: { path: filterWasm("validate"), metricsName: "validate" }, [`second${suffix}`]: { path: filterWasm("validate"), metricsName: "validate", maxMemoryPages: 300 } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: `first${suffix}`, config: {} }, { filter: `second${suffix}`, config: { maxSize: 1400 } }] }],
  });
  const { proxy, events } = await startProxy(config(""));
  try {
    await proxy.apply(validateProxyConfig(config("-1-0-0")));
    const swap = events.filter((e) => e.type === "swap").at(-1)!;
    assert.equal(swap.type === "swap" && [swap.carried, swap.fresh], [["first-1-0-0", "second-1-0-0"], []], "both stages carried");
  } finally {
    sink.close();
    await proxy.close();
  }
});

test("a stage that is down keeps showing its counts, and a swap then carries them to its successor", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const config = (root: Record<string, unknown>): ProxyConfigInput => ({
    workers: 1,
    filters: { teach: { path: fixture("teach"), config: root } },
    segments: [{
      name: "cam", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }],
      chain: [{ filter: "teach" }], failure: { mode: "open", restartBackoffMs: 600_000 }, // down until the change
    }],
  });
  const { proxy } = await startProxy(config({}));
  const tx = await bindUdp();
  const stage = async (): Promise<Stage> => (await segmentStats(proxy, "cam")).stages[0]!;
  let seq = 0;
  const send = (n: number, firstByte?: number): void => {
    for (let i = 0; i < n; i++) {
      const p = indexedRtp(seq++);
      if (firstByte !== undefined) p[12] = firstByte;
      tx.send(p, listen, "127.0.0.1");
    }
  };
  try {
    send(100);
    await waitFor(async () => (await stage()).packetsIn === 100, 5000, "100 packets through teach").catch(() => {});
    const counted = metric(await stage(), "packets");
    assert.is(counted, (await stage()).packetsIn, "teach counted every packet the stage saw");
    assert.ok(counted > 50, `most of the 100 arrived: ${counted}`);

    send(1, 0xde); // teach traps: the stage is down, its instance gone
    await waitFor(async () => (await stage()).state === "down", 5000, "the stage to go down");
    assert.is(metric(await stage(), "packets"), counted, "while down, its count still shows");

    await proxy.apply(validateProxyConfig(config({ silentRefusal: false }))); // a new root config: a new instance takes over
    const up = await stage();
    assert.is(up.state, "running");
    assert.is(metric(up, "packets"), counted, "the new stage went on from the failed one's count");
    send(100);
    await waitFor(async () => (await stage()).packetsIn >= up.packetsIn + 100, 5000, "100 more packets").catch(() => {});
    const last = await stage();
    assert.is(metric(last, "packets"), counted + (last.packetsIn - up.packetsIn), "and kept counting, as the host's counter did");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("one instance, two stages: the one that gives up keeps showing its counts after the other restarted", async () => {
  const [quitter, stayer] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const segment = (name: string, port: number, maxFailures: number) => ({
    name, listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: sink.port }],
    chain: [{ filter: "teach" }], failure: { mode: "open" as const, maxFailures, restartBackoffMs: 50 },
  });
  const { proxy } = await startProxy({
    workers: 1,
    filters: { teach: { path: fixture("teach") } },
    segments: [segment("quitter", quitter, 1), segment("stayer", stayer, 5)],
  });
  const tx = await bindUdp();
  const stage = async (name: string): Promise<Stage> => (await segmentStats(proxy, name)).stages[0]!;
  try {
    for (let i = 0; i < 40; i++) tx.send(indexedRtp(i), quitter, "127.0.0.1");
    await waitFor(async () => (await stage("quitter")).packetsIn === 40, 5000, "40 packets through the quitter").catch(() => {});
    const counted = metric(await stage("quitter"), "packets");
    assert.ok(counted > 20, `most of the 40 arrived: ${counted}`);
    const trap = indexedRtp(0);
    trap[12] = 0xde; // teach traps: the instance both stages share is gone
    tx.send(trap, stayer, "127.0.0.1");
    await waitFor(async () => (await stage("stayer")).state === "running" && (await stage("stayer")).failures === 1, 5000, "the stayer restarted");
    const gone = await stage("quitter");
    assert.is(gone.state, "gave-up");
    assert.is(metric(gone, "packets"), counted, "the stage that gave up still shows what it counted");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
