// The harness additions of issue #15, each on real filters: the watchdog ends a test stuck in a
// filter's endless loop with a message naming the call (in a child process: it ends the process);
// swap() carries state, counters and configs as the proxy's hot swap does; expectNoMemoryGrowth
// passes a filter that frees what it makes and catches one that leaks.
import * as assert from "uvu/assert";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { FilterConfigError, FilterFailure, FilterHarness, buildRtp } from "../sdk/harness/index.js";
import { authorFrames } from "../runtime/filter-host/errors.js";
import { CHECKED_FLAGS, compileFilterSource } from "./lib/compile-source.js";
import { Child } from "./lib/child.js";
import { suite } from "./lib/suite.js";
import { rejects } from "./lib/expect.js";
import { ROOT, filterWasm, fixture } from "./lib/paths.js";

const test = suite("harness: watchdog, swap, memory", { timeoutMs: 240_000 });

const HARNESS = pathToFileURL(join(ROOT, "dist", "sdk", "harness", "index.js")).href;

/** Runs an ES module script in a child node, killed after `limitMs` (an endless loop the watchdog did not end: its stderr says so). */
async function runScript(path: string, limitMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = new Child(process.execPath, [path], { limitMs });
  const { code, signal } = await child.exited;
  return { code, signal, stdout: child.stdout, stderr: child.stderr };
}

let scratch = "";
test.before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "msm-harness-"));
});
test.after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// ---- the watchdog ----

test("watchdog: an endless loop in onPacket ends the test process and says where, instead of hanging", async () => {
  // misbehave loops forever on a packet whose first payload byte is 0xAD
  const script = join(scratch, "stuck.mjs");
  await writeFile(script, `
    import { FilterHarness, buildRtp } from ${JSON.stringify(HARNESS)};
    const h = await FilterHarness.load(${JSON.stringify(fixture("misbehave"))}, { timeoutMs: 300 });
    const ctx = h.createContext({});
    console.log("fine:", h.run({ ctx, bytes: buildRtp({ seq: 1, payloadByte: 0 }) }).verdict);
    h.run({ ctx, bytes: buildRtp({ seq: 2, payloadByte: 0xad }) });
    console.log("returned from the loop");
  `);
  const r = await runScript(script, 120_000);
  assert.is(r.stdout.trim(), "fine: pass", r.stderr);
  assert.ok(r.code !== 0, `the process ended with ${r.code} ${r.signal}`);
  assert.match(r.stderr, /filter 'misbehave' did not return within 300 ms in onPacket \(msm_on_batch: 1 packet, the first of context 1\): an endless loop\?/);
});

test("watchdog: a finished test process exits (the watchdog thread keeps nothing alive); timeoutMs is checked", async () => {
  const script = join(scratch, "done.mjs");
  await writeFile(script, `
    import { FilterHarness, buildRtp } from ${JSON.stringify(HARNESS)};
    const h = await FilterHarness.load(${JSON.stringify(fixture("misbehave"))});
    const ctx = h.createContext({});
    console.log(h.run({ ctx, bytes: buildRtp({ seq: 1 }) }).verdict);
  `);
  const r = await runScript(script, 120_000);
  assert.equal([r.code, r.stdout.trim()], [0, "pass"], r.stderr);
  for (const bad of [-1, 1.5, Number.NaN]) {
    await rejects(FilterHarness.load(fixture("misbehave"), { timeoutMs: bad }), RangeError, /timeoutMs must be a whole number of milliseconds >= 0/);
  }
});

// ---- swap ----

/** A hostile-fixture command packet (test/fixtures/filters/assembly/hostile.ts): byte 12 the command, 16-19 its argument. */
function command(seq: number, cmd: number, a = 0): Uint8Array {
  const b = buildRtp({ seq, payloadSize: 36, payloadByte: 0 });
  b[12] = cmd;
  new DataView(b.buffer).setUint32(16, a);
  return b;
}
const REPORT = 0xcb; // writes the context's count of packets seen at offset 16
const FLOOD = 0xc8; // arms timer 0 at A microseconds; each firing fills the output area and counts "fires"

