// UDP GSO on the batched-I/O addon's sends (runtime/native/msm_udp.c, send_batch): consecutive
// packets of one size to one destination leave as one message, the kernel cuts them apart, and
// every receiver must see exactly the datagrams it would have seen without GSO, in order. Sent
// from the addon straight (an attached send-only socket), received by node:dgram; the refused
// sizes (over the path's MTU) in a network namespace whose loopback has a smaller MTU.
import * as assert from "uvu/assert";
import { createSocket, type Socket } from "node:dgram";
import { fileURLToPath } from "node:url";
import { BatchedIo, loadAddon, socketHandle } from "../runtime/dataplane/batched-io.js";
import { SegmentStats } from "../runtime/chain/stats.js";
import { ADDON_CHILD_PRELUDE } from "./lib/addon-child.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { allOf, peer, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";

const test = suite("batched-io: UDP GSO");
const BATCHED_IO = fileURLToPath(new URL("../runtime/dataplane/batched-io.js", import.meta.url));
const LO = "127.0.0.1";
const gsoPeer = peer("UDP GSO in the kernel and the batched-I/O addon", "Linux 4.18 or later, and `npm install` (builds the addon)", () => loadAddon()?.segmentationSupported() === true);

const enum R { Sent, Queued, Backpressure, Failed, Messages }

/** A packet whose bytes say which it is: index in the first two, then a pattern of its own. */
function packetAt(memory: Uint8Array, offset: number, length: number, index: number): void {
  for (let i = 0; i < length; i++) memory[offset + i] = (index * 7 + i) & 0xff;
  if (length >= 2) {
    memory[offset] = index >> 8;
    memory[offset + 1] = index & 0xff;
  }
}

function expectedPacket(length: number, index: number): Uint8Array {
  const m = new Uint8Array(length);
  packetAt(m, 0, length, index);
  return m;
}

interface Receiver {
  readonly socket: Socket;
  readonly got: Buffer[];
  readonly port: number;
}

async function receiver(): Promise<Receiver> {
  const socket = createSocket("udp4");
  const got: Buffer[] = [];
  socket.on("message", (m) => got.push(m));
  await new Promise<void>((r) => socket.bind(0, LO, r));
  socket.setRecvBufferSize(4 << 20);
  return { socket, got, port: socket.address().port };
}

async function waitFor(what: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!what() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}

/** An attached send-only socket with `peers` in its table; close() releases all. */
async function sender(peers: number[], gso: boolean) {
  const addon = loadAddon()!;
  const tx = createSocket("udp4");
  await new Promise<void>((r) => tx.bind(0, LO, r));
  const result = new Int32Array(7);
  const arena = addon.createArena(new Uint8Array(64), new Int32Array(11), 64, result);
  const port = addon.attach(socketHandle(tx).fd, arena, null);
  const on = addon.setSegmentation(port, gso);
  peers.forEach((p, i) => addon.setPeer(port, i, LO, p));
  return {
    on,
    result,
    /** Sends packets [length, peer] from one memory, entries in this order; returns what the addon accepted. */
    send(packets: Array<[number, number]>, indexes: number[]): number {
      const total = packets.reduce((n, [len]) => n + len, 0);
      const memory = new Uint8Array(total);
      const entries = new Int32Array(packets.length * 3);
      let at = 0;
      packets.forEach(([len, p], i) => {
        packetAt(memory, at, len, indexes[i]!);
        entries.set([at, len, p], i * 3);
        at += len;
      });
      return addon.send(port, memory, entries, packets.length);
    },
    close() {
      addon.close(port);
      tx.close();
    },
  };
}

function assertArrived(r: Receiver, expected: Array<[number, number]>, what: string): void {
  assert.is(r.got.length, expected.length, `${what}: datagrams arrived`);
  expected.forEach(([len, index], i) => {
    assert.is(r.got[i]!.length, len, `${what}: datagram ${i} length`);
    assert.ok(Buffer.from(expectedPacket(len, index)).equals(r.got[i]!), `${what}: datagram ${i} is packet ${index}, unchanged and in order`);
  });
}

peerTest(test, gsoPeer, "100 same-size packets to one destination: 2 messages (65,000 bytes each at most), 100 datagrams in order", async () => {
  const rx = await receiver();
  const tx = await sender([rx.port], true);
  try {
    assert.ok(tx.on, "setSegmentation(port, true) says GSO is on");
    const packets = Array.from({ length: 100 }, (): [number, number] => [1200, 0]);
    const indexes = packets.map((_, i) => i);
    assert.is(tx.send(packets, indexes), 100);
    assert.equal([tx.result[R.Sent], tx.result[R.Failed], tx.result[R.Messages]], [100, 0, 2], "sent, failed, messages (54 + 46 datagrams)");
    await waitFor(() => rx.got.length >= 100);
    assertArrived(rx, indexes.map((i) => [1200, i]), "one destination");
  } finally {
    tx.close();
    rx.socket.close();
  }
});

