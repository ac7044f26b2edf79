// The fec decoder against a perfect iterative row/column decoder: our encoder's stream, a loss
// pattern on media and FEC, and the decoder must send on every packet the model can rebuild,
// byte for byte, in sequence order, and count what it could not. Then the release policy (how
// long it waits, in which order, the output area filling up), GStreamer's row FEC that comes
// before its row's last packet, FEC legs stripped or passed, duplicates and late packets.
import * as assert from "uvu/assert";
import type { FilterHarness } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import {
  COLUMN_LEG, ROW_LEG, SHAPES, decode, drain, encode, equalBytes, indexOf, loadFec, mediaOut, mediaStream, metric, parseFec, rng,
  seqOf, unrecoverable, wire, type Decoded, type SentFec, type Shape, type WireItem,
} from "./fec-lib.js";

const test = suite("fec decoder");

interface Case {
  readonly shape: Shape & { rowFec: boolean };
  readonly seq0: number;
  readonly media: Uint8Array[];
  readonly fec: SentFec[];
}

/** A stream of `matrices` matrices and a bit, through our encoder. */
async function encoded(shape: Shape & { rowFec: boolean }, matrices: number, seq0: number): Promise<Case> {
  const h = await loadFec();
  const ctx = h.createContext({ mode: "encode", ...shape });
  const media = mediaStream(matrices * shape.columns * shape.rows + 5, seq0);
  return { shape, seq0, media, fec: encode(h, ctx, media, seq0, 16) };
}

async function decoder(c: Case, extra: Record<string, unknown> = {}): Promise<{ h: FilterHarness; ctx: number }> {
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...c.shape, maxDelayMs: 10_000, ...extra });
  return { h, ctx };
}

/**
 * Runs `c` with media indexes `lostMedia` and FEC packets `lostFec` (indexes into c.fec) dropped,
 * and checks the decoder against the model: every packet but the unrecoverable ones comes out,
 * once, byte-identical, in order; the counters agree.
 */
async function checkAgainstModel(c: Case, lostMedia: Set<number>, lostFec: Set<number> = new Set(), batch = 16, fecAhead = 0): Promise<{ rebuilt: number; gone: number }> {
  // The decoder learns the stream from its first packet, and a packet is missing once a later one came.
  assert.ok(!lostMedia.has(0) && !lostMedia.has(c.media.length - 1), "the test keeps the stream's first and last packets");
  const { h, ctx } = await decoder(c);
  const sent = wire(c.media, c.fec, (x) => (x.media !== undefined ? lostMedia.has(x.media) : lostFec.has(c.fec.indexOf(x.fec!))));
  // each FEC packet `fecAhead` places earlier: legs that race (the host reads each socket in turn)
  const items = [...sent];
  if (fecAhead > 0) {
    for (let k = 0; k < items.length; k++) {
      if (items[k]!.leg === 0) continue;
      const [f] = items.splice(k, 1);
      items.splice(Math.max(1, k - fecAhead), 0, f!);
    }
  }
  const d = decode(h, ctx, items, batch);
  const out = [...d.out, ...mediaOut(drain(h, ctx))];
  const arrived = c.fec.filter((_, k) => !lostFec.has(k)).map((s) => s.group);
  const gone = unrecoverable(c.shape, lostMedia, arrived);
  const want = c.media.map((_, i) => i).filter((i) => !gone.has(i));
  const got = out.map((b) => indexOf(seqOf(b), c.seq0));
  assert.equal(got, want, "every packet the model rebuilds, in order, once");
  out.forEach((b, k) => assert.ok(equalBytes(b, c.media[want[k]!]!), `packet ${want[k]} byte-identical`));
  const rebuilt = lostMedia.size - gone.size;
  assert.is(metric(h, "recovered", ctx), rebuilt, "recovered");
  assert.is(metric(h, "unrecoverable", ctx), gone.size, "unrecoverable");
  assert.is(metric(h, "duplicates", ctx), 0);
  assert.is(metric(h, "late", ctx), 0);
  assert.is(metric(h, "fec_received", ctx), c.fec.length - lostFec.size);
  assert.ok(d.verdicts.every((v) => v === "pass" || v === "hold"), `nothing dropped: ${[...new Set(d.verdicts)]}`);
  assert.is(h.instance.failure, undefined);
  return { rebuilt, gone: gone.size };
}

