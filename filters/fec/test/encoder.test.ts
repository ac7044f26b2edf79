// The fec encoder: ST 2022-1 FEC packets byte for byte (a hand-computed case), every packet of a
// longer stream against a reference XOR, GStreamer's schedule (row FEC when the row completes,
// column c of a matrix with packet c x D of the next), 1-D and 2-D, across the sequence wrap,
// and what it does with a stream that skips or jumps. Through the harness, checked build.
import * as assert from "uvu/assert";
import { buildRtp } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import {
  COLUMN_LEG, ROW_LEG, SHAPES, encode, equalBytes, indexOf, loadFec, mediaStream, members, metric, parseFec, referenceFec,
  type SentFec, type Shape,
} from "./fec-lib.js";

const test = suite("fec encoder");

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex").replace(/(.{8})/g, "$1 ").trim();

/**
 * Packet k (0..16) of the hand-computed case: seq 100 + k, timestamp 0x1000 x (k+1), PT 96 (97
 * for k = 2), marker on k = 3 and 12, payload length (k mod 4) + 1 + (k div 4), payload byte j =
 * (k << 4) | j.
 */
function handPacket(k: number): Uint8Array {
  const length = (k % 4) + 1 + (k >> 2);
  const b = buildRtp({ seq: 100 + k, timestamp: 0x1000 * (k + 1), ssrc: 0x01020304, payloadType: k === 2 ? 97 : 96, marker: k === 3 || k === 12, payloadSize: length });
  for (let j = 0; j < length; j++) b[12 + j] = ((k << 4) | j) & 0xff;
  return b;
}

// Row 0 = packets 0-3, payloads 00 | 10 11 | 20 21 22 | 30 31 32 33:
//   XOR 00 01 10 33; length recovery 1^2^3^4 = 4; PT 96^96^97^96 = 1; TS 0x1000^0x2000^0x3000^0x4000
//   = 0x4000; marker 0^0^0^1 = 1. Sent when the row completes, RTP timestamp that of packet 3.
const ROW_0 =
  "80e00000 00004000 00000000" + // V=2, M=1 PT=96, seq 0 | TS 0x4000 | SSRC 0
  " 00640004 81000000 00004000" + // SNBase 100, length recovery 4 | E=1 PT recovery 1, mask 0 | TS recovery
  " 40010400" + // N=0 D=1 type 0 index 0, offset 1, NA = L = 4, SNBase ext 0
  " 000110 33";
// Column 0 = packets 0, 4, 8, 12, payloads 00 | 40 41 | 80 81 82 | c0 c1 c2 c3:
//   XOR 00 01 40 c3; length recovery 1^2^3^4 = 4; PT 0; TS 0x1000^0x5000^0x9000^0xd000 = 0;
//   marker 1 (packet 12). Sent with packet 16 (column 0 of the next matrix), its timestamp 0x11000.
const COLUMN_0 =
  "80e00000 00011000 00000000" +
  " 00640004 80000000 00000000" +
  " 00040400" + // N=0 D=0, offset = L = 4, NA = D = 4
  " 000140c3";
const norm = (s: string): string => s.replace(/ /g, "");

test("4 x 4 2-D: the first row and column FEC packets, byte for byte (hand-computed)", async () => {
  const h = await loadFec();
  const ctx = h.createContext({ mode: "encode", columns: 4, rows: 4 });
  const first = h.runBatch([0, 1, 2, 3].map((k) => ({ ctx, bytes: handPacket(k) })));
  assert.equal(first.packets.map((p) => p.verdict), ["pass", "pass", "pass", "pass"], "media passes in place");
  assert.is(first.outputs.length, 1, "row 0 complete: one row FEC");
  const row = first.outputs[0]!;
  assert.is(hex(row.bytes).replace(/ /g, ""), norm(ROW_0));
  assert.is(row.leg, ROW_LEG, "row FEC on the row leg");
  assert.is(row.dest, 0, "forward");
  assert.is(row.flags, 0);

  const rest = h.runBatch([4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15].map((k) => ({ ctx, bytes: handPacket(k) })));
  assert.is(rest.outputs.length, 3, "rows 1-3, no column before the next matrix");
  assert.ok(rest.outputs.every((o) => o.leg === ROW_LEG));
  const next = h.runBatch([{ ctx, bytes: handPacket(16) }]);
  assert.is(next.outputs.length, 1, "column 0 goes out with the next matrix's first packet");
  assert.is(hex(next.outputs[0]!.bytes).replace(/ /g, ""), norm(COLUMN_0));
  assert.is(next.outputs[0]!.leg, COLUMN_LEG);
  assert.is(metric(h, "fec_row_sent", ctx), 4);
  assert.is(metric(h, "fec_column_sent", ctx), 1);
  assert.is(metric(h, "media_protected", ctx), 17);
});

