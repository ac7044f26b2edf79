// The SDK's log() and setError() hand the host at most TEXT_MAX_BYTES (1024) bytes of UTF-8, what
// the host keeps (docs/abi.md "Limits"): exactly that many for a long ASCII text, cut at a
// character for a multi-byte one, and ending in "..." when cut; shorter text arrives whole.
import * as assert from "uvu/assert";
import { FilterHarness, buildRtp } from "../sdk/harness/index.js";
import { compileFilterSource } from "./lib/compile-source.js";
import { suite } from "./lib/suite.js";

const test = suite("sdk text: log and setError", { timeoutMs: 120_000 });

/** Logs `count` copies of `unit` on each packet; refuses a context with `error` copies of "x" as its message. */
const SOURCE = `
import { Config, Filter, LogLevel, Packet, Status, log, register, setError } from "../../../sdk/assembly";
export * from "../../../sdk/assembly/exports";

let unit = "";
let count = 0;

class Texts extends Filter {
  createContext(ctx: u32, cfg: Config): Status {
    cfg.rejectUnknown(["unit", "count", "error"]);
    unit = cfg.getString("unit", "a");
    count = <i32>cfg.getInt("count", 0, 0, 100000);
    const error = <i32>cfg.getInt("error", 0, 0, 100000);
    const status = cfg.finish();
    if (status != Status.Ok) return status;
    if (error > 0) {
      setError("x".repeat(error));
      return Status.BadConfig;
    }
    return Status.Ok;
  }

  onPacket(p: Packet): void {
    log(LogLevel.Info, unit.repeat(count));
  }
}

register(new Texts());
`;

const utf8 = (s: string): number => Buffer.byteLength(s, "utf8");

let wasm: Uint8Array;
test.before(async () => {
  wasm = await compileFilterSource(SOURCE, "texts");
});

async function logged(unit: string, count: number): Promise<string> {
  const h = await FilterHarness.load(wasm, { name: "texts" });
  const ctx = h.createContext({ unit, count });
  h.run({ ctx, bytes: buildRtp({ seq: 1 }) });
  assert.is(h.logs.length, 1);
  return h.logs[0]!.message;
}

test("a 3000-character ASCII line arrives as 1024 bytes: 1021 of it and '...'", async () => {
  const line = await logged("a", 3000);
  assert.is(utf8(line), 1024);
  assert.is(line, `${"a".repeat(1021)}...`);
});

test("text that fits arrives whole, up to exactly 1024 bytes, with no mark", async () => {
  assert.is(await logged("a", 1024), "a".repeat(1024));
  assert.is(await logged("é", 512), "é".repeat(512));
});

test("multi-byte text is cut at a character, never inside one or inside a surrogate pair", async () => {
  const two = await logged("é", 600); // 1200 bytes
  assert.is(two, `${"é".repeat(510)}...`);
  assert.is(utf8(two), 1023);
  const four = await logged("😀", 300); // 1200 bytes, each a surrogate pair
  assert.is(four, `${"😀".repeat(255)}...`);
  assert.is(utf8(four), 1023);
  const mixed = await logged("a€", 500); // 4 bytes a pair of units
  assert.is(utf8(mixed), 1024);
  assert.ok(mixed.endsWith("..."), mixed.slice(-8));
  assert.not.match(mixed, /\uFFFD/);
});

test("setError is cut the same way", async () => {
  const h = await FilterHarness.load(wasm, { name: "texts" });
  assert.is(h.refusal({ error: 3000 }).reason, `${"x".repeat(1021)}...`);
  assert.is(h.refusal({ error: 1024 }).reason, "x".repeat(1024));
});

test.run();
