// The live-live merge (SMPTE ST 2022-7 receive side) through the SDK harness: two paths with
// independent seeded loss and a delay difference merge into one stream that has every packet
// either path delivered, once and in order, and loses exactly those both paths lost; a path cut,
// the sequence wrap, a sender restart, duplicates, the bufferMs deadline on the harness clock.
import * as assert from "uvu/assert";
import { PacketFlag, buildRtcpReceiverReport } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import {
  SSRC, arrivals, equalBytes, indexOf, loadReplicate, metric, packet, rng, run, seqOf, ssrcOf, stream, type Arrival,
} from "./replicate-lib.js";

const test = suite("replicate merge");

const MERGE = { merge: { legs: [0, 1], bufferMs: 50, maxHeld: 64 } };
const RING = 64;

/** Asserts `out` is `packets` less `gone` (indexes), in order, byte for byte. */
function assertStream(out: readonly Uint8Array[], packets: readonly Uint8Array[], gone: ReadonlySet<number>, seq0: number): void {
  const want = packets.map((_, i) => i).filter((i) => !gone.has(i));
  assert.equal(out.map((b) => indexOf(seqOf(b), seq0)), want);
  out.forEach((b) => assert.ok(equalBytes(b, packets[indexOf(seqOf(b), seq0)]!), "unchanged bytes"));
}

for (const [p, seed] of [[0.05, 1], [0.2, 2]] as const) {
  test(`two paths, independent loss ${p * 100}% each, path 1 10 ms behind: every packet once and in order; both-lost counted lost; per-path loss, duplicates and skew`, async () => {
    const h = await loadReplicate();
    const ctx = h.createContext(MERGE);
    const seq0 = 4000;
    const N = 3000;
    const packets = stream(N, seq0);
    const lossA = rng(seed * 7919);
    const lossB = rng(seed * 104729);
    const lostA = new Set<number>();
    const lostB = new Set<number>();
    const items = arrivals(packets, [
      { leg: 0, delayUs: 2000, lose: (i) => lossA() < p && lostA.add(i) !== undefined },
      { leg: 1, delayUs: 12_000, lose: (i) => lossB() < p && lostB.add(i) !== undefined },
    ], h.nowUs);
    const m = run(h, ctx, items, 2000, 100_000);
    const both = new Set([...lostA].filter((i) => lostB.has(i)));
    assert.ok(both.size > 0 || p < 0.1, `some packets both paths lost (${both.size})`);
    assertStream(m.out, packets, both, seq0);
    // A gap is known only once a later packet came: both paths losing the stream's last packets
    // leaves nothing to show them missing.
    const lastDelivered = Math.max(...packets.map((_, i) => i).filter((i) => !both.has(i)));
    assert.is(metric(h, "merged_lost", ctx), [...both].filter((i) => i < lastDelivered).length);
    assert.is(metric(h, "merged_late", ctx), 0);
    assert.is(metric(h, "path0_received", ctx), N - lostA.size);
    assert.is(metric(h, "path1_received", ctx), N - lostB.size);
    // Path 1 comes later: its copy of every packet path 0 brought too is the duplicate.
    const delivered = (lost: Set<number>, i: number): boolean => !lost.has(i);
    const bothDelivered = packets.filter((_, i) => delivered(lostA, i) && delivered(lostB, i)).length;
    assert.is(metric(h, "path1_duplicates", ctx), bothDelivered);
    assert.is(metric(h, "path0_duplicates", ctx), 0);
    assert.is(m.verdicts.filter((v) => v === "duplicate").length, bothDelivered);
    assert.ok(m.verdicts.every((v) => v === "pass" || v === "hold" || v === "duplicate"), `verdicts: ${[...new Set(m.verdicts)]}`);
    // A path's loss is counted once its place leaves the window (RING packets behind the newest).
    const counted = (lost: Set<number>): number => [...lost].filter((i) => i < N - RING && !both.has(i)).length;
    assert.is(metric(h, "path0_missed", ctx), counted(lostA));
    assert.is(metric(h, "path1_missed", ctx), counted(lostB));
    assert.is(metric(h, "path1_skew_us", ctx), 10_000, "path 1 is 10 ms behind path 0");
    assert.is(metric(h, "path1_skew_max_us", ctx), 10_000);
    assert.ok(metric(h, "merged_held", ctx) > 0, "packets after a gap were held");
    assert.is(h.instance.failure, undefined);
  });
}

