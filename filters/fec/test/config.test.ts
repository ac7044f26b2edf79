// The fec filter's config: SMPTE ST 2022-1's limits on L and D checked when a segment is
// configured, every refusal naming the key, root defaults, and the memory budget that refuses a
// context (NoSpace, with what it needs) instead of trapping for want of memory later.
import * as assert from "uvu/assert";
import { FilterConfigError, Status } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { loadFec } from "./fec-lib.js";

const test = suite("fec config");

/** The filter's message for a refused context config. */
async function refusal(config: Record<string, unknown>, rootConfig: Record<string, unknown> = {}): Promise<{ status: number; reason: string }> {
  return (await loadFec({ rootConfig })).refusal(config);
}

const BAD: readonly [Record<string, unknown>, RegExp][] = [
  [{ columns: 4, rows: 4 }, /config key 'mode' is required/],
  [{ mode: "sideways", columns: 4, rows: 4 }, /config key 'mode' must be 'encode' or 'decode'/],
  [{ mode: "encode", rows: 4 }, /config key 'columns' \(L\) is required/],
  [{ mode: "decode", columns: 4 }, /config key 'rows' \(D\) is required/],
  [{ mode: "encode", columns: 21, rows: 4 }, /config key 'columns' must be between 1 and 20/],
  [{ mode: "encode", columns: 0, rows: 4 }, /config key 'columns' must be between 1 and 20/],
  [{ mode: "encode", columns: 4, rows: 3 }, /config key 'rows' must be between 4 and 20/],
  [{ mode: "decode", columns: 4, rows: 21 }, /config key 'rows' must be between 4 and 20/],
  [{ mode: "encode", columns: 3, rows: 4 }, /config key 'columns' must be at least 4 with rowFec .*rowFec: false/],
  [{ mode: "encode", columns: 11, rows: 10 }, /'columns' x 'rows' \(L x D = 11 x 10 = 110\) must be at most 100/],
  [{ mode: "decode", columns: 20, rows: 20, rowFec: false }, /L x D = 20 x 20 = 400\) must be at most 100/],
  [{ mode: "encode", columns: 4, rows: 4, colums: 5 }, /unknown config key 'colums'; did you mean 'columns'\?$/],
  [{ mode: "encode", columns: 4, rows: 4, depth: 5 }, /unknown config key 'depth'$/],
  [{ mode: "encode", columns: 4, rows: 4, bufferBudgetKiB: 100000 }, /'bufferBudgetKiB' can only be set in the filter's root config/],
  [{ mode: "decode", columns: 4, rows: 4, fecLegs: "keep" }, /config key 'fecLegs' must be 'strip' or 'pass'/],
  [{ mode: "encode", columns: 4, rows: 4, payloadType: 72 }, /'payloadType' must not be 72-76/],
  [{ mode: "encode", columns: 4, rows: 4, payloadType: 128 }, /'payloadType' must be between 0 and 127/],
  [{ mode: "encode", columns: 4, rows: 4, columnLeg: 8 }, /config key 'columnLeg' must be between 1 and 7/],
  [{ mode: "encode", columns: 4, rows: 4, rowLeg: 0 }, /config key 'rowLeg' must be between 1 and 7/],
  [{ mode: "decode", columns: 4, rows: 4, maxDelayMs: 0 }, /config key 'maxDelayMs' must be between 1 and 10000/],
  [{ mode: "encode", columns: 4, rows: 4, rowFec: "yes" }, /config key 'rowFec' must be true or false/],
];

for (const [config, message] of BAD) {
  test(`refused, naming the key: ${JSON.stringify(config)}`, async () => {
    const r = await refusal(config);
    assert.is(r.status, Status.BadConfig);
    assert.match(r.reason, message);
  });
}

test("a FEC leg the segment lacks is refused, naming the key, when the host says its leg count (ABI 1.7)", async () => {
  const h = await loadFec();
  const rowOnly = { mode: "encode", columns: 4, rows: 4 };
  let r = h.refusal(rowOnly, { legs: 1 });
  assert.is(r.status, Status.BadConfig);
  assert.match(r.reason, "config key 'columnLeg' names leg 1, but the segment has leg 0 only: it lists no 'legs'");
  r = h.refusal({ mode: "encode", columns: 4, rows: 4 }, { legs: 2 });
  assert.match(r.reason, "config key 'rowLeg' names leg 2, but the segment has legs 0-1 (its 'legs' list 1)");
  r = h.refusal({ mode: "decode", columns: 4, rows: 4, rowLeg: 3 }, { legs: 2 });
  assert.match(r.reason, "config key 'rowLeg' names leg 3, but the segment has legs 0-1 (its 'legs' list 1)");
  assert.ok(h.createContext({ mode: "decode", columns: 5, rows: 5 }, { legs: 2 }) >= 0, "a decoder with one FEC leg and the default rowLeg: it repairs with the column FEC that comes, as before 1.7");
  assert.ok(h.createContext({ ...rowOnly, rowFec: false }, { legs: 2 }) >= 0, "column-only FEC needs no row leg");
  assert.ok(h.createContext(rowOnly, { legs: 3 }) >= 0);
  assert.ok(h.createContext(rowOnly) >= 0, "a host that does not say (before 1.7): nothing checked");
});