peerTest(test, gsoPeer, "a segment counts the messages its sends took (msm_segment_send_messages_total): 2 for 100 same-size packets with GSO, 100 without", async () => {
  for (const gso of [true, false]) {
    const rx = await receiver();
    const tx = createSocket("udp4");
    await new Promise<void>((r) => tx.bind(0, LO, r));
    const io = new BatchedIo({ receive: "native", send: "native", watch: "loop", gso, note: "" }, 1);
    const port = io.attach(tx, null);
    io.setPeer(port, 0, LO, rx.port);
    try {
      const stats = new SegmentStats();
      const memory = new Uint8Array(100 * 1200);
      io.begin(stats);
      for (let i = 0; i < 100; i++) {
        packetAt(memory, i * 1200, 1200, i);
        io.add(port, memory, i * 1200, 1200, 0, 0);
      }
      io.flush();
      assert.equal([stats.packetsOut, stats.messagesOut], [100, gso ? 2 : 100], `GSO ${gso ? "on" : "off"}: packets out, messages`);
      await waitFor(() => rx.got.length >= 100);
      assert.is(rx.got.length, 100);
    } finally {
      io.close(port);
      tx.close();
      rx.socket.close();
    }
  }
});

peerTest(test, gsoPeer, "mixed sizes: a shorter packet ends a message, a longer one starts the next; each arrives as sent", async () => {
  const rx = await receiver();
  const tx = await sender([rx.port], true);
  try {
    const lengths = [1200, 1200, 1200, 800, 1200, 1200, 1400, 1400, 100, 0, 60];
    const packets = lengths.map((l): [number, number] => [l, 0]);
    const indexes = lengths.map((_, i) => i);
    assert.is(tx.send(packets, indexes), lengths.length);
    // [1200 x3, 800] [1200 x2] [1400 x2, 100] [0] [60]: an empty datagram is never part of a message of many
    assert.equal([tx.result[R.Sent], tx.result[R.Failed], tx.result[R.Messages]], [lengths.length, 0, 5], "sent, failed, messages");
    await waitFor(() => rx.got.length >= lengths.length);
    assertArrived(rx, lengths.map((l, i) => [l, i]), "mixed sizes");
  } finally {
    tx.close();
    rx.socket.close();
  }
});

peerTest(test, gsoPeer, "a fan-out's entries (each packet to every destination in turn) leave as one message per destination; each gets its packets in order", async () => {
  const rxs = await Promise.all([receiver(), receiver(), receiver()]);
  const tx = await sender(rxs.map((r) => r.port), true);
  try {
    const packets: Array<[number, number]> = [];
    const indexes: number[] = [];
    for (let i = 0; i < 20; i++) for (let d = 0; d < rxs.length; d++) {
      packets.push([1000, d]);
      indexes.push(i);
    }
    assert.is(tx.send(packets, indexes), 60);
    assert.equal([tx.result[R.Sent], tx.result[R.Messages]], [60, 3], "sent, messages");
    await waitFor(() => rxs.every((r) => r.got.length >= 20));
    rxs.forEach((r, d) => assertArrived(r, Array.from({ length: 20 }, (_, i) => [1000, i]), `destination ${d}`));
  } finally {
    tx.close();
    for (const r of rxs) r.socket.close();
  }
});

peerTest(test, gsoPeer, "with GSO off every datagram is its own message", async () => {
  const rx = await receiver();
  const tx = await sender([rx.port], false);
  try {
    assert.not.ok(tx.on, "setSegmentation(port, false) says off");
    const packets = Array.from({ length: 10 }, (): [number, number] => [1200, 0]);
    assert.is(tx.send(packets, packets.map((_, i) => i)), 10);
    assert.equal([tx.result[R.Sent], tx.result[R.Messages]], [10, 10], "sent, messages");
    await waitFor(() => rx.got.length >= 10);
    assertArrived(rx, packets.map((_, i) => [1200, i]), "GSO off");
  } finally {
    tx.close();
    rx.socket.close();
  }
});