for (const shape of SHAPES) {
  const { columns: L, rows: D } = shape;
  const size = L * D;
  const label = `${L} x ${D} ${shape.rowFec ? "2-D" : "1-D"}`;

  test(`${label}: explicit patterns, rebuilt as the model says, across the sequence wrap`, async () => {
    const c = await encoded(shape, 5, 65536 - 2 * size - 3); // the wrap falls in the third matrix
    // one per row of matrix 1; a burst of L in matrix 2 (one per column); a 2 x 2 square in matrix 3
    const single = new Set(Array.from({ length: D }, (_, r) => size + r * L + ((r * 3) % L)));
    const burst = new Set(Array.from({ length: L }, (_, k) => 2 * size + 3 + k));
    const square = new Set([3 * size, 3 * size + 1, 3 * size + L, 3 * size + L + 1]);
    for (const lost of [single, burst, square, new Set([...single, ...burst, ...square])]) await checkAgainstModel(c, lost);
  });

  test(`${label}: FEC ahead of its media by 2 rows (the legs race after a stall): rebuilt as the model says`, async () => {
    const c = await encoded(shape, 5, 65536 - 2 * size - 3);
    const single = new Set(Array.from({ length: D }, (_, r) => size + r * L + ((r * 3) % L)));
    const burst = new Set(Array.from({ length: L }, (_, k) => 2 * size + 3 + k));
    const { rebuilt } = await checkAgainstModel(c, new Set([...single, ...burst]), new Set(), 16, 2 * L);
    assert.ok(rebuilt >= L, `rebuilt ${rebuilt}`);
  });

  if (shape.rowFec) {
    test(`${label}: a staircase only iterative decoding (row, column, row, ...) rebuilds`, async () => {
      const c = await encoded(shape, 4, 40000);
      // Row r misses columns r and r+1 (rows need a column first), for rows 0..3: column r+1 has
      // two losses until row r+1 is done, which needs column r+1 ... the chain runs from the last
      // row back: row 3 misses 3 and 4; column 4 misses only row 3 -> rebuilds 4 of row 3; row 3
      // then rebuilds 3; column 3 then has only row 2's -> ...
      const lost = new Set<number>();
      for (let r = 0; r < 4; r++) {
        lost.add(size + r * L + r);
        lost.add(size + r * L + r + 1);
      }
      const { rebuilt, gone } = await checkAgainstModel(c, lost);
      assert.is(gone, 0, "iteration gets them all");
      assert.is(rebuilt, 8);
    });
  }

  test(`${label}: seeded random loss of media and FEC (2%, 6%, 12%), against the model`, async () => {
    const c = await encoded(shape, 6, 65000);
    for (const [p, seed] of [[0.02, 11], [0.06, 12], [0.12, 13]] as const) {
      const next = rng(seed * 1000 + size);
      const lostMedia = new Set(c.media.map((_, i) => i).filter((i) => i > 0 && i < c.media.length - 1 && next() < p));
      const lostFec = new Set(c.fec.map((_, k) => k).filter(() => next() < p));
      await checkAgainstModel(c, lostMedia, lostFec, 1 + Math.floor(next() * 40));
    }
  });
}

test("GStreamer's order: a row's FEC before the row's last packet rebuilds nothing when that packet comes, and rebuilds it when it does not", async () => {
  const shape = { columns: 4, rows: 4, rowFec: true };
  const c = await encoded(shape, 3, 7);
  // Move each row FEC in front of its row's last media packet.
  const items: WireItem[] = [];
  const rowFecOf = new Map(c.fec.filter((s) => s.group.row).map((s) => [s.group.base + 3, s]));
  const columns = c.fec.filter((s) => !s.group.row);
  let col = 0;
  const lost = new Set([21]); // index 21: row 5's second packet... and 27, a row's last
  lost.add(27);
  for (let i = 0; i < c.media.length; i++) {
    const row = rowFecOf.get(i);
    if (row) items.push({ bytes: row.bytes, leg: row.leg });
    if (!lost.has(i)) items.push({ bytes: c.media[i]!, leg: 0 });
    while (col < columns.length && columns[col]!.after === i) items.push({ bytes: columns[col]!.bytes, leg: columns[col++]!.leg });
  }
  const { h, ctx } = await decoder(c);
  const d = decode(h, ctx, items, 5);
  const out = [...d.out, ...mediaOut(drain(h, ctx))];
  assert.equal(out.map((b) => indexOf(seqOf(b), c.seq0)), c.media.map((_, i) => i), "all, in order, no duplicate");
  assert.is(metric(h, "recovered", ctx), 2);
  assert.is(metric(h, "duplicates", ctx), 0);
});

