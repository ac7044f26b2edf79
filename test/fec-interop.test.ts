// The fec filter against GStreamer's SMPTE 2022-1 elements, both ways, through one seeded lossy
// link that feeds both decoders the identical stream:
//
//   GStreamer fecenc -> lossy relay -> our decoder (a proxy with legs +2, +4) -> sink
//                                   \-> GStreamer fecdec                     -> sink
//   proxy with our encoder -> lossy relay -> GStreamer fecdec -> sink
//                                         \-> our decoder     -> sink
//
// Each decoder must deliver exactly what a perfect iterative row/column decoder rebuilds from what
// the relay let through (test/lib/fec-recovery.ts): so every packet GStreamer rebuilds we rebuild,
// and the other way round. Ours must also deliver each packet once, in sequence order, byte for
// byte, and count what it rebuilt. Loss the test did not make (kernel drops on a busy machine) is
// attributed: then only what still holds is checked, loudly.
import * as assert from "uvu/assert";
import type { Proxy } from "../runtime/index.js";
import { freeLegBase, freeLegBases, legPorts, LEGS, type LegPorts } from "./lib/fec-wire.js";
import { recoverable, type Recovery } from "./lib/fec-recovery.js";
import { GST_FEC, startGstFecDecoder, startGstFecEncoder, type GstFecShape } from "./lib/gst-fec.js";
import { DropWatch, settled } from "./lib/kernel-drops.js";
import { LossyRelay, type LossModel } from "./lib/lossy-relay.js";
import { filterWasm } from "./lib/paths.js";
import { peerTest } from "./lib/peers.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { RtpSink } from "./lib/rtp-sink.js";
import { sendStream, streamPacket, streamSeq } from "./lib/rtp-stream.js";
import { suite } from "./lib/suite.js";
import { bindUdp, sleep } from "./lib/udp.js";

const test = suite("fec interop with GStreamer", { timeoutMs: 120_000 });
const LO = "127.0.0.1";
const RATE = 500;
const SETTLE_MS = 15_000;
const QUIET_MS = 1500;
const SEQ0 = 65400; // matrices straddle the wrap

const cleanups: (() => Promise<void> | void)[] = [];
function fecTest(title: string, fn: () => Promise<void>): void {
  peerTest(test, GST_FEC, title, async () => {
    try {
      await fn();
    } finally {
      for (const c of cleanups.splice(0).reverse()) await c();
    }
  });
}

const fecFilter = { fec: { path: filterWasm("fec") } };

/** A decoder segment: media and both FEC legs in at `base`, repaired media out to `sink`. */
function decoderSegment(name: string, base: number, sink: number, shape: GstFecShape) {
  return {
    name, listen: { address: LO, port: base }, destinations: [{ address: LO, port: sink }],
    legs: [{ name: "fec-column", portOffset: 2, send: false }, { name: "fec-row", portOffset: 4, send: false }],
    chain: [{ filter: "fec", config: { mode: "decode", columns: shape.columns, rows: shape.rows, rowFec: shape.rowFec, maxDelayMs: 500 } }],
  };
}

/** An encoder segment: media in at `base`, media and FEC out to the relay's three ports. */
function encoderSegment(name: string, base: number, to: LegPorts, shape: GstFecShape) {
  return {
    name, listen: { address: LO, port: base }, destinations: [{ address: LO, port: to.media }],
    legs: [
      { name: "fec-column", receive: false, destinations: [{ address: LO, port: to.column }] },
      { name: "fec-row", receive: false, destinations: [{ address: LO, port: to.row }] },
    ],
    chain: [{ filter: "fec", config: { mode: "encode", columns: shape.columns, rows: shape.rows, rowFec: shape.rowFec } }],
  };
}

interface Delivery {
  /** Packet indexes missing that the reference says arrive or are rebuilt. */
  missing: number[];
  /** Indexes that arrived though the reference says they cannot. */
  impossible: number[];
  /** Indexes whose bytes differ from the original. */
  damaged: number[];
  /** Distinct indexes delivered. */
  delivered: Set<number>;
  duplicates: number;
}