test("4 x 4 1-D (rowFec false): no row FEC, the same column packet", async () => {
  const h = await loadFec();
  const ctx = h.createContext({ mode: "encode", columns: 4, rows: 4, rowFec: false, columnLeg: 3 });
  const r = h.runBatch(Array.from({ length: 17 }, (_, k) => ({ ctx, bytes: handPacket(k) })));
  assert.is(r.outputs.length, 1);
  assert.is(hex(r.outputs[0]!.bytes).replace(/ /g, ""), norm(COLUMN_0));
  assert.is(r.outputs[0]!.leg, 3, "on the configured column leg");
});

/** Checks every FEC packet of a stream against the reference, and the schedule. */
function checkStream(shape: Shape & { rowFec: boolean }, media: readonly Uint8Array[], sent: readonly SentFec[]): void {
  const { columns: L, rows: D } = shape;
  const size = L * D;
  const matrices = Math.floor(media.length / size);
  const rowSeqs: number[] = [];
  const colSeqs: number[] = [];
  for (const s of sent) {
    const f = parseFec(s.bytes);
    const ms = members(shape, s.group).map((i) => media[i]!);
    const ref = referenceFec(ms);
    const what = `${f.d ? "row" : "column"} FEC at SNBase ${f.snBase}`;
    assert.equal([f.e, f.mask, f.n, f.type, f.index, f.snBaseExt], [1, 0, 0, 0, 0, 0], `${what}: E 1, mask, N, type, index, ext 0`);
    assert.equal([f.offset, f.na], f.d ? [1, L] : [L, D], `${what}: offset and NA`);
    assert.is(s.leg, f.d ? ROW_LEG : COLUMN_LEG, `${what}: leg`);
    assert.equal([f.ssrc, f.payloadType], [0, 96], `${what}: SSRC 0, PT 96`);
    assert.equal([f.lengthRecovery, f.ptRecovery, f.tsRecovery, f.marker], [ref.lengthRecovery, ref.ptRecovery, ref.tsRecovery, ref.marker], `${what}: recovery fields`);
    assert.ok(equalBytes(f.payload, ref.payload), `${what}: payload is the XOR of the group's, as long as the longest`);
    const base = s.group.base;
    const matrix = Math.floor(base / size);
    if (f.d) {
      rowSeqs.push(f.seq);
      assert.is(s.after >= base + L - 1 && s.after < base + L - 1 + 16, true, `${what}: sent in the batch that completed the row`);
      assert.is(f.timestamp, new DataView(media[base + L - 1]!.buffer).getUint32(4), `${what}: RTP timestamp of the row's last packet`);
    } else {
      colSeqs.push(f.seq);
      const c = base - matrix * size;
      const with_ = (matrix + 1) * size + c * D; // GStreamer's schedule
      assert.ok(s.after >= with_ && s.after < with_ + 16, `${what}: sent with packet ${with_} (batch ending ${s.after})`);
      assert.is(f.timestamp, new DataView(media[with_]!.buffer).getUint32(4), `${what}: RTP timestamp of the packet it goes with`);
    }
  }
  // Every complete matrix: D rows (2-D) at once; its L columns once the next matrix has gone far enough.
  const rows = sent.filter((s) => s.group.row).map((s) => s.group.base);
  const cols = sent.filter((s) => !s.group.row).map((s) => s.group.base);
  const wantRows = shape.rowFec ? Array.from({ length: matrices * D + Math.floor((media.length - matrices * size) / L) }, (_, r) => r * L) : [];
  assert.equal(rows, wantRows, "a row FEC for every complete row, in order");
  const wantCols: number[] = [];
  for (let m = 0; m < matrices; m++) for (let c = 0; c < L; c++) if ((m + 1) * size + c * D < media.length) wantCols.push(m * size + c);
  assert.equal(cols, wantCols, "a column FEC for every column whose turn came, in order");
  assert.equal(rowSeqs, rowSeqs.map((_, k) => k), "row FEC sequence numbers count from 0");
  assert.equal(colSeqs, colSeqs.map((_, k) => k), "column FEC sequence numbers count from 0, apart from the rows'");
}

for (const shape of SHAPES) {
  test(`${shape.columns} x ${shape.rows} ${shape.rowFec ? "2-D" : "1-D"}: every FEC packet against the reference XOR, on GStreamer's schedule, across the sequence wrap`, async () => {
    const h = await loadFec();
    const ctx = h.createContext({ mode: "encode", ...shape });
    const seq0 = 65536 - 3 * shape.columns * shape.rows - 7; // the wrap falls inside the third matrix
    const media = mediaStream(5 * shape.columns * shape.rows + 9, seq0);
    const sent = encode(h, ctx, media, seq0, 13);
    checkStream(shape, media, sent);
    assert.is(metric(h, "media_protected", ctx), media.length);
    assert.is(metric(h, "fec_not_sent", ctx), 0);
  });
}