test("the release policy: in place while nothing is missing; behind a loss, held until rebuilt; given up after maxDelayMs, not before", async () => {
  const shape = { columns: 4, rows: 4, rowFec: false };
  const c = await encoded(shape, 3, 100);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 50 });
  const run = (i: number): { verdict: string; out: number[] } => {
    const r = h.runBatch([{ ctx, bytes: c.media[i]!, leg: 0 }]);
    return { verdict: r.packets[0]!.verdict, out: mediaOut(r.outputs).map((b) => indexOf(seqOf(b), 100)) };
  };
  assert.equal(run(0), { verdict: "pass", out: [] }, "in order: passed in place");
  assert.equal(run(1), { verdict: "pass", out: [] });
  // 2 and 6 are lost: column 2 of matrix 0 misses two, so neither can be rebuilt
  assert.equal(run(3), { verdict: "hold", out: [] }, "3 waits for 2");
  h.advanceTime(20_000);
  assert.equal(run(4), { verdict: "hold", out: [] });
  assert.equal(run(5), { verdict: "hold", out: [] });
  assert.equal(run(7), { verdict: "hold", out: [] });
  assert.equal(h.advanceTime(29_000), [], "49 ms after 2 went missing: still waiting");
  assert.is(metric(h, "unrecoverable", ctx), 0);
  const released = mediaOut(h.advanceTime(1_000)).map((b) => indexOf(seqOf(b), 100));
  assert.equal(released, [3, 4, 5], "at 50 ms 2 is given up; 6 went missing 20 ms later, so 7 still waits");
  assert.is(metric(h, "unrecoverable", ctx), 1);
  assert.equal(mediaOut(h.advanceTime(20_000)).map((b) => indexOf(seqOf(b), 100)), [7], "and 6 at its own 50 ms");
  assert.is(metric(h, "unrecoverable", ctx), 2);
  assert.equal(h.timers(), [], "nothing left waiting");
  // A late arrival of 2 now passes on (out of order), counted late; a second copy is a duplicate.
  assert.equal(run(2), { verdict: "pass", out: [] });
  assert.is(metric(h, "late", ctx), 1);
  const dup = h.runBatch([{ ctx, bytes: c.media[2]!, leg: 0 }]);
  assert.is(dup.packets[0]!.reasonName, "duplicate", "duplicate");
  assert.equal(h.instance.ownReasons.slice(0, 4), [
    { label: "duplicate", discard: true }, { label: "fec_malformed", discard: false }, { label: "fec_shape", discard: false }, { label: "fec_out_of_window", discard: false },
  ], "as /metrics and msmctl name them: a duplicate is the decoder's work, not a drop");
  assert.is(metric(h, "duplicates", ctx), 1);
  assert.equal(run(8), { verdict: "pass", out: [] }, "in order again: in place");
});

test("a stall past maxDelayMs: the backlog is judged by when its packets arrived, so a repair that came in time rebuilds its packet, in order", async () => {
  const shape = { columns: 4, rows: 4, rowFec: false };
  const c = await encoded(shape, 2, 300);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 50 });
  const t0 = h.nowUs;
  h.runBatch([0, 1, 3].map((i) => ({ ctx, bytes: c.media[i]!, leg: 0 }))); // 2 missing from t0
  h.stall(80_000); // the host stops: the wait for 2 ends at t0 + 50 ms, unseen
  // then reads what waited in the kernel, in arrival order (the column repair of 2 came with the
  // matrix's last packet, 15), before the late timer
  const repair = c.fec.find((f) => !f.group.row && f.group.base === 2)!;
  const backlog = h.runBatch([
    ...Array.from({ length: 12 }, (_, k) => ({ ctx, bytes: c.media[4 + k]!, leg: 0, arrivalUs: t0 + 1000 * (k + 1) })),
    { ctx, bytes: repair.bytes, leg: repair.leg, arrivalUs: t0 + 20_000 },
  ]);
  const out = mediaOut(backlog.outputs).map((b) => indexOf(seqOf(b), 300));
  assert.equal(out, Array.from({ length: 14 }, (_, k) => 2 + k), "2 rebuilt, then 3 to 15 in order");
  assert.is(metric(h, "unrecoverable", ctx), 0);
  assert.is(metric(h, "late", ctx), 0);
  assert.equal(mediaOut(h.advanceTime(0)), [], "nothing left for the late timer");
});