test("path 0 ahead of path 1 by 30 ms, then path 1 ahead by 20 ms: skew changes sign", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const packets = stream(400);
  const items = arrivals(packets.slice(0, 200), [{ leg: 0, delayUs: 0, lose: () => false }, { leg: 1, delayUs: 30_000, lose: () => false }], h.nowUs);
  run(h, ctx, items, 1000, 50_000);
  assert.is(metric(h, "path1_skew_us", ctx), 30_000);
  h.advanceTime(1_000_000); // the extreme is kept over a window of a second
  const later = arrivals(packets.slice(200), [{ leg: 0, delayUs: 20_000, lose: () => false }, { leg: 1, delayUs: 0, lose: () => false }], h.nowUs)
    .map((a) => ({ ...a, index: a.index + 200 }));
  const m = run(h, ctx, later, 1000, 50_000);
  assert.ok(metric(h, "path1_skew_us", ctx) < -15_000, `mean skew turned negative: ${metric(h, "path1_skew_us", ctx)}`);
  assert.is(metric(h, "path1_skew_max_us", ctx), -20_000);
  assert.is(m.out.length, 200);
  assert.is(metric(h, "path0_duplicates", ctx), 200);
});

test("a path lagging by more than the window (100 ms, 64 places at 1000 pps): its copies are stale, not a restart, and still give its skew", async () => {
  // Before: path 1's first copy behind the window was taken for a new stream, the merge resynced on
  // it, sent 102 packets twice and dropped path 0 as the old stream; the skew gauges read 0.
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const packets = stream(1000);
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: () => false }, { leg: 1, delayUs: 100_000, lose: () => false }], h.nowUs);
  const m = run(h, ctx, items, 1000, 300_000);
  assertStream(m.out, packets, new Set(), 1000);
  assert.is(metric(h, "merged_resyncs", ctx), 0);
  assert.is(metric(h, "merged_stale", ctx), 1000 - RING);
  assert.is(metric(h, "path1_skew_us", ctx), 100_000);
  assert.is(metric(h, "path1_skew_max_us", ctx), 100_000);
});

test("path 0 lagging by more than the window (100 ms, 64 places at 1000 pps) is the stale one, as path 1 would be: no restart, and path 1's skew reads it (negative)", async () => {
  // Before: only path 0's arrivals were remembered past the window, so path 0's first copies were
  // taken for a new stream: the merge resynced on them, sent 101 packets again (the output went
  // back from 1100 to 1000), dropped path 1 as the old stream, and the skew gauges read 0.
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const packets = stream(1000);
  const items = arrivals(packets, [{ leg: 0, delayUs: 100_000, lose: () => false }, { leg: 1, delayUs: 0, lose: () => false }], h.nowUs);
  const m = run(h, ctx, items, 1000, 300_000);
  assertStream(m.out, packets, new Set(), 1000);
  assert.is(metric(h, "merged_resyncs", ctx), 0);
  assert.is(metric(h, "merged_stale", ctx), 1000 - RING, "path 0's copies past the window; its last 64 come when path 1 has stopped: duplicates");
  assert.is(metric(h, "path0_duplicates", ctx), RING);
  assert.is(metric(h, "path1_skew_us", ctx), -100_000, "path 1 is 100 ms ahead of path 0");
  assert.is(metric(h, "path1_skew_max_us", ctx), -100_000);
});

test("path 0 lagging past the window of a 3-path merge: paths 1 and 2 carry the stream, and both skews read path 0's lag", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1, 2], bufferMs: 50, maxHeld: 64 } });
  const packets = stream(600);
  const items = arrivals(packets, [
    { leg: 0, delayUs: 150_000, lose: () => false },
    { leg: 1, delayUs: 0, lose: (i) => i % 4 === 1 },
    { leg: 2, delayUs: 5000, lose: () => false },
  ], h.nowUs);
  const m = run(h, ctx, items, 1000, 300_000);
  assertStream(m.out, packets, new Set(), 1000);
  assert.is(metric(h, "merged_resyncs", ctx), 0);
  assert.is(metric(h, "path1_skew_us", ctx), -150_000);
  assert.is(metric(h, "path2_skew_us", ctx), -145_000);
});

