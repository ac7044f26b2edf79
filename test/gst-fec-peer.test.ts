// GStreamer's SMPTE 2022-1 FEC elements as peers, and the helpers the FEC interop tests build on
// (test/lib/gst-fec.ts, lossy-relay.ts, rtp-stream.ts, rtp-sink.ts, fec-recovery.ts):
//
//  - what GStreamer's encoder writes, field by field, against a reference computed from the
//    media (2-D 4x4 and 5x10, 1-D 10x5), and when each column packet goes out;
//  - that it stops at a sequence gap or a non-zero SSRC (why a test must not lose its input);
//  - RTP source -> GStreamer fecenc -> lossy relay -> GStreamer fecdec -> sink, with drops the
//    reference says are rebuilt (by row, by column, by iterating both) or not (a 2x2 square; a
//    packet whose row and column FEC are lost too): every packet it should rebuild arrives byte
//    for byte, none it cannot; then the same with seeded Bernoulli and Gilbert-Elliott loss.
//
// Everything runs on 127.0.0.1. Loss the test did not make is accounted for: a kernel drop (a
// busy machine) at the relay, the decoder or the sink changes what can be rebuilt in ways no one
// can predict, so then only what still holds is checked (every packet that arrives is intact,
// nothing unrecoverable arrives), and the run says so loudly. The encoder stops at a kernel drop
// on its input (a sequence gap), which fails the test with the kernel's count.
import * as assert from "uvu/assert";
import { freeLegBase, legPorts, LEGS, parseFecPacket, referenceFec, type FecHeader, type LegPorts } from "./lib/fec-wire.js";
import { groupMembers, recoverable, type MatrixShape, type Recovery } from "./lib/fec-recovery.js";
import { GST_FEC, startGstFecDecoder, startGstFecEncoder, type GstFecDecoder, type GstFecEncoder, type GstFecShape } from "./lib/gst-fec.js";
import { DropWatch, settled } from "./lib/kernel-drops.js";
import { LossyRelay, type LossModel } from "./lib/lossy-relay.js";
import { peerTest } from "./lib/peers.js";
import { RtpSink } from "./lib/rtp-sink.js";
import { sendStream, streamIndex, streamPacket, streamSeq } from "./lib/rtp-stream.js";
import { suite } from "./lib/suite.js";
import { bindUdp, Sink, sleep, waitFor } from "./lib/udp.js";

const test = suite("GStreamer 2022-1 FEC peer", { timeoutMs: 90_000 });

/** Packets per second: a stream of a few hundred packets takes well under a second. */
const RATE = 500;
/** After the last packet: a busy machine may take this long to pass everything on... */
const SETTLE_MS = 15_000;
/** ...unless nothing arrives for this long. */
const QUIET_MS = 1000;
/** Starts near the wrap, so matrices straddle 65535 -> 0. */
const SEQ0 = 65500;

/** What the running test started, undone when it ends (gstTest), however it ends. */
const cleanups: (() => Promise<void> | void)[] = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
}

