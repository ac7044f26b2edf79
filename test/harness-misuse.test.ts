// A test that misuses the harness hears of it, instead of passing: a packet, drain, destroy or
// state call on a context the filter does not have (a typo, one already destroyed) throws, as
// the proxy never makes such a call; a metric name the filter did not define throws; the clock
// only moves forward.
import * as assert from "uvu/assert";
import { buildRtp, FilterHarness } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";

const test = suite("harness misuse", { timeoutMs: 30_000 });

test("a call on a context that is not the filter's throws, naming it and the live ones", async () => {
  const h = await FilterHarness.load(fixture("named_reasons"));
  const ctx = h.createContext();
  const other = h.createContext();
  h.destroyContext(other);
  const notOurs = /context \d+ is not one of the filter's \(live: 1\); use the id createContext returned/;
  // payload type 0 would be dropped: a pass here would be a packet the filter never saw
  assert.throws(() => h.run({ ctx: ctx + 5, bytes: buildRtp({ seq: 1, payloadType: 0 }) }), /packet 0: context 6 is not one/);
  assert.throws(() => h.runBatch([{ ctx, bytes: buildRtp({ seq: 1 }) }, { ctx: other, bytes: buildRtp({ seq: 2 }) }]), /packet 1: context 2 is not one/);
  assert.throws(() => h.destroyContext(other), notOurs);
  assert.throws(() => h.drainContext(other), notOurs);
  assert.throws(() => h.exportState(other), notOurs);
  assert.throws(() => h.importState(other, new Uint8Array(0)), notOurs);
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 3, payloadType: 0 }) }).verdict, "drop", "the live context still works");
});

test("a metric name the filter did not define throws, naming those it did, instead of reading as undefined", async () => {
  const h = await FilterHarness.load(fixture("metric_probe"));
  const ctx = h.createContext();
  const defined = h.metricNames();
  assert.ok(defined.includes("plain") && defined.includes("by_ssrc"), defined.join(", "));
  assert.throws(() => h.metric("plian", ctx), new RegExp(`^the filter defined no metric 'plian'; it defined: ${defined.join(", ")}$`));
  assert.throws(() => h.metric("by_ssrx", ctx, 7), (err: Error) => err instanceof RangeError && /no metric 'by_ssrx'/.test(err.message));
  assert.throws(() => h.metricSeries("by_ssrx", ctx), /no metric 'by_ssrx'; it defined: /);
  assert.throws(() => h.metricSeries("plain", ctx), /metric 'plain' has no label: read it with h\.metric\(name, ctx\)/);
  assert.is(h.metric("plain", ctx), 0, "a defined metric still reads");
  const none = await FilterHarness.load(fixture("named_reasons"));
  assert.equal(none.metricNames(), []);
  assert.throws(() => none.metric("dropped", none.createContext()), /no metric 'dropped'; it defined none$/);
});

test("the clock moves forward only", async () => {
  const h = await FilterHarness.load(fixture("named_reasons"));
  assert.throws(() => h.advanceTime(-1), /advanceTime: takes microseconds >= 0, got -1/);
  assert.throws(() => h.stall(Number.NaN), /stall: takes microseconds >= 0, got NaN/);
  const before = h.nowUs;
  h.advanceTime(0);
  assert.is(h.nowUs, before);
});

test.run();