test("a repair that comes after its packet was given up sends the packet on at once, out of order (late), never dropped", async () => {
  const shape = { columns: 4, rows: 4, rowFec: true };
  const c = await encoded(shape, 3, 200);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 50 });
  // packet 5 lost; its row's FEC (base 4) held back until after 5 is given up
  const isRow1 = (f: { group: { row: boolean; base: number } }): boolean => f.group.row && f.group.base === 4;
  const rowFec = c.fec.find(isRow1)!;
  const items = wire(c.media.slice(0, 12), c.fec.filter((f) => f.after < 12), (x) => x.media === 5 || (x.fec !== undefined && isRow1(x.fec)));
  const first = decode(h, ctx, items, 4, 0);
  const given = mediaOut(h.advanceTime(60_000));
  assert.is(metric(h, "unrecoverable", ctx), 1, "5 given up");
  assert.ok(![...first.out, ...given].some((b) => indexOf(seqOf(b), 200) === 5));
  const late = h.runBatch([{ ctx, bytes: rowFec.bytes, leg: rowFec.leg }]);
  const sent = mediaOut(late.outputs);
  assert.equal(sent.map((b) => indexOf(seqOf(b), 200)), [5], "the late repair sends 5 on at once");
  assert.ok(equalBytes(sent[0]!, c.media[5]!), "byte for byte");
  assert.is(metric(h, "late", ctx), 1);
  const original = h.runBatch([{ ctx, bytes: c.media[5]!, leg: 0 }]);
  assert.is(original.packets[0]!.reasonName, "duplicate", "the original after it is the duplicate");
});

test("a repair that unblocks more packets than the output area holds (64): the rest follow from a timer, in order", async () => {
  const shape = { columns: 10, rows: 10, rowFec: false };
  const c = await encoded(shape, 3, 60000);
  // packet 1 lost: its column FEC comes with packet 110, so 108 packets wait behind it
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 10_000 });
  const items = wire(c.media, c.fec, (x) => x.media === 1);
  const d = decode(h, ctx, items, 64);
  assert.is(d.largestCall, 64, "one call filled the output area");
  const out = [...d.out, ...mediaOut(drain(h, ctx))];
  assert.equal(out.map((b) => indexOf(seqOf(b), 60000)), c.media.map((_, i) => i));
  assert.is(metric(h, "recovered", ctx), 1);
});

test("a jump that needs more held packets out than the output area takes: the new packets pass unkept, nothing is lost or sent twice", async () => {
  const shape = { columns: 10, rows: 10, rowFec: false }; // a ring of 256
  const media = mediaStream(400, 0);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 10_000 });
  const send = (idx: number[]): Decoded => decode(h, ctx, idx.map((i) => ({ bytes: media[i]!, leg: 0 })), 64, 0);
  const first = send([0, ...Array.from({ length: 150 }, (_, k) => k + 2)]); // 1 lost: 2..151 wait
  assert.equal(first.out.map((b) => seqOf(b)), [0]);
  // 350 needs the place of 94: 2..94 must go first, more than one call's 64 outputs
  const jump = send(Array.from({ length: 10 }, (_, k) => 350 + k));
  const later = send(Array.from({ length: 40 }, (_, k) => 360 + k));
  const tail = mediaOut(h.advanceTime(10_000_000));
  const out = [...first.out, ...jump.out, ...later.out, ...tail, ...mediaOut(drain(h, ctx))].map((b) => seqOf(b));
  const want = [0, ...Array.from({ length: 150 }, (_, k) => k + 2), ...Array.from({ length: 50 }, (_, k) => 350 + k)];
  assert.equal([...out].sort((a, b) => a - b), want, "every packet that came, once");
  const unkept = metric(h, "passed_unkept", ctx);
  assert.ok(unkept > 0 && unkept <= 10, `some of the jump's packets passed unkept (${unkept})`);
  const inOrder = out.filter((x, k) => k === 0 || x > out[k - 1]!);
  assert.ok(out.length - inOrder.length <= unkept, "only those out of order");
  assert.is(metric(h, "unrecoverable", ctx), 1 + 198, "1 and 152..349");
  assert.is(h.instance.failure, undefined);
});