/** A test that needs GStreamer's FEC elements; what it started is stopped however it ends. */
function gstTest(title: string, fn: () => Promise<void>): void {
  peerTest(test, GST_FEC, title, async () => {
    try {
      await fn();
    } finally {
      await cleanup();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The encoder alone: its packets, captured

/** Sinks keeping every packet, on a media/column/row triple. */
async function captureLegs(): Promise<{ ports: LegPorts; sinks: Record<"media" | "column" | "row", Sink> }> {
  const ports = legPorts(await freeLegBase());
  const sinks = {
    media: await Sink.open(ports.media, { keep: true }),
    column: await Sink.open(ports.column, { keep: true }),
    row: await Sink.open(ports.row, { keep: true }),
  };
  cleanups.push(() => LEGS.forEach((leg) => sinks[leg].close()));
  return { ports, sinks };
}

async function encoderOutput(shape: GstFecShape, count: number): Promise<{ enc: GstFecEncoder; media: Buffer[]; column: FecHeader[]; row: FecHeader[]; columnBytes: Buffer[]; rowBytes: Buffer[]; kernel: DropWatch }> {
  const cap = await captureLegs();
  const enc = await startGstFecEncoder({ shape, target: cap.ports });
  cleanups.push(() => enc.pipeline.stop());
  const kernel = new DropWatch([enc.input, ...LEGS.map((leg) => cap.ports[leg])]);
  const tx = await bindUdp();
  cleanups.push(() => void tx.close());
  await sendStream(tx, enc.input, { seq0: SEQ0, count }, RATE);
  await waitFor(() => cap.sinks.media.received + kernel.since().total >= count || enc.pipeline.child.exit !== null, SETTLE_MS, "the encoder's media");
  await settled(() => cap.sinks.column.received + cap.sinks.row.received, 300, 5000);
  assertEncoderRan(enc, kernel);
  const bytes = (s: Sink): Buffer[] => s.packets.map((p) => p.bytes);
  const headers = (s: Sink): FecHeader[] => bytes(s).map((b) => parseFecPacket(b)!);
  return { enc, media: bytes(cap.sinks.media), column: headers(cap.sinks.column), row: headers(cap.sinks.row), columnBytes: bytes(cap.sinks.column), rowBytes: bytes(cap.sinks.row), kernel };
}

/** The encoder stops at a gap: if it did, say whether the kernel dropped its input. */
function assertEncoderRan(enc: GstFecEncoder, kernel: DropWatch): void {
  if (enc.pipeline.child.exit) {
    const k = kernel.since();
    throw new Error(`GStreamer's encoder stopped (kernel drops on its input port ${enc.input}: ${k.byPort[enc.input] ?? 0}; ` +
      `a dropped input packet is a sequence gap, which stops it):\n${enc.pipeline.child.describe()}`);
  }
}

/** Checks one FEC packet of GStreamer's against the reference over the media it protects. */
function assertFecPacket(shape: MatrixShape, h: FecHeader, bytes: Buffer, kind: "row" | "column", media: (i: number) => Buffer): void {
  const base = streamIndex(h.snBase, SEQ0);
  const members = groupMembers(shape, { kind, base });
  const ref = referenceFec(members.map(media));
  const what = `${kind} FEC #${h.rtp.seq} (SNBase index ${base})`;
  assert.equal(
    { pt: h.rtp.payloadType, ssrc: h.rtp.ssrc, marker: h.rtp.marker, padding: h.rtp.padding, extension: h.rtp.extension },
    { pt: 96, ssrc: 0, marker: ref.marker, padding: false, extension: false }, `${what}: RTP header`);
  assert.equal(
    { lengthRecovery: h.lengthRecovery, e: h.e, ptRecovery: h.ptRecovery, mask: h.mask, tsRecovery: h.tsRecovery, n: h.n, d: h.d, type: h.type, index: h.index, offset: h.offset, na: h.na, snBaseExt: h.snBaseExt },
    {
      lengthRecovery: ref.lengthRecovery, e: 1, ptRecovery: ref.ptRecovery, mask: 0, tsRecovery: ref.tsRecovery, n: 0,
      d: kind === "row" ? 1 : 0, type: 0, index: 0, offset: kind === "row" ? 1 : shape.columns, na: kind === "row" ? shape.columns : shape.rows, snBaseExt: 0,
    }, `${what}: FEC header`);
  assert.ok(bytes.subarray(28).equals(ref.payload), `${what}: payload is the XOR of the zero-padded media payloads`);
}

for (const shape of [{ columns: 4, rows: 4, rowFec: true }, { columns: 5, rows: 10, rowFec: true }, { columns: 10, rows: 5, rowFec: false }] satisfies GstFecShape[]) {
  const name = `${shape.rowFec ? "2-D" : "1-D"} ${shape.columns}x${shape.rows}`;
  gstTest(`encoder ${name}: every FEC header field as measured, columns spread over the next matrix`, async () => {
    const size = shape.columns * shape.rows;
    const count = 3 * size;
    const out = await encoderOutput(shape, count);
    const k = out.kernel.since();
    const media = (i: number): Buffer => streamPacket(i, SEQ0);
    // media passes unchanged
    if (k.total === 0) assert.is(out.media.length, count);
    out.media.forEach((p) => assert.ok(p.equals(media(streamIndex(p.readUInt16BE(2), SEQ0)))));
    // rows: one per row as soon as the row is complete (all 3 matrices), numbered from 0; each
    // FEC packet is placed by its own sequence number (a kernel drop at a capture socket shifts nothing)
    const rows = shape.rowFec ? count / shape.columns : 0;
    if (k.total === 0) assert.equal(out.row.map((h) => h.rtp.seq), Array.from({ length: rows }, (_, n) => n), "row FEC packets");
    out.row.forEach((h, n) => {
      const row = h.rtp.seq;
      assertFecPacket(shape, h, out.rowBytes[n]!, "row", media);
      assert.is(streamIndex(h.snBase, SEQ0), row * shape.columns);
      // its timestamp: the row's last media packet's (it goes out just before that packet)
      assert.is(h.rtp.timestamp, media(row * shape.columns + shape.columns - 1).readUInt32BE(4));
    });
    // columns: column c of matrix m goes out with media packet (m+1)*L*D + c*D, so the third
    // matrix's columns never do (no fourth matrix follows)
    if (k.total === 0) assert.equal(out.column.map((h) => h.rtp.seq), Array.from({ length: 2 * shape.columns }, (_, n) => n), "column FEC packets");
    out.column.forEach((h, n) => {
      const m = Math.floor(h.rtp.seq / shape.columns);
      const c = h.rtp.seq % shape.columns;
      assertFecPacket(shape, h, out.columnBytes[n]!, "column", media);
      assert.is(streamIndex(h.snBase, SEQ0), m * size + c);
      assert.is(h.rtp.timestamp, media((m + 1) * size + c * shape.rows).readUInt32BE(4), `column ${c} of matrix ${m}: sent with media packet ${(m + 1) * size + c * shape.rows}`);
    });
  });
}

gstTest("encoder: stops for good at a sequence gap or a non-zero SSRC", async () => {
  for (const [what, make, message] of [
    ["a gap", (i: number) => streamPacket(i < 10 ? i : i + 1, SEQ0), /consecutive sequence numbers are required/],
    ["SSRC 5", (i: number) => { const p = streamPacket(i, SEQ0); p.writeUInt32BE(5, 8); return p; }, /SSRC == 0/],
  ] as const) {
    const cap = await captureLegs();
    const enc = await startGstFecEncoder({ shape: { columns: 4, rows: 4, rowFec: true }, target: cap.ports });
    cleanups.push(() => enc.pipeline.stop());
    const tx = await bindUdp();
    cleanups.push(() => void tx.close());
    for (let i = 0; i < 20; i++) tx.send(make(i), enc.input, "127.0.0.1");
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([enc.pipeline.child.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), SETTLE_MS)))]);
    clearTimeout(timer);
    assert.ok(exit !== null && exit.code !== 0, `${what}: the encoder should have stopped with an error:\n${enc.pipeline.child.describe()}`);
    assert.match(enc.pipeline.child.stderr, message);
    assert.ok(cap.sinks.media.received <= 10, `${what}: nothing after the bad packet`);
    await cleanup();
  }
});