test("a window of 1024 places (maxHeld 1024) and a path lagging 1500 places: stale with its skew, not a restart (the copies past the window are remembered for twice the window)", async () => {
  // Before: past-window copies were remembered for 1024 places whatever the window, so with a
  // window of 1024 or more none was, and the lagging path's first copies restarted the stream.
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1], bufferMs: 50, maxHeld: 1024 } });
  const packets = stream(4000);
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: () => false }, { leg: 1, delayUs: 1_500_000, lose: () => false }], h.nowUs);
  const m = run(h, ctx, items, 2000, 2_000_000);
  assertStream(m.out, packets, new Set(), 1000);
  assert.is(metric(h, "merged_resyncs", ctx), 0);
  assert.is(metric(h, "merged_stale", ctx), 4000 - 1024);
  assert.is(metric(h, "path1_skew_us", ctx), 1_500_000);
});

test("a path cut for 2 seconds loses nothing; its loss is counted on it alone", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const seq0 = 100;
  const packets = stream(4000, seq0);
  const cut = (i: number): boolean => i >= 1000 && i < 3000;
  const items = arrivals(packets, [{ leg: 0, delayUs: 1000, lose: cut }, { leg: 1, delayUs: 5000, lose: () => false }], h.nowUs);
  const m = run(h, ctx, items, 2000, 100_000);
  assertStream(m.out, packets, new Set(), seq0);
  assert.is(metric(h, "merged_lost", ctx), 0);
  assert.is(metric(h, "path0_missed", ctx), 2000);
  assert.is(metric(h, "path1_missed", ctx), 0);
});

test("across the sequence wrap, with loss on both paths", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const seq0 = 65_000;
  const packets = stream(1200, seq0);
  const lostA = new Set([10, 535, 536, 537, 600]);
  const lostB = new Set([535, 700, 701]);
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: (i) => lostA.has(i) }, { leg: 1, delayUs: 3000, lose: (i) => lostB.has(i) }], h.nowUs);
  const m = run(h, ctx, items, 2000, 100_000);
  assertStream(m.out, packets, new Set([535]), seq0);
  assert.is(metric(h, "merged_lost", ctx), 1);
});

test("a sender restart (new SSRC, new sequence numbers) on both paths, path 1 late: resync once, nothing lost or repeated, the old stream's late copies dropped as stale", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const first = stream(300, 1000);
  const second = stream(300, 40_000, 0xabcdef01);
  const packets = [...first, ...second];
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: () => false }, { leg: 1, delayUs: 8000, lose: () => false }], h.nowUs);
  const m = run(h, ctx, items, 2000, 100_000);
  assert.equal(m.out.map((b) => `${ssrcOf(b).toString(16)}:${seqOf(b)}`), packets.map((b) => `${ssrcOf(b).toString(16)}:${seqOf(b)}`));
  assert.is(metric(h, "merged_resyncs", ctx), 1);
  assert.is(metric(h, "merged_lost", ctx), 0);
  assert.ok(metric(h, "merged_stale", ctx) > 0, "path 1's old packets after the restart");
  assert.ok(m.verdicts.every((v) => ["pass", "hold", "duplicate", "stale"].includes(v)));
});

test("a sender restart with the same SSRC and a sequence jump back, on one path only: resync, nothing held for ever", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const packets = [...stream(200, 30_000), ...stream(200, 100)];
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: () => false }], h.nowUs);
  const m = run(h, ctx, items, 2000, 100_000);
  assert.equal(m.out.map(seqOf), packets.map(seqOf));
  assert.is(metric(h, "merged_resyncs", ctx), 1);
  assert.is(metric(h, "path1_missed", ctx) > 0, true, "path 1 carried nothing");
});

