// A listen socket a change leaves bound for the open step (a segment that moves to another worker
// hands it over; a segment that gets new sockets takes it back) is wanted only where the new config
// still listens at its place. One at a place the change leaves must not hold its port against a
// segment that binds that port in the same change at an address that overlaps it (0.0.0.0 against
// 127.0.0.1): before these sockets were parked they closed at the commit, and that bind succeeded.
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { startProxy } from "./lib/proxy.js";

const test = suite("parked listen sockets at places a change leaves", { timeoutMs: 60_000 });

type Handle = { open(): Promise<unknown> };
const workersOf = (proxy: object): Handle[] => (proxy as { workers: Handle[] }).workers;

test("a segment moved with a new listen port frees its old one for another segment's overlapping bind in the same change", async () => {
  const [p0, p1, p2] = [await freePortPair(), await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const seg = (name: string, worker: number, address: string, port: number) => ({
    name, worker, rtcpMux: true, listen: { address, port }, destinations: [{ address: "127.0.0.1", port: sink.port }],
  });
  const before: ProxyConfigInput = { workers: 2, segments: [seg("moving", 0, "127.0.0.1", p0), seg("steady", 1, "127.0.0.1", p1)] };
  // moving goes to worker 1 on a new port; its old port goes to a new segment at 0.0.0.0
  const after: ProxyConfigInput = { workers: 2, segments: [seg("moving", 1, "127.0.0.1", p2), seg("steady", 1, "127.0.0.1", p1), seg("taker", 0, "0.0.0.0", p0)] };
  const { proxy } = await startProxy(before);
  assert.is(proxy.io.receive, "native", `this needs the batched-I/O addon under Node (${proxy.io.note})`);
  const tx = await bindUdp();
  try {
    const outcome = await proxy.apply(validateProxyConfig(after)).then(() => "applied", (e: unknown) => (e as Error).message);
    assert.is(outcome, "applied");
    tx.send(indexedRtp(0), p0, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the new segment forwarding on the old port");
    tx.send(indexedRtp(1), p2, "127.0.0.1");
    await waitFor(() => sink.received >= 2, 5000, "the moved segment forwarding on its new port");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  for (const port of [p0, p2]) (await bindUdp(port)).close();
});

test("a segment given a new listen port and new sockets frees its old one before another worker's open step binds it at an overlapping address", async () => {
  const [p0, p1, p2] = [await freePortPair(), await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const seg = (name: string, worker: number, address: string, port: number) => ({
    name, worker, rtcpMux: true, listen: { address, port }, destinations: [{ address: "127.0.0.1", port: sink.port }],
  });
  const before: ProxyConfigInput = { workers: 2, segments: [seg("changing", 0, "127.0.0.1", p0), seg("steady", 1, "127.0.0.1", p1)] };
  const after: ProxyConfigInput = { workers: 2, segments: [seg("changing", 0, "127.0.0.1", p2), seg("steady", 1, "127.0.0.1", p1), seg("taker", 1, "0.0.0.0", p0)] };
  const { proxy } = await startProxy(before);
  assert.is(proxy.io.receive, "native", `this needs the batched-I/O addon under Node (${proxy.io.note})`);
  const tx = await bindUdp();
  try {
    // the open steps run side by side: worker 1's binds first here (as when worker 0 is busy)
    const [w0, w1] = workersOf(proxy);
    const [open0, open1] = [w0!.open.bind(w0), w1!.open.bind(w1)];
    let w1Opened: () => void = () => {};
    const w1Done = new Promise<void>((r) => (w1Opened = r));
    w1!.open = () => open1().finally(w1Opened);
    w0!.open = async () => {
      await w1Done;
      return open0();
    };
    const outcome = await proxy.apply(validateProxyConfig(after)).then(() => "applied", (e: unknown) => (e as Error).message);
    assert.is(outcome, "applied");
    tx.send(indexedRtp(0), p0, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the new segment forwarding on the old port");
    tx.send(indexedRtp(1), p2, "127.0.0.1");
    await waitFor(() => sink.received >= 2, 5000, "the changed segment forwarding on its new port");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
  for (const port of [p0, p2]) (await bindUdp(port)).close();
});

/** Bytes waiting in the receive queues of the IPv4 UDP sockets bound at local `port` (/proc/net/udp). */
async function queuedAt(port: number): Promise<number> {
  const lines = (await readFile("/proc/net/udp", "utf8")).split("\n").slice(1);
  let bytes = 0;
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || parseInt(f[1]!.split(":")[1]!, 16) !== port) continue;
    bytes += parseInt(f[4]!.split(":")[1]!, 16);
  }
  return bytes;
}

test("what reached a moved segment's old port during the move is not forwarded by another segment that takes that port in the same change", async () => {
  const [p0, p1, p2] = [await freePortPair(), await freePortPair(), await freePortPair()];
  const [sinkMoving, sinkTaker] = [await Sink.open(), await Sink.open()];
  const seg = (name: string, worker: number, port: number, sink: number) => ({
    name, worker, rtcpMux: true, listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: sink }],
  });
  const before: ProxyConfigInput = { workers: 2, segments: [seg("moving", 0, p0, sinkMoving.port), seg("steady", 1, p1, 9)] };
  // moving goes to worker 1 on a new port; its old place (the same address and port) goes to another segment
  const after: ProxyConfigInput = { workers: 2, segments: [seg("moving", 1, p2, sinkMoving.port), seg("steady", 1, p1, 9), seg("taker", 0, p0, sinkTaker.port)] };
  const { proxy } = await startProxy(before);
  assert.is(proxy.io.receive, "native", `this needs the batched-I/O addon under Node (${proxy.io.note})`);
  const tx = await bindUdp();
  try {
    // packets for moving reach its old port after its old worker let it go, before taker binds there
    const w0 = workersOf(proxy)[0]!;
    const open0 = w0.open.bind(w0);
    w0.open = async () => {
      for (let i = 0; i < 3; i++) tx.send(indexedRtp(i), p0, "127.0.0.1");
      await waitFor(async () => (await queuedAt(p0)) > 0, 5000, "the packets queued at the old port");
      return open0();
    };
    await proxy.apply(validateProxyConfig(after));
    tx.send(indexedRtp(100), p0, "127.0.0.1");
    // what taker's socket held ahead of this packet has reached its sink before it
    await waitFor(() => sinkTaker.keys.has(100), 5000, "taker forwarding on the port");
    assert.equal([...sinkTaker.keys.keys()], [100], "taker forwarded only what was sent to it");
  } finally {
    tx.close();
    sinkMoving.close();
    sinkTaker.close();
    await proxy.close();
  }
});

test.run();
