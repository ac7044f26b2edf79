// A worker thread that ends while a change is committed (the watchdog, a crash) leaves its listen
// sockets parked for its replacement (docs/proxy.md, "When a filter fails"). One at a place the
// new config no longer listens on must not hold its port against the segment that takes that
// port in the same change, on another worker, at an address that overlaps it (0.0.0.0 against
// 127.0.0.1): before parking, the ended worker's sockets closed with it, and that bind succeeded.
import * as assert from "uvu/assert";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { startProxy } from "./lib/proxy.js";

const test = suite("a worker that ends during a change's commit", { timeoutMs: 60_000 });

type Handle = { kill(): Promise<void>; commit(): Promise<unknown> };
const workersOf = (proxy: object): Handle[] => (proxy as { workers: Handle[] }).workers;

test("its parked listen socket at a place the change leaves is closed before the open step binds that port elsewhere", async () => {
  const [p0, p1] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const seg = (name: string, worker: number, address: string, port: number) => ({
    name, worker, rtcpMux: true, listen: { address, port }, destinations: [{ address: "127.0.0.1", port: sink.port }],
  });
  const before: ProxyConfigInput = { workers: 2, segments: [seg("old", 0, "127.0.0.1", p0), seg("steady", 1, "127.0.0.1", p1)] };
  const after: ProxyConfigInput = { workers: 2, segments: [seg("new", 1, "0.0.0.0", p0), seg("steady", 1, "127.0.0.1", p1)] };
  const { proxy } = await startProxy(before);
  assert.is(proxy.io.receive, "native", `this needs the batched-I/O addon under Node (${proxy.io.note})`);
  const tx = await bindUdp();
  try {
    // worker 0 ends between the change's prepare and its commit (as a filter stuck then, or a crash, ends it)
    const w0 = workersOf(proxy)[0]!;
    const commit = w0.commit.bind(w0);
    w0.commit = async () => {
      await w0.kill();
      return commit();
    };
    const outcome = await proxy.apply(validateProxyConfig(after)).then(() => "applied", (e: unknown) => (e as Error).message);
    assert.is(outcome, "applied");
    tx.send(indexedRtp(0), p0, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the new segment forwarding on the port");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  (await bindUdp(p0)).close();
});

test("a crashed worker's segment moved to another worker by the change that replaces it (same port, another address): it runs there", async () => {
  const [p0, p1] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const seg = (name: string, worker: number, address: string, port: number) => ({
    name, worker, listen: { address, port }, destinations: [{ address: "127.0.0.1", port: sink.port }],
  });
  const before: ProxyConfigInput = { workers: 2, segments: [seg("moving", 0, "127.0.0.1", p0), seg("steady", 1, "127.0.0.1", p1)] };
  const after: ProxyConfigInput = { workers: 2, segments: [seg("moving", 1, "0.0.0.0", p0), seg("steady", 1, "127.0.0.1", p1)] };
  const { proxy, events } = await startProxy(before);
  const tx = await bindUdp();
  try {
    await workersOf(proxy)[0]!.kill(); // a crash: its listen sockets are parked, its restart waits 100 ms
    await waitFor(() => events.some((e) => e.type === "worker-exit"), 5000, "the worker's exit");
    const outcome = await proxy.apply(validateProxyConfig(after)).then(() => "applied", (e: unknown) => (e as Error).message);
    assert.is(outcome, "applied");
    tx.send(indexedRtp(0), p0, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the moved segment forwarding on its new worker");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  for (const port of [p0, p0 + 1]) (await bindUdp(port)).close();
});

test("a crash, its replacement's crash before it served, then a change that moves the segment to another worker at an overlapping address: it runs there", async () => {
  const [p0, p1] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const seg = (name: string, worker: number, address: string, port: number) => ({
    name, worker, listen: { address, port }, destinations: [{ address: "127.0.0.1", port: sink.port }],
  });
  const before: ProxyConfigInput = { workers: 2, spareWorker: false, segments: [seg("moving", 0, "127.0.0.1", p0), seg("steady", 1, "127.0.0.1", p1)] };
  const after: ProxyConfigInput = { workers: 2, spareWorker: false, segments: [seg("moving", 1, "0.0.0.0", p0), seg("steady", 1, "127.0.0.1", p1)] };
  const { proxy, events } = await startProxy(before);
  const tx = await bindUdp();
  try {
    const first = workersOf(proxy)[0]!;
    await first.kill(); // a crash: its listen sockets are parked for its replacement
    await waitFor(() => workersOf(proxy)[0] !== first, 5000, "the first replacement");
    await workersOf(proxy)[0]!.kill(); // which crashes too, before it served: the first one's sockets wait for the next
    await waitFor(() => events.filter((e) => e.type === "worker-exit").length === 2, 5000, "both exits");
    const outcome = await proxy.apply(validateProxyConfig(after)).then(() => "applied", (e: unknown) => (e as Error).message);
    assert.is(outcome, "applied");
    tx.send(indexedRtp(0), p0, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the moved segment forwarding on its new worker");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  for (const port of [p0, p0 + 1]) (await bindUdp(port)).close();
});

test.run();
