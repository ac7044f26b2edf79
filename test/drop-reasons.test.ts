// ABI 1.6: a filter names its own drop reasons (msm_drop_reasons, docs/abi.md "Naming your own
// reasons"). The table is checked at load, with a message naming the line; the names reach
// /stats and /metrics; a discard (the filter's normal work) is counted apart from drops; a module
// built with this SDK still loads on a 1.5 host, and a module that names nothing keeps filter_<code>.
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { ABI_VERSION_MINOR } from "../runtime/abi.js";
import { parseDropReasons } from "../runtime/filter-host/drop-reasons.js";
import { startAdminServer, validateProxyConfig } from "../runtime/index.js";
import { FilterHarness, FilterLoadError } from "../sdk/harness/index.js";
import { moduleShape } from "../runtime/filter-host/wasm-inspect.js";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { httpBody } from "./lib/http-get.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";

const test = suite("named drop reasons (ABI 1.6)", { timeoutMs: 30_000 });
const LO = "127.0.0.1";

const refused: [string, string, RegExp][] = [
  ["a capital letter", "256 Duplicate discard", /line 1 .*name 'Duplicate' must match \[a-z\]\[a-z0-9_\]\{0,47\}/],
  ["49 bytes", `256 ${"a".repeat(49)} drop`, /must match \[a-z\]\[a-z0-9_\]\{0,47\}/],
  ["a shared reason's label", "256 too_short drop", /name 'too_short' is a shared reason's label/],
  ["a host label", "256 host_lost drop", /takes the form of the host's labels/],
  ["the unnamed form", "257 filter_256 drop", /takes the form of the host's labels/],
  ["a shared code", "255 x drop", /code 255 is not the filter's own \(256 to 319\)/],
  ["past the range", "320 x drop", /code 320 is not the filter's own/],
  ["an unknown class", "256 x trouble", /class 'trouble' is neither drop nor discard/],
  ["a code named twice", "256 a drop\n256 b drop", /line 2 .*code 256 is named twice/],
  ["a name used twice", "256 a drop\n257 a discard", /line 2 .*name 'a' is code 256's already/],
  ["not three words", "256 a", /line 1 .*not "<code> <name> <drop\|discard>"/],
];

test("the table: names checked one line at a time, each refusal naming the line and the rule", () => {
  const t = parseDropReasons("256 duplicate discard\n257 stale drop\n319 z9_ drop\n");
  assert.equal([t[0], t[1], t[63], t[2]], [
    { label: "duplicate", discard: true }, { label: "stale", discard: false }, { label: "z9_", discard: false }, { label: "filter_258", discard: false },
  ]);
  assert.is(parseDropReasons(`256 ${"a".repeat(48)} drop`)[0]!.label.length, 48);
  for (const [what, text, message] of refused) {
    assert.throws(() => parseDropReasons(text), message, what);
  }
});

test("at load: a filter whose names are wrong is refused, naming the filter, the line and the rule", async () => {
  const h = await FilterHarness.load(fixture("named_reasons"), { rootConfig: { 256: "duplicate discard", 257: "late drop" } });
  assert.equal(h.instance.ownReasons.slice(0, 3), [{ label: "duplicate", discard: true }, { label: "late", discard: false }, { label: "filter_258", discard: false }]);
  for (const [config, message] of [
    [{ 256: "Dup discard" }, /filter 'named_reasons': drop reason line 1 \("256 Dup discard"\): name 'Dup' must match/],
    [{ 256: "bad_version drop" }, /name 'bad_version' is a shared reason's label/],
    [{ 320: "late drop" }, /code 320 is not the filter's own \(256 to 319\)/],
    [{ 256: "late drop", 257: "late discard" }, /line 2 .*name 'late' is code 256's already/],
  ] as [Record<string, string>, RegExp][]) {
    const err = await FilterHarness.load(fixture("named_reasons"), { rootConfig: config }).then(() => undefined, (e: unknown) => e);
    assert.instance(err, FilterLoadError, JSON.stringify(config));
    assert.match((err as Error).message, message);
  }
});

test("a module built with this SDK loads on a 1.5 host: it declares 1.5, and names its reasons through an export a 1.5 host ignores", () => {
  for (const name of ["replicate", "congestion", "fec", "srtp"]) {
    const shape = moduleShape(new Uint8Array(readFileSync(filterWasm(name))));
    const markers = [...shape.exportedFunctions.keys()].filter((e) => e.startsWith("msm_abi_version_"));
    assert.equal(markers, ["msm_abi_version_1_5"], name);
    assert.is(shape.exportedFunctions.get("msm_drop_reasons"), "() -> i32", name);
    // every import is one a 1.5 host provides: 1.6, 1.7, 1.8 and 1.9 added none (1.7's context_legs and 1.9's context_segment_flags
    // are header fields an older host leaves 0, 1.8's checkpoint_wanted one it ignores)
    for (const [key] of shape.importedFunctions) assert.ok(!key.includes("drop_reason"), `${name} imports ${key}`);
  }
  assert.is(ABI_VERSION_MINOR, 9);
});

test("through a proxy: named drops and discards in /stats and /metrics, a discard never counted as a drop, an unnamed code filter_<code>", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy } = await startProxy({
    filters: { named: { path: fixture("named_reasons"), config: { 256: "duplicate discard", 257: "late drop" } } },
    segments: [{ name: "cam1", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "named" }] }],
  });
  const admin = await startAdminServer(proxy, LO, 0);
  const tx = await bindUdp();
  // payload type 96 passes; 64 is code 256 (a discard), 65 code 257 (a named drop), 66 code 258 (unnamed)
  const pts = [96, 64, 64, 64, 65, 66, 96, 64, 65, 96];
  const n = 50;
  try {
    for (let i = 0; i < n; i++) tx.send(indexedRtp(i, 200, 0x1234abcd, pts[i % pts.length]!), listen, LO);
    const passed = n * 3 / 10;
    await waitFor(async () => (await segmentStats(proxy, "cam1")).packetsIn >= n && sink.received >= passed, 5000, "the stream");
    const stats = JSON.parse(await httpBody(admin.port, "/stats")) as { segments: { name: string; drops: Record<string, number>; dropsTotal: number; discards: Record<string, number>; discardsTotal: number; stages: { drops: Record<string, number>; discards: Record<string, number> }[] }[] };
    const seg = stats.segments.find((s) => s.name === "cam1")!;
    assert.equal(seg.discards, { duplicate: 20 });
    assert.is(seg.discardsTotal, 20);
    assert.equal(seg.drops, { late: 10, filter_258: 5 });
    assert.is(seg.dropsTotal, 15, "the discards are not drops");
    assert.equal(seg.stages[0]!.discards, { duplicate: 20 });
    assert.equal(seg.stages[0]!.drops, { late: 10, filter_258: 5 });
    const body = await httpBody(admin.port, "/metrics");
    assert.match(body, /^# TYPE msm_segment_discards_total counter$/m);
    assert.match(body, /^msm_segment_discards_total\{segment="cam1",reason="duplicate"\} 20$/m);
    assert.match(body, /^msm_filter_discards_total\{segment="cam1",stage="0",filter="named",reason="duplicate"\} 20$/m);
    assert.match(body, /^msm_segment_drops_total\{segment="cam1",reason="late"\} 10$/m);
    assert.match(body, /^msm_filter_drops_total\{segment="cam1",stage="0",filter="named",reason="late"\} 10$/m);
    assert.match(body, /^msm_segment_drops_total\{segment="cam1",reason="filter_258"\} 5$/m);
    assert.not.match(body, /^msm_(segment|filter)_drops_total\{[^}]*reason="(duplicate|filter_256)"/m);
  } finally {
    tx.close();
    sink.close();
    await admin.close();
    await proxy.close();
  }
});

test("through a proxy: a malformed table loads all the same, its codes labelled filter_<code>, and the proxy logs why", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const config = (names: Record<string, string>) => validateProxyConfig({
    filters: { named: { path: fixture("named_reasons"), config: names } },
    segments: [{ name: "cam1", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "named" }] }],
  });
  const { proxy, events } = await startProxy(config({ 256: "duplicate discard" }));
  const tx = await bindUdp();
  try {
    // a table a newer host would refuse (a name it took for itself, say) must not take the media down
    await proxy.apply(config({ 256: "Dup discard" }));
    await waitFor(() => events.some((e) => e.type === "log" && e.filter === "named"), 5000, "the warning");
    const warning = events.find((e) => e.type === "log" && e.filter === "named");
    assert.match(warning!.type === "log" ? warning!.message : "", /its own drop reasons are shown as filter_<code>: drop reason line 1 \("256 Dup discard"\): name 'Dup' must match/);
    for (let i = 0; i < 10; i++) tx.send(indexedRtp(i, 200, 0x1234abcd, i < 5 ? 96 : 64), listen, LO);
    await waitFor(async () => (await segmentStats(proxy, "cam1")).packetsIn >= 10 && sink.received >= 5, 5000, "the stream");
    assert.equal((await segmentStats(proxy, "cam1")).drops, { filter_256: 5 }, "unnamed, and a drop");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