test("drain: what is held goes out in order, what is missing is given up", async () => {
  const shape = { columns: 4, rows: 4, rowFec: true };
  const c = await encoded(shape, 2, 0);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape });
  const r = h.runBatch([0, 1, 3, 5, 6].map((i) => ({ ctx, bytes: c.media[i]!, leg: 0 }))); // 2 and 4 missing
  assert.equal(r.packets.map((p) => p.verdict), ["pass", "pass", "hold", "hold", "hold"]);
  const out = drain(h, ctx);
  assert.equal(out.map((o) => seqOf(o.bytes)), [3, 5, 6]);
  assert.is(metric(h, "unrecoverable", ctx), 2);
  assert.equal(drain(h, ctx), [], "nothing more");
});

function fecLegsRun(fecLegs: "strip" | "pass"): Promise<{ h: FilterHarness; ctx: number; d: Decoded; items: WireItem[] }> {
  return (async () => {
    const shape = { columns: 4, rows: 4, rowFec: true };
    const c = await encoded(shape, 2, 10);
    const h = await loadFec();
    const ctx = h.createContext({ mode: "decode", ...shape, fecLegs });
    const items = wire(c.media, c.fec, (x) => x.media === 5);
    return { h, ctx, d: decode(h, ctx, items, 8), items };
  })();
}

test("fecLegs: 'strip' takes the FEC packets (held, not dropped), 'pass' lets them go on, on their legs", async () => {
  const strip = await fecLegsRun("strip");
  const pass = await fecLegsRun("pass");
  const fecVerdicts = (run: { d: Decoded; items: WireItem[] }): string[] => run.items.map((it, k) => [it.leg, run.d.verdicts[k]!] as const).filter(([leg]) => leg !== 0).map(([, v]) => v);
  assert.ok(fecVerdicts(strip).every((v) => v === "hold"), "strip: held");
  assert.ok(fecVerdicts(pass).every((v) => v === "pass"), "pass: passed");
  assert.ok(strip.items.some((it) => it.leg === COLUMN_LEG) && strip.items.some((it) => it.leg === ROW_LEG));
  for (const run of [strip, pass]) {
    drain(run.h, run.ctx); // a rebuilt packet counts once its place goes
    assert.is(metric(run.h, "recovered", run.ctx), 1);
  }
});

test("a FEC packet twice is a duplicate; FEC on a leg the config does not name, RTCP and upstream packets pass", async () => {
  const shape = { columns: 4, rows: 4, rowFec: true };
  const c = await encoded(shape, 2, 10);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape });
  const row1 = c.fec.find((s) => s.group.row && s.group.base === 4)!;
  const r = h.runBatch([
    ...[0, 1, 2, 3, 4, 6].map((i) => ({ ctx, bytes: c.media[i]!, leg: 0 })), // 5 lost, 7 not yet
    { ctx, bytes: row1.bytes, leg: ROW_LEG },
    { ctx, bytes: row1.bytes, leg: COLUMN_LEG },
    { ctx, bytes: row1.bytes, leg: 5 },
    { ctx, bytes: c.media[8]!, leg: 0, flags: 1 },
    { ctx, bytes: c.media[8]!, leg: 0, flags: 2 },
  ]);
  assert.equal(r.packets.slice(6).map((p) => (p.verdict === "drop" ? p.reasonName : p.verdict)), ["hold", "duplicate", "pass", "pass", "pass"]);
  assert.is(metric(h, "duplicates", ctx), 1);
  assert.is(metric(h, "fec_received", ctx), 2);
  assert.is(metric(h, "recovered", ctx), 0, "7 may still come: the row waits for it");
  const then = h.runBatch([{ ctx, bytes: c.media[7]!, leg: 0 }]);
  assert.equal(mediaOut(then.outputs).map((b) => seqOf(b)), [15, 16, 17], "5 rebuilt, then 6 and 7");
  drain(h, ctx);
  assert.is(metric(h, "recovered", ctx), 1, "counted once its place goes (here at drain)");
});

