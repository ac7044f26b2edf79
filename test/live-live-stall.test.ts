// A merging proxy (replicate's live-live merge) that stalls while it waits for a gap's copy: the
// copy comes over the other path in time, but waits in the kernel, and the merge's wait is over by
// the time the proxy runs again. The packet must still fill its gap, in order: a timer that fires
// late first reads what came meanwhile (runtime/dataplane/dataplane.ts), and the merge judges a
// backlog by when its packets arrived (their kernel receive time), not by when it reads them.
// Without the first, the timer gives the gap up before the copy is read; without the second, the
// first packet of the backlog does.
import * as assert from "uvu/assert";
import { httpBody } from "./lib/http-get.js";
import { DropWatch, settled } from "./lib/kernel-drops.js";
import { resumeTree, startCliProxy, stopTree } from "./lib/cli-proxy.js";
import { filterWasm } from "./lib/paths.js";
import { RtpSink } from "./lib/rtp-sink.js";
import { streamIndex, streamPacket } from "./lib/rtp-stream.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortRun, sleep, waitFor } from "./lib/udp.js";

const test = suite("live-live: a stalled merge", { timeoutMs: 60_000 });
const LO = "127.0.0.1";
const SEQ0 = 5000;
const BUFFER_MS = 1000;
/** The gap: path 0 never brings it, path 1 brings it while the proxy is stopped. */
const GAP = 40;
const COUNT = 61;

/** A counter of the merge stage from the proxy's Prometheus page (a filter's counter ends in _total there). */
async function mergeCounter(adminPort: number, name: string): Promise<number> {
  const body = await httpBody(adminPort, "/metrics");
  const line = body.split("\n").find((l) => l.startsWith(`msm_filter_replicate_${name}_total{`));
  if (!line) throw new Error(`no msm_filter_replicate_${name}_total on /metrics`);
  return Number(line.slice(line.lastIndexOf(" ") + 1));
}

test("a gap's copy that came while the proxy was stopped, past the merge's wait: it fills the gap, in order", async () => {
  const sink = await RtpSink.open();
  const base = await freePortRun(6);
  const adminPort = base + 4;
  // the proxy in a process of its own, so that it can be stopped
  const proxy = startCliProxy({
    filters: { replicate: { path: filterWasm("replicate") } },
    segments: [{
      name: "merged", listen: { address: LO, port: base }, destinations: [{ address: LO, port: sink.port }],
      legs: [{ name: "path1", portOffset: 2, send: false }],
      chain: [{ filter: "replicate", config: { merge: { legs: [0, 1], bufferMs: BUFFER_MS } } }],
    }],
  }, ["--admin", `${LO}:${adminPort}`]);
  const path0 = await bindUdp();
  const path1 = await bindUdp();
  const send = (path: 0 | 1, i: number): void => void (path === 0 ? path0 : path1).send(streamPacket(i, SEQ0), base + 2 * path, LO);
  let stopped: number[] = [];
  try {
    // packet 0 until the proxy passes it: the merge has started and the sender is known
    await waitFor(async () => {
      send(0, 0);
      await sleep(100);
      return sink.received > 0;
    }, 15_000, `the proxy to start and pass packet 0\n${proxy.output()}`);
    for (let i = 1; i < GAP; i++) {
      send(0, i);
      send(1, i);
      await sleep(1);
    }
    await waitFor(() => sink.received >= GAP, 5000, "the packets before the gap");
    const watch = new DropWatch([base, base + 2, sink.port]);
    // path 0 goes on without GAP: the merge holds what follows and waits BUFFER_MS for its copy
    const gapSeenAt = performance.now();
    for (let i = GAP + 1; i <= 50; i++) send(0, i);
    await waitFor(async () => (await mergeCounter(adminPort, "merged_held")) >= 50 - GAP, 5000, "the merge to hold the packets after the gap");
    stopped = stopTree(proxy.pid);
    const stoppedAfterMs = performance.now() - gapSeenAt;
    assert.ok(stoppedAfterMs < BUFFER_MS / 3, `the proxy stopped ${stoppedAfterMs.toFixed(0)} ms after the gap: well inside the merge's wait`);
    // while it is stopped: path 0's next packets, then the gap's copy on path 1, both inside the wait
    await sleep(BUFFER_MS / 4 - stoppedAfterMs);
    for (let i = 51; i < COUNT; i++) send(0, i);
    await sleep(BUFFER_MS / 4);
    send(1, GAP);
    // the wait runs out while the proxy is stopped
    await sleep(BUFFER_MS * 0.75);
    resumeTree(stopped);
    stopped = [];
    await settled(() => sink.received, 500, 10_000);
    const drops = watch.since();
    assert.is(drops.total, 0, `no kernel drop (the count below would be unknowable): ${JSON.stringify(drops.byPort)}`);
    const order = sink.order.map((seq) => streamIndex(seq, SEQ0));
    assert.equal(order, Array.from({ length: COUNT }, (_, i) => i), `every packet once, in order: the gap filled by path 1's copy\n${proxy.output()}`);
    assert.is(await mergeCounter(adminPort, "merged_lost"), 0, "no gap given up");
    assert.is(await mergeCounter(adminPort, "merged_late"), 0, "nothing passed late");
  } finally {
    resumeTree(stopped);
    path0.close();
    path1.close();
    sink.close();
    await proxy.stop();
  }
});

test.run();
