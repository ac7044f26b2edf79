// Under Bun the workers are processes, reached through an IPC channel. A worker killed from
// outside (kill -9, the OOM killer) closes its channel a moment before its exit is seen; a message
// the proxy sent it then (a stats refresh, a reload's prepare) failed with 'Channel closed', which
// nobody listened for: Bun threw it and the whole proxy ended, every segment on every worker with
// it. Now such a request is answered as the exit answers the ones in flight, and the worker is
// restarted. Under Node the workers are threads, with no channel to close: the test is Bun's.
import * as assert from "uvu/assert";
import type { ChildProcess } from "node:child_process";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { startProxy } from "./lib/proxy.js";

const test = suite("a worker process whose channel closed", { timeoutMs: 60_000 });
const LO = "127.0.0.1";

type Handle = { child?: ChildProcess };
const workersOf = (proxy: object): Handle[] => (proxy as { workers: Handle[] }).workers;

test("requests to it are answered, the proxy lives on and restarts it", async () => {
  const [p0, p1] = [await freePortPair(), await freePortPair()];
  const [s0, s1] = [await Sink.open(), await Sink.open()];
  const config = (tag: number): ProxyConfigInput => ({
    workers: 2,
    filters: { counter: { path: fixture("counter") } },
    segments: [
      { name: "zero", worker: 0, listen: { address: LO, port: p0 }, destinations: [{ address: LO, port: s0.port }], chain: [{ filter: "counter", config: { tag } }] },
      { name: "one", worker: 1, listen: { address: LO, port: p1 }, destinations: [{ address: LO, port: s1.port }], chain: [{ filter: "counter", config: { tag } }] },
    ],
  });
  const { proxy, events } = await startProxy(config(1));
  const tx = await bindUdp();
  try {
    const child = workersOf(proxy)[0]!.child;
    if (!child) return; // threads (Node): no channel
    child.disconnect(); // the channel closes before the exit is seen, as when the worker is killed
    const stats = await proxy.stats(); // would throw 'Channel closed' out of the proxy
    assert.ok(stats.segments.some((s) => s.name === "one"), "the other worker answers");
    // a reload then: the going worker's exit is awaited (counted as a crash), and the change applies
    // to its replacement instead of being refused for it ('worker 0 exited')
    await proxy.apply(validateProxyConfig(config(2)));
    assert.ok(events.some((e) => e.type === "worker-exit" && e.worker === 0), "its exit is counted");
    assert.equal(proxy.segmentsNotRunning, []);
    await waitFor(() => proxy.health().ready, 10_000, `ready: ${proxy.health().problems.join("; ")}`);
    tx.send(indexedRtp(1), p0, LO);
    tx.send(indexedRtp(1), p1, LO);
    await waitFor(() => s0.received === 1 && s1.received === 1, 5000, "both segments forwarding");
  } finally {
    tx.close();
    s0.close();
    s1.close();
    await proxy.close();
  }
});

test.run();