peerTest(test, gsoPeer, "a connected socket's pending ICMP error fails one GSO message, which then leaves one by one; the next run is one message again", async () => {
  const addon = loadAddon()!;
  const gone = createSocket("udp4");
  await new Promise<void>((r) => gone.bind(0, LO, r));
  const deadPort = gone.address().port;
  await new Promise<void>((r) => gone.close(() => r()));
  const tx = createSocket("udp4");
  await new Promise<void>((r) => tx.bind(0, LO, r));
  await new Promise<void>((r) => tx.connect(deadPort, LO, () => r()));
  const result = new Int32Array(7);
  const arena = addon.createArena(new Uint8Array(64), new Int32Array(11), 64, result);
  const port = addon.attach(socketHandle(tx).fd, arena, null);
  // node:dgram must not read the error off the socket first
  socketHandle(tx).recvStop?.();
  tx.on("error", () => undefined);
  let rx: Receiver | undefined;
  try {
    assert.ok(addon.setSegmentation(port, true));
    const run = (first: number): number => {
      const memory = new Uint8Array(10 * 1200);
      const entries = new Int32Array(30);
      for (let i = 0; i < 10; i++) {
        packetAt(memory, i * 1200, 1200, first + i);
        entries.set([i * 1200, 1200, -1], i * 3);
      }
      return addon.send(port, memory, entries, 10);
    };
    // nobody at the connected port: the kernel's port unreachable leaves an error on the socket
    run(0);
    await new Promise((r) => setTimeout(r, 100));
    rx = await new Promise<Receiver>((resolve) => {
      const socket = createSocket("udp4");
      const got: Buffer[] = [];
      socket.on("message", (m) => got.push(m));
      socket.bind(deadPort, LO, () => resolve({ socket, got, port: deadPort }));
    });
    assert.is(run(10), 10);
    assert.equal([result[R.Sent], result[R.Failed], result[R.Messages]], [10, 0, 10], "the message the error failed, sent one by one");
    assert.is(run(20), 10);
    assert.equal([result[R.Sent], result[R.Messages]], [10, 1], "the same size still goes as one message");
    const r = rx;
    await waitFor(() => r.got.length >= 20);
    assertArrived(r, Array.from({ length: 20 }, (_, i) => [1200, 10 + i]), "after the error");
  } finally {
    addon.close(port);
    tx.close();
    rx?.socket.close();
  }
});

// Runs in the namespace (loopback MTU 1,000): datagrams over the MTU in a GSO message are refused
// by the kernel and must leave one by one, fragmented as without GSO; the size is then not tried
// with GSO again, while smaller packets still are.
const CHILD = `${ADDON_CHILD_PRELUDE}
const on = addon.setSegmentation(port, true);
addon.setPeer(port, 0, "127.0.0.1", rx.address().port);
const memory = new Uint8Array(12000).fill(9);
const send = (len, n) => {
  const entries = new Int32Array(n * 3);
  for (let i = 0; i < n; i++) entries.set([i * len, len, 0], i * 3);
  const accepted = addon.send(port, memory, entries, n);
  return { accepted, outcome: Array.from(result) };
};
const big1 = send(1200, 10), big2 = send(1200, 10), small = send(500, 10);
await new Promise((r) => setTimeout(r, 300));
console.log(JSON.stringify({ on, big1, big2, small, lengths }));
addon.close(port);
rx.close();
tx.close();
`;

interface Outcome { accepted: number; outcome: number[] }

peerTest(test, allOf(netnsPeer, gsoPeer), "packets over the path's MTU: the GSO message refused, each sent alone and fragmented; that size no longer tried, smaller ones still are", () => {
  const lab = NetnsLab.create(["gso"]);
  try {
    lab.execSync("gso", "ip", ["link", "set", "lo", "mtu", "1000"]);
    const out = lab.execSync("gso", process.execPath, ["--input-type=module", "-e", CHILD, BATCHED_IO]);
    const r = JSON.parse(out.trim().split("\n").pop()!) as { on: boolean; big1: Outcome; big2: Outcome; small: Outcome; lengths: number[] };
    assert.ok(r.on, "GSO on");
    assert.equal(r.big1.outcome.slice(0, 5), [10, 0, 0, 0, 10], "first 1,200-byte batch: sent, queued, backpressure, failed, messages (one each)");
    assert.equal(r.big2.outcome.slice(0, 5), [10, 0, 0, 0, 10], "second 1,200-byte batch: sent one by one");
    assert.equal(r.small.outcome.slice(0, 5), [10, 0, 0, 0, 1], "500-byte batch: one GSO message");
    assert.equal(r.lengths, [...Array(20).fill(1200), ...Array(10).fill(500)], "every datagram arrived whole (reassembled), in order");
  } finally {
    lab.close();
  }
}, { timeoutMs: 30_000 });

test.run();