function seen(h: FilterHarness, ctx: number, seq: number): number {
  return new DataView(h.run({ ctx, bytes: command(seq, REPORT) }).bytes.buffer).getUint32(16);
}

test("budgets: a runaway timer (re-armed at 0 us, filling the output area each time) is held to the stage's limits, as in the proxy", async () => {
  for (const limits of [{ generatedPerSecond: 50_000 }, { generatedPerSecond: 1000, timerFiresPerSecond: 100 }]) {
    const h = await FilterHarness.load(fixture("hostile"), { limits });
    const perSecond = { timerFiresPerSecond: 2000, ...limits };
    const burst = { generated: Math.max(2048, perSecond.generatedPerSecond / 10), fires: Math.max(8, perSecond.timerFiresPerSecond / 10) };
    const a = h.createContext();
    h.run({ ctx: a, bytes: command(1, FLOOD, 0) });
    const out = h.advanceTime(1_000_000); // without the budget of firings this call would never return
    const fires = h.metric("fires", a) as number;
    const what = `limits ${JSON.stringify(limits)}: ${fires} firings, ${out.length} packets out, ${h.timersDeferred} firings put off`;
    assert.ok(fires > perSecond.timerFiresPerSecond * 0.9 && fires <= burst.fires + perSecond.timerFiresPerSecond + 1, what);
    assert.ok(h.timersDeferred > 0, what);
    assert.ok(out.length >= perSecond.generatedPerSecond * 0.9 && out.length <= burst.generated + perSecond.generatedPerSecond + 1, what);
    const over = h.hostDrops.filter((d) => d.reasonName === "host_budget_exceeded");
    assert.ok(over.length > 0 && over.length === h.hostDrops.length, what);
    assert.match(over[0]!.problem, `limits.generatedPerSecond ${perSecond.generatedPerSecond}`);
  }
});

test("budgets: without limits.generatedPerSecond no output is refused for the rate (the harness clock stands still between advanceTime calls); the timers' budget holds anyway; a limit below 1 is refused", async () => {
  const h = await FilterHarness.load(fixture("hostile"));
  const a = h.createContext();
  h.run({ ctx: a, bytes: command(1, FLOOD, 0) });
  const out = h.advanceTime(1_000_000);
  assert.ok(out.length > 55_000, `${out.length} packets out`);
  assert.equal(h.hostDrops, []);
  assert.ok(h.timersDeferred > 0 && (h.metric("fires", a) as number) <= 200 + 2000 + 1);
  try {
    await FilterHarness.load(fixture("hostile"), { limits: { timerFiresPerSecond: 0 } });
    assert.unreachable("a limit of 0 was taken");
  } catch (err) {
    assert.match((err as Error).message, "limits.timerFiresPerSecond: must be at least 1 a second, got 0");
  }
});

test("swap: every context's state moves to the new instance, counters go on, the old instance's timers are gone", async () => {
  const h = await FilterHarness.load(fixture("hostile"));
  const a = h.createContext();
  const b = h.createContext();
  for (let i = 0; i < 3; i++) h.run({ ctx: a, bytes: command(i, 0) });
  h.run({ ctx: b, bytes: command(9, 0) });
  h.run({ ctx: a, bytes: command(3, FLOOD, 1000) });
  assert.ok(h.advanceTime(1000).length > 0, "the flood fired");
  assert.is(h.metric("fires", a), 1);
  const old = h.instance;

  const result = await h.swap();
  assert.equal(result, { carried: [a, b], fresh: [], drained: [] });
  assert.ok(h.instance !== old, "the harness drives a new instance");
  assert.equal(old.contexts.size, 0, "the old instance's contexts were destroyed");
  assert.equal(h.timers(), [], "the old instance's timers went with it");
  assert.equal(h.advanceTime(10_000), []);
  assert.is(seen(h, a, 4), 5, "a's count went on from 4");
  assert.is(seen(h, b, 10), 2, "b's count went on from 1");
  assert.is(h.metric("fires", a), 1, "a counter goes on across the swap");
});

