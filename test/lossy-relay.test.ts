// The lossy relay (test/lib/lossy-relay.ts) over real UDP on 127.0.0.1: explicit drops by
// sequence number and by SNBase, the identical lossy stream to two targets, seeded random loss
// that is the same every run and has the rates it was given, bounded records, bad models refused.
// A packet missing at a target is accepted only when the kernel's drop counters explain it.
import * as assert from "uvu/assert";
import type { Socket } from "node:dgram";
import { freeLegBase, legPorts, LEGS, type Leg, type LegPorts } from "./lib/fec-wire.js";
import { DropWatch, settled } from "./lib/kernel-drops.js";
import { LossyRelay, type LossModel } from "./lib/lossy-relay.js";
import { RtpSink } from "./lib/rtp-sink.js";
import { suite } from "./lib/suite.js";
import { bindUdp, waitFor } from "./lib/udp.js";

const test = suite("lossy relay");
const LO = "127.0.0.1";

/** A target: one sink per leg. */
interface Target {
  readonly ports: LegPorts;
  readonly sinks: Record<Leg, RtpSink>;
}

async function target(): Promise<Target> {
  const ports = legPorts(await freeLegBase());
  const sinks = { media: await RtpSink.open(ports.media), column: await RtpSink.open(ports.column), row: await RtpSink.open(ports.row) };
  return { ports, sinks };
}

/** A FEC-like packet: RTP header (seq) and a 16-byte FEC header with SNBase and the D bit. */
function fecPacket(seq: number, snBase: number, row: boolean): Buffer {
  const b = Buffer.alloc(12 + 16 + 8);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt16BE(seq, 2);
  b.writeUInt16BE(snBase, 12);
  b[16] = 0x80;
  b[24] = row ? 0x40 : 0;
  return b;
}

function mediaPacket(seq: number): Buffer {
  const b = Buffer.alloc(40);
  b[0] = 0x80;
  b[1] = 33;
  b.writeUInt16BE(seq, 2);
  return b;
}

async function send(socket: Socket, port: number, packets: Buffer[]): Promise<void> {
  for (const [i, p] of packets.entries()) {
    socket.send(p, port, LO);
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 2)); // no burst beyond what a socket queue holds
  }
}

test("explicit drops by sequence number and SNBase; both targets get the identical lossy stream", async () => {
  const [a, b] = [await target(), await target()];
  const relay = await LossyRelay.start({
    targets: [a.ports, b.ports],
    loss: { kind: "list", drops: [{ leg: "media", seq: 3 }, { leg: "media", seq: 65535 }, { leg: "row", snBase: 8 }, { leg: "column", seq: 2 }] },
  });
  const sinkPorts = [a, b].flatMap((t) => LEGS.map((leg) => t.ports[leg]));
  const kernel = new DropWatch([...relay.ports, ...sinkPorts]);
  const tx = await bindUdp();
  try {
    const media = Array.from({ length: 40 }, (_, i) => (65530 + i) & 0xffff); // crosses the wrap
    await send(tx, relay.listen.media, media.map(mediaPacket));
    await send(tx, relay.listen.row, [0, 1, 2, 3].map((k) => fecPacket(k, k * 4, true))); // SNBase 0, 4, 8, 12
    await send(tx, relay.listen.column, [0, 1, 2, 3].map((k) => fecPacket(k, k, false)));
    tx.send(Buffer.from("hi"), relay.listen.media, LO); // not RTP: passed on untouched
    const arrived = (): number => [a, b].reduce((n, t) => n + LEGS.reduce((m, leg) => m + t.sinks[leg].received, 0), 0);
    await settled(arrived, 300, 10_000);
    const expected = 2 * (38 + 1 + 3 + 3);
    if (arrived() < expected) {
      const k = kernel.since();
      assert.ok(expected - arrived() <= k.total, `${expected - arrived()} missing, kernel dropped ${k.total}: ${JSON.stringify(k.byPort)}`);
      return; // a busy machine: the rest cannot be compared packet by packet
    }
    assert.equal(relay.dropped.map((r) => `${r.leg}:${r.seq}`).sort(), ["column:2", "media:3", "media:65535", "row:2"]);
    assert.equal(relay.dropped.find((r) => r.leg === "row"), { leg: "row", seq: 2, snBase: 8, row: true });
    assert.equal(relay.counts.media, { received: 41, forwarded: 39, dropped: 2 });
    assert.is(relay.notRtp, 1);
    assert.equal(relay.lostMedia(65530), [5, 9]);
    assert.equal(relay.fecGroups(0).map((g) => `${g.kind}:${g.base}`).sort(), ["column:0", "column:1", "column:3", "row:0", "row:12", "row:4"]);
    for (const t of [a, b]) {
      for (const seq of media) assert.is(t.sinks.media.copies(seq), seq === 3 || seq === 65535 ? 0 : 1, `media ${seq}`);
      assert.is(t.sinks.media.notRtp, 1);
      assert.is(t.sinks.row.copies(2), 0);
      assert.is(t.sinks.column.copies(2), 0);
      assert.is(t.sinks.row.distinct + t.sinks.column.distinct, 6);
    }
    assert.equal(a.sinks.media.order, b.sinks.media.order, "the same stream, in the same order");
  } finally {
    tx.close();
    relay.close();
    for (const t of [a, b]) for (const leg of LEGS) t.sinks[leg].close();
  }
});

