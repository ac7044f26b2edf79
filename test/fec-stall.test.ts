// A decoding proxy that stalls (stopped with SIGSTOP, as a busy machine or a long pause would
// stop it) while media and repair packets queue on its three sockets, the repair legs' first:
// once it runs again, every packet a perfect decoder rebuilds comes out, in order. Without the
// host handing a segment's sockets' backlogs over in arrival order (runtime/native/msm_udp.c,
// receive_merged), the repairs reach the decoder far ahead of their media, or behind all of it.
import * as assert from "uvu/assert";
import type { Socket } from "node:dgram";
import { type ProxyConfigInput } from "../runtime/index.js";
import { freeLegBases, legPorts } from "./lib/fec-wire.js";
import { DropWatch, settled } from "./lib/kernel-drops.js";
import { resumeTree, startCliProxy, stopTree } from "./lib/cli-proxy.js";
import { filterWasm } from "./lib/paths.js";
import { startProxy } from "./lib/proxy.js";
import { RtpSink } from "./lib/rtp-sink.js";
import { sendStream, streamPacket, streamSeq } from "./lib/rtp-stream.js";
import { suite } from "./lib/suite.js";
import { bindUdp, sleep, waitFor } from "./lib/udp.js";

const test = suite("fec: a stalled decoder", { timeoutMs: 60_000 });
const LO = "127.0.0.1";
const SEQ0 = 1000;
const L = 4;
const D = 4;
/** Packets of the backlog: 25 matrices, far more than the decoder's window of repairs ahead. */
const COUNT = 400;
const WARM = L * D;

type Leg = "media" | "column" | "row";
interface WirePacket {
  leg: Leg;
  bytes: Buffer;
  /** The stream index of a media packet. */
  index: number;
}

/** A stream of COUNT through a real fec encoder: media, column and row repair in the order they arrived. */
async function encode(): Promise<WirePacket[]> {
  const caught = await Promise.all([0, 1, 2].map(() => bindUdp()));
  const [media, column, row] = caught as [Socket, Socket, Socket];
  const wire: WirePacket[] = [];
  const counts = { media: 0, column: 0, row: 0 };
  for (const [leg, socket] of [["media", media], ["column", column], ["row", row]] as const) {
    socket.on("message", (bytes) => {
      counts[leg]++;
      wire.push({ leg, bytes, index: leg === "media" ? (bytes.readUInt16BE(2) - SEQ0) & 0xffff : -1 });
    });
  }
  const encBase = (await freeLegBases(1))[0]!;
  const config: ProxyConfigInput = {
    filters: { fec: { path: filterWasm("fec") } },
    segments: [{
      name: "enc", listen: { address: LO, port: encBase }, destinations: [{ address: LO, port: media.address().port }],
      legs: [
        { name: "fec-column", receive: false, destinations: [{ address: LO, port: column.address().port }] },
        { name: "fec-row", receive: false, destinations: [{ address: LO, port: row.address().port }] },
      ],
      chain: [{ filter: "fec", config: { mode: "encode", columns: L, rows: D } }],
    }],
  };
  const { proxy } = await startProxy(config);
  const tx = await bindUdp();
  try {
    await sendStream(tx, encBase, { seq0: SEQ0, count: COUNT }, 1000);
    await waitFor(() => counts.media === COUNT && counts.row === COUNT / L && counts.column === (COUNT / (L * D) - 1) * L, 10_000, "the encoder's output");
    return wire;
  } finally {
    tx.close();
    for (const s of caught) s.close();
    await proxy.close();
  }
}

test("a stall with media and repair queued on the decoder's sockets: every lost packet is rebuilt, the output in order", async () => {
  const wire = await encode();
  // the stall begins just before a column repair: the first socket with a backlog is a leg's
  const cut = wire.findIndex((p, k) => p.leg === "column" && k > WARM + 8);
  assert.ok(cut > 0, "the encoder sent column repair");
  const before = wire.slice(0, cut);
  const during = wire.slice(cut);
  // one media packet lost in each matrix that is whole after the cut, a different place each time
  const lost = new Set<number>();
  const firstIndex = during.find((p) => p.leg === "media")!.index;
  for (let m = Math.ceil(firstIndex / (L * D)); m < COUNT / (L * D) - 1; m++) lost.add(m * L * D + ((m * 5) % (L * D)));
  const sink = await RtpSink.open();
  const decBase = (await freeLegBases(1))[0]!;
  const ports = legPorts(decBase);
  // the proxy in a process of its own, so that it can be stopped
  const proxy = startCliProxy({
    filters: { fec: { path: filterWasm("fec") } },
    segments: [{
      name: "dec", listen: { address: LO, port: decBase }, destinations: [{ address: LO, port: sink.port }],
      legs: [{ name: "fec-column", portOffset: 2, send: false }, { name: "fec-row", portOffset: 4, send: false }],
      chain: [{ filter: "fec", config: { mode: "decode", columns: L, rows: D, maxDelayMs: 300 } }],
    }],
  });
  const senders = await Promise.all([0, 1, 2].map(() => bindUdp()));
  const from: Record<Leg, Socket> = { media: senders[0]!, column: senders[1]!, row: senders[2]! };
  const send = (p: WirePacket): void => void from[p.leg].send(p.bytes, ports[p.leg], LO);
  let stopped: number[] = [];
  try {
    // packet 0 until the proxy passes it: the decoder has started and the media sender is known
    await waitFor(async () => {
      send(wire.find((p) => p.index === 0)!);
      await sleep(100);
      return sink.received > 0;
    }, 15_000, `the proxy to start and pass packet 0\n${proxy.output()}`);
    for (const p of before) {
      if (p.index === 0) continue;
      send(p);
      await sleep(1); // as they came, more or less: no stall yet
    }
    await waitFor(() => sink.received >= before.filter((p) => p.leg === "media").length, 5000, "the packets before the stall");
    const watch = new DropWatch([ports.media, ports.column, ports.row, sink.port]);
    stopped = stopTree(proxy.pid);
    await sleep(20);
    for (const p of during) if (!lost.has(p.index)) send(p);
    await sleep(50);
    resumeTree(stopped);
    stopped = [];
    await settled(() => sink.received, 1000, 10_000);
    const drops = watch.since();
    assert.is(drops.total, 0, `no kernel drop (the count below would be unknowable): ${JSON.stringify(drops.byPort)}`);
    const wrong: string[] = [];
    for (let i = 0; i < COUNT; i++) {
      const seq = streamSeq(i, SEQ0);
      if (sink.copies(seq) !== 1) wrong.push(`${i}${lost.has(i) ? " (lost)" : ""}: ${sink.copies(seq)} copies`);
      else if (!sink.identical(seq, streamPacket(i, SEQ0))) wrong.push(`${i}: bytes differ`);
    }
    assert.ok(lost.size >= 20, `losses to rebuild (${lost.size})`);
    assert.equal(wrong, [], `every packet once and intact, the ${lost.size} lost rebuilt (${sink.received} received)\n${proxy.output()}`);
    const order = sink.order.map((seq) => (seq - SEQ0) & 0xffff);
    assert.equal(order, Array.from({ length: COUNT }, (_, i) => i), "in order");
  } finally {
    resumeTree(stopped);
    for (const s of senders) s.close();
    sink.close();
    await proxy.stop();
  }
});

test.run();