test("a sender restart that keeps its SSRC and starts its sequence 150 back loses nothing (RFC 3550 A.1 resyncs after two packets)", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1], bufferMs: 50, maxHeld: 256 } });
  const old = stream(151, 1000); // seq 1000..1150
  for (const b of old) h.runBatch([{ ctx, bytes: b, leg: 0 }, { ctx, bytes: b, leg: 1 }]);
  h.advanceTime(500_000);
  const fresh = stream(300, 1000); // the encoder restarts: same SSRC, sequence from 1000 again
  const out: Uint8Array[] = [];
  for (const b of fresh) {
    const r = h.runBatch([{ ctx, bytes: b, leg: 0 }, { ctx, bytes: b, leg: 1 }]);
    for (const x of r.packets) if (x.verdict === "pass" && x.leg === 0) out.push(x.bytes);
    for (const o of r.outputs) if (o.leg === 0) out.push(o.bytes);
  }
  for (const o of h.advanceTime(100_000)) if (o.leg === 0) out.push(o.bytes);
  assertStream(out, fresh, new Set(), 1000);
  assert.is(metric(h, "merged_resyncs", ctx), 1);
  assert.is(metric(h, "merged_stray", ctx), 0);
});

test("a restart keeping its SSRC that goes back more than the window (150 back, 64 places), path 1 ahead: each path repeats places it brought itself, so it is a restart, not a lagging path; nothing lost or repeated", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const first = stream(300, 1000); // 1000..1299
  const second = stream(300, 1150); // 200 ms later: 1150 again
  const paths = [{ leg: 0, delayUs: 5000, lose: () => false }, { leg: 1, delayUs: 0, lose: () => false }];
  const items = [...arrivals(first, paths, h.nowUs), ...arrivals(second, paths, h.nowUs + 500_000)].sort((a, b) => a.atUs - b.atUs || a.leg - b.leg);
  const m = run(h, ctx, items, 1000, 100_000);
  const want = [...first, ...second];
  assert.is(m.out.length, want.length, "each packet of both streams once");
  m.out.forEach((b, k) => assert.ok(equalBytes(b, want[k]!), `packet ${k} in order, unchanged`));
  assert.is(metric(h, "merged_resyncs", ctx), 1);
  assert.is(metric(h, "merged_lost", ctx), 0);
});

test("a restart keeping its SSRC, 40 back, while path 1 (20 ms behind) still delivers the old stream: the old stream's last copies on path 1 are stale, both streams go out whole and once", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const first = stream(300, 1000); // 1000..1299, one a millisecond
  const second = stream(300, 1260); // 15 ms after the last: 1260 was sent 55 ms before (more than bufferMs)
  const paths = [{ leg: 0, delayUs: 0, lose: () => false }, { leg: 1, delayUs: 20_000, lose: () => false }];
  const items = [...arrivals(first, paths, h.nowUs), ...arrivals(second, paths, h.nowUs + 315_000)].sort((a, b) => a.atUs - b.atUs || a.leg - b.leg);
  const m = run(h, ctx, items, 1000, 100_000);
  const want = [...first, ...second];
  assert.is(m.out.length, want.length, "each packet of both streams once");
  m.out.forEach((b, k) => assert.ok(equalBytes(b, want[k]!), `packet ${k} in order, unchanged`));
  assert.is(metric(h, "merged_resyncs", ctx), 1);
  assert.ok(metric(h, "merged_stale", ctx) > 0, "path 1's old packets after the restart");
  assert.is(metric(h, "merged_lost", ctx), 0);
});

