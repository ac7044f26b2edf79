// The filter host refuses what docs/abi.md says it must, with a message that says why, and
// turns a trapping filter into a FilterFailure instead of an exception that escapes.
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { ABI_VERSION_EXPORT, FilterHarness, FilterConfigError, FilterFailure, FilterLoadError, StateOrigin } from "../sdk/harness/index.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../runtime/index.js";
import { compileFilterModule, HOST_IMPORT_TYPES, OPTIONAL_EXPORTS, REQUIRED_EXPORTS } from "../runtime/filter-host/module-loader.js";
import { suite } from "./lib/suite.js";
import { rejects } from "./lib/expect.js";
import { compileFilterSource } from "./lib/compile-source.js";
import { fixture, ROOT } from "./lib/paths.js";

const test = suite("filter host");

function rtp(seq: number, firstPayloadByte = 0, size = 100): Uint8Array {
  const b = new Uint8Array(size);
  b[0] = 0x80;
  b[1] = 96;
  b[2] = seq >> 8;
  b[3] = seq & 0xff;
  b[11] = 7;
  b[12] = firstPayloadByte;
  return b;
}


test("a module declaring ABI 2.0 is refused, naming both versions", async () => {
  await rejects(FilterHarness.load(fixture("wrong_abi")), FilterLoadError, /ABI mismatch: module declares msm_abi_version_2_0, host implements 1\.9 \(this proxy runs ABI 1\.x modules only: build the filter with this proxy's SDK, sdk\/assembly, which declares 1\.5\)$/);
});

const literal = (text: string): RegExp => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));

/** The hand-written WAT filter of test/abi-wat.test.ts, edited, assembled. */
async function editedWat(edit: (text: string) => string): Promise<Uint8Array> {
  const { default: binaryen } = await import("binaryen");
  const text = edit(readFileSync(join(ROOT, "test/fixtures/filters/wat/abi_wat.wat"), "utf8"));
  const module = binaryen.parseText(text);
  try {
    assert.ok(module.validate(), "the edited fixture is valid WebAssembly");
    return module.emitBinary();
  } finally {
    module.dispose();
  }
}

test("an import or export of the wrong type is refused at load, naming it and both types (a JS host function takes any)", async () => {
  const i64Metric = await editedWat((t) => t.replace("(import \"msm\" \"metric_add\" (func $metric_add (param i32 i32 f64)", "(import \"msm\" \"metric_add\" (func $metric_add (param i32 i32 i64)").replace("(f64.const 1)", "(i64.const 1)"));
  await rejects(compileFilterModule("sig", i64Metric), FilterLoadError, literal("filter 'sig': ABI mismatch: imports msm.metric_add as (i32, i32, i64) -> i32; the host's is (i32, i32, f64) -> i32 (see docs/abi.md)"));
  const destroyResult = await editedWat((t) => t.replace("(func (export \"msm_context_destroy\") (param $ctx i32))", "(func (export \"msm_context_destroy\") (param $ctx i32) (result i64) (i64.const 0))"));
  await rejects(compileFilterModule("sig", destroyResult), FilterLoadError, literal("ABI mismatch: exports msm_context_destroy as (i32) -> i64; the host calls it as (i32) -> () (see docs/abi.md)"));
  const unchanged = await compileFilterModule("sig", await editedWat((t) => t));
  assert.is(unchanged.name, "sig", "the fixture as written loads");
});

