// Hot swap of the fec filter (msm_state_export from one instance, msm_state_import into a new
// one, as the proxy does between two batches): the encoder's matrix in flight and its columns
// still to send, the decoder's held packets and waiting repairs. A swap at any point gives the
// same packets as no swap; what does not fit the 64 KiB blob is never sent wrong.
import * as assert from "uvu/assert";
import { StateOrigin, buildRtp, type FilterHarness } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import {
  decode, drain, encode, equalBytes, indexOf, loadFec, mediaOut, mediaStream, members, metric, parseFec, referenceFec, rng,
  seqOf, wire, type SentFec, type Shape, type WireItem,
} from "./fec-lib.js";

const test = suite("fec state across hot swap");

/** A new instance at `h`'s clock with context config `config` and `h`'s context state. */
async function swap(h: FilterHarness, ctx: number, config: Record<string, unknown>): Promise<{ h: FilterHarness; ctx: number; blob: Uint8Array }> {
  const blob = h.exportState(ctx);
  assert.ok(blob && blob.length > 0, "a state blob");
  const next = await loadFec({ startUs: h.nowUs });
  const nctx = next.createContext(config);
  const r = next.importState(nctx, blob);
  assert.ok(r.ok, `import: ${r.reason}`);
  return { h: next, ctx: nctx, blob };
}

const fecBytes = (s: readonly SentFec[]): string[] => s.map((x) => Buffer.from(x.bytes).toString("hex") + "@" + x.leg);

for (const shape of [
  { columns: 4, rows: 4, rowFec: true },
  { columns: 10, rows: 10, rowFec: true },
  { columns: 20, rows: 5, rowFec: false },
]) {
  test(`encoder ${shape.columns} x ${shape.rows}: a swap anywhere (mid-row, mid-matrix, with columns waiting) sends what no swap sends`, async () => {
    const config = { mode: "encode", ...shape };
    const size = shape.columns * shape.rows;
    const seq0 = 65500;
    const media = mediaStream(4 * size + 3, seq0);
    const base = await loadFec();
    const all = encode(base, base.createContext(config), media, seq0, 1);
    for (const at of [1, Math.floor(size / 2) + 1, size + 3, size + shape.rows * 2 + 1, 2 * size + size - 1]) {
      const a = await loadFec();
      const actx = a.createContext(config);
      const before = encode(a, actx, media.slice(0, at), seq0, 1);
      const b = await swap(a, actx, config);
      const after = encode(b.h, b.ctx, media.slice(at), (seq0 + at) & 0xffff, 1);
      assert.equal(fecBytes([...before, ...after]), fecBytes(all), `swap after ${at} packets`);
    }
  });
}

test("encoder: groups that do not fit the blob (2 x 20 columns of 1950-byte payloads) are left out, never sent wrong", async () => {
  const shape = { columns: 20, rows: 5, rowFec: true };
  const config = { mode: "encode", ...shape };
  const seq0 = 10;
  const media = Array.from({ length: 260 }, (_, i) => {
    const b = buildRtp({ seq: seq0 + i, timestamp: i * 10, ssrc: 7, payloadSize: 1950 });
    const next = rng(i + 1);
    for (let k = 12; k < b.length; k++) b[k] = Math.floor(next() * 256);
    return b;
  });
  const a = await loadFec();
  const actx = a.createContext(config);
  // Just into matrix 1's second row: its 20 columns and 1 row in flight, matrix 0's columns 5-19
  // waiting (column c goes with packet 100 + 5c): 36 groups of 1950 bytes do not fit 64 KiB.
  const at = 100 + 21;
  encode(a, actx, media.slice(0, at), seq0, 1);
  const b = await swap(a, actx, config);
  assert.ok(b.blob.length <= 65536);
  const after = encode(b.h, b.ctx, media.slice(at), seq0 + at, 1);
  const index = (s: SentFec): number => parseFec(s.bytes).snBase - seq0;
  let checked = 0;
  for (const s of after) {
    const f = parseFec(s.bytes);
    const g = { row: f.d === 1, base: index(s) };
    assert.ok(equalBytes(f.payload, referenceFec(members(shape, g).map((i) => media[i]!)).payload), `${g.row ? "row" : "column"} ${g.base}`);
    checked++;
  }
  const waiting = after.filter((s) => !s.group.row && index(s) < 100).map(index);
  assert.ok(waiting.length > 0 && waiting.length < 15, `some of matrix 0's waiting columns were left out (${waiting.length} of 15 sent)`);
  assert.equal(waiting, waiting.map((_, k) => 5 + k), "the blob keeps the groups in flight first, then the waiting columns in turn");
  assert.ok(after.some((s) => !s.group.row && index(s) >= 100), "matrix 1's columns (in flight at the swap) go out");
  assert.ok(checked > 20);
});