function judge(sink: RtpSink, count: number, expected: Recovery): Delivery {
  const unrecovered = new Set(expected.unrecovered);
  const d: Delivery = { missing: [], impossible: [], damaged: [], delivered: new Set(), duplicates: 0 };
  for (let i = 0; i < count; i++) {
    const seq = streamSeq(i, SEQ0);
    const n = sink.copies(seq);
    if (n === 0) {
      if (!unrecovered.has(i)) d.missing.push(i);
      continue;
    }
    d.delivered.add(i);
    if (unrecovered.has(i)) d.impossible.push(i);
    if (!sink.identical(seq, streamPacket(i, SEQ0))) d.damaged.push(i);
    d.duplicates += n - 1;
  }
  return d;
}

/** Sequence numbers arrived in order (unwrapped): each after the one before it. */
function outOfOrder(sink: RtpSink): number {
  let bad = 0;
  let last = -1;
  for (const seq of sink.order) {
    const i = (seq - SEQ0) & 0xffff;
    if (i <= last) bad++;
    else last = i;
  }
  return bad;
}

/** Our decoder's own count of rebuilt packets (the filter's metric). */
async function recoveredBy(proxy: Proxy, segment: string): Promise<number> {
  const seg = await segmentStats(proxy, segment);
  return seg.stages[0]!.metrics.find((m) => m.name === "recovered")?.value ?? -1;
}

async function waitForStream(relay: LossyRelay, count: number, path: DropWatch, sinks: RtpSink[]): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  while (relay.counts.media.received + path.since().total < count && Date.now() < deadline) await sleep(20);
  await settled(() => sinks.reduce((n, s) => n + s.received, 0), QUIET_MS, Math.max(1000, deadline - Date.now()));
}

function report(label: string, what: Delivery, unplanned: number, ours: boolean): void {
  assert.equal(what.impossible, [], `${label}: delivered packets the reference cannot rebuild`);
  assert.equal(what.damaged, [], `${label}: packets that differ from the original`);
  if (ours) assert.is(what.duplicates, 0, `${label}: duplicates`);
  if (unplanned > 0) {
    console.error(`\n!!! ${label}: ${unplanned} packets lost to the kernel on a busy machine; ${what.missing.length} missing not compared with the reference\n`);
    return;
  }
  assert.equal(what.missing, [], `${label}: packets the reference delivers or rebuilds, missing`);
}

const SHAPES: [string, GstFecShape, LossModel][] = [
  ["2-D 10x5, Bernoulli 5%", { columns: 10, rows: 5, rowFec: true }, { kind: "bernoulli", p: 0.05, seed: 7 }],
  ["1-D 5x10, Gilbert-Elliott bursts of 4", { columns: 5, rows: 10, rowFec: false }, { kind: "gilbert-elliott", p: 0.02, r: 0.25, seed: 3 }],
  ["2-D 4x4, Bernoulli 10%", { columns: 4, rows: 4, rowFec: true }, { kind: "bernoulli", p: 0.1, seed: 11 }],
];

