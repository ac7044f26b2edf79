// Hot swap of the replicate filter (msm_state_export from one instance, msm_state_import into a
// new one, as the proxy does between batches): a merge waiting in a gap keeps its held packets,
// its wait (as an age: the new worker's clock starts elsewhere) and what each path brought; the
// translator keeps its numbering. A checkpoint restored after a failure (the host says so: ABI 1.5
// state_origin) sends nothing again. A blob of another kind or a damaged one is refused.
import * as assert from "uvu/assert";
import { StateOrigin, pseudoRandomBytes, type FilterHarness } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { arrivals, loadReplicate, metric, packet, run, seqOf, stream } from "./replicate-lib.js";

const test = suite("replicate state across hot swap");

const MERGE = { merge: { legs: [0, 1], bufferMs: 50, maxHeld: 256 } };

/** A new instance whose clock starts at `startUs`, with context config `config` and `h`'s context state. */
async function swap(h: FilterHarness, ctx: number, config: Record<string, unknown>, startUs = 7_000_000): Promise<{ h: FilterHarness; ctx: number; blob: Uint8Array }> {
  // as the proxy: the new instance is ready first, then export and import follow each other
  const next = await loadReplicate({ startUs });
  const nctx = next.createContext(config);
  const blob = h.exportState(ctx);
  assert.ok(blob && blob.length > 0, "a state blob");
  const r = next.importState(nctx, blob);
  assert.ok(r.ok, `import: ${r.reason}`);
  return { h: next, ctx: nctx, blob };
}

test("mid-gap: the held packets come across, the other path's copy fills the gap after the swap, and late copies are still duplicates", async () => {
  const a = await loadReplicate();
  const actx = a.createContext(MERGE);
  const p = stream(8);
  const before = a.runBatch([0, 1, 3, 4, 5].map((i) => ({ ctx: actx, bytes: p[i]!, leg: 0 })));
  assert.equal(before.packets.map((x) => x.verdict), ["pass", "pass", "hold", "hold", "hold"]);
  a.advanceTime(20_000);
  const b = await swap(a, actx, MERGE);
  const r = b.h.runBatch([{ ctx: b.ctx, bytes: p[2]!, leg: 1 }, { ctx: b.ctx, bytes: p[3]!, leg: 1 }, { ctx: b.ctx, bytes: p[1]!, leg: 1 }, { ctx: b.ctx, bytes: p[6]!, leg: 0 }]);
  assert.equal(r.packets.map((x) => x.verdict === "drop" ? x.reasonName : x.verdict), ["pass", "duplicate", "duplicate", "hold"]);
  assert.equal(r.outputs.map((o) => seqOf(o.bytes) - 1000), [3, 4, 5, 6]);
  assert.is(metric(b.h, "merged_lost", b.ctx), 0);
  assert.is(metric(b.h, "swap_lost", b.ctx), 0);
  assert.is(metric(b.h, "path1_duplicates", b.ctx), 2);
});

test("mid-gap: the wait goes on where it was (30 ms left of 50) on the new instance's clock", async () => {
  const a = await loadReplicate();
  const actx = a.createContext(MERGE);
  const p = stream(6);
  a.runBatch([0, 2, 3].map((i) => ({ ctx: actx, bytes: p[i]!, leg: 0 })));
  a.advanceTime(20_000);
  const b = await swap(a, actx, MERGE, 123_000_000);
  const flushed = b.h.advanceTime(0);
  assert.is(flushed.length, 0, "nothing is due yet");
  assert.is(b.h.advanceTime(29_999).length, 0);
  assert.equal(b.h.advanceTime(1).map((o) => seqOf(o.bytes) - 1000), [2, 3]);
  assert.is(metric(b.h, "merged_lost", b.ctx), 1);
});

test("held packets that do not fit the 64 KiB blob come back missing (swap_lost), and the other path still fills them", async () => {
  const a = await loadReplicate();
  const actx = a.createContext(MERGE);
  // Payloads near 1100 bytes: 100 held packets are some 110 KB.
  const packets = Array.from({ length: 102 }, (_, i) => {
    const x = packet(i * 3 + 2);
    new DataView(x.buffer).setUint16(2, 1000 + i);
    return x;
  });
  a.runBatch([{ ctx: actx, bytes: packets[0]!, leg: 0 }]);
  for (let at = 2; at < packets.length; at += 50) {
    const r = a.runBatch(packets.slice(at, at + 50).map((bytes) => ({ ctx: actx, bytes, leg: 0 })));
    assert.ok(r.packets.every((x) => x.verdict === "hold"), "held behind the gap at packet 1");
  }
  const b = await swap(a, actx, MERGE);
  assert.ok(b.blob.length <= 65536);
  const lost = metric(b.h, "swap_lost", b.ctx);
  assert.ok(lost > 0 && lost < 100, `some held packets left out (${lost})`);
  const items = arrivals(packets, [{ leg: 1, delayUs: 0, lose: () => false }], b.h.nowUs, 200); // within bufferMs of the swap
  const m = run(b.h, b.ctx, items, 1000, 100_000);
  assert.equal(m.out.map(seqOf), packets.slice(1).map(seqOf), "everything from packet 1 on, once, in order");
  assert.is(metric(b.h, "merged_lost", b.ctx), 0);
});

