// The scale benchmark end to end at a small size: a real proxy process with 1 and then 20
// segments, one stream each from the forked generator to the forked sink through the proxy.
// No timing or zero-loss assertions (the machine is shared): packets must flow through every
// segment, every packet lost must be accounted for by a drop counter (the proxy's, or the
// kernel's on the sockets involved), and every figure must be present and sane.
import * as assert from "uvu/assert";
import { runScale, scaleTables, scaleTarget, type ScaleResult, type ScaleRow } from "../bench/scale.js";
import { filterWasm } from "./lib/paths.js";
import { suite } from "./lib/suite.js";

const test = suite("bench scale", { timeoutMs: 60_000 });

// below the ephemeral range, and spread by pid so that concurrent runs rarely meet
const BASE_PORT = 21_000 + (process.pid % 400) * 25;

let result: ScaleResult | undefined;

test("runScale with 1 and 20 segments through the real proxy", async () => {
  result = await runScale({
    counts: [1, 20],
    ratePerStream: 50,
    size: 200,
    warmupMs: 600,
    measureMs: 1000,
    runtime: "node",
    workers: 1,
    filter: { name: "validate", path: filterWasm("validate") },
    basePort: BASE_PORT,
    symmetricRtp: true,
  });
  const r = result;
  assert.is(r.chain, "validate");
  assert.is(r.runtime, "node");
  assert.is(r.size, 200);
  assert.ok(r.method.length > 0);
  assert.is(r.target.met, null, "10,000 segments were not run: no verdict");
  assert.ok(Array.isArray(r.warnings));
  const full = r.rows.filter((row) => !row.reducedRate);
  assert.equal(full.map((row) => row.segments), [1, 20], "one full-rate row per count");
  for (const row of full) {
    const where = `${row.segments} segments`;
    assert.is(row.ratePerStream, 50, where);
    assert.is(row.offeredPps, row.segments * 50, where);
    assert.ok(row.setupMs > 0, `${where}: setup time`);
    assert.ok(row.rssBytes > 10 * 1024 * 1024, `${where}: rss of a node process`);
    assert.ok(row.peakRssBytes !== undefined && row.peakRssBytes >= row.rssBytes, `${where}: the sampled peak (${row.peakRssBytes}) is at least the reading after the window (${row.rssBytes})`);
    assert.ok(row.sent >= row.segments * 40, `${where}: the generator sent (${row.sent})`);
    // packets went through the real proxy to the sink, on every stream
    assert.ok(row.received > 0 && row.received <= row.sent, `${where}: received ${row.received} of ${row.sent}`);
    assert.ok(row.worstStreamLossPct < 100, `${where}: a segment forwarded nothing`);
    assert.is(row.lossPct, Math.round(((row.sent - row.received) / row.sent) * 100 * 1e4) / 1e4, `${where}: loss % is (sent - received) / sent`);
    // every packet lost is accounted for: the proxy's drop counters or the kernel's (Linux: all readable)
    assert.ok(row.kernelDrops !== null && row.sinkDrops !== null && row.backlogDrops !== null, `${where}: kernel drop counters unread`);
    const explained = row.proxyDrops + row.kernelDrops! + row.sinkDrops! + row.backlogDrops!;
    assert.ok(row.sent - row.received <= explained,
      `${where}: ${row.sent - row.received} packets lost, ${explained} explained (proxy ${row.proxyDrops}, kernel at the listen sockets ` +
      `${row.kernelDrops}, at the sink ${row.sinkDrops}, input backlog ${row.backlogDrops}); warnings: ${r.warnings.join("; ")}`);
    assert.ok(row.cpuPct > 0, `${where}: the proxy used CPU`);
    assert.ok(row.cpuUsPerPacket !== null && row.cpuUsPerPacket > 0, `${where}: CPU per packet`);
    assert.ok(Number.isFinite(row.setupMsPerSegment), `${where}: setup per segment`);
  }
  assert.is(full[0]!.rssBytesPerSegment, null, "no per-segment RSS at the baseline");
  assert.type(full[1]!.rssBytesPerSegment, "number");
});

