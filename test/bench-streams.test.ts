// The streams part in a tiny run: real proxies with per-stream stats off and on (one stream each,
// under Node), then 20 segments of one stream each with stats off, on and bounded to 4 streams per
// worker, then the in-process loops over 200 streams. Figures are not asserted (a shared
// machine): every row exists with sane, finite numbers; with stats on every stream is listed in
// /stats with both directions counted; bounded, each worker lists at most its limit and every
// other segment's packets are in its streamsOverflow; and the report shows it.
import * as assert from "uvu/assert";
import { printText, renderResultsMarkdown } from "../bench/report.js";
import { expectedListed, runStreams, tableCapacity, type StreamsResult } from "../bench/streams.js";
import { TINY_SEARCH } from "./lib/bench-search.js";
import { benchResults } from "./lib/bench-results.js";
import { suite } from "./lib/suite.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const test = suite("bench streams", { timeoutMs: 150_000 });

// below the ephemeral range, away from the scale test's ports, spread by pid
const BASE_PORT = 31_000 + (process.pid % 60) * 25;
const SEGMENTS = 20;
const BOUNDED = 4;

let result: StreamsResult;

test.before(async () => {
  result = await runStreams({
    filterPath: TINY_SEARCH.filterPath,
    filterName: TINY_SEARCH.filterName,
    cpuRatePps: 5000,
    size: TINY_SEARCH.size,
    trialMs: TINY_SEARCH.trialMs,
    drainMs: TINY_SEARCH.drainMs,
    rounds: 1,
    runtimes: ["node"],
    pin: false,
    segments: SEGMENTS,
    ratePerStream: 5,
    boundedMax: BOUNDED,
    scaleRounds: 1,
    warmupMs: 600,
    measureMs: 1000,
    idleMs: 500,
    workers: 2,
    basePort: BASE_PORT,
    microStreams: 200,
    sampleMs: 2,
    microRepeats: 3,
  });
});

const finitePositive = (x: number | null | undefined, what: string): void => {
  assert.ok(typeof x === "number" && Number.isFinite(x) && x > 0, `${what}: ${x}`);
};

test("CPU per packet: a proxy with stats off and one with stats on, each measured, the on one listing its stream", () => {
  assert.is(result.cpu.rows.length, 1, JSON.stringify(result.warnings));
  const row = result.cpu.rows[0]!;
  assert.is(row.runtime, "node");
  finitePositive(row.offUsPerPacket, "off us/packet");
  finitePositive(row.onUsPerPacket, "on us/packet");
  finitePositive(row.onOverOff, "on / off");
  assert.equal(row.onOverOffRange, [row.onOverOff, row.onOverOff], "one round: the range is its ratio");
  assert.ok(Number.isFinite(row.addedNsPerPacket), `added ns: ${row.addedNsPerPacket}`);
  assert.is(row.onStreamsListed, 1, "stats on: the one stream is listed");
  assert.is(row.offStreamsListed, 0, "stats off: nothing listed");
  assert.is(result.cpu.trials.length, 2, "one trial per variant and round");
  assert.ok(row.io !== null && row.io.length > 0, "the proxy named its I/O");
});

test("many streams: off lists none, on lists every stream with both directions, bounded lists its limit per worker and aggregates the rest", () => {
  const [off, on, bounded] = result.scale.rows;
  assert.ok(off && on && bounded, JSON.stringify(result.warnings));
  for (const row of [off, on, bounded]) {
    const l = row.listing;
    assert.ok(l, `${row.label}: no listing; warnings: ${result.warnings.join("; ")}`);
    assert.is(l.segments, SEGMENTS, row.label);
    // off counts no stream at all; on and bounded count every segment's packets one way or the other
    assert.is(l.unaccountedSegments, row === off ? SEGMENTS : 0, `${row.label}: segments whose packets no stream counted`);
    finitePositive(row.cpuUsPerPacket, `${row.label}: CPU us/packet`);
    assert.ok(row.rssBytes !== null && row.rssBytes > 10 * 2 ** 20, `${row.label}: RSS of a node process`);
    assert.ok(row.snapshotMs !== null && row.snapshotMs > 0 && row.snapshotCpuMs !== null && row.snapshotCpuMs >= 0, `${row.label}: /stats cost`);
    assert.ok(row.report && row.report.pages >= 1 && row.report.segmentsReported === SEGMENTS, `${row.label}: the report holds every segment`);
    assert.is(row.levels.length, 1, `${row.label}: one round`);
    assert.ok(row.idleCpuPct !== null && row.idleCpuPct >= 0 && Number.isFinite(row.idleCpuPct), `${row.label}: idle CPU ${row.idleCpuPct}`);
    finitePositive(row.cpuPct, `${row.label}: CPU %`);
    assert.ok(Number.isInteger(row.proxyDrops) && row.proxyDrops >= 0, `${row.label}: proxy drops ${row.proxyDrops}`);
  }
  assert.is(off.listing!.streamsListed, 0);
  assert.is(off.listing!.overflowSegments, 0);
  assert.is(off.expectedBytes, 0);

  const l = on.listing!;
  assert.is(l.streamsListed, SEGMENTS, "every stream listed");
  assert.is(l.segmentsWithOneStream, SEGMENTS, "one stream per segment");
  assert.is(l.withIngressAndEgress, SEGMENTS, "each with ingress and egress counted");
  assert.is(l.overflowSegments, 0);
  assert.is(l.ingressPackets, l.packetsIn, "ingress counts every packet the segments took in");
  assert.ok(l.egressPackets > 0 && l.egressPackets <= l.ingressPackets, `egress ${l.egressPackets} of ${l.ingressPackets}`);
  assert.ok(on.report!.compactBytes > off.report!.compactBytes, "streams make the report bigger");
  finitePositive(on.expectedBytes, "on: expected bytes");
  finitePositive(result.scale.reportBytesPerStream, "report bytes per stream");
  finitePositive(result.scale.streamsPerReport, "streams per report");

  const b = bounded.listing!;
  assert.is(b.byWorker.length, 2, "two workers");
  for (const w of b.byWorker) assert.is(w.streams, Math.min(BOUNDED, w.segments), `worker ${w.worker}: ${w.streams} streams of ${w.segments} segments`);
  assert.is(b.streamsListed, expectedListed(BOUNDED, b));
  assert.is(b.overflowSegments, SEGMENTS - b.streamsListed, "every segment not listed is aggregated");
  assert.ok(b.overflowIngressPackets > 0 && b.overflowEgressPackets > 0, "overflow counts both directions");
  assert.is(b.ingressPackets, b.packetsIn, "listed and aggregated together count every packet in");
  assert.ok(bounded.expectedBytes < on.expectedBytes, "a smaller table");
});