// ---------------------------------------------------------------------------------------------
// Through a lossy relay to GStreamer's decoder

interface LossRun {
  readonly count: number;
  /** What the reference predicts from the relay's records. */
  readonly expected: Recovery;
  readonly sink: RtpSink;
  readonly dec: GstFecDecoder;
  readonly relay: LossyRelay;
  /** Kernel drops on the path after the encoder (relay, decoder, sink), and the relay's failed sends. */
  readonly unplanned: number;
}

async function lossRun(shape: GstFecShape, count: number, loss: LossModel): Promise<LossRun> {
  const sink = await RtpSink.open();
  cleanups.push(() => sink.close());
  const dec = await startGstFecDecoder({ output: sink.port });
  cleanups.push(() => dec.pipeline.stop());
  const relay = await LossyRelay.start({ targets: [dec.listen], loss });
  cleanups.push(() => relay.close());
  const enc = await startGstFecEncoder({ shape, target: relay.listen });
  cleanups.push(() => enc.pipeline.stop());
  const path = new DropWatch([...relay.ports, ...LEGS.map((leg) => dec.listen[leg]), sink.port]);
  const input = new DropWatch([enc.input]);
  const tx = await bindUdp();
  cleanups.push(() => void tx.close());
  await sendStream(tx, enc.input, { seq0: SEQ0, count }, RATE);
  // every media packet at the relay (or dropped by the kernel before it), bounded; then quiet at the sink
  const deadline = Date.now() + SETTLE_MS;
  while (relay.counts.media.received + path.since().total < count && enc.pipeline.child.exit === null && Date.now() < deadline) await sleep(20);
  await settled(() => sink.received, QUIET_MS, Math.max(1000, deadline - Date.now()));
  assertEncoderRan(enc, input);
  dec.pipeline.assertRunning();
  const shapeOnly = { columns: shape.columns, rows: shape.rows };
  const expected = recoverable(shapeOnly, relay.lostMedia(SEQ0), relay.fecGroups(SEQ0));
  return { count, expected, sink, dec, relay, unplanned: path.since().total + relay.sendErrors };
}

/**
 * What GStreamer's decoder delivered against the reference: every packet not dropped and every
 * packet the reference rebuilds arrives byte for byte, nothing it cannot rebuild arrives, each
 * rebuilt packet is in the decoder's log, and a duplicate is only a packet rebuilt before its
 * original came (GStreamer does not de-duplicate).
 */