test("swap: state the old instance cannot give or the new one refuses starts fresh, and says why", async () => {
  const h = await FilterHarness.load(fixture("hostile"));
  const a = h.createContext();
  h.run({ ctx: a, bytes: command(1, 0) });
  // misbehave takes hostile's contexts ({}), but its importState wants a blob of its own (7)
  const refused = await h.swap({ wasm: fixture("misbehave") });
  assert.equal(refused.carried, []);
  assert.equal(refused.fresh.map((f) => f.ctx), [a]);
  assert.match(refused.fresh[0]!.reason, /^state not carried over: the filter gave no reason \(status \w+/);

  const t = await FilterHarness.load(fixture("hostile"));
  const trapping = t.createContext({ trap: "export" });
  const failed = await t.swap({ contextConfig: {} });
  assert.equal(failed.carried, []);
  assert.equal(failed.fresh.map((f) => f.ctx), [trapping]);
  assert.match(failed.fresh[0]!.reason, /^state transfer failed: filter 'hostile' failed in msm_state_export/);
  assert.is(seen(t, trapping, 2), 1, "the new instance serves the context, from scratch");
});

test("swap: a context with no state to carry starts fresh, and what the old instance held is handed over", async () => {
  // delay holds RTP until its timer, and exports no state
  const h = await FilterHarness.load(fixture("delay"));
  const ctx = h.createContext({ delayMs: 1000 });
  const sent = [1, 2, 3].map((seq) => buildRtp({ seq }));
  for (const bytes of sent) assert.is(h.run({ ctx, bytes }).verdict, "hold");
  const result = await h.swap();
  assert.equal(result.carried, []);
  assert.equal(result.fresh, [{ ctx, reason: "the old instance exported no state" }]);
  assert.equal(result.drained.map((o) => [o.ctx, o.bytes]), sent.map((bytes) => [ctx, bytes]), "the held packets, in order");
  assert.equal(h.advanceTime(2_000_000), [], "nothing is released twice");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 4 }) }).verdict, "hold", "the new instance holds as before");
});

test("swap: a config the new instance refuses throws and leaves the old instance serving; a new config applies", async () => {
  const h = await FilterHarness.load(filterWasm("validate", true));
  const ctx = h.createContext({ allowedPayloadTypes: [96] });
  for (let seq = 0; seq < 5; seq++) h.run({ ctx, bytes: buildRtp({ seq, payloadType: 96 }) });
  assert.is(h.metric("packets_passed", ctx), 5);
  const old = h.instance;
  await rejects(h.swap({ contextConfig: { allowedPayloadTypes: [96], bogus: 1 } }), FilterConfigError, /unknown config key 'bogus'/);
  assert.ok(h.instance === old);
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 5, payloadType: 96 }) }).verdict, "pass");

  const result = await h.swap({ contextConfigFor: (_ctx, was) => ({ ...(was as object), allowedPayloadTypes: [97] }) });
  assert.equal(result.carried, [ctx], JSON.stringify(result.fresh));
  assert.is(h.metric("packets_passed", ctx), 6, "counted on from the old instance");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 6, payloadType: 96 }) }).reasonName, "payload_type_not_allowed", "the new config applies");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 7, payloadType: 97 }) }).verdict, "pass");
});

// ---- memory ----

/** Keeps a copy of every packet's first bytes for ever: the leak an author means to catch. */
const LEAKY = `
import { Filter, Packet, register } from "../../../sdk/assembly";
export * from "../../../sdk/assembly/exports";

const kept: Array<StaticArray<u8>> = [];

class Leaky extends Filter {
  onPacket(p: Packet): void {
    const copy = new StaticArray<u8>(64);
    memory.copy(changetype<usize>(copy), p.ptr, 64);
    kept.push(copy);
  }
}

register(new Leaky());
`;

