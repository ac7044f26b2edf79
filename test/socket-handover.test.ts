// A worker the watchdog kills, or that crashes, leaves its listen sockets bound, with what
// they hold, for the worker that replaces it, and a segment moving to another worker hands its
// listen sockets over the same way (Node: workers are threads sharing the process's descriptors;
// Bun: processes, whose sockets the proxy keeps duplicates of; docs/proxy.md, "When a filter
// fails"): what reaches the segment meanwhile is delivered late instead of lost, and nothing stays
// bound once no worker takes it. The test runner runs it under both.
import * as assert from "uvu/assert";
import type { Socket } from "node:dgram";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateProxyConfig, type Proxy, type ProxyConfigInput, type ProxyEvent } from "../runtime/index.js";
import type { WatchdogBeacon } from "../runtime/dataplane/watchdog-beacon.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { DeliveryWatch } from "./lib/delivery.js";

const test = suite("listen sockets outlive their worker", { timeoutMs: 60_000 });

/** After 20 packets went through `segment` (the main thread knows where its stages run): a watch of its delivery from then on. */
async function flowing(proxy: Proxy, tx: Socket, listen: number, sink: Sink, segment: string): Promise<DeliveryWatch> {
  for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), listen, "127.0.0.1");
  await waitFor(() => sink.received >= 20, 5000, "the first packets");
  await proxy.stats();
  return DeliveryWatch.start(() => proxy, segment, [listen, sink.port]);
}

/**
 * Gets worker 0 stuck in the misbehave filter (packet 20), then sends packets 21.. (600 over
 * 0.6 s: the stall, 300 ms to the watchdog, and the restart fall inside) and waits for the
 * restart; how many were sent.
 */
async function stallAndStream(proxy: Proxy, events: readonly ProxyEvent[], tx: Socket, listen: number): Promise<number> {
  // the beacon of the worker about to be stuck (read after the kill too: its slot stays set)
  const beacon = (proxy as unknown as { workers: { beacon: WatchdogBeacon }[] }).workers[0]!.beacon;
  tx.send(endlessLoop(20), listen, "127.0.0.1");
  // inside the loop before anything else is sent: what follows waits in the kernel, not in the
  // batch the worker read (a worker that woke late would read both, and lose what followed)
  await waitFor(() => beacon.stuckSlot(20) !== 0, 5000, "the worker stuck in the filter");
  const n = 600;
  await sendPaced(tx, listen, "127.0.0.1", n, 1000, (i) => indexedRtp(21 + i));
  await waitFor(() => events.some((e) => e.type === "worker-restarted"), 10_000, "the worker restarted");
  return n;
}

/** Sends indexedRtp(0), (1), ... to `port` at 1,000 a second until `during` settles, and 300 ms more (at most 20 s); how many. */
async function streamDuring(tx: Socket, port: number, during: Promise<unknown>): Promise<number> {
  let done = false;
  void during.catch(() => {}).finally(() => setTimeout(() => (done = true), 300));
  let sent = 0;
  const started = Date.now();
  while (!done && Date.now() - started < 20_000) {
    const due = Date.now() - started + 1;
    while (sent < due) tx.send(indexedRtp(sent++), port, "127.0.0.1");
    await sleep(1);
  }
  return sent;
}

/** An RTP packet the misbehave fixture loops forever on (its command byte 0xad at offset 12). */
function endlessLoop(i: number): Uint8Array {
  const b = indexedRtp(i);
  b[12] = 0xad;
  return b;
}

function segment(listen: number, sink: number, modulePath = fixture("misbehave")): ProxyConfigInput {
  return {
    workers: 1,
    watchdog: { stuckMs: 300 },
    filters: { misbehave: { path: modulePath } },
    segments: [{
      name: "stalled", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink }],
      chain: [{ filter: "misbehave" }], failure: { mode: "open", restartBackoffMs: 50, maxFailures: 5 },
    }],
  };
}

