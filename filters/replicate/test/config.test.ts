// The replicate filter's config: every refusal names the key, root defaults are overridden key by
// key, and the memory budget refuses a merge that does not fit (NoSpace, with what it needs).
import * as assert from "uvu/assert";
import { FilterConfigError, Status } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { loadReplicate } from "./replicate-lib.js";

const test = suite("replicate config");

async function refusal(config: Record<string, unknown>, rootConfig: Record<string, unknown> = {}): Promise<{ status: number; reason: string }> {
  return (await loadReplicate({ rootConfig })).refusal(config);
}

const BAD: readonly [Record<string, unknown>, RegExp][] = [
  [{}, /config needs at least one of 'merge', 'copyToLegs', 'rewrite', 'feedback'/],
  [{ merge: {}, copyTolegs: [1] }, /unknown config key 'copyTolegs'; did you mean 'copyToLegs'\?$/],
  [{ merge: { legs: [0, 1], buffer: 50 } }, /unknown config key 'merge.buffer'/],
  [{ merge: { legs: [0, 8] } }, /config key 'merge.legs' must be an array of integers between 0 and 7/],
  [{ merge: { legs: [0, -1] } }, /config key 'merge.legs' must be an array of integers between 0 and 7/],
  [{ merge: { legs: [0] } }, /config key 'merge.legs' must list 2 to 4 legs/],
  [{ merge: { legs: [0, 1, 2, 3, 4] } }, /config key 'merge.legs' must list 2 to 4 legs/],
  [{ merge: { legs: [1, 1] } }, /config key 'merge.legs' names a leg twice/],
  [{ merge: { legs: "0,1" } }, /config key 'merge.legs' must be an array of integers/],
  [{ merge: { bufferMs: 0 } }, /config key 'merge.bufferMs' must be between 1 and 5000/],
  [{ merge: { bufferMs: 600000 } }, /config key 'merge.bufferMs' must be between 1 and 5000/],
  [{ merge: { bufferMs: 2.5 } }, /config key 'merge.bufferMs' must be an integer/],
  [{ merge: { maxHeld: 8 } }, /config key 'merge.maxHeld' must be between 16 and 4096/],
  [{ merge: true }, /config key 'merge' must be an object/],
  [{ copyToLegs: [0] }, /config key 'copyToLegs' must be an array of integers between 1 and 7/],
  [{ copyToLegs: [1, 1] }, /config key 'copyToLegs' must name each leg \(1-7\) at most once/],
  [{ merge: { legs: [0, 1] }, copyToLegs: [1] }, /config key 'copyToLegs' names leg 1, which 'merge.legs' receives on/],
  [{ rewrite: { ssrc: -1 } }, /config key 'rewrite.ssrc' must be between 0 and 4294967295/],
  [{ rewrite: { ssrc: 4294967296 } }, /config key 'rewrite.ssrc' must be between 0 and 4294967295/],
  [{ rewrite: { payloadType: 73 } }, /config key 'rewrite.payloadType' must not be 72-76/],
  [{ rewrite: { payloadType: 128 } }, /config key 'rewrite.payloadType' must be between 0 and 127/],
  [{ rewrite: { continuity: "yes" } }, /config key 'rewrite.continuity' must be true or false/],
  [{ rewrite: { sequence: 1 } }, /unknown config key 'rewrite.sequence'/],
  [{ merge: {}, bufferBudgetKiB: 100000 }, /'bufferBudgetKiB' can only be set in the filter's root config/],
  [{ feedback: 3 }, /config key 'feedback' must be an object/],
];

for (const [config, message] of BAD) {
  test(`refused, naming the key: ${JSON.stringify(config)}`, async () => {
    const r = await refusal(config);
    assert.is(r.status, Status.BadConfig);
    assert.match(r.reason, message);
  });
}

test("accepted: each part alone and together; root defaults for merge and rewrite, overridden key by key", async () => {
  const h = await loadReplicate({ rootConfig: { merge: { bufferMs: 80, maxHeld: 32 }, rewrite: { payloadType: 100 } } });
  for (const config of [
    { merge: {} },
    { merge: { legs: [0, 1, 2, 3], bufferMs: 5000, maxHeld: 4096 } },
    { copyToLegs: [1, 2, 3, 4, 5, 6, 7] },
    { rewrite: {} },
    { rewrite: { ssrc: 4294967295, payloadType: 0, continuity: false } },
    { feedback: {} },
    { merge: { legs: [1, 2] }, copyToLegs: [3], rewrite: { ssrc: 5 }, feedback: {} },
  ]) h.destroyContext(h.createContext(config));
  const r = await refusal({ merge: { bufferMs: 0 } }, { merge: { bufferMs: 80 } });
  assert.match(r.reason, /'merge.bufferMs' must be between 1 and 5000/);
  for (const [rootConfig, message] of [
    [{ merge: { legs: [0, 9] } }, /config key 'merge.legs' must be an array of integers between 0 and 7/],
    [{ feedback: {} }, /unknown config key 'feedback'/],
  ] as const) {
    let failed: unknown;
    try {
      await loadReplicate({ rootConfig });
    } catch (err) {
      failed = err;
    }
    assert.ok(failed instanceof FilterConfigError && message.test(failed.reason), String(failed));
  }
});

test("legs the segment lacks (the host tells the filter its segment's leg count, ABI 1.7) are refused, naming the key; a host that does not tell (0) checks nothing", async () => {
  const h = await loadReplicate();
  for (const [config, legs, message] of [
    [{ merge: { legs: [0, 5] } }, 1, /config key 'merge.legs' names leg 5, but the segment has leg 0 only: it lists no 'legs'/],
    [{ merge: { legs: [0, 1, 2] } }, 2, /config key 'merge.legs' names leg 2, but the segment has legs 0-1 \(its 'legs' list 1\)/],
    [{ copyToLegs: [1, 3] }, 3, /config key 'copyToLegs' names leg 3, but the segment has legs 0-2 \(its 'legs' list 2\)/],
    [{ merge: { legs: [2, 3] }, copyToLegs: [1] }, 1, /config key 'merge.legs' names leg 2/],
  ] as const) {
    const r = h.refusal(config, { legs });
    assert.is(r.status, Status.BadConfig);
    assert.match(r.reason, message);
  }
  for (const [config, legs] of [[{ merge: { legs: [0, 5] } }, 6], [{ merge: { legs: [0, 5] } }, 0], [{ copyToLegs: [7] }, 8], [{ rewrite: {} }, 1]] as const) {
    h.destroyContext(h.createContext(config, { legs }));
  }
  assert.is(h.instance.failure, undefined);
});

test("the memory budget: a merge that does not fit is refused (NoSpace) with what it needs; one destroyed frees its share", async () => {
  // maxHeld 256: 256 places of metadata (1 chunk), 32 chunks of bytes, 1 of candidates, 2 of every path's arrivals past the window (1024 places of 32 bytes): 36 chunks of 16 KiB = 576 KiB.
  const h = await loadReplicate({ rootConfig: { bufferBudgetKiB: 1200 } });
  const config = { merge: { maxHeld: 256 } };
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
  assert.match(refused.reason, /no room for another merge of maxHeld 256: it needs 576 KiB, and 1152 of the instance's 1200 KiB are taken \(raise the root config's bufferBudgetKiB/);
  h.destroyContext(a);
  h.createContext(config);
  h.createContext({ copyToLegs: [1] }); // no buffers
  assert.is(h.instance.failure, undefined);
});

test("at the instance's memory cap a merge is refused, not a trap", async () => {
  const h = await loadReplicate({ maxMemoryPages: 48 });
  let refused: unknown;
  for (let i = 0; i < 40 && !refused; i++) {
    try {
      h.createContext({ merge: { maxHeld: 1024 } });
    } catch (err) {
      refused = err;
    }
  }
  assert.ok(refused instanceof FilterConfigError && refused.status === Status.NoSpace, String(refused));
  assert.match(refused.reason, /the instance's memory is at its cap \(raise the filter's maxMemoryPages/);
  assert.is(h.instance.failure, undefined);
});

test("merges of every size come and go beside live ones without the instance's memory growing (equal chunks, recycled)", async () => {
  const h = await loadReplicate();
  const configs = [{ merge: { maxHeld: 1024 } }, { merge: { maxHeld: 16 }, rewrite: {} }, { merge: { legs: [0, 1, 2, 3], maxHeld: 200 }, copyToLegs: [4] }];
  const live: number[] = [];
  for (let i = 0; i < 6; i++) live.push(h.createContext(configs[i % 3]!));
  const cycle = (n: number): void => {
    for (let i = 0; i < n; i++) {
      h.destroyContext(live.shift()!);
      live.push(h.createContext(configs[i % 3]!));
    }
  };
  cycle(300);
  const settled = h.instance.memory.buffer.byteLength;
  cycle(3000);
  assert.is(h.instance.memory.buffer.byteLength, settled);
  assert.is(h.instance.failure, undefined);
});

test.run();