test("expectNoMemoryGrowth: a filter that keeps nothing passes, one that keeps every packet is caught", async () => {
  const h = await FilterHarness.load(filterWasm("validate", true));
  let seq = 0;
  const flat = await h.expectNoMemoryGrowth(() => {
    const ctx = h.createContext({});
    h.runBatch(Array.from({ length: 16 }, () => ({ ctx, bytes: buildRtp({ seq: seq++ }) })));
    h.destroyContext(ctx);
  }, { rounds: 2000 });
  assert.ok(flat.grownBytes <= 65_536 && flat.settledBytes === h.memoryBytes - flat.grownBytes, JSON.stringify(flat));

  const leaky = await FilterHarness.load(await compileFilterSource(LEAKY, "leaky"), { name: "leaky" });
  const ctx = leaky.createContext();
  const before = leaky.memoryBytes;
  await rejects(
    leaky.expectNoMemoryGrowth(() => void leaky.runBatch(Array.from({ length: 32 }, () => ({ ctx, bytes: buildRtp({ seq: seq++ }) }))), { rounds: 500 }),
    Error,
    /filter 'leaky': memory grew by \d+ bytes over 500 rounds .*a leak\?/,
  );
  assert.ok(leaky.memoryBytes > before + 65_536, `${before} -> ${leaky.memoryBytes}`);
});

// ---- a trap ----

/** An index out of range two calls below onPacket: the checked build aborts in StaticArray. */
const TRAP = `
import { Filter, Packet, register } from "../../../sdk/assembly";
export * from "../../../sdk/assembly/exports";

const table = new StaticArray<i32>(2);

function lookUp(i: i32): i32 {
  return table[i];
}

class Trap extends Filter {
  onPacket(p: Packet): void {
    if (lookUp(p.length) == 7) p.drop(257);
  }
}

register(new Trap());
`;

test("a trap in the checked build names the author's functions; its cause is the trap, with the whole stack", async () => {
  const h = await FilterHarness.load(await compileFilterSource(TRAP, "trap", CHECKED_FLAGS), { name: "trap" });
  const ctx = h.createContext();
  try {
    h.run({ ctx, bytes: buildRtp({ seq: 1 }) });
    assert.unreachable("it trapped");
  } catch (err) {
    assert.instance(err, FilterFailure);
    const e = err as FilterFailure;
    assert.equal(e.frames, ["filters/trap/assembly/index/lookUp", "filters/trap/assembly/index/Trap#onPacket"]);
    assert.match(e.message, /^filter 'trap' failed in msm_on_batch: abort: Index out of range at ~lib\/staticarray\.ts:\d+:\d+ \(in filters\/trap\/assembly\/index\/lookUp, called from filters\/trap\/assembly\/index\/Trap#onPacket\)$/);
    assert.instance(e.cause, Error);
    assert.match((e.cause as Error).stack ?? "", /at filters\/trap\/assembly\/index\/lookUp \(wasm:\/\//);
  }
});

test("the frames a failure names are bounded (the proxy logs the message): 4, each cut at 120 characters", () => {
  const cause = new Error("trap");
  const long = "assembly/index/" + "x".repeat(300);
  cause.stack = ["Error: trap", "    at ~lib/rt/itcms/__new (wasm://wasm/1:wasm-function[1]:0x1)",
    ...Array.from({ length: 8 }, (_, i) => `    at ${long}${i} (wasm://wasm/1:wasm-function[${i + 2}]:0x1)`),
    "    at node_modules/msm/sdk/assembly/exports/msm_on_batch (wasm://wasm/1:wasm-function[20]:0x1)"].join("\n");
  const frames = authorFrames(cause);
  assert.is(frames.length, 4);
  for (const f of frames) assert.is(f, `${long.slice(0, 120)}...`);
  const failure = new FilterFailure("f", "msm_on_batch", "unreachable", { cause });
  assert.ok(failure.message.length < 700, `${failure.message.length} characters`);
  assert.ok(failure.cause === cause);
});

test.run();