test("every packet sent while the worker is stuck and replaced arrives (late), its listen socket never unbound", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy, events } = await startProxy(segment(listen, sink.port));
  assert.is(proxy.io.receive, "native", `this needs the batched-I/O addon under Node (${proxy.io.note})`);
  const tx = await bindUdp();
  try {
    const watch = await flowing(proxy, tx, listen, sink, "stalled");
    const n = await stallAndStream(proxy, events, tx, listen);
    const wd = events.find((e) => e.type === "watchdog");
    assert.ok(wd, "the watchdog fired");
    const back = events.find((e) => e.type === "worker-restarted");
    assert.is(back?.type === "worker-restarted" && back.kept, 2, "its listen sockets (RTP, RTCP) kept, and said so");
    await watch.expectDelivered(sink, n, 21); // throws naming any loss nothing explains
    assert.is((await segmentStats(proxy, "stalled")).stages[0]!.failures, 1);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  // nothing holds the ports once the proxy is gone
  for (const port of [listen, listen + 1]) (await bindUdp(port)).close();
});

test("a batch the filter is stuck in that filled the arena: the packets behind it stay in the socket for the replacement", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  // one packet per batch: the stuck one fills the arena, so the read goes on behind it (a full batch under load)
  const { proxy, events } = await startProxy({ ...segment(listen, sink.port), batchSize: 1 });
  assert.is(proxy.io.receive, "native", `this needs the batched-I/O addon under Node (${proxy.io.note})`);
  const tx = await bindUdp();
  try {
    const watch = await flowing(proxy, tx, listen, sink, "stalled");
    const n = await stallAndStream(proxy, events, tx, listen);
    await watch.expectDelivered(sink, n, 21); // throws naming any loss nothing explains
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("a worker that ends from outside (a crash): what reaches its segment during the restart delay and the restart arrives late", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy, events } = await startProxy({
    workers: 1,
    filters: { counter: { path: fixture("counter") } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "counter" }] }],
  });
  const tx = await bindUdp();
  try {
    const watch = await flowing(proxy, tx, listen, sink, "cam");
    await (proxy as unknown as { workers: { kill(): Promise<void> }[] }).workers[0]!.kill(); // as a crash ends it
    const n = 300; // over 0.3 s: the restart delay (100 ms) and the restart
    await sendPaced(tx, listen, "127.0.0.1", n, 1000, (i) => indexedRtp(20 + i));
    await waitFor(() => events.some((e) => e.type === "worker-restarted"), 10_000, "the worker restarted");
    assert.ok(events.some((e) => e.type === "worker-exit"), "seen as a crash");
    await watch.expectDelivered(sink, n, 20); // throws naming any loss nothing explains
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("a crash, then its replacement's crash before it served: the next replacement still gets the first one's listen sockets and what they held", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  // no spare: each replacement takes a while to start, so the second crash lands before it serves
  const { proxy, events } = await startProxy({
    workers: 1,
    spareWorker: false,
    filters: { counter: { path: fixture("counter") } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "counter" }] }],
  });
  const current = () => (proxy as unknown as { workers: { kill(): Promise<void> }[] }).workers[0]!;
  const tx = await bindUdp();
  try {
    const watch = await flowing(proxy, tx, listen, sink, "cam");
    const first = current();
    await first.kill();
    const n = 800;
    const sending = sendPaced(tx, listen, "127.0.0.1", n, 1000, (i) => indexedRtp(20 + i));
    await waitFor(() => current() !== first, 5000, "the first replacement");
    await current().kill();
    await sending;
    await waitFor(() => events.some((e) => e.type === "worker-restarted"), 10_000, "a replacement that serves");
    assert.is(events.filter((e) => e.type === "worker-exit").length, 2, "two crashes");
    await watch.expectDelivered(sink, n, 20); // throws naming any loss nothing explains
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  for (const port of [listen, listen + 1]) (await bindUdp(port)).close(); // nothing left bound
});