test("the stream jumps far ahead: what is held goes out, the decoder starts again at the jump", async () => {
  const shape = { columns: 4, rows: 4, rowFec: true };
  const a = await encoded(shape, 2, 100);
  const b = await encoded(shape, 2, 30000);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape });
  // 33 and 34 (one row of the last matrix, whose columns never come) wait until the jump
  const first = decode(h, ctx, wire(a.media, a.fec, (x) => x.media === 33 || x.media === 34), 8);
  const second = decode(h, ctx, wire(b.media, b.fec, (x) => x.media === 5), 8);
  const out = [...first.out, ...second.out, ...mediaOut(drain(h, ctx))].map((x) => seqOf(x));
  const want = [...a.media.map((_, i) => 100 + i).filter((s) => s !== 133 && s !== 134), ...b.media.map((_, i) => 30000 + i)];
  assert.equal(out, want);
  assert.is(metric(h, "resyncs", ctx), 1);
  assert.is(metric(h, "unrecoverable", ctx), 2);
  assert.is(metric(h, "recovered", ctx), 1, "the new stream's loss is rebuilt");
});

test("a sender restart lower down is one resync, no late packet; one packet from far behind is late", async () => {
  // regression: the restarted stream's first packet counted as late at every restart
  const shape = { columns: 10, rows: 10, rowFec: true };
  const enc = await loadFec();
  const ectx = enc.createContext({ mode: "encode", ...shape });
  const a = mediaStream(400, 30000); // 4 whole matrices: the last one's columns wait for a next
  const b = mediaStream(450, 100); // the sender restarts far below
  const wireOf = (media: Uint8Array[], seq0: number): WireItem[] => wire(media, encode(enc, ectx, media, seq0, 1), () => false);
  const items = [...wireOf(a, 30000), ...wireOf(b, 100)];
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape });
  const d = decode(h, ctx, items, 4);
  const out = [...d.out, ...mediaOut(drain(h, ctx))].map((x) => seqOf(x));
  assert.equal(out, [...a, ...b].map((x) => seqOf(x)), "both streams, in order");
  assert.is(metric(h, "resyncs", ctx), 1);
  assert.is(metric(h, "late", ctx), 0, "the new stream's first packet is no late packet");
  assert.is(metric(h, "unrecoverable", ctx), 0);
  // the old stream's last columns, sent as the new one began, come after the decoder moved on
  // FEC for groups the decoder does not hold: the old stream's last matrix's columns (the encoder
  // sends them during its next matrix, here the new stream's first) and the new stream's first
  // row and column (their first packet passed before the second confirmed the restart)
  const outside = metric(h, "fec_out_of_window", ctx);
  assert.ok(outside > 0 && outside <= shape.columns + 2, `README: a restart adds up to L + 2 to fec_out_of_window (${outside})`);
  // one very late packet of the new stream, then the stream goes on: that one is late
  h.runBatch([{ ctx, bytes: b[5]!, leg: 0 }]);
  h.runBatch([{ ctx, bytes: mediaStream(451, 100)[450]!, leg: 0 }]);
  assert.is(metric(h, "late", ctx), 1);
  assert.is(metric(h, "resyncs", ctx), 1);
});

test("FEC of another matrix shape (a 10 x 10 encoder into a 5 x 20 decoder) is dropped, and said once per segment naming both shapes", async () => {
  // regression: every FEC packet was dropped as fec_shape with no log line, and no loss repaired
  const enc = await loadFec();
  const seq0 = 500;
  const media = mediaStream(305, seq0);
  const fec = encode(enc, enc.createContext({ mode: "encode", columns: 10, rows: 10, rowFec: true }), media, seq0, 1);
  const h = await loadFec();
  const other = h.createContext({ mode: "decode", columns: 5, rows: 20, rowFec: true });
  const same = h.createContext({ mode: "decode", columns: 10, rows: 10, rowFec: true });
  const items = wire(media, fec, (x) => x.media === 42);
  decode(h, other, items, 8);
  decode(h, same, items, 8);
  assert.is(metric(h, "fec_shape", other), fec.length, "every FEC packet dropped as fec_shape");
  const lines = h.logs.map((l) => l.message).filter((m) => m.includes("another matrix shape"));
  assert.is(lines.length, 1, `once, not per packet: ${JSON.stringify(lines)}`);
  assert.match(lines[0]!, /a row FEC with Offset 1 and NA 10 \(a row of L = 10\), this decoder is configured for L x D = 5 x 20/);
  const second = await loadFec();
  const colOnly = second.createContext({ mode: "decode", columns: 5, rows: 20, rowFec: true });
  decode(second, colOnly, items.filter((it) => it.leg === 0 || parseFec(it.bytes).d === 0), 8); // column FEC only
  assert.ok(second.logs.some((l) => /a column FEC with Offset 10 and NA 10 \(L x D = 10 x 10\)/.test(l.message)), "a column FEC names L and D");
  assert.is(metric(h, "fec_shape", same), 0);
});