function assertMatchesReference(run: LossRun): void {
  const { sink, expected, relay } = run;
  const lost = new Set(relay.lostMedia(SEQ0));
  const unrecovered = new Set(expected.unrecovered);
  const logged = new Set(run.dec.recoveries().map((r) => r.seq));
  const missing: number[] = [];
  for (let i = 0; i < run.count; i++) {
    const seq = streamSeq(i, SEQ0);
    if (unrecovered.has(i)) {
      assert.is(sink.copies(seq), 0, `packet ${i} (seq ${seq}) cannot be rebuilt, yet it arrived`);
      continue;
    }
    if (sink.copies(seq) === 0) {
      missing.push(i);
      continue;
    }
    assert.ok(sink.identical(seq, streamPacket(i, SEQ0)), `packet ${i} (seq ${seq}${lost.has(i) ? ", rebuilt" : ""}) differs from the original`);
    if (lost.has(i)) assert.ok(logged.has(seq), `packet ${i} was dropped and arrived, but the decoder's log has no recovery of seq ${seq}`);
    if (sink.copies(seq) > 1) assert.ok(!lost.has(i) && logged.has(seq), `packet ${i} arrived ${sink.copies(seq)} times`);
  }
  assert.is(sink.notRtp, 0);
  if (run.unplanned > 0) {
    console.error(`\n!!! ${run.unplanned} packets lost to the kernel (a busy machine) or to refused sends after the encoder: ${missing.length} packets missing ` +
      `(${missing.join(", ")}) are not compared with the reference; every packet that arrived is intact and nothing unrecoverable arrived\n`);
    return;
  }
  assert.equal(missing, [], `packets the reference says arrive or are rebuilt, missing (dropped: ${[...lost].join(", ")})`);
}

const S44: GstFecShape = { columns: 4, rows: 4, rowFec: true };
/** Packet index of (row r, column c) of matrix m, for 4x4. */
const at44 = (m: number, r: number, c: number): number => 16 * m + 4 * r + c;

gstTest("2-D 4x4 through explicit drops: rebuilt by row, by column, by both in turn; a 2x2 square and a packet without its FEC are not", async () => {
  const square = [at44(3, 0, 0), at44(3, 0, 1), at44(3, 1, 0), at44(3, 1, 1)];
  const stairs = [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2], [2, 3], [3, 3]].map(([r, c]) => at44(2, r!, c!)); // matrix 2 straddles the wrap
  const media = [
    at44(0, 1, 2), // alone in its row: the row rebuilds it
    at44(1, 2, 0), at44(1, 2, 3), // two in a row: their columns do
    ...stairs, // seven rounds, row and column in turn
    ...square, // every row and column misses two
    at44(4, 3, 1), // its row FEC dropped too: its column rebuilds it
    at44(5, 2, 2), // its row and column FEC dropped too
  ];
  const loss: LossModel = {
    kind: "list",
    drops: [
      ...media.map((i) => ({ leg: "media" as const, seq: streamSeq(i, SEQ0) })),
      { leg: "row", snBase: streamSeq(at44(4, 3, 0), SEQ0) },
      { leg: "row", snBase: streamSeq(at44(5, 2, 0), SEQ0) },
      { leg: "column", snBase: streamSeq(at44(5, 0, 2), SEQ0) },
    ],
  };
  const run = await lossRun(S44, 8 * 16, loss); // two clean matrices after: the last columns go out
  assert.equal(run.expected.unrecovered, [...square, at44(5, 2, 2)].sort((a, b) => a - b), "the reference agrees with the hand count");
  assert.is(run.expected.recovered.length, media.length - 5);
  assertMatchesReference(run);
});

for (const [name, shape, loss] of [
  ["1-D 10x5, Bernoulli 5%", { columns: 10, rows: 5, rowFec: false }, { kind: "bernoulli", p: 0.05, seed: 2022 }],
  ["2-D 5x10, Bernoulli 8%", { columns: 5, rows: 10, rowFec: true }, { kind: "bernoulli", p: 0.08, seed: 1 }],
  ["2-D 10x5, Gilbert-Elliott bursts of 4", { columns: 10, rows: 5, rowFec: true }, { kind: "gilbert-elliott", p: 0.02, r: 0.25, seed: 5 }],
] as const satisfies readonly (readonly [string, GstFecShape, LossModel])[]) {
  gstTest(`${name} (seeded): GStreamer rebuilds exactly what the reference says`, async () => {
    // 8 matrices: the reference knows which FEC packets went out (the last matrix's columns do not)
    const run = await lossRun(shape, 8 * shape.columns * shape.rows, loss);
    console.log(`${name}: ${run.relay.counts.media.dropped} media and ${run.relay.counts.column.dropped + run.relay.counts.row.dropped} FEC packets dropped; ` +
      `the reference rebuilds ${run.expected.recovered.length}, not ${run.expected.unrecovered.length}`);
    assert.ok(run.expected.recovered.length > 0 && run.expected.unrecovered.length > 0, "this seed gives both kinds of loss");
    assertMatchesReference(run);
  });
}

test.run();