test("skipped sequence numbers: their rows and columns get no FEC (a decoder would rebuild a packet that never was); the rest does", async () => {
  const h = await loadFec();
  const shape = { columns: 4, rows: 4, rowFec: true };
  const ctx = h.createContext({ mode: "encode", ...shape });
  const seq0 = 500;
  const media = mediaStream(64, seq0);
  const skipped = new Set([5, 22]); // row 1 / column 1 of matrix 0; row 1 / column 2 of matrix 1
  const sent = encode(h, ctx, media.filter((_, i) => !skipped.has(i)), seq0, 8);
  const groups = sent.map((s) => s.group);
  for (const g of groups) {
    assert.ok(members(shape, g).every((i) => !skipped.has(i)), `no FEC for a group with a skipped packet (${g.row ? "row" : "column"} ${g.base})`);
    const f = parseFec(sent.find((s) => s.group === g)!.bytes);
    assert.ok(equalBytes(f.payload, referenceFec(members(shape, g).map((i) => media[i]!)).payload));
  }
  assert.ok(groups.some((g) => g.row && g.base === 0) && groups.some((g) => g.row && g.base === 8), "rows 0 and 2 still get theirs");
  assert.ok(!groups.some((g) => g.row && g.base === 4), "row 1 does not");
  assert.ok(groups.some((g) => !g.row && g.base === 0) && !groups.some((g) => !g.row && g.base === 1), "column 0 yes, column 1 no");
  void indexOf;
});

test("a jump of more than a matrix starts a new matrix there; a packet from behind passes unprotected", async () => {
  const h = await loadFec();
  const shape = { columns: 4, rows: 4, rowFec: true };
  const ctx = h.createContext({ mode: "encode", ...shape });
  const a = mediaStream(20, 100); // matrix at 100, 4 packets into the next
  encode(h, ctx, a, 100);
  const late = h.runBatch([{ ctx, bytes: a[3]! }]);
  assert.equal(late.packets.map((p) => p.verdict), ["pass"]);
  assert.is(late.outputs.length, 0);
  assert.is(metric(h, "media_unprotected", ctx), 1);
  const b = mediaStream(40, 9000);
  const sent = encode(h, ctx, b, 9000, 40);
  const rowBases = sent.filter((s) => s.group.row).map((s) => parseFec(s.bytes).snBase);
  assert.equal(rowBases.slice(0, 3), [9000, 9004, 9008], "rows of the new matrix start at the jump");
  const matrix0Columns = sent.filter((s) => !s.group.row).map((s) => parseFec(s.bytes).snBase);
  assert.equal(matrix0Columns.slice(0, 3), [101, 102, 103], "the previous matrix's columns still waiting go out at once (column 0 went with packet 16)");
  assert.ok(matrix0Columns.includes(9000), "and the new matrix's in turn");
});

test("drain sends the previous matrix's columns still waiting", async () => {
  const h = await loadFec();
  const ctx = h.createContext({ mode: "encode", columns: 4, rows: 4 });
  encode(h, ctx, mediaStream(18, 0), 0); // matrix 0 done, columns 0 sent with 16, column 1 waits for 20
  const { drain } = await import("./fec-lib.js");
  const out = drain(h, ctx);
  assert.equal(out.map((o) => parseFec(o.bytes).snBase), [1, 2, 3]);
  assert.ok(out.every((o) => o.leg === COLUMN_LEG));
});

test("RTCP, upstream, other legs and non-RTP pass untouched and change nothing", async () => {
  const h = await loadFec();
  const ctx = h.createContext({ mode: "encode", columns: 4, rows: 4 });
  const junk = new Uint8Array([1, 2, 3]);
  const r = h.runBatch([
    { ctx, bytes: new Uint8Array([0x80, 201, 0, 1, 0, 0, 0, 9]), flags: 1 },
    { ctx, bytes: mediaStream(1)[0]!, flags: 2 },
    { ctx, bytes: mediaStream(1)[0]!, leg: 3 },
    { ctx, bytes: junk },
  ]);
  assert.equal(r.packets.map((p) => p.verdict), ["pass", "pass", "pass", "pass"]);
  assert.equal(r.packets[3]!.bytes, junk);
  assert.is(metric(h, "media_protected", ctx), 0);
  assert.is(metric(h, "media_unprotected", ctx), 1, "the non-RTP one");
});

test.run();