test("a segment moved to another worker and back while its stream flows loses nothing: each move hands its listen sockets over", async () => {
  const [listen, other] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (camWorker: number, otherWorker: number): ProxyConfigInput => ({
    workers: 2,
    filters: { counter: { path: fixture("counter") } },
    segments: [
      { name: "cam", worker: camWorker, listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "counter" }] },
      { name: "other", worker: otherWorker, listen: { address: "127.0.0.1", port: other }, destinations: [{ address: "127.0.0.1", port: 9 }], chain: [{ filter: "counter" }] },
    ],
  });
  const { proxy, events } = await startProxy(config(0, 1));
  const tx = await bindUdp();
  try {
    const watch = await DeliveryWatch.start(() => proxy, "cam", [listen, sink.port]);
    // two moves (both segments swap workers, then cam goes back) while 1,000 packets/s flow, however long they take
    const moves = (async () => {
      await sleep(400);
      await proxy.apply(validateProxyConfig(config(1, 0)));
      await sleep(300);
      await proxy.apply(validateProxyConfig(config(0, 0)));
    })();
    const n = await streamDuring(tx, listen, moves);
    await moves;
    const moved = events.filter((e) => e.type === "segment-moved" && e.segment === "cam");
    assert.equal(moved.map((e) => e.type === "segment-moved" && e.handedOver), [true, true], "cam moved twice, its listen sockets handed over each time");
    const delivery = await watch.expectDelivered(sink, n);
    assert.is((await segmentStats(proxy, "cam")).packetsIn, n - (delivery.kernel.byPort[listen] ?? 0), "each counted once");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("a change that gives a segment new sockets (its egress port) while its stream flows loses nothing: its listen sockets are taken back, not bound anew", async () => {
  const [listen, egressA, egressB] = [await freePortPair(), await freePortPair(), await freePortPair()];
  const sink = await Sink.open(0, { keep: true });
  const config = (egressPort: number): ProxyConfigInput => ({
    filters: { counter: { path: fixture("counter") } },
    segments: [{
      name: "cam", listen: { address: "127.0.0.1", port: listen }, egress: { address: "127.0.0.1", port: egressPort },
      destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "counter" }],
    }],
  });
  const { proxy } = await startProxy(config(egressA));
  const tx = await bindUdp();
  try {
    const watch = await DeliveryWatch.start(() => proxy, "cam", [listen, sink.port]);
    // two egress changes while 1,000 packets/s flow, however long they take
    const changes = (async () => {
      await sleep(300);
      await proxy.apply(validateProxyConfig(config(egressB)));
      await sleep(300);
      await proxy.apply(validateProxyConfig(config(egressA)));
    })();
    const n = await streamDuring(tx, listen, changes);
    await changes;
    const from = new Set(sink.packets.map((p) => p.from.port));
    assert.ok(from.has(egressA) && from.has(egressB), `sent from both egress ports (${[...from].join(", ")})`);
    await watch.expectDelivered(sink, n); // throws naming any loss nothing explains
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  for (const port of [listen, listen + 1, egressA, egressA + 1, egressB, egressB + 1]) (await bindUdp(port)).close(); // nothing left bound
});

test("a change that swaps a segment's listen and egress ports applies: a listen socket left for the open step at a place it no longer listens on is closed before anything binds", async () => {
  const [a, b] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (listen: number, egress: number): ProxyConfigInput => ({
    filters: { counter: { path: fixture("counter") } },
    segments: [{
      name: "cam", listen: { address: "127.0.0.1", port: listen }, egress: { address: "127.0.0.1", port: egress },
      destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "counter" }],
    }],
  });
  const { proxy } = await startProxy(config(a, b));
  const tx = await bindUdp();
  try {
    tx.send(indexedRtp(0), a, "127.0.0.1");
    await waitFor(() => sink.received === 1, 5000, "a packet through listen a");
    await proxy.apply(validateProxyConfig(config(b, a)));
    const cam = await segmentStats(proxy, "cam");
    assert.is(cam.stages[0]?.state, "running", "cam runs after the swap");
    tx.send(indexedRtp(1), b, "127.0.0.1");
    await waitFor(() => sink.received === 2, 5000, "a packet through listen b");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("a restart that fails leaves the ports free: the killed worker's listen sockets are closed, not left bound", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-watchdog-queue-"));
  const modulePath = join(dir, "misbehave.wasm");
  copyFileSync(fixture("misbehave"), modulePath);
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy, events } = await startProxy(segment(listen, sink.port, modulePath));
  const tx = await bindUdp();
  try {
    tx.send(indexedRtp(0), listen, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the first packet");
    await proxy.stats();
    rmSync(modulePath); // the replacement cannot load the filter: its restart fails
    tx.send(endlessLoop(1), listen, "127.0.0.1");
    await waitFor(() => events.some((e) => e.type === "error" && e.message.startsWith("after worker restart:")), 10_000, "the restart's failure");
    await waitFor(async () => {
      try {
        (await bindUdp(listen)).close();
        (await bindUdp(listen + 1)).close();
        return true;
      } catch {
        return false;
      }
    }, 5000, "the listen ports free again");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
