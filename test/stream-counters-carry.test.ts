// The per-stream counters of /metrics (msm_stream_*_total) never go back: not when a reload moves
// the segment to another worker, nor when the watchdog restarts its worker. The new worker counts
// the stream from nothing, as /stats shows (its sequence numbers, its first packet: what the
// control plane compares); /metrics adds what the stream had counted before.
import * as assert from "uvu/assert";
import { pageStats } from "../controlplane/api/stats-pages.js";
import { validateProxyConfig, type Proxy, type ProxyConfigInput } from "../runtime/index.js";
import { assertWentOn, sendRound, seriesOf } from "./lib/counter-series.js";
import { fixture } from "./lib/paths.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";

const test = suite("per-stream counters across a move and a worker restart", { timeoutMs: 60_000 });

const LO = "127.0.0.1";
const STREAM = 'segment="cam",ssrc="0x1234abcd",direction="ingress"';

/** The msm_stream_*_total samples of the proxy's /metrics, by series. */
const streamCounters = (proxy: Proxy): Promise<Map<string, number>> => seriesOf(proxy, /^msm_stream_[a-z_]+_total\{/);
const wentOn = (before: Map<string, number>, after: Map<string, number>, step: string): void => assertWentOn(before, after, step, 10);

test("a reload moves the segment to another worker: the stream's counters go on, /stats counts afresh", async () => {
  const sink = await Sink.open();
  const listen = await freePortPair();
  const config = (worker: number): ProxyConfigInput => ({
    workers: 2,
    segments: [{ name: "cam", worker, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }] }],
  });
  const { proxy } = await startProxy(config(0));
  const tx = await bindUdp();
  let seq = 0;
  const round = async (): Promise<void> => {
    seq = await sendRound(proxy, "cam", tx, listen, seq);
  };
  try {
    await round();
    const first = await streamCounters(proxy);
    assert.is(first.get(`msm_stream_packets_total{${STREAM}}`), 100);
    await proxy.apply(validateProxyConfig(config(1)));
    await round();
    const second = await streamCounters(proxy);
    wentOn(first, second, "moved to worker 1");
    assert.is(second.get(`msm_stream_packets_total{${STREAM}}`), 200, "both rounds");
    assert.is(second.get(`msm_stream_expected_packets_total{${STREAM}}`), 200, "expected too");
    const [st] = (await segmentStats(proxy, "cam")).streams;
    assert.is(st!.ingress!.packets, 100, "/stats: the new worker's own count");
    // what is carried is /metrics' alone: the agent's report to the control plane leaves it out (its size budget)
    const snap = await proxy.stats();
    assert.ok(snap.segments[0]!.streamsCarried?.length === 1, "carried in the snapshot");
    assert.not.match(pageStats(snap).join(""), /streamsCarried/, "not in the report");
    await proxy.apply(validateProxyConfig(config(0))); // and back: carried twice
    await round();
    const third = await streamCounters(proxy);
    wentOn(second, third, "moved back to worker 0");
    assert.is(third.get(`msm_stream_packets_total{${STREAM}}`), 300);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("the watchdog restarts the segment's worker: the stream's counters go on", async () => {
  const sink = await Sink.open();
  const listen = await freePortPair();
  const { proxy, events } = await startProxy({
    workers: 1,
    watchdog: { stuckMs: 300 },
    filters: { misbehave: { path: fixture("misbehave") } },
    segments: [{ name: "cam", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }],
      chain: [{ filter: "misbehave" }], failure: { mode: "open", restartBackoffMs: 50, maxFailures: 3 } }],
  });
  const tx = await bindUdp();
  let seq = 0;
  const round = async (): Promise<void> => {
    seq = await sendRound(proxy, "cam", tx, listen, seq);
  };
  try {
    await round();
    const first = await streamCounters(proxy);
    assert.is(first.get(`msm_stream_packets_total{${STREAM}}`), 100);
    const loop = indexedRtp(seq++);
    loop[12] = 0xad; // the misbehave fixture loops forever on this packet
    tx.send(loop, listen, LO);
    await waitFor(() => events.some((e) => e.type === "worker-restarted"), 10_000, "the watchdog to restart the worker");
    await waitFor(async () => (await segmentStats(proxy, "cam")).stages[0]?.state === "running", 10_000, "the segment running again");
    await round();
    const second = await streamCounters(proxy);
    wentOn(first, second, "after the restart");
    assert.ok(second.get(`msm_stream_packets_total{${STREAM}}`)! >= 200, `both rounds: ${second.get(`msm_stream_packets_total{${STREAM}}`)}`);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