interface DecodeRun {
  readonly out: Uint8Array[];
  readonly recovered: number;
}

async function decodeWhole(shape: Shape & { rowFec: boolean }, items: readonly WireItem[], batch: number): Promise<DecodeRun> {
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 5000 });
  const d = decode(h, ctx, items, batch);
  return { out: [...d.out, ...mediaOut(drain(h, ctx))], recovered: metric(h, "recovered", ctx) };
}

test("decoder: a swap with packets held and repairs waiting loses no recovery and changes no byte", async () => {
  const shape = { columns: 5, rows: 6, rowFec: true };
  const size = 30;
  const seq0 = 65480;
  const enc = await loadFec();
  const media = mediaStream(5 * size + 4, seq0);
  const fec = encode(enc, enc.createContext({ mode: "encode", ...shape }), media, seq0, 16);
  // Two losses per row in matrix 1 (columns needed, which come during matrix 2), one in matrix 2.
  const lost = new Set([size + 1, size + 2, size + 11, size + 14, 2 * size + 7]);
  const items = wire(media, fec, (x) => x.media !== undefined && lost.has(x.media));
  const whole = await decodeWhole(shape, items, 4);
  assert.is(whole.recovered, lost.size);
  for (const cut of [40, 52, 60, 75, 90, 110]) {
    const h = await loadFec();
    const config = { mode: "decode", ...shape, maxDelayMs: 5000 };
    const ctx = h.createContext(config);
    const first = decode(h, ctx, items.slice(0, cut), 4);
    const b = await swap(h, ctx, config);
    const second = decode(b.h, b.ctx, items.slice(cut), 4);
    const out = [...first.out, ...second.out, ...mediaOut(drain(b.h, b.ctx))];
    assert.equal(out.map((x) => indexOf(seqOf(x), seq0)), whole.out.map((x) => indexOf(seqOf(x), seq0)), `cut at ${cut}: same packets, same order`);
    out.forEach((x, k) => assert.ok(equalBytes(x, whole.out[k]!), `cut at ${cut}: packet ${k} byte-identical`));
    assert.is(metric(h, "recovered", ctx) + metric(b.h, "recovered", b.ctx), lost.size, `cut at ${cut}: every recovery`);
    assert.is(metric(b.h, "swap_lost", b.ctx), 0);
  }
});