test("a path silent across a restart whose new packets happen to continue its old numbering is taken for the old stream for a second only, then fills the other path's gaps again", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const first = stream(300, 1000);
  const second = stream(3000, 1260); // same SSRC, 40 back; path 1 was silent from 1100 on
  const items = [
    ...arrivals(first, [{ leg: 0, delayUs: 0, lose: () => false }, { leg: 1, delayUs: 0, lose: (i) => i >= 100 }], h.nowUs),
    ...arrivals(second, [{ leg: 0, delayUs: 0, lose: (i) => i % 10 === 5 }, { leg: 1, delayUs: 5000, lose: () => false }], h.nowUs + 315_000),
  ].sort((a, b) => a.atUs - b.atUs || a.leg - b.leg);
  const m = run(h, ctx, items, 1000, 100_000);
  assert.is(metric(h, "merged_resyncs", ctx), 1);
  assert.is(m.out.length - 3000 + metric(h, "merged_lost", ctx), 300, "the old stream whole; the new one less what no path brought");
  // path 0 loses one in ten of the new stream: path 1 fills them from one second after the restart on
  const lost = metric(h, "merged_lost", ctx);
  assert.ok(lost >= 90 && lost <= 101, `the losses of the first second only (about 100 of 300): ${lost}`);
  const stale = metric(h, "merged_stale", ctx);
  assert.ok(stale >= 990 && stale <= 1001, `path 1 stale for a second (1000 packets), not for ever: ${stale}`);
});

test("a path lagging 100 ms (more than bufferMs) delivers, in sequence, places the other path sent long ago: duplicates, never a restart", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1], bufferMs: 50, maxHeld: 256 } });
  const packets = stream(1000, 100);
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: (i) => i % 50 === 7 }, { leg: 1, delayUs: 100_000, lose: () => false }], h.nowUs);
  const m = run(h, ctx, items, 1000, 200_000);
  assert.equal(m.out.map(seqOf).sort((a, b) => a - b), packets.map(seqOf), "every packet once (path 0's losses come late, from path 1)");
  assert.is(metric(h, "merged_resyncs", ctx), 0);
  assert.is(metric(h, "merged_stray", ctx), 0);
  assert.is(metric(h, "path1_duplicates", ctx), 980);
});

test("packets passed unkept while the output area was full (the window needed their places) are remembered: the other path's copies are duplicates and their places no gap", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1], bufferMs: 50, maxHeld: 64 }, copyToLegs: [2] });
  const p = stream(120);
  const leg0: number[] = [];
  const take = (r: { packets: readonly { verdict: string; leg: number; bytes: Uint8Array }[]; outputs: readonly { leg: number; bytes: Uint8Array }[] }): void => {
    for (const x of r.packets) if (x.verdict === "pass" && x.leg === 0) leg0.push(seqOf(x.bytes) - 1000);
    for (const o of r.outputs) if (o.leg === 0) leg0.push(seqOf(o.bytes) - 1000);
  };
  const batch = (idx: number[], leg: number): void => take(h.runBatch(idx.map((i) => ({ ctx, bytes: p[i]!, leg }))));
  const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, k) => a + k);
  batch([0], 0);
  batch(range(2, 64), 0); // held behind packet 1, lost on both paths: the window is full
  // 65 gives 1 up and releases 2..33 (32 packets and their copies fill the output area); 66..97
  // are held; 98..105 need places still held and go on unkept
  batch(range(65, 105), 0);
  assert.is(metric(h, "merged_passed_unkept", ctx), 8);
  batch([...range(98, 105), 66, 70], 1); // path 1's copies: duplicates
  batch(range(106, 119), 0);
  for (const o of h.advanceTime(100_000)) if (o.leg === 0) leg0.push(seqOf(o.bytes) - 1000);
  assert.equal([...leg0].sort((a, b) => a - b), range(0, 119).filter((i) => i !== 1), "each once, only 1 missing");
  assert.is(metric(h, "merged_lost", ctx), 1);
  assert.is(metric(h, "path1_duplicates", ctx), 10);
});

