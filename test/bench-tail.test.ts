// The tail part (bench/tail.ts) in a tiny run on real processes: the proxy and the plain
// node:dgram relay under Node and Bun, two rounds each. Figures are not asserted (a shared
// machine): that every round measured the proxy once and the relay twice in its rotated order,
// that the ratios are the ones its samples give, that the report and the targets show them, and
// that the Bun proxy's worker process runs without Bun's idle-GC timer.
import { readFileSync } from "node:fs";
import * as assert from "uvu/assert";
import { startProxy } from "../bench/e2e.js";
import { printText, allTargets } from "../bench/report.js";
import { roundOrder, runTail, type TailResult, type TailSample } from "../bench/tail.js";
import { DEFAULT_FILTER } from "../bench/common.js";
import { benchResults } from "./lib/bench-results.js";
import { suite } from "./lib/suite.js";

const test = suite("bench tail", { timeoutMs: 120_000 });

let result: TailResult;

test.before(async () => {
  result = await runTail({
    filterPath: DEFAULT_FILTER, filterName: "validate", runtimes: ["node", "bun"],
    ratePps: 2000, size: 200, trialMs: 600, settleMs: 100, primeMs: 600, drainMs: 100, rounds: 3, pin: false,
  });
});

test("round orders rotate: over three rounds the proxy runs first, second and third once each", () => {
  const positions = [0, 1, 2].map((r) => roundOrder(r).indexOf("proxy"));
  assert.equal([...positions].sort(), [0, 1, 2]);
  for (const r of [0, 1, 2]) assert.equal([...roundOrder(r)].sort(), ["proxy", "relay", "relay"]);
});

test("each runtime: every round measured the proxy once and the relay twice, and the ratios are the samples'", () => {
  assert.equal(result.runtimes.map((r) => r.runtime), ["node", "bun"], result.warnings.join("; "));
  const ordered = (s: TailSample): boolean => s.p50 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max;
  for (const r of result.runtimes) {
    assert.is(r.rounds.length, 3);
    assert.equal(r.rounds.map((x) => x.order.indexOf("proxy")).sort(), [0, 1, 2], "three rounds: the proxy first, second and third once each");
    r.rounds.forEach((round, i) => {
      assert.equal(round.order, roundOrder(i));
      for (const s of [round.proxy, ...round.relay]) {
        assert.ok(s.received > 0, `${r.runtime}: nothing arrived`);
        assert.ok(ordered(s), `${r.runtime}: percentiles out of order ${JSON.stringify(s)}`);
        assert.ok(s.over1ms >= 0 && Number.isInteger(s.over1ms));
      }
      const [a, b] = round.relay;
      assert.ok(Math.abs(round.ratio - round.proxy.p999 / Math.sqrt(a.p999 * b.p999)) < 0.001, `ratio ${round.ratio}`);
      assert.ok(Math.abs(round.aa - b.p999 / a.p999) < 0.001, `A/A ${round.aa}`);
    });
    const ratios = r.rounds.map((x) => x.ratio).sort((x, y) => x - y);
    assert.ok(Math.abs(r.medianRatio - ratios[1]!) < 0.002, `median ${r.medianRatio} of ${ratios}`);
    assert.equal(r.ratioRange, [Math.round(ratios[0]! * 100) / 100, Math.round(ratios[2]! * 100) / 100]);
    assert.is(r.roundsAtMostOne, ratios.filter((x) => x <= 1).length);
  }
});

test("the report shows the part, and its paired ratio judges the p99.9 targets in place of the sweep's", () => {
  const results = benchResults(["tail"], { tail: result }, { command: "node dist/bench/run.js --only tail" });
  const text = printText(results);
  assert.match(text, /\(i\) Tail latency at 2000 pps/);
  assert.match(text, /A\/A ratio/);
  const targets = allTargets(results);
  const p999 = targets.filter((t) => t.what.startsWith("p99.9 latency"));
  assert.is(p999.length, 2, "one per runtime, the sweep's not beside them");
  for (const [t, r] of p999.map((t, i) => [t, result.runtimes[i]!] as const)) {
    assert.match(t.what, /^p99\.9 latency at 2\.0k pps/);
    assert.match(t.value, /median ratio .* over 3 paired rounds, \d of them at most 1/);
    assert.is(t.met, r.medianRatio <= 1);
  }
  // in the sweep's place: after the srtp target, before the earlier targets
  const at = targets.findIndex((t) => t.what.startsWith("p99.9 latency"));
  assert.match(targets[at - 1]!.what, /srtp protect/);
  assert.match(targets[at + 2]!.what, /95% of the plain relay's max rate/);
});

test("a runtime the tail part could not measure keeps the sweep's target", () => {
  const nodeOnly: TailResult = { ...result, runtimes: result.runtimes.filter((r) => r.runtime === "node") };
  const targets = allTargets(benchResults(["tail"], { tail: nodeOnly }));
  const p999 = targets.filter((t) => t.what.startsWith("p99.9 latency"));
  assert.is(p999.length, 2);
  assert.match(p999[0]!.value, /median ratio/);
  assert.match(p999[0]!.what, /\(Node\)$/);
  assert.match(p999[1]!.what, /\(Bun\)$/);
  assert.is(p999[1]!.value, "the e2e part did not run");
});

test("a Bun proxy's worker process runs with Bun's idle-GC timer off", async () => {
  const proxy = await startProxy(9, "bun", [], undefined);
  try {
    const [main] = proxy.pids();
    const children = readFileSync(`/proc/${main}/task/${main}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    assert.is(children.length, 1, `worker processes: ${children.join(",")}`);
    const env = readFileSync(`/proc/${children[0]}/environ`, "utf8").split("\0");
    assert.ok(env.includes("BUN_GC_TIMER_DISABLE=1"), "BUN_GC_TIMER_DISABLE=1 not in the worker's environment");
    assert.not.ok(readFileSync(`/proc/${main}/environ`, "utf8").split("\0").includes("BUN_GC_TIMER_DISABLE=1"), "the main process keeps the environment it was given");
  } finally {
    await proxy.close();
  }
});

test.run();