test("reordering without loss is no recovery: a packet rebuilt before its original came counts as a duplicate, not as recovered", async () => {
  // regression: a relay reordering packets by 3 made the row FEC rebuild each reordered packet,
  // counted recovered, and its original then counted duplicate: recovered + unrecoverable
  // overstated the loss the FEC was offered
  const shape = { columns: 10, rows: 10, rowFec: true };
  const enc = await loadFec();
  const media = mediaStream(1205, 65000);
  const c = { seq0: 65000, media, fec: encode(enc, enc.createContext({ mode: "encode", ...shape }), media, 65000, 1) }; // each FEC right after its packet
  const lost = new Set([57, 333, 712]);
  const items = wire(c.media, c.fec, (x) => x.media !== undefined && lost.has(x.media));
  // every 20th media packet 3 places later (behind the FEC of its row)
  const reordered = items.slice();
  let moved = 0;
  for (let k = 0; k + 3 < reordered.length; k++) {
    const it = reordered[k]!;
    if (it.leg !== 0 || indexOf(seqOf(it.bytes), c.seq0) % 20 !== 9) continue;
    reordered.splice(k, 1);
    reordered.splice(k + 3, 0, it);
    k += 3;
    moved++;
  }
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 5000 });
  const d = decode(h, ctx, reordered.slice(0, -40), 4);
  // the stream stops: what was rebuilt counts once its original is maxDelayMs overdue
  const out = [...d.out, ...mediaOut(h.advanceTime(5_000_000))].map((b) => indexOf(seqOf(b), c.seq0));
  assert.equal(out, c.media.slice(0, out.length).map((_, i) => i), "every packet, in order, once");
  assert.ok(out.length > 1150);
  assert.ok(moved > 50 && metric(h, "duplicates", ctx) > 10, `reordered packets were rebuilt first (${metric(h, "duplicates", ctx)} of ${moved})`);
  assert.is(metric(h, "recovered", ctx), lost.size, "recovered: the lost packets only, counted without a drain");
  assert.is(metric(h, "unrecoverable", ctx), 0);
});

test("an SSRC change mid-matrix with the sequence going on (a switch upstream): a rebuilt packet carries its neighbours' SSRC, not its group's last packet's", async () => {
  // regression: the rebuild took the SSRC of the group's last other packet, so a packet from
  // before the change whose column ran past it came back with the new SSRC
  for (const shape of [{ columns: 4, rows: 4, rowFec: false }, { columns: 4, rows: 4, rowFec: true }]) {
    const seq0 = 65530; // and across the wrap
    const media = mediaStream(16 * 4 + 5, seq0);
    const NEW = [0xab, 0xcd, 0x00, 0x01];
    for (let i = 22; i < media.length; i++) media[i]!.set(NEW, 8);
    const enc = await loadFec();
    const fec = encode(enc, enc.createContext({ mode: "encode", ...shape }), media, seq0, 16);
    // packets of the old SSRC whose groups end in the new one: 18 (column 18, 22, 26, 30; row
    // 16-19 whole), 21 (column 17, 21, 25, 29; row 20-23)
    const lost = new Set([18, 21]);
    const h = await loadFec();
    const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 10_000 });
    const d = decode(h, ctx, wire(media, fec, (x) => x.media !== undefined && lost.has(x.media)), 16);
    const out = [...d.out, ...mediaOut(drain(h, ctx))];
    assert.equal(out.map((b) => indexOf(seqOf(b), seq0)), media.map((_, i) => i), `${shape.rowFec ? "2-D" : "1-D"}: every packet, in order`);
    for (const i of lost) assert.ok(equalBytes(out[i]!, media[i]!), `${shape.rowFec ? "2-D" : "1-D"}: packet ${i} rebuilt byte for byte (SSRC ${Buffer.from(out[i]!.subarray(8, 12)).toString("hex")})`);
  }
});