test("a restart confirmed while the output area is full waits for the next call: the new stream's first packets are neither lost nor stray", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1], bufferMs: 50, maxHeld: 64 }, copyToLegs: [2] });
  const p = stream(66);
  const n = stream(10, 5000, 0xabcdef01);
  const leg0: string[] = [];
  const name = (b: Uint8Array): string => `${ssrcOf(b) === SSRC ? "old" : "new"}:${seqOf(b)}`;
  const take = (r: { packets: readonly { verdict: string; leg: number; bytes: Uint8Array }[]; outputs: readonly { leg: number; bytes: Uint8Array }[] }): void => {
    for (const x of r.packets) if (x.verdict === "pass" && x.leg === 0) leg0.push(name(x.bytes));
    for (const o of r.outputs) if (o.leg === 0) leg0.push(name(o.bytes));
  };
  take(h.runBatch([{ ctx, bytes: p[0]!, leg: 0 }]));
  take(h.runBatch(p.slice(2, 65).map((bytes) => ({ ctx, bytes, leg: 0 })))); // held behind packet 1
  // 65 releases 2..33 with their copies (a full output area); then the sender restarts
  take(h.runBatch([p[65]!, ...n.slice(0, 4)].map((bytes) => ({ ctx, bytes, leg: 0 }))));
  take(h.runBatch(n.slice(4).map((bytes) => ({ ctx, bytes, leg: 0 }))));
  for (const o of h.advanceTime(100_000)) if (o.leg === 0) leg0.push(name(o.bytes));
  const want = [...[0, ...Array.from({ length: 64 }, (_, k) => k + 2)].map((i) => name(p[i]!)), ...n.map(name)];
  assert.equal([...leg0].sort(), [...want].sort(), "each once");
  assert.is(metric(h, "merged_stray", ctx), 0);
  assert.is(metric(h, "merged_resyncs", ctx), 1);
  assert.is(metric(h, "merged_lost", ctx), 1);
});

test("duplicates on one path and across paths are dropped and counted (duplicate)", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const p = stream(5);
  const r = h.runBatch([
    { ctx, bytes: p[0]!, leg: 0 }, { ctx, bytes: p[0]!, leg: 0 }, { ctx, bytes: p[1]!, leg: 1 }, { ctx, bytes: p[1]!, leg: 0 },
    { ctx, bytes: p[0]!, leg: 1 }, { ctx, bytes: p[2]!, leg: 1 },
  ]);
  assert.equal(r.packets.map((x) => x.verdict === "drop" ? x.reasonName : `${x.verdict}@${x.leg}`), ["pass@0", "duplicate", "pass@0", "duplicate", "duplicate", "pass@0"]);
  assert.is(metric(h, "path0_duplicates", ctx), 2);
  assert.is(metric(h, "path1_duplicates", ctx), 1);
});

test("bufferMs: packets after a gap wait for it exactly bufferMs (harness timers), then go on; the missing one arriving later passes as late", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const p = stream(6);
  const first = h.runBatch([0, 1, 3, 4].map((i) => ({ ctx, bytes: p[i]!, leg: 0 })));
  assert.equal(first.packets.map((x) => x.verdict), ["pass", "pass", "hold", "hold"]);
  assert.is(first.outputs.length, 0);
  assert.equal(h.timers().map((t) => t.dueUs - h.nowUs), [50_000]);
  assert.is(h.advanceTime(49_999).length, 0, "still waiting for packet 2");
  const released = h.advanceTime(1);
  assert.equal(released.map((o) => seqOf(o.bytes) - 1000), [3, 4]);
  assert.is(metric(h, "merged_lost", ctx), 1);
  const late = h.run({ ctx, bytes: p[2]!, leg: 1 });
  assert.is(late.verdict, "pass");
  assert.is(metric(h, "merged_late", ctx), 1);
  assert.is(h.run({ ctx, bytes: p[2]!, leg: 0 }).reasonName, "duplicate", "after a late copy went on, the next is a duplicate");
  assert.is(h.run({ ctx, bytes: p[5]!, leg: 1 }).verdict, "pass");
});