test("a checkpoint restored after a failure sends nothing again: what it held went out before, the places since are no gaps, the late path's copies are duplicates", async () => {
  const a = await loadReplicate();
  const actx = a.createContext(MERGE);
  const p = stream(400);
  const sent: number[] = [];
  const take = (r: { packets: readonly { verdict: string; leg: number; bytes: Uint8Array }[]; outputs: readonly { leg: number; bytes: Uint8Array }[] }): void => {
    for (const x of r.packets) if (x.verdict === "pass" && x.leg === 0) sent.push(seqOf(x.bytes));
    for (const o of r.outputs) if (o.leg === 0) sent.push(seqOf(o.bytes));
  };
  // path 0 lost packet 2; 3..5 are held waiting for path 1 (10 ms behind)
  take(a.runBatch([0, 1, 3, 4, 5].map((i) => ({ ctx: actx, bytes: p[i]!, leg: 0 }))));
  const checkpoint = a.exportState(actx)!; // the host's periodic checkpoint
  a.advanceTime(10_000);
  take(a.runBatch([{ ctx: actx, bytes: p[2]!, leg: 1 }])); // gap filled: 2..5 go out
  for (let i = 6; i < 200; i++) take(a.runBatch([{ ctx: actx, bytes: p[i]!, leg: 0 }]));
  // the filter traps; the host restores the context from its last checkpoint (at once: a short restart backoff)
  const b = await loadReplicate({ startUs: 9_000_000 });
  const bctx = b.createContext(MERGE);
  assert.ok(b.importState(bctx, checkpoint, StateOrigin.Checkpoint).ok);
  for (const o of b.advanceTime(0)) if (o.leg === 0) sent.push(seqOf(o.bytes));
  for (let i = 200; i < 210; i++) take(b.runBatch([{ ctx: bctx, bytes: p[i]!, leg: 0 }]));
  const late = b.runBatch([4, 5, 190, 199].map((i) => ({ ctx: bctx, bytes: p[i]!, leg: 1 }))); // path 1, behind
  assert.ok(late.packets.every((x) => x.reasonName === "duplicate"), "duplicates");
  for (const o of b.advanceTime(100_000)) if (o.leg === 0) sent.push(seqOf(o.bytes));
  const seen = new Map<number, number>();
  for (const s of sent) seen.set(s, (seen.get(s) ?? 0) + 1);
  const dups = [...seen].filter(([, n]) => n > 1).map(([s]) => s - 1000);
  assert.equal(dups, [], `packets sent twice downstream: ${dups}`);
  assert.is(sent.length, 210);
  assert.is(metric(b, "merged_lost", bctx), 0, "packets 6..199 were sent before the failure, not lost");
  assert.is(metric(b, "swap_lost", bctx), 0);
});

test("a version 1 blob (no wall clock) is read as version 2: restored from a checkpoint its held packets are not sent again, at a swap they are", async () => {
  const a = await loadReplicate();
  const actx = a.createContext(MERGE);
  const p = stream(8);
  a.runBatch([0, 1, 3, 4].map((i) => ({ ctx: actx, bytes: p[i]!, leg: 0 })));
  const b = await loadReplicate();
  const bctx = b.createContext(MERGE);
  const v2 = a.exportState(actx)!;
  const v1 = Uint8Array.from([...v2.subarray(0, 4), 1, 0, ...v2.subarray(14)]);
  assert.ok(b.importState(bctx, v1, StateOrigin.Checkpoint).ok);
  assert.is(b.advanceTime(100_000).length, 0, "3 and 4 are not sent again");
  assert.is(b.run({ ctx: bctx, bytes: p[5]!, leg: 0 }).verdict, "pass", "the next packet starts afresh");
  assert.is(b.run({ ctx: bctx, bytes: p[3]!, leg: 1 }).reasonName, "duplicate");
  assert.is(metric(b, "merged_lost", bctx), 0);
  // the same blob at a hot swap: the old instance never sent 3 and 4
  const c = await loadReplicate();
  const cctx = c.createContext(MERGE);
  assert.ok(c.importState(cctx, v1, StateOrigin.Swap).ok);
  assert.equal(c.advanceTime(100_000).map((o) => seqOf(o.bytes) - 1000), [3, 4], "held, then sent behind the gap");
});

test("the translator's numbering continues across a swap", async () => {
  const config = { rewrite: { ssrc: 42 } };
  const a = await loadReplicate();
  const actx = a.createContext(config);
  const first = a.runBatch([...stream(10, 100, 1), ...stream(10, 9000, 2)].map((bytes) => ({ ctx: actx, bytes })));
  const b = await swap(a, actx, config);
  const after = b.h.runBatch(stream(5, 9010, 2).map((bytes) => ({ ctx: b.ctx, bytes })));
  assert.equal([...first.packets, ...after.packets].map((x) => seqOf(x.bytes)), Array.from({ length: 25 }, (_, i) => 100 + i));
});

test("a damaged or foreign blob is refused (BadState) and the context starts fresh", async () => {
  const a = await loadReplicate();
  const actx = a.createContext(MERGE);
  a.runBatch([0, 2, 3].map((i) => ({ ctx: actx, bytes: packet(i), leg: 0 })));
  const blob = a.exportState(actx)!;
  const b = await loadReplicate();
  const bad = [
    pseudoRandomBytes(300, 5),
    blob.slice(0, blob.length - 1),
    Uint8Array.from([...blob, 0]),
    (() => { const x = blob.slice(); x[4] = 9; return x; })(), // version
    (() => { const x = blob.slice(); new DataView(x.buffer).setUint32(94, 5, true); return x; })(), // place count
  ];
  for (const x of bad) {
    const ctx = b.createContext(MERGE);
    const r = b.importState(ctx, x);
    assert.is(r.ok, false);
    assert.is(b.run({ ctx, bytes: packet(50), leg: 0 }).verdict, "pass", "a fresh start");
  }
  assert.is(b.instance.failure, undefined);
});

test.run();