test("FEC sent to the media port (leg 0) by mistake: used as repair, never sent on as media, and said once", async () => {
  // regression: FEC packets on leg 0 were taken for media of another sequence space: each went
  // on to the receiver as a media packet (SSRC 0, payload type 96), the stream resynced on them
  // again and again, and nothing was rebuilt
  for (const [shape, seq0] of [[{ columns: 10, rows: 10, rowFec: true }, 30_000], [{ columns: 5, rows: 10, rowFec: false }, 65_400]] as const) {
    const label = `${shape.rowFec ? "2-D" : "1-D"} ${shape.columns}x${shape.rows}`;
    const enc = await loadFec();
    const media = mediaStream(shape.columns * shape.rows * 6 + 5, seq0);
    const fec = encode(enc, enc.createContext({ mode: "encode", ...shape }), media, seq0, 16);
    const lost = new Set([50, 120, 233]);
    const items = wire(media, fec, (x) => x.media !== undefined && lost.has(x.media)).map((it) => ({ bytes: it.bytes, leg: 0 }));
    const h = await loadFec();
    const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 10_000 });
    const d = decode(h, ctx, items, 16);
    const out = [...d.out, ...mediaOut(drain(h, ctx))];
    assert.equal(out.map((b) => indexOf(seqOf(b), seq0)), media.map((_, i) => i), `${label}: every media packet, in order, once; no FEC among them`);
    for (const i of lost) assert.ok(equalBytes(out[i]!, media[i]!), `${label}: packet ${i} rebuilt`);
    assert.is(metric(h, "recovered", ctx), lost.size, `${label}: recovered`);
    assert.is(metric(h, "resyncs", ctx), 0, `${label}: no resync`);
    assert.is(metric(h, "fec_on_media_leg", ctx), fec.length, `${label}: counted`);
    assert.is(metric(h, "media_received", ctx), media.length - lost.size, `${label}: media counted as media only`);
    const lines = h.logs.map((l) => l.message).filter((m) => m.includes("media leg"));
    assert.is(lines.length, 1, `${label}: said once: ${JSON.stringify(lines)}`);
  }
});

test("no FEC heard over a ring's worth of media (the FEC legs blocked): a loss is given up at once, not held for maxDelayMs, and said once; waiting starts again with the next FEC", async () => {
  // regression: with no FEC arriving at all, every loss held everything behind it for maxDelayMs
  // (or until the ring needed the place) and then sent it on in one burst
  const shape = { columns: 4, rows: 4, rowFec: false }; // a ring of 128 places
  const seq0 = 700;
  const media = mediaStream(800, seq0);
  const enc = await loadFec();
  const fec = encode(enc, enc.createContext({ mode: "encode", ...shape }), media, seq0, 1);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 10_000 });
  // media 20, 400 and 700 lost; the FEC legs carry nothing until media 600
  const lost = new Set([20, 400, 700]);
  const items = wire(media, fec, (x) => (x.media !== undefined ? lost.has(x.media) : x.fec!.after < 600));
  const d = decode(h, ctx, items, 1);
  const verdictOf = (i: number): string => d.verdicts[items.findIndex((it) => it.leg === 0 && indexOf(seqOf(it.bytes), seq0) === i)]!;
  assert.is(verdictOf(21), "hold", "the first loss, before a ring's worth of media without FEC: waited for");
  assert.is(verdictOf(401), "pass", "a loss after 128 media packets with no FEC: given up at once, the next packet passes in place");
  assert.is(metric(h, "released_without_fec", ctx), 2, "both given up without their wait's end: 400 at once, 20 once 128 media had come without FEC (its hold ended there, not at 10 s)");
  assert.is(verdictOf(300), "pass", "and in between, with nothing missing, in place");
  assert.is(verdictOf(701), "hold", "FEC came again from media 600 on: a loss is waited for");
  const out = [...d.out, ...mediaOut(drain(h, ctx))].map((b) => indexOf(seqOf(b), seq0));
  assert.equal(out, media.map((_, i) => i).filter((i) => i !== 20 && i !== 400), "in order; 700 rebuilt by the FEC that came back");
  assert.is(metric(h, "unrecoverable", ctx), 2);
  assert.is(metric(h, "recovered", ctx), 1);
  const lines = h.logs.map((l) => l.message).filter((m) => m.includes("no FEC heard"));
  assert.is(lines.length, 1, `said once: ${JSON.stringify(lines)}`);
  assert.match(lines[0]!, /no FEC heard over the last 128 media packets: losses are given up at once.*port \+ 2 for columns, \+ 4 for rows/);
});

test.run();