test("a stall past bufferMs: the backlog is judged by when its packets arrived, so a copy that came in time fills its gap; what never came is given up by the late timer", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const p = stream(8);
  const t0 = h.nowUs;
  h.runBatch([0, 1, 3].map((i) => ({ ctx, bytes: p[i]!, leg: 0 }))); // 2 missing from t0
  h.stall(80_000); // the host stops: the wait for 2 ends at t0 + 50 ms, unseen
  // then reads what waited in the kernel, in arrival order, before the late timer
  const backlog = h.runBatch([
    { ctx, bytes: p[4]!, leg: 0, arrivalUs: t0 + 10_000 },
    { ctx, bytes: p[6]!, leg: 0, arrivalUs: t0 + 20_000 }, // 5 missing from t0 + 20 ms
    { ctx, bytes: p[2]!, leg: 1, arrivalUs: t0 + 30_000 }, // 2 in time
  ]);
  assert.equal(backlog.packets.map((x) => x.verdict), ["hold", "hold", "pass"]);
  assert.equal(backlog.outputs.map((o) => seqOf(o.bytes) - 1000), [3, 4], "2 filled its gap: 2 (in place), 3 and 4 go on, 6 waits for 5");
  assert.is(metric(h, "merged_lost", ctx), 0);
  const late = h.advanceTime(0);
  assert.equal(late.map((o) => seqOf(o.bytes) - 1000), [6], "the late timer: 5's wait (from t0 + 20 ms) is over too");
  assert.is(metric(h, "merged_lost", ctx), 1);
  assert.is(metric(h, "merged_late", ctx), 0);
});

test("a gap filled by the other path: held packets leave behind it in order, through the output area", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const p = stream(6);
  h.runBatch([0, 2, 3].map((i) => ({ ctx, bytes: p[i]!, leg: 0 })));
  const r = h.runBatch([{ ctx, bytes: p[1]!, leg: 1 }, { ctx, bytes: p[4]!, leg: 0 }, { ctx, bytes: p[2]!, leg: 1 }]);
  assert.equal(r.packets.map((x) => x.verdict === "drop" ? x.reasonName : `${x.verdict}@${x.leg}`), ["pass@0", "hold@0", "duplicate"]);
  assert.equal(r.outputs.map((o) => `${seqOf(o.bytes) - 1000}@${o.leg}`), ["2@0", "3@0", "4@0"]);
  assert.equal(h.timers().length, 0, "nothing waits");
  assert.is(metric(h, "merged_lost", ctx), 0);
});

test("RTCP on leg 0, upstream packets and packets on legs the merge does not list pass untouched", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const rr = buildRtcpReceiverReport();
  const r = h.runBatch([
    { ctx, bytes: rr, leg: 0, flags: PacketFlag.Rtcp },
    { ctx, bytes: rr, leg: 0, flags: PacketFlag.Rtcp | PacketFlag.Upstream },
    { ctx, bytes: packet(0), leg: 2 },
    { ctx, bytes: packet(7), leg: 0, flags: PacketFlag.Upstream },
  ]);
  r.packets.forEach((x, k) => assert.is(`${x.verdict}@${x.leg}`, `pass@${k === 2 ? 2 : 0}`));
  assert.ok(equalBytes(r.packets[0]!.bytes, rr));
  assert.is(metric(h, "path0_received", ctx), 0);
});

test("malformed RTP on a merged leg is dropped with the RFC 3550 A.1 reason", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const bad = packet(0).slice(0, 8);
  assert.is(h.run({ ctx, bytes: bad, leg: 1 }).reasonName, "too_short");
});

test("a 3-path merge (legs 0, 2, 3): the stream survives any two paths missing a packet", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 2, 3], bufferMs: 40, maxHeld: 128 } });
  const packets = stream(900, 7);
  const items: Arrival[] = arrivals(packets, [
    { leg: 0, delayUs: 0, lose: (i) => i % 3 !== 0 },
    { leg: 2, delayUs: 4000, lose: (i) => i % 3 !== 1 },
    { leg: 3, delayUs: 9000, lose: (i) => i % 3 !== 2 },
  ], h.nowUs);
  const m = run(h, ctx, items, 2000, 100_000);
  assertStream(m.out, packets, new Set(), 7);
  assert.is(metric(h, "path2_received", ctx), 300);
  assert.is(metric(h, "merged_lost", ctx), 0);
});

test("drain: what is held goes out in order, the gap given up", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext(MERGE);
  const p = stream(5);
  h.runBatch([0, 2, 3].map((i) => ({ ctx, bytes: p[i]!, leg: 0 })));
  assert.equal(h.drainContext(ctx).map((o) => seqOf(o.bytes) - 1000), [2, 3]);
  assert.is(metric(h, "merged_lost", ctx), 1);
  h.destroyContext(ctx);
  assert.is(SSRC, ssrcOf(p[0]!));
});

test.run();