for (const [name, shape, loss] of SHAPES) {
  fecTest(`GStreamer's encoder -> our decoder and GStreamer's, ${name}: both rebuild exactly what the reference does; ours in order, once`, async () => {
    const count = 8 * shape.columns * shape.rows;
    const [oursSink, gstSink] = [await RtpSink.open(), await RtpSink.open()];
    cleanups.push(() => oursSink.close(), () => gstSink.close());
    const base = await freeLegBase();
    const { proxy } = await startProxy({ filters: fecFilter, segments: [decoderSegment("dec", base, oursSink.port, shape)] });
    cleanups.push(() => proxy.close());
    const gstDec = await startGstFecDecoder({ output: gstSink.port });
    cleanups.push(() => gstDec.pipeline.stop());
    const relay = await LossyRelay.start({ targets: [legPorts(base), gstDec.listen], loss });
    cleanups.push(() => relay.close());
    const enc = await startGstFecEncoder({ shape, target: relay.listen });
    cleanups.push(() => enc.pipeline.stop());
    const path = new DropWatch([...relay.ports, ...LEGS.map((l) => gstDec.listen[l]), ...LEGS.map((l) => legPorts(base)[l]), oursSink.port, gstSink.port, enc.input]);
    const tx = await bindUdp();
    cleanups.push(() => void tx.close());
    await sendStream(tx, enc.input, { seq0: SEQ0, count }, RATE);
    await waitForStream(relay, count, path, [oursSink, gstSink]);
    gstDec.pipeline.assertRunning();
    const expected = recoverable({ columns: shape.columns, rows: shape.rows }, relay.lostMedia(SEQ0), relay.fecGroups(SEQ0));
    assert.ok(expected.recovered.length > 0, "the seed makes losses FEC can repair");
    const unplanned = path.since().total + relay.sendErrors;
    const ours = judge(oursSink, count, expected);
    const theirs = judge(gstSink, count, expected);
    console.log(`${name}: ${relay.lostMedia(SEQ0).length} media lost; reference rebuilds ${expected.recovered.length}, ` +
      `not ${expected.unrecovered.length}; ours delivered ${ours.delivered.size}, GStreamer ${theirs.delivered.size} (+${theirs.duplicates} duplicates)`);
    report("ours", ours, unplanned, true);
    report("GStreamer", theirs, unplanned, false);
    assert.is(outOfOrder(oursSink), 0, "ours delivers in sequence order");
    if (unplanned === 0) {
      assert.equal([...ours.delivered].sort((a, b) => a - b), [...theirs.delivered].sort((a, b) => a - b), "every packet one decoder delivers, the other does too");
      assert.is(await recoveredBy(proxy, "dec"), expected.recovered.length, "the decoder counts what it rebuilt");
    }
  });

  fecTest(`our encoder -> GStreamer's decoder and ours, ${name}: GStreamer rebuilds from our FEC what the reference says`, async () => {
    const count = 8 * shape.columns * shape.rows;
    const [oursSink, gstSink] = [await RtpSink.open(), await RtpSink.open()];
    cleanups.push(() => oursSink.close(), () => gstSink.close());
    const gstDec = await startGstFecDecoder({ output: gstSink.port });
    cleanups.push(() => gstDec.pipeline.stop());
    const [decBase, encBase, relayBase] = (await freeLegBases(3)) as [number, number, number];
    const relayListen = legPorts(relayBase);
    const relay = await LossyRelay.start({ targets: [gstDec.listen, legPorts(decBase)], loss, listen: relayListen });
    cleanups.push(() => relay.close());
    const { proxy } = await startProxy({
      filters: fecFilter,
      segments: [encoderSegment("enc", encBase, relay.listen, shape), decoderSegment("dec", decBase, oursSink.port, shape)],
    });
    cleanups.push(() => proxy.close());
    const path = new DropWatch([encBase, ...relay.ports, ...LEGS.map((l) => gstDec.listen[l]), ...LEGS.map((l) => legPorts(decBase)[l]), oursSink.port, gstSink.port]);
    const tx = await bindUdp();
    cleanups.push(() => void tx.close());
    await sendStream(tx, encBase, { seq0: SEQ0, count }, RATE);
    await waitForStream(relay, count, path, [oursSink, gstSink]);
    gstDec.pipeline.assertRunning();
    const expected = recoverable({ columns: shape.columns, rows: shape.rows }, relay.lostMedia(SEQ0), relay.fecGroups(SEQ0));
    assert.ok(expected.recovered.length > 0, "the seed makes losses FEC can repair");
    const unplanned = path.since().total + relay.sendErrors;
    const theirs = judge(gstSink, count, expected);
    const ours = judge(oursSink, count, expected);
    console.log(`${name}: our FEC, ${relay.counts.column.forwarded + relay.counts.row.forwarded} repair packets through; GStreamer rebuilt ` +
      `${gstDec.recoveries().length}, reference ${expected.recovered.length}`);
    report("GStreamer from our FEC", theirs, unplanned, false);
    report("ours from our FEC", ours, unplanned, true);
    if (unplanned === 0) {
      assert.equal([...ours.delivered].sort((a, b) => a - b), [...theirs.delivered].sort((a, b) => a - b), "every packet one decoder delivers, the other does too");
    }
  });
}

test.run();