test("in process: every loop measured, the counting over the empty loop, no allocation per packet", () => {
  const m = result.micro;
  assert.is(m.rows.length, 6);
  assert.is(m.rows[0]!.overLoopNs, null, "the empty loop is the baseline");
  for (const row of m.rows) {
    finitePositive(row.nsPerPacket, row.name);
    assert.ok(row.minNs <= row.nsPerPacket && row.nsPerPacket <= row.maxNs, `${row.name}: median within the range`);
    assert.ok(Number.isFinite(row.heapBytesPerPacket) && row.heapBytesPerPacket >= 0, `${row.name}: heap ${row.heapBytesPerPacket}`);
  }
  for (const row of m.rows.slice(1)) assert.ok(Number.isFinite(row.overLoopNs), row.name);
  assert.match(m.rows[2]!.name, /200 streams round robin/);
  finitePositive(m.rollNsPerStream, "roll ns per stream");
  finitePositive(m.snapshotNsPerStream, "snapshot ns per stream");
  // ~800 B of columns per slot: a change of layout shows here
  assert.ok(m.tableBytesPerSlot > 100 && m.tableBytesPerSlot < 10_000, `table bytes per slot ${m.tableBytesPerSlot}`);
  finitePositive(m.heapBytesPerSegment, "heap bytes per segment");
});

test("the table grows by doubling from 16 up to its limit; each worker lists up to the limit", () => {
  assert.is(tableCapacity(0, 5000), 0);
  assert.is(tableCapacity(10_000, 0), 0);
  assert.is(tableCapacity(10_000, 1), 16);
  assert.is(tableCapacity(10_000, 5000), 8192);
  assert.is(tableCapacity(1000, 5000), 1000);
  assert.is(tableCapacity(10_000, 10_000), 10_000);
  const listing = { byWorker: [{ worker: 0, segments: 7, streams: 4 }, { worker: 1, segments: 3, streams: 3 }] };
  assert.is(expectedListed(4, listing as unknown as Parameters<typeof expectedListed>[1]), 7);
});

test("the report shows every table, and RESULTS.md the part with its command", () => {
  const results = benchResults(["streams"], { streams: result }, { command: "node dist/bench/run.js --only streams" });
  const text = printText(results);
  assert.match(text, /\(h\) Streams: CPU per packet with per-stream stats off and on/);
  assert.match(text, /\(h\) Streams: 20 streams on one proxy/);
  assert.match(text, /agent pages/);
  assert.match(text, /StreamTable\.record, 1 stream/);
  assert.match(text, /^Node\s+\d/m);
  const dir = mkdtempSync(join(tmpdir(), "msm-bench-streams-"));
  try {
    writeFileSync(join(dir, "2026-01-02-streams.json"), JSON.stringify(results));
    const md = renderResultsMarkdown(dir);
    assert.match(md, /### \(h\) Streams: what per-stream stats cost/);
    assert.match(md, /Reproduce: `node dist\/bench\/run\.js --only streams`/);
    assert.match(md, /\| stats on, streams\.max 4 \(the rest aggregated\) \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a bounded streams.max at or above the streams per worker is refused", async () => {
  try {
    await runStreams({ ...({} as Parameters<typeof runStreams>[0]), runtimes: ["node"], segments: 20, workers: 2, boundedMax: 10 });
    assert.unreachable("accepted");
  } catch (err) {
    assert.match((err as Error).message, /bounded streams\.max \(10\) must be above 0 and under the streams per worker \(20 \/ 2\)/);
  }
});

test.run();