test("decoder: more held than the blob holds: the rest comes back missing (swap_lost), may still be rebuilt, nothing out of order or wrong", async () => {
  const shape = { columns: 10, rows: 10, rowFec: false };
  const seq0 = 3;
  const enc = await loadFec();
  const media = mediaStream(320, seq0);
  const fec = encode(enc, enc.createContext({ mode: "encode", ...shape }), media, seq0, 16);
  // 2 lost: 100+ packets of ~600 bytes wait for column 2 of matrix 0 (sent with packet 120)
  const items = wire(media, fec, (x) => x.media === 2);
  const cut = items.findIndex((it) => it.leg === 0 && indexOf(seqOf(it.bytes), seq0) === 115);
  const h = await loadFec();
  const config = { mode: "decode", ...shape, maxDelayMs: 5000 };
  const ctx = h.createContext(config);
  const first = decode(h, ctx, items.slice(0, cut), 8);
  assert.is(first.out.length, 2, "0 and 1 went on, the rest waits");
  const b = await swap(h, ctx, config);
  const lostInSwap = metric(b.h, "swap_lost", b.ctx);
  assert.ok(lostInSwap > 0, `the blob could not hold 113 held packets (${lostInSwap} left out)`);
  const second = decode(b.h, b.ctx, items.slice(cut), 8);
  const out = [...first.out, ...second.out, ...mediaOut(drain(b.h, b.ctx))];
  const got = out.map((x) => indexOf(seqOf(x), seq0));
  assert.equal(got, [...got].sort((x, y) => x - y), "in order");
  assert.is(new Set(got).size, got.length, "no duplicate");
  out.forEach((x, k) => assert.ok(equalBytes(x, media[got[k]!]!), `packet ${got[k]} byte-identical`));
  assert.ok(got.includes(2), "the lost packet was still rebuilt");
  assert.is(got.length + metric(b.h, "unrecoverable", b.ctx), media.length, "every other packet is out or counted");
});

test("decoder: a swap after thousands of packets (past 4096) still carries the state, and every loss is counted", async () => {
  // regression: the blob gave the run's first sequence number as its low edge, and a blob spanning
  // more than 4096 packets was refused (BadState, no reason) about 4 s into a 1000 pps stream
  const shape = { columns: 10, rows: 10, rowFec: true };
  const seq0 = 60000; // the run crosses the 16-bit wrap as well
  const media = mediaStream(6000, seq0);
  const enc = await loadFec();
  const fec = encode(enc, enc.createContext({ mode: "encode", ...shape }), media, seq0, 16);
  const next = rng(3);
  // (the first and last packet arrive: a loss before the first or after the last is no one's to see)
  const items = wire(media, fec, (x) => x.media !== undefined && x.media > 0 && x.media < media.length - 1 && next() < 0.03);
  const config = { mode: "decode", ...shape, maxDelayMs: 5000 };
  const h = await loadFec();
  const ctx = h.createContext(config);
  const cut = items.findIndex((it) => it.leg === 0 && indexOf(seqOf(it.bytes), seq0) >= 5000);
  const first = decode(h, ctx, items.slice(0, cut), 8);
  const b = await swap(h, ctx, { ...config, maxDelayMs: 4000 });
  // a blob of the build before, whose low edge was the run's first packet, imports too (the upgrade's own swap)
  const old = Buffer.from(b.blob);
  old.writeBigUInt64LE(old.readBigUInt64LE(10) - 5000n, 26); // after magic, version, kind, L, D, started, newest, next
  const upgraded = await loadFec({ startUs: h.nowUs });
  assert.equal(upgraded.importState(upgraded.createContext(config), old), { ok: true, reason: "" });
  const second = decode(b.h, b.ctx, items.slice(cut), 8);
  const out = [...first.out, ...second.out, ...mediaOut(drain(b.h, b.ctx))];
  const got = out.map((x) => indexOf(seqOf(x), seq0));
  assert.equal(got, [...got].sort((x, y) => x - y), "in order");
  assert.is(new Set(got).size, got.length, "once each");
  const count = (name: string): number => metric(h, name, ctx) + metric(b.h, name, b.ctx);
  // (a held packet the blob could not carry, swap_lost, comes back missing and is settled again: out if rebuilt, else unrecoverable)
  assert.is(got.length + count("unrecoverable"), media.length, "every packet out, or counted as lost");
  assert.is(metric(b.h, "fec_out_of_window", b.ctx), 0, "the repair of the groups around the swap is used");
});