test("scaleTables shows every row and the verdict", () => {
  assert.ok(result, "the run above produced a result");
  const { text, markdown } = scaleTables(result!);
  assert.match(text, /segments/);
  assert.match(markdown, /^### \(d\) Scale: segments in one proxy \(Node\)$/m);
  assert.match(markdown, /How to read/);
  assert.match(markdown, /Target .*not judged/);
  for (const row of result!.rows) {
    assert.match(text, new RegExp(`^${row.segments}\\s+${row.ratePerStream}\\s`, "m"));
    assert.match(markdown, new RegExp(`^\\| ${row.segments} \\| ${row.ratePerStream} \\|`, "m"));
  }
});

const row = (segments: number, over: Partial<ScaleRow> = {}): ScaleRow => ({
  segments, ratePerStream: 50, reducedRate: false, offeredPps: segments * 50, achievedPps: segments * 50, generatorShort: false,
  setupMs: 100, setupMsPerSegment: 1, rssBytes: 50 << 20, rssBytesPerSegment: segments === 1 ? null : 4096, cpuPct: 10,
  cpuUsPerPacket: 5, sent: 1000, received: 1000, lossPct: 0, streamsWithLoss: 0, worstStreamLossPct: 0, proxyDrops: 0, kernelDrops: 0, sinkDrops: 0, backlogDrops: 0, ...over,
});

test("the target reads the 10,000 x 5 pps row, whatever the full-rate row did", () => {
  const overloaded = row(10_000, { achievedPps: 150_000, generatorShort: true, lossPct: 40, streamsWithLoss: 9000, worstStreamLossPct: 60 });
  const atFive = (over: Partial<ScaleRow> = {}): ScaleRow => row(10_000, { ratePerStream: 5, reducedRate: true, offeredPps: 50_000, achievedPps: 50_000, ...over });
  const counts = [1, 10_000];
  const met = scaleTarget(counts, [row(1), overloaded, atFive()], new Map());
  assert.is(met.met, true, met.why);
  assert.is(met.ratePerStream, 5);
  assert.match(met.why, /^met at 5 pps per stream: RSS 50 MiB <= 1 GiB, no stream lost packets \(also at 50 pps per stream: .*9000 of 10000 streams lost/);
  const lossy = scaleTarget(counts, [row(1), overloaded, atFive({ streamsWithLoss: 3, worstStreamLossPct: 2 })], new Map());
  assert.is(lossy.met, false);
  assert.match(lossy.why, /^not met at 5 pps per stream: .*3 of 10000 streams lost packets/);
  const big = scaleTarget(counts, [row(1), atFive({ rssBytes: 1100 * 2 ** 20 })], new Map());
  assert.is(big.met, false);
  assert.match(big.why, /RSS 1100 MiB > 1 GiB/);
  // the sampled peak is what it judges: a low reading after the window does not pass a high peak
  const peaked = scaleTarget(counts, [row(1), atFive({ rssBytes: 700 * 2 ** 20, peakRssBytes: 1030 * 2 ** 20 })], new Map());
  assert.is(peaked.met, false);
  assert.match(peaked.why, /peak RSS 1030 MiB > 1 GiB \(700 MiB after the window\)/);
  const underPeak = scaleTarget(counts, [row(1), atFive({ rssBytes: 700 * 2 ** 20, peakRssBytes: 800 * 2 ** 20 })], new Map());
  assert.is(underPeak.met, true, underPeak.why);
  // only the full-rate row: no verdict from it
  assert.is(scaleTarget(counts, [row(1), row(10_000)], new Map()).met, false);
  assert.match(scaleTarget(counts, [row(1), row(10_000)], new Map()).why, /^no row at 5 pps per stream/);
  const refused = scaleTarget(counts, [row(1)], new Map([[10_000, "exited (code 1) before it was ready: EMFILE"]]));
  assert.is(refused.met, false);
  assert.match(refused.why, /did not run 10000 segments: exited .*EMFILE/);
  assert.is(scaleTarget([1, 100], [row(1), row(100)], new Map()).met, null);
});

test("scaleTables labels reduced rows and a missed target", () => {
  const synthetic: ScaleResult = {
    method: "synthetic", size: 200, workers: 2, runtime: "node", chain: "validate",
    rows: [row(1), row(10_000, { achievedPps: 250_000, generatorShort: true, lossPct: 40, streamsWithLoss: 9000 }),
      row(10_000, { ratePerStream: 5, reducedRate: true, offeredPps: 50_000, achievedPps: 50_000 })],
    target: { segments: 10_000, ratePerStream: 5, rssLimitBytes: 1 << 30, met: false, why: "not met: example" },
    warnings: ["a warning"],
  };
  const { text, markdown } = scaleTables(synthetic);
  assert.match(text, /^10000\s+5 \(reduced\)/m);
  assert.match(text, /250000 \(short\)/);
  assert.match(text, /NOT MET: not met: example/);
  assert.match(text, /warning: a warning/);
  assert.match(markdown, /\| 10000 \| 5 \(reduced\) \|/);
  assert.match(markdown, /- a warning/);
});

test.run();