test("a config too large for the scratch area is refused naming its largest key", async () => {
  const h = await FilterHarness.load(fixture("misbehave"));
  await rejects(Promise.resolve().then(() => h.createContext({ reject: "", trapIn: "x".repeat(70_000) })), FilterConfigError, /config of \d+ bytes exceeds the filter's scratch area \(\d+ bytes\); its largest key is 'trapIn' \(70002 bytes\)/);
});

test("docs/abi.md gives every host import and module export the type the host checks", () => {
  const page = readFileSync(join(ROOT, "docs/abi.md"), "utf8");
  const documented = new Map<string, string>();
  for (const m of page.matchAll(/^#{3,4} `([\w.]+): \(([^)]*)\) -> ([^`]+)`/gm)) {
    const params = m[2]!.split(",").map((p) => p.trim()).filter(Boolean).map((p) => p.replace(/^\w+: /, ""));
    documented.set(m[1]!, `(${params.join(", ")}) -> ${m[3]!.trim()}`);
  }
  for (const [name, type] of Object.entries({ ...HOST_IMPORT_TYPES, ...REQUIRED_EXPORTS, ...OPTIONAL_EXPORTS })) {
    assert.is(documented.get(name), type, `${name} in docs/abi.md`);
  }
});

/** A built module with its version marker renamed (same length, so the export section stays valid). */
async function withMarker(marker: string): Promise<Uint8Array> {
  const bytes = Buffer.from(await readFile(fixture("counter")));
  const at = bytes.indexOf(ABI_VERSION_EXPORT);
  assert.ok(at > 0 && marker.length === ABI_VERSION_EXPORT.length);
  bytes.write(marker, at, "latin1");
  return new Uint8Array(bytes);
}

test("a 1.1 module still loads and runs (its packets stay on leg 0); a 1.10 module is refused", async () => {
  const old = await FilterHarness.load(await withMarker("msm_abi_version_1_1"));
  const ctx = old.createContext({});
  const r = old.runBatch([{ ctx, bytes: rtp(1), sourcePort: 5004 }]);
  assert.is(r.packets[0]!.verdict, "pass");
  assert.is(r.packets[0]!.leg, 0);
  // the fixture that claims 2.0, claiming the next minor version instead (a marker longer than the SDK's)
  const newer = (await readFile(join(ROOT, "test/fixtures/filters/assembly/wrong_abi.ts"), "utf8")).replace("msm_abi_version_2_0", "msm_abi_version_1_10");
  await rejects(FilterHarness.load(await compileFilterSource(newer, "abi-newer")), FilterLoadError, /ABI mismatch: module declares msm_abi_version_1_10, host implements 1\.9 \(a module for a newer proxy: run it on one that implements 1\.10, or declare the oldest version whose imports it needs, as this proxy's SDK does \(1\.5\); docs\/abi\.md "msm_abi_version_1_5"\)$/);
});

test("a digest mismatch is refused before compiling", async () => {
  const bytes = new Uint8Array(await readFile(fixture("counter")));
  const wrong = "0".repeat(64);
  await rejects(FilterHarness.load(bytes, { sha256: wrong }), FilterLoadError, /digest mismatch: pinned sha256:0{64}, module is sha256:[0-9a-f]{64}/);
  const ok = await FilterHarness.load(bytes, { sha256: `sha256:${sha256Hex(bytes)}` });
  assert.ok(ok.createContext({}) > 0);
});

test("bytes that are not WebAssembly are refused", async () => {
  await rejects(FilterHarness.load(new TextEncoder().encode("not wasm at all")), FilterLoadError, /not a valid WebAssembly module/);
});

test("a module without the required exports is refused, naming the export", async () => {
  // (module (import "env" "memory" (memory 1)) (func (export "msm_abi_version_1_0")))
  const bytes = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
    0x02, 0x0f, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x01,
    0x03, 0x02, 0x01, 0x00,
    0x07, 0x17, 0x01, 0x13, ...new TextEncoder().encode("msm_abi_version_1_0"), 0x00, 0x00,
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
  ]);
  await rejects(FilterHarness.load(bytes, { name: "bare" }), FilterLoadError, /missing required export function msm_arena/);
});

test("a memory minimum above the host's limit is refused", async () => {
  await rejects(FilterHarness.load(fixture("counter"), { maxMemoryPages: 2 }), FilterLoadError, /memory minimum \d+ pages exceeds the limit of 2 pages/);
});

test("a config the filter rejects carries the filter's message", async () => {
  const h = await FilterHarness.load(fixture("misbehave"));
  assert.throws(() => h.createContext({ reject: "threshold must be positive" }), (err: unknown) =>
    err instanceof FilterConfigError && /threshold must be positive/.test((err as Error).message));
  assert.throws(() => h.createContext({ nosuchkey: 1 }), (err: unknown) => err instanceof FilterConfigError && /nosuchkey/.test((err as Error).message));
  // the instance still works after refusing
  const ctx = h.createContext({});
  assert.is(h.run({ ctx, bytes: rtp(1) }).verdict, "pass");
});

test("a trap becomes a FilterFailure and the instance is never called again", async () => {
  const h = await FilterHarness.load(fixture("misbehave"));
  const ctx = h.createContext({});
  assert.is(h.run({ ctx, bytes: rtp(1) }).verdict, "pass");
  assert.throws(() => h.run({ ctx, bytes: rtp(2, 0xde) }), (err: unknown) => err instanceof FilterFailure && /msm_on_batch/.test((err as Error).message));
  assert.throws(() => h.run({ ctx, bytes: rtp(3) }), (err: unknown) => err instanceof FilterFailure);
});

test("metrics and state export/import work through the harness", async () => {
  const h = await FilterHarness.load(fixture("counter"));
  const a = h.createContext({ tag: 7 });
  for (let i = 0; i < 5; i++) h.run({ ctx: a, bytes: rtp(i) });
  assert.is(h.metric("packets", a), 5);
  assert.is(h.metric("tag", a), 7);
  const blob = h.exportState(a);
  assert.ok(blob && blob.length > 0);
  const h2 = await FilterHarness.load(fixture("counter"));
  const b = h2.createContext({ tag: 8 });
  assert.equal(h2.importState(b, blob!), { ok: true, reason: "" });
  assert.is(h2.metric("imported", b), 5, "the state travelled");
  assert.is(h2.metric("import_origin", b), StateOrigin.Swap, "the harness imports as a hot swap by default");
  const c = h2.createContext({ tag: 9 });
  assert.is(h2.metric("import_origin", c), StateOrigin.None, "outside an import, none");
  assert.ok(h2.importState(c, blob!, StateOrigin.Checkpoint).ok);
  assert.is(h2.metric("import_origin", c), StateOrigin.Checkpoint);
  h2.run({ ctx: b, bytes: rtp(6) });
  assert.is(h2.metric("packets", b), 1, "a counter is the host's to carry (the proxy does, the harness has one instance)");
  assert.equal(h2.importState(b, new Uint8Array([9, 0, 0, 0])).ok, false);
});

test.run();