test("seeded Bernoulli loss: the same seed drops the same packets, at the rate given, on every leg separately", async () => {
  const t = await target();
  const start = (loss: LossModel, legs?: readonly Leg[]): Promise<LossyRelay> => LossyRelay.start({ targets: [t.ports], loss, ...(legs ? { legs } : {}) });
  const [r1, r2, r3, mediaOnly] = [
    await start({ kind: "bernoulli", p: 0.05, seed: 7 }),
    await start({ kind: "bernoulli", p: 0.05, seed: 7 }),
    await start({ kind: "bernoulli", p: 0.05, seed: 8 }),
    await start({ kind: "bernoulli", p: 0.05, seed: 7 }, ["media"]),
  ];
  try {
    const pattern = (r: LossyRelay, leg: Leg): number[] => Array.from({ length: 65536 }, (_, s) => s).filter((s) => r.wouldDrop(leg, s));
    const media = pattern(r1, "media");
    assert.equal(pattern(r2, "media"), media);
    assert.not.equal(pattern(r3, "media"), media);
    assert.not.equal(pattern(r1, "row"), media, "each leg draws its own");
    // 65536 draws at p = 0.05: 3277 expected, standard deviation 56
    assert.ok(Math.abs(media.length - 3277) < 6 * 56, `${media.length} drops`);
    assert.equal(pattern(mediaOnly, "media"), media);
    assert.equal(pattern(mediaOnly, "row"), [], "legs: the model applies to media only");
    // the decisions hold on the wire
    const tx = await bindUdp();
    const kernel = new DropWatch([...r1.ports, t.ports.media]);
    try {
      await send(tx, r1.listen.media, Array.from({ length: 400 }, (_, s) => mediaPacket(s)));
      await waitFor(() => r1.counts.media.received + kernel.since().total >= 400, 10_000, "the relay to take 400 packets");
      const dropped = r1.dropped.map((r) => r.seq);
      const expected = media.filter((s) => s < 400);
      if (r1.counts.media.received === 400) assert.equal(dropped, expected);
      else assert.ok(dropped.every((s) => expected.includes(s)), "the kernel dropped some at the relay; what the relay dropped is still in the pattern");
    } finally {
      tx.close();
    }
  } finally {
    for (const r of [r1, r2, r3, mediaOnly]) r.close();
    for (const leg of LEGS) t.sinks[leg].close();
  }
});

test("seeded Gilbert-Elliott loss: bursts of mean length 1/r, loss rate p/(p+r)", async () => {
  const t = await target();
  const relay = await LossyRelay.start({ targets: [t.ports], loss: { kind: "gilbert-elliott", p: 0.01, r: 0.25, seed: 3 } });
  try {
    const drops = Array.from({ length: 65536 }, (_, s) => relay.wouldDrop("media", s));
    const lost = drops.filter(Boolean).length;
    let bursts = 0;
    for (let s = 0; s < drops.length; s++) if (drops[s] && !drops[s - 1]) bursts++;
    const rate = lost / drops.length;
    const meanBurst = lost / bursts;
    // 0.01 / 0.26 = 3.8 % of packets, in bursts of 4 on average (this seed: a fixed pattern)
    assert.ok(rate > 0.03 && rate < 0.047, `loss rate ${rate}`);
    assert.ok(meanBurst > 3.3 && meanBurst < 4.7, `mean burst ${meanBurst}`);
  } finally {
    relay.close();
    for (const leg of LEGS) t.sinks[leg].close();
  }
});

test("records are bounded; a bad model is refused before anything is bound", async () => {
  const t = await target();
  const relay = await LossyRelay.start({ targets: [t.ports], loss: { kind: "bernoulli", p: 1, seed: 1 }, maxRecords: 10 });
  const tx = await bindUdp();
  const kernel = new DropWatch(relay.ports);
  try {
    await send(tx, relay.listen.media, Array.from({ length: 50 }, (_, s) => mediaPacket(s)));
    await waitFor(() => relay.counts.media.received + kernel.since().total >= 50, 10_000, "50 packets at the relay");
    assert.is(relay.dropped.length, 10);
    assert.is(relay.truncated, relay.counts.media.received - 10);
    assert.is(t.sinks.media.received, 0);
  } finally {
    tx.close();
    relay.close();
    for (const leg of LEGS) t.sinks[leg].close();
  }
  for (const [loss, field] of [[{ kind: "bernoulli", p: 1.5, seed: 1 }, /p must be a probability/], [{ kind: "gilbert-elliott", p: 0.1, r: -1, seed: 1 }, /r must be a probability/]] as const) {
    const listen = legPorts(await freeLegBase());
    await LossyRelay.start({ targets: [t.ports], loss, listen }).then(() => assert.unreachable("accepted"), (err: Error) => assert.match(err.message, field));
    const probe = await bindUdp(listen.media); // still free: nothing was bound
    probe.close();
  }
  await LossyRelay.start({ targets: [], loss: { kind: "none" } }).then(() => assert.unreachable("accepted"), (err: Error) => assert.match(err.message, /at least one target/));
});

test.run();