test("every shape the standard allows is accepted, in both modes (1-D: 1 <= L <= 20, 2-D: 4 <= L <= 20; 4 <= D <= 20; L x D <= 100)", async () => {
  const h = await loadFec();
  let shapes = 0;
  for (let columns = 1; columns <= 20; columns++) {
    for (let rows = 4; rows <= 20; rows++) {
      if (columns * rows > 100) continue;
      for (const rowFec of columns >= 4 ? [false, true] : [false]) {
        for (const mode of ["encode", "decode"]) h.destroyContext(h.createContext({ mode, columns, rows, rowFec }));
        shapes++;
      }
    }
  }
  assert.ok(shapes > 200, `${shapes} shapes`);
  assert.is(h.instance.failure, undefined);
});

test("root config: defaults for every context, overridden key by key; a bad root config fails the load", async () => {
  const h = await loadFec({ rootConfig: { mode: "decode", columns: 5, rows: 5, maxDelayMs: 200 } });
  h.createContext({}); // a complete config from the root alone
  h.createContext({ mode: "encode" });
  const r = await refusal({ columns: 30 }, { mode: "decode", columns: 5, rows: 5 });
  assert.match(r.reason, /'columns' must be between 1 and 20/);
  let failed: unknown;
  try {
    await loadFec({ rootConfig: { bufferBudget: 5 } });
  } catch (err) {
    failed = err;
  }
  assert.ok(failed instanceof FilterConfigError && /unknown config key 'bufferBudget'/.test(failed.reason), String(failed));
});

test("the memory budget: a context that does not fit is refused (NoSpace) with what it needs; one destroyed frees its share", async () => {
  // A 10 x 10 decoder needs 672 KiB: a 1.5 MiB budget holds two of them.
  const h = await loadFec({ rootConfig: { bufferBudgetKiB: 1536 } });
  const config = { mode: "decode", columns: 10, rows: 10 };
  const a = h.createContext(config);
  h.createContext(config);
  let refused: unknown;
  try {
    h.createContext(config);
  } catch (err) {
    refused = err;
  }
  assert.ok(refused instanceof FilterConfigError, String(refused));
  assert.is(refused.status, Status.NoSpace);
  assert.match(refused.reason, /no room for another decoder of 10 x 10: it needs 672 KiB, and 1344 of the instance's 1536 KiB are taken \(raise the root config's bufferBudgetKiB/);
  h.destroyContext(a);
  h.createContext(config);
  h.createContext({ mode: "encode", columns: 10, rows: 10 }); // an encoder is small
  assert.is(h.instance.failure, undefined);
});

test("at the instance's memory cap (a budget larger than maxMemoryPages allows) a context is refused, not a trap", async () => {
  const h = await loadFec({ maxMemoryPages: 48 });
  let refused: unknown;
  for (let i = 0; i < 20 && !refused; i++) {
    try {
      h.createContext({ mode: "decode", columns: 10, rows: 10 });
    } catch (err) {
      refused = err;
    }
  }
  assert.ok(refused instanceof FilterConfigError && refused.status === Status.NoSpace, String(refused));
  assert.match(refused.reason, /the instance's memory is at its cap \(raise the filter's maxMemoryPages/);
  for (let i = 0; i < 500; i++) {
    try {
      h.createContext({ mode: "encode", columns: 4, rows: 4 });
    } catch {
      // refused: no room
    }
  }
  assert.is(h.instance.failure, undefined, "the instance never failed");
});

test("contexts of every shape come and go without the instance's memory growing (equal chunks, recycled)", async () => {
  const h = await loadFec();
  const live: number[] = [];
  const configs = [{ mode: "decode", columns: 10, rows: 10 }, { mode: "encode", columns: 20, rows: 5 }, { mode: "decode", columns: 4, rows: 4, rowFec: false }];
  for (let i = 0; i < 6; i++) live.push(h.createContext(configs[i % 3]!));
  for (let i = 0; i < 300; i++) {
    h.destroyContext(live.shift()!);
    live.push(h.createContext(configs[i % 3]!));
  }
  const settled = h.instance.memory.buffer.byteLength;
  for (let i = 0; i < 3000; i++) {
    h.destroyContext(live.shift()!);
    live.push(h.createContext(configs[i % 3]!));
  }
  assert.is(h.instance.memory.buffer.byteLength, settled);
});

test.run();