test("encoder: a swap after more than 65536 packets (the sequence number wrapped) sends what no swap sends", async () => {
  const config = { mode: "encode", columns: 10, rows: 10, rowFec: true };
  const seq0 = 100;
  const media = mediaStream(200, seq0);
  // packet i: one of 200 payloads again, numbered on from seq0
  const packets = (from: number, to: number): Uint8Array[] => Array.from({ length: to - from }, (_, k) => {
    const p = media[(from + k) % 200]!.slice();
    p[2] = ((seq0 + from + k) >> 8) & 0xff;
    p[3] = (seq0 + from + k) & 0xff;
    return p;
  });
  const cut = 70_050;
  const from = cut - 450; // a matrix starts there in both runs
  const whole = await loadFec();
  const all = encode(whole, whole.createContext(config), packets(from, cut + 450), seq0, 50);
  const a = await loadFec();
  const actx = a.createContext(config);
  encode(a, actx, packets(0, from), seq0, 50);
  const before = encode(a, actx, packets(from, cut), seq0, 50);
  const b = await swap(a, actx, config);
  const after = encode(b.h, b.ctx, packets(cut, cut + 450), seq0, 50);
  // the matrices from `from` on (the one before's columns go out in it), from the timestamp on
  // (the FEC packets' own sequence numbers count from each run's start)
  const ours = (s: SentFec): boolean => ((parseFec(s.bytes).snBase - seq0 - from) & 0xffff) < 0x8000;
  const tail = (s: readonly SentFec[]): string[] => fecBytes(s.filter(ours)).map((x) => x.slice(8));
  assert.ok(after.length > 50);
  assert.equal(tail([...before, ...after]), tail(all));
});

test("decoder: a worker restarted meanwhile (its clock starts again) still gives up a missing packet maxDelayMs after it went missing", async () => {
  const shape = { columns: 4, rows: 4, rowFec: false };
  const media = mediaStream(8, 500);
  const config = { mode: "decode", ...shape, maxDelayMs: 100 };
  const old = await loadFec({ startUs: 5_000_000_000 });
  const ctx = old.createContext(config);
  old.runBatch([0, 1, 3].map((i) => ({ ctx, bytes: media[i]!, leg: 0 }))); // 2 went missing when 3 came
  old.advanceTime(40_000);
  const blob = old.exportState(ctx)!;
  const fresh = await loadFec({ startUs: 1_000_000 }); // a new worker: performance.now() from near 0
  const nctx = fresh.createContext(config);
  assert.equal(fresh.importState(nctx, blob), { ok: true, reason: "" });
  assert.equal(mediaOut(fresh.advanceTime(59_000)), [], "60 ms left to wait, not yet");
  const out = mediaOut(fresh.advanceTime(2_000)).map((b) => indexOf(seqOf(b), 500));
  assert.equal(out, [3], "2 given up 100 ms after it went missing, across the restart; 3 goes on");
  assert.is(metric(fresh, "unrecoverable", nctx), 1);
});

test("blobs this version does not know are refused (BadState) and the context starts fresh", async () => {
  const h = await loadFec();
  const enc = h.createContext({ mode: "encode", columns: 4, rows: 4 });
  const dec = h.createContext({ mode: "decode", columns: 4, rows: 4 });
  encode(h, enc, mediaStream(20), 1000);
  decode(h, dec, mediaStream(20).map((bytes) => ({ bytes, leg: 0 })));
  const encBlob = h.exportState(enc)!;
  const decBlob = h.exportState(dec)!;
  const other = await loadFec();
  const e2 = other.createContext({ mode: "encode", columns: 4, rows: 4 });
  const d2 = other.createContext({ mode: "decode", columns: 4, rows: 4 });
  const wrongMagic = encBlob.slice();
  wrongMagic[0] ^= 0xff;
  const wrongVersion = decBlob.slice();
  wrongVersion[4] = 99;
  for (const [ctx, blob, what] of [
    [e2, decBlob, "a decoder's blob into an encoder"], [d2, encBlob, "an encoder's blob into a decoder"],
    [e2, wrongMagic, "wrong magic"], [d2, wrongVersion, "unknown version"],
    [e2, encBlob.slice(0, encBlob.length - 3), "truncated encoder blob"], [d2, decBlob.slice(0, decBlob.length - 1), "truncated decoder blob"],
    [d2, new Uint8Array([...decBlob, 0]), "a byte too many"],
  ] as const) {
    const r = other.importState(ctx, blob);
    assert.is(r.ok, false, what);
    assert.ok(r.reason.startsWith("fec state blob "), `${what}: says why (${r.reason})`);
  }
  assert.is(other.instance.failure, undefined);
  // and the contexts still work
  assert.ok(encode(other, e2, mediaStream(20), 1000).length > 0);
});

