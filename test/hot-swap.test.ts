// Hot swap of a running segment's chain at a batch boundary, with state carried over through
// state_export/state_import: a 10,000 packets/s stream loses nothing and duplicates nothing. On
// a busy machine the kernel may drop datagrams before the proxy or the sink reads them: those are
// counted per socket and are the only loss allowed.
import * as assert from "uvu/assert";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { StateOrigin } from "../runtime/abi.js";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, sendPaced, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { DeliveryWatch } from "./lib/delivery.js";

const test = suite("hot swap", { timeoutMs: 60_000 });

test("two chain swaps under a 10,000 packets/s stream: zero loss, zero duplicates, state carried", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const config = (chain: NonNullable<ProxyConfigInput["segments"]>[number]["chain"]): ProxyConfigInput => ({
    workers: 1,
    filters: { validate: { path: filterWasm("validate") }, counter: { path: fixture("counter") } },
    segments: [{ name: "live", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain }],
  });
  const v1 = config([{ filter: "validate" }, { filter: "counter", config: { tag: 1 } }]);
  const v2 = config([{ filter: "validate", config: { maxSize: 1400 } }, { filter: "counter", config: { tag: 2 } }]);
  const v3 = config([{ filter: "counter", config: { tag: 3 } }]);
  const { proxy, events } = await startProxy(v1);
  const tx = await bindUdp();
  try {
    // the validate filter holds a new source's first packet until it validates (probation,
    // RFC 3550 A.1): settle the source before counting
    tx.send(indexedRtp(0xfffffff0, 200), listen, "127.0.0.1");
    tx.send(indexedRtp(0xfffffff1, 200), listen, "127.0.0.1");
    await waitFor(() => sink.received >= 2, 2000, "the source to pass probation");

    const n = 30_000;
    // a gap of more than 3000 packets (the kernel dropping a burst on a starved machine) is a jump
    // to validate (RFC 3550 A.1): it holds the next packet until the one after confirms it; one it
    // could not hold would be dropped as a bad sequence: a consequence, not a loss of the swap
    const watch = await DeliveryWatch.start(() => proxy, "live", [listen, sink.port], ["bad_sequence"]);
    const swaps: Promise<void>[] = [];
    await sendPaced(tx, listen, "127.0.0.1", n, 10_000, (i) => indexedRtp(i + 2, 200), (sent) => {
      if (sent >= 10_000 && swaps.length === 0) swaps.push(proxy.apply(validateProxyConfig(v2)));
      if (sent >= 20_000 && swaps.length === 1) swaps.push(proxy.apply(validateProxyConfig(v3)));
    });
    await Promise.all(swaps);
    const delivery = await watch.expectDelivered(sink, n, 2); // every packet once, but for what the kernel dropped
    const kernelDrops = delivery.kernel.byPort[listen]!; // dropped before the proxy read them: never counted by it
    const badSequence = async (): Promise<number> => (await segmentStats(proxy, "live")).drops.bad_sequence ?? 0;

    const swapEvents = events.filter((e) => e.type === "swap");
    assert.is(swapEvents.length, 2, "two swaps happened");
    assert.equal(swapEvents[0]!.type === "swap" && swapEvents[0]!.carried, ["validate", "counter"]);
    assert.equal(swapEvents[1]!.type === "swap" && swapEvents[1]!.carried, ["counter"]);
    const seg = await segmentStats(proxy, "live");
    const counter = seg.stages[0]!;
    assert.is(counter.filter, "counter");
    assert.is(counter.metrics.find((m) => m.name === "tag")?.value, 3, "the last chain handles the stream");
    assert.is(counter.metrics.find((m) => m.name === "import_origin")?.value, StateOrigin.Swap, "the host told the filter: a swap's blob");
    // the count started under chain 1 and went on through both swaps
    assert.is(counter.metrics.find((m) => m.name === "packets")?.value, n + 2 - kernelDrops - (await badSequence()));
    assert.is(seg.dropsTotal, await badSequence(), "nothing dropped, the probation packet included (but what long kernel gaps cause)");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
