// A test that misuses the harness hears of it, instead of passing: a packet, drain, destroy or
// state call on a context the filter does not have (a typo, one already destroyed) throws, as
// the proxy never makes such a call; a metric name the filter did not define throws; the clock
// only moves forward; a key the harness does not know (a test in plain JS has no type check: the
// scaffold writes .mjs tests) throws, naming it and the keys it takes, instead of being ignored.
import * as assert from "uvu/assert";
import { buildRtp, FilterHarness, PacketFlag, buildRtcpReceiverReport } from "../sdk/harness/index.js";
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

test("an unknown key in a packet, the load options, a swap or a builder throws, naming it and the keys taken (it was ignored: a misspelt flag ran an RTCP packet as RTP)", async () => {
  const h = await FilterHarness.load(fixture("named_reasons"));
  const ctx = h.createContext();
  const rtcp = buildRtcpReceiverReport(); // dropped as RTP (its second byte reads as payload type 73), passed as RTCP
  assert.is(h.run({ ctx, bytes: rtcp, flags: PacketFlag.Rtcp }).verdict, "pass", "the fixture passes RTCP");
  assert.throws(
    () => h.run({ ctx, bytes: rtcp, flag: PacketFlag.Rtcp } as never),
    (err: Error) => err instanceof TypeError && err.message === "packet 0: unknown key 'flag'; a packet takes ctx, bytes, flags, arrivalUs, sourcePort, leg",
  );
  assert.throws(() => h.runBatch([{ ctx, bytes: rtcp }, { ctx, bytes: rtcp, arrival: 5 } as never]), /^packet 1: unknown key 'arrival'; a packet takes /);
  assert.throws(() => h.run({ ctx } as never), (err: Error) => err instanceof TypeError && /^packet 0: bytes must be a Uint8Array \(a Buffer is one\), got undefined$/.test(err.message));
  assert.throws(() => h.run({ ctx, bytes: [0x80, 96] } as never), /^packet 0: bytes must be a Uint8Array \(a Buffer is one\), got an Array$/);
  const err = await FilterHarness.load(fixture("named_reasons"), { timeout: 10 } as never).catch((e: Error) => e);
  assert.instance(err, TypeError);
  assert.match((err as Error).message, /^FilterHarness\.load: unknown option 'timeout'; it takes name, rootConfig, sha256, maxMemoryPages, startUs, timeoutMs, hostCrypto, limits, wallClockUs$/);
  const swapErr = await h.swap({ contextconfig: {} } as never).catch((e: Error) => e);
  assert.match((swapErr as Error).message, /^swap: unknown key 'contextconfig'; it takes wasm, rootConfig, contextConfig, contextConfigFor$/);
  assert.throws(() => h.createContext({}, { leg: 2 } as never), /^createContext: unknown key 'leg'; the segment takes legs, translatedDestinations$/);
  await h.expectNoMemoryGrowth(() => {}, { rounds: 2 }).then(() => assert.ok(true));
  const growthErr = await h.expectNoMemoryGrowth(() => {}, { round: 2 } as never).catch((e: Error) => e);
  assert.match((growthErr as Error).message, /^expectNoMemoryGrowth: unknown option 'round'; it takes rounds, warmupRounds, allowBytes$/);
  assert.is(h.run({ ctx, bytes: rtcp, flags: PacketFlag.Rtcp }).verdict, "pass", "the harness is usable after each refusal");
});

test("buildRtp refuses a field it does not know and an RFC 8285 one-byte element it cannot write (it wrote a broken header)", () => {
  assert.throws(() => buildRtp({ seq: 1, pt: 100 } as never), (err: Error) => err instanceof TypeError && /^buildRtp: unknown field 'pt'; it takes seq, timestamp, ssrc, payloadType, marker, csrcs, extensions, payloadSize, padding, payloadByte$/.test(err.message));
  assert.throws(() => buildRtp({ timestamp: 5 } as never), /^buildRtp: seq must be an integer \(taken modulo 65536\), got undefined$/);
  assert.throws(() => buildRtp({ seq: 1, payloadType: 128 }), /^buildRtp: payloadType must be an integer 0-127, got 128$/);
  assert.throws(() => buildRtp({ seq: 1, extensions: [[15, new Uint8Array(1)]] }), /^buildRtp: extension element 0: id must be 1-14 \(the one-byte form, RFC 8285 4\.2\), got 15$/);
  assert.throws(() => buildRtp({ seq: 1, extensions: [[1, new Uint8Array(2)], [2, new Uint8Array(17)]] }), /^buildRtp: extension element 1: data must be 1-16 bytes \(the one-byte form\), got 17$/);
  assert.throws(() => buildRtp({ seq: 1, csrcs: new Array(16).fill(1) }), /^buildRtp: at most 15 csrcs, got 16$/);
  assert.throws(() => buildRtp({ seq: 1, padding: 256 }), /^buildRtp: padding must be an integer 0-255, got 256$/);
  const ok = buildRtp({ seq: 70000, extensions: [[14, new Uint8Array(16)]], padding: 4 });
  assert.is(ok[0]! & 0x30, 0x30, "a valid packet still builds");
  assert.is((ok[2]! << 8) | ok[3]!, 70000 - 65536, "a sequence counter past the wrap still wraps");
});

test.run();
