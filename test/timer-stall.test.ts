// A filter timer that comes due while the proxy is stopped (a stall, as a busy machine or a long
// pause makes one) fires after the packets that waited meanwhile, and not at all if they moved
// it. The delay fixture with `rearm` sends what it holds once the stream has been quiet for
// delayMs; a packet that came during the stall moves that point, so nothing may leave until about
// delayMs after the proxy read it. Before the late timer read the sockets first, the first packet
// left at once and the second delayMs later; had the moved timer fired anyway, both at once.
import * as assert from "uvu/assert";
import { resumeTree, startCliProxy, stopTree } from "./lib/cli-proxy.js";
import { fixture } from "./lib/paths.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, sleep, waitFor } from "./lib/udp.js";

const test = suite("a filter timer late after a stall", { timeoutMs: 60_000 });
const LO = "127.0.0.1";
const DELAY_MS = 400;

test("the packets that came during the stall go first; the timer they moved does not fire", async () => {
  const sink = await bindUdp();
  const arrivals: number[] = [];
  sink.on("message", () => arrivals.push(performance.now()));
  const listen = await freePortPair();
  const proxy = startCliProxy({
    filters: { delay: { path: fixture("delay") } },
    segments: [{
      name: "quiet", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.address().port }],
      chain: [{ filter: "delay", config: { delayMs: DELAY_MS, rearm: true } }],
    }],
  });
  const tx = await bindUdp();
  let stopped: number[] = [];
  try {
    // packet 0 until it comes out: the proxy runs and its sender is known
    await waitFor(async () => {
      tx.send(indexedRtp(0), listen, LO);
      await sleep(DELAY_MS + 200);
      return arrivals.length > 0;
    }, 20_000, `the proxy to start and pass packet 0\n${proxy.output()}`);
    await sleep(DELAY_MS + 200); // the retries' copies of 0 out too
    arrivals.length = 0;
    const t0 = performance.now();
    tx.send(indexedRtp(1), listen, LO); // held; the timer due at t0 + DELAY_MS
    await sleep(50);
    stopped = stopTree(proxy.pid);
    assert.ok(performance.now() - t0 < DELAY_MS / 2, "stopped well before the timer was due");
    await sleep(50);
    tx.send(indexedRtp(2), listen, LO); // waits in the kernel
    await sleep(DELAY_MS + 200 - (performance.now() - t0)); // the timer's time passes
    const resumedAt = performance.now();
    resumeTree(stopped);
    stopped = [];
    await waitFor(() => arrivals.length >= 2, 5000, `both packets out\n${proxy.output()}`);
    const [first, second] = arrivals.map((t) => t - resumedAt) as [number, number];
    assert.ok(Math.abs(second - first) < DELAY_MS / 4, `both packets leave together (${first.toFixed(0)} and ${second.toFixed(0)} ms after the resume): packet 2 was read before the late timer`);
    assert.ok(first >= DELAY_MS * 0.75, `not before about ${DELAY_MS} ms after the resume (${first.toFixed(0)} ms): packet 2 moved the timer, and the late one did not fire`);
    assert.is(arrivals.length, 2);
  } finally {
    resumeTree(stopped);
    tx.close();
    sink.close();
    await proxy.stop();
  }
});

test.run();
