// The congestion filter's RFC 8083 circuit breaker (filters/congestion README "Circuit breaker"),
// with an origin that ignores feedback:
//
//   rate-stepping sender -> proxy A (congestion: sender) ==tbf 1 Mbit/s==> proxy B (congestion: receiver) -> sink
//
// (a) 3x the bottleneck for 10 s (more than the default 5 one-second intervals, and margin): the breaker trips
// once, A drops the flow's media (dropped_circuit_breaker), the sink stops getting it, A's log
// warns with the figures. (b) 3x for 2 s, then 0.4x: no trip (at this path's round trip of a few ms,
// RFC 5348's rate needs a loss near half before 10x of it is below the origin's), and
// the flow goes on to its last packet. Every packet the sink missed is attributed (A's drops by
// cause, the tbf queue, the veth pairs, the sockets).
import * as assert from "uvu/assert";
import type { ProxySnapshot } from "../runtime/index.js";
import { CONGESTION_DROPS, congestionMetric } from "./lib/cc-metrics.js";
import { settled } from "./lib/kernel-drops.js";
import { clearImpairment, impair, impairmentPeer } from "./lib/link-impairment.js";
import { PathWatch, totalDrops, type PathCounters } from "./lib/loss-trial.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { nsTool, startNsSink, type NsSink, type SinkReport } from "./lib/ns-rtp.js";
import { DEFAULT_STREAM, formatArgs, streamPacketSize } from "./lib/ns-tools/rtp-stream.js";
import { startNsProxy, type NsProxy } from "./lib/ns-proxy.js";
import { filterWasm } from "./lib/paths.js";
import { allOf, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";

const test = suite("congestion: circuit breaker", { timeoutMs: 60_000 });
const PEERS = allOf(netnsPeer, impairmentPeer);

const PORT = 5004;
const SINK_PORT = 6000;
const CAPACITY_KBIT = 1000;
/** circuitBreaker.intervals: its default. */
const INTERVALS = 5;
/** The test stream's mean packet on the wire (RTP + UDP + IPv4 + Ethernet), in bits. */
const MEAN_BITS = (() => {
  let bytes = 0;
  for (let i = 0; i < 1000; i++) bytes += streamPacketSize(i, DEFAULT_STREAM) + 8 + 20 + 14;
  return (bytes / 1000) * 8;
})();
/** Packets per second at `x` times the bottleneck. */
const atCapacity = (x: number): number => Math.round((x * CAPACITY_KBIT * 1000) / MEAN_BITS);

let lab: NetnsLab | undefined;
const theLab = (): NetnsLab => (lab ??= NetnsLab.create(["sender", "a", "b", "sink"]));
test.after(() => lab?.close());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const metric = congestionMetric;

function proxyConfigs(l: NetnsLab): { role: string; config: Record<string, unknown> }[] {
  const filters = { congestion: { path: filterWasm("congestion") } };
  const segment = (to: string, port: number, stage: Record<string, unknown>) => ({
    name: "media", listen: { address: "0.0.0.0", port: PORT }, destinations: [{ address: to, port }], chain: [{ filter: "congestion", config: stage }],
  });
  // renumbering off: the sink checks each packet's bytes against its sequence number as the origin
  // gave it, and tells what it missed by those numbers
  const sender = { mode: "sender", circuitBreaker: { cooldownSeconds: 0 }, priority: { renumber: false } };
  return [
    { role: "a", config: { filters, segments: [segment(l.address("b", "a"), PORT, sender)] } },
    { role: "b", config: { filters, segments: [segment(l.address("sink", "b"), SINK_PORT, { mode: "receiver" })] } },
  ];
}

interface Sample {
  /** ms since the sender started. */
  readonly atMs: number;
  readonly open: number;
  readonly trips: number;
  readonly droppedBreaker: number;
  readonly received: number;
}

interface Run {
  readonly sent: number;
  readonly steps: { first: number; sent: number; atMs: number }[];
  readonly samples: readonly Sample[];
  readonly sink: SinkReport;
  readonly path: PathCounters;
  readonly a: ProxySnapshot;
  /** A's output (its warnings). */
  readonly aLog: string;
  /** When the sender began its first step (epoch ms, as this process saw its line). */
  readonly firstPacketAt: number;
  readonly unexplained: number;
}

/**
 * Starts the proxies and the sink, limits a>b, sends `steps` (packets/s for seconds) from the
 * sender to A while sampling A's breaker figures and the sink's count every 250 ms, and accounts
 * for every packet.
 */
async function runSteps(steps: readonly (readonly [rate: number, seconds: number])[]): Promise<Run> {
  const l = theLab();
  const proxies: NsProxy[] = [];
  const count = steps.reduce((n, [rate, s]) => n + Math.round(rate * s), 0);
  let sink: NsSink | undefined;
  try {
    for (const p of proxyConfigs(l)) proxies.push(await startNsProxy(l, p.role, p.config));
    const a = proxies[0]!;
    impair(l, "a", "b", { rateKbit: CAPACITY_KBIT });
    sink = await startNsSink(l, "sink", { port: SINK_PORT, count });
    const watch = await PathWatch.start(l, "a", "sink", proxies);
    const seconds = steps.reduce((n, [, s]) => n + s, 0);
    const sender = l.spawn("sender", process.execPath, [
      nsTool("cc-rate-steps"), "--address", l.address("a", "sender"), "--port", String(PORT),
      "--steps", steps.map(([r, s]) => `${r}:${s}`).join(","), ...formatArgs(DEFAULT_STREAM),
    ]);
    const started = Date.now();
    let firstPacketAt = 0;
    sender.onLine((line) => {
      if (line.startsWith("step 0 at ")) firstPacketAt = Date.now();
    });
    const backstop = setTimeout(() => sender.kill(), seconds * 1000 + 15_000);
    const samples: Sample[] = [];
    // bounded: the sender ends within its steps + 5 s, the backstop kills it 15 s late
    for (let i = 0; i < (seconds + 20) * 4 && sender.running; i++) {
      const snap = await a.stats();
      samples.push({
        atMs: Date.now() - started, open: metric(snap, "circuit_breaker_open"), trips: metric(snap, "circuit_breaker_trips"),
        droppedBreaker: metric(snap, "dropped_circuit_breaker"), received: sink.received(),
      });
      await sleep(250);
    }
    const code = await sender.exited;
    clearTimeout(backstop);
    const out = /^(\{.*\})$/m.exec(sender.stdout());
    if (code !== 0 || !out) throw new Error(`the sender failed (exit ${code}):\n${sender.output().slice(-2000)}`);
    const sent = JSON.parse(out[1]!) as { sent: number; steps: Run["steps"] };
    await settled(() => sink!.received(), 800, 10_000); // the pacer's and the tbf's queues drain
    const path = await watch.since();
    const report = await sink.stop();
    sink = undefined;
    const withSink = report.kernelDrops > 0 ? { ...path, kernel: { ...path.kernel, [`sink:${SINK_PORT}`]: report.kernelDrops } } : path;
    return {
      sent: sent.sent, steps: sent.steps, samples, sink: report, path: withSink, a: path.stats.get("a")!, aLog: a.process.output(), firstPacketAt,
      unexplained: report.missing - explained(withSink),
    };
  } finally {
    await sink?.stop().catch(() => undefined);
    const stops = await Promise.allSettled(proxies.map((p) => p.stop()));
    clearImpairment(l, "a", "b");
    const failed = stops.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
  }
}

const filterDrops = (a: ProxySnapshot): number => CONGESTION_DROPS.reduce((n, c) => n + metric(a, `dropped_${c}`), 0);
const segmentDrops = (snap: ProxySnapshot | undefined): number => Object.values(snap?.segments[0]?.drops ?? {}).reduce((x, y) => x + y, 0);

/**
 * Every drop on the path, A's by its filter's counters: the packets it held in its pacer's queue
 * and then dropped are counted there (the proxy's own drop counters miss them: see the report).
 */
function explained(path: PathCounters): number {
  return totalDrops(path) - segmentDrops(path.stats.get("a")) + filterDrops(path.stats.get("a")!);
}

/** A's drops by cause, the link's and the sockets' drops, in words. */
function drops(r: Run): string {
  const causes = CONGESTION_DROPS.map((c) => `${c} ${metric(r.a, `dropped_${c}`)}`).join(", ");
  const link = r.path.links["a>b"]!;
  return `A: ${causes}; A's segment: ${JSON.stringify(r.path.proxyDrops["a"] ?? {})}; B: ${JSON.stringify(r.path.proxyDrops["b"] ?? {})}; ` +
    `a>b tbf ${link.queueDrops}, veth ${link.interfaceDrops}; kernel ${JSON.stringify(r.path.kernel)}`;
}

function figures(r: Run): string {
  const b = r.path.stats.get("b")!;
  return ["rtt_ms", "loss_per_mille", "incoming_bps", "target_bps", "acked_bps", "feedback_packets", "feedback_rejected"].map((m) => `${m} ${metric(r.a, m)}`).join(", ") +
    `; B feedback_sent ${metric(b, "feedback_sent")}; A upstreamIn ${r.a.segments[0]!.upstreamIn}, B upstreamIn ${b.segments[0]!.upstreamIn}`;
}

peerTest(test, PEERS, "(a) persistent overload (3x for 10 s): the breaker trips once and the media stops", async () => {
  const overload = atCapacity(3);
  const r = await runSteps([[overload, 10]]);
  const tripped = r.samples.find((s) => s.open === 1);
  const warning = r.aLog.split("\n").find((line) => /circuit.breaker/i.test(line));
  // the warning's time stamp, from the start of the overload
  const trippedAfterMs = warning ? Date.parse(warning.split(" ")[0]!) - r.firstPacketAt : NaN;
  console.log(`persistent: ${overload} packets/s (3x ${CAPACITY_KBIT} kbit/s), sent ${r.sent}, sink ${r.sink.received}; tripped ${trippedAfterMs} ms into the overload (first sample open at ${tripped?.atMs ?? "never"} ms); ${drops(r)}; ${figures(r)}`);
  console.log(`samples (ms: open/trips/dropped_circuit_breaker/sink): ${r.samples.map((s) => `${s.atMs}:${s.open}/${s.trips}/${s.droppedBreaker}/${s.received}`).join(" ")}`);
  console.log(`A's warning: ${warning}`);
  assert.ok(tripped, "the breaker never opened");
  assert.is(metric(r.a, "circuit_breaker_open"), 1);
  assert.is(metric(r.a, "circuit_breaker_trips"), 1);
  assert.ok(warning, `A logged nothing about the circuit breaker:\n${r.aLog.slice(-2000)}`);
  assert.ok((warning.match(/\d+(\.\d+)?/g) ?? []).length >= 3, `the warning names no figures: ${warning}`);
  // INTERVALS one-second intervals in a row (the first may have begun before the overload did), and margin
  assert.ok(trippedAfterMs >= (INTERVALS - 1) * 1000 && trippedAfterMs <= (INTERVALS + 3) * 1000, `tripped ${trippedAfterMs} ms into the overload`);
  // once open, A drops the flow, and the sink gets nothing after what was already past A (the tbf's 100 ms queue)
  const settledAt = r.samples.find((s) => s.atMs >= tripped.atMs + 1000);
  assert.ok(settledAt, "no sample a second after the trip");
  assert.is(r.sink.received, settledAt.received, `the sink got ${r.sink.received - settledAt.received} packets more after the breaker opened`);
  assert.ok(metric(r.a, "dropped_circuit_breaker") > settledAt.droppedBreaker, "A's circuit_breaker drops stopped growing while the origin still sent");
  assert.ok(r.sink.highest < r.sent - 1, "the last packets reached the sink");
  assert.is(r.unexplained, 0, `the sink missed ${r.sink.missing} packets; drops explain ${explained(r.path)}: ${drops(r)}`);
});

peerTest(test, PEERS, "(b) a short overload (3x for 2 s, then 0.4x for 6 s): no trip, and the flow goes on", async () => {
  const [overload, calm] = [atCapacity(3), atCapacity(0.4)];
  const r = await runSteps([[overload, 2], [calm, 6]]);
  console.log(`short: ${overload} packets/s for 2 s then ${calm} packets/s for 6 s, sent ${r.sent}, sink ${r.sink.received}; ${drops(r)}; ${figures(r)}`);
  console.log(`samples (ms: open/trips/dropped_circuit_breaker/sink): ${r.samples.map((s) => `${s.atMs}:${s.open}/${s.trips}/${s.droppedBreaker}/${s.received}`).join(" ")}`);
  assert.is(metric(r.a, "circuit_breaker_trips"), 0);
  assert.ok(r.samples.every((s) => s.open === 0), "the breaker opened for a while");
  assert.is(metric(r.a, "dropped_circuit_breaker"), 0);
  // the overload cost packets; the calm step's arrived, up to the last
  assert.ok(r.sink.missing > 0, "the overload lost nothing: it was no overload");
  assert.is(r.sink.highest, r.sent - 1, "the flow's last packet did not arrive");
  const calmStep = r.steps[1]!;
  const calmEndMs = calmStep.atMs + (calmStep.sent / calm) * 1000;
  const from = r.samples.find((s) => s.atMs >= calmStep.atMs + 1000 && s.atMs <= calmEndMs - 2000);
  assert.ok(from, "no sample in the calm step");
  const expected = (calm * (calmEndMs - from.atMs)) / 1000;
  assert.ok(r.sink.received - from.received >= expected * 0.95, `the sink got ${r.sink.received - from.received} packets in the calm step's last ${calmEndMs - from.atMs} ms; it was sent about ${Math.round(expected)}`);
  assert.is(r.unexplained, 0, `the sink missed ${r.sink.missing} packets; drops explain ${explained(r.path)}: ${drops(r)}`);
});

test.run();