test("encoder: a blob of another matrix shape carries only the FEC sequence numbers", async () => {
  const a = await loadFec();
  const actx = a.createContext({ mode: "encode", columns: 4, rows: 4 });
  encode(a, actx, mediaStream(40, 0), 0);
  const b = await swap(a, actx, { mode: "encode", columns: 5, rows: 5 });
  const after = encode(b.h, b.ctx, mediaStream(30, 40), 40);
  const rows = after.filter((s) => s.group.row).map((s) => parseFec(s.bytes));
  assert.equal(rows.map((f) => f.snBase), [40, 45, 50, 55, 60, 65], "a new 5 x 5 matrix from the next packet");
  assert.is(rows[0]!.seq, 10, "row FEC numbering goes on (10 rows sent before)");
  assert.equal([rows[0]!.offset, rows[0]!.na], [1, 5]);
});

test("a checkpoint restored after a failure starts afresh: the decoder does not send its held packets again, the encoder opens a new matrix", async () => {
  const config = { mode: "decode", columns: 4, rows: 4, maxDelayMs: 100 };
  const media = mediaStream(12, 1000);
  const a = await loadFec();
  const actx = a.createContext(config);
  const r = a.runBatch([0, 1, 3, 4].map((i) => ({ ctx: actx, bytes: media[i]! })));
  assert.equal(r.packets.map((p) => p.verdict), ["pass", "pass", "hold", "hold"], "3 and 4 wait for 2");
  const blob = a.exportState(actx)!;
  // as a swap's blob, the held packets go on (after the wait for 2)
  const swapped = await loadFec({ startUs: a.nowUs });
  const sctx = swapped.createContext(config);
  assert.ok(swapped.importState(sctx, blob, StateOrigin.Swap).ok);
  assert.equal(swapped.advanceTime(200_000).map((o) => seqOf(o.bytes) - 1000), [3, 4]);
  // as a checkpoint's, they were most likely sent by the instance that failed: not again
  const restored = await loadFec({ startUs: a.nowUs });
  const rctx = restored.createContext(config);
  assert.ok(restored.importState(rctx, blob, StateOrigin.Checkpoint).ok);
  const next = restored.runBatch([8, 9].map((i) => ({ ctx: rctx, bytes: media[i]! })));
  assert.equal(next.packets.map((p) => p.verdict), ["pass", "pass"], "the stream goes on from its next packet");
  assert.equal(restored.advanceTime(200_000).map((o) => seqOf(o.bytes) - 1000), [], "3 and 4 not sent twice");
  assert.is(metric(restored, "unrecoverable", rctx), 0, "the places before the restore are no losses of its own");
  // the encoder: a checkpoint's blob is not taken (its matrix is a second old)
  const enc = await loadFec();
  const ectx = enc.createContext({ mode: "encode", columns: 4, rows: 4 });
  enc.runBatch([0, 1, 2].map((i) => ({ ctx: ectx, bytes: media[i]! })));
  const encRestored = await loadFec();
  const ertx = encRestored.createContext({ mode: "encode", columns: 4, rows: 4 });
  assert.ok(encRestored.importState(ertx, enc.exportState(ectx)!, StateOrigin.Checkpoint).ok);
  const out = encRestored.runBatch([3].map((i) => ({ ctx: ertx, bytes: media[i]! })));
  assert.is(out.outputs.length, 0, "no row repair over packets 0..2 it never saw");
});

test.run();
