// The channel a worker process keeps its listen sockets alive by (runtime/native/msm_udp.c,
// "Listen sockets a worker process keeps"), both ends in this process: the worker's side shares
// its kept sockets and tells of those it closed or handed over; the proxy's side parks what arrives
// under the worker's number, lets go of what was closed, and hands sockets on, closing its own.
import * as assert from "uvu/assert";
import { closeSync } from "node:fs";
import { createSocket } from "node:dgram";
import { META_STRIDE, RECEIVE_SLOT, socketHandle, type UdpAddon } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { bindUdp, builtUdpAddon as addon, freePortRun, portFree, waitFor } from "./lib/udp.js";

const test = suite("keep channel", { timeoutMs: 30_000 });

/** Owners far from those the proxies of this process (and test/parked-sockets) number their workers with. */
let nextOwner = 2_000_000;

/** Binds 127.0.0.1:port and takes it over as a worker process does: kept for `owner`, no exit hook. */
async function kept(a: UdpAddon, owner: number, port: number, detail = "d"): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(port, "127.0.0.1", resolve));
  const fd = a.takeSocket(socketHandle(socket).fd, false, owner, `127.0.0.1|${port}`, detail);
  socket.close();
  return fd;
}

const place = (port: number): string => `127.0.0.1|${port}`;
/** Bun has no libuv poll handle: the addon's watcher thread watches there (docs/batched-io.md). */
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

test("shared sockets outlive the worker's descriptors; a closed one is let go of; a handed one moves on with what it holds", async () => {
  const a = addon();
  const [proxyEnd, workerEnd] = a.channelPair();
  const worker = nextOwner++;
  const held = nextOwner++; // the proxy's number for what it holds of the worker's (in one process the two tables are one)
  const [p1, p2, p3] = await freePortRun(3).then((p) => [p, p + 1, p + 2]);
  const fds = [await kept(a, worker, p1), await kept(a, worker, p2), await kept(a, worker, p3)];
  const tx = await bindUdp();
  try {
    assert.is(a.shareKept(workerEnd, worker), 0, "everything sent");
    assert.is(a.receiveKept(proxyEnd, held), 3);
    assert.equal(a.parkedPlaces(held).sort(), [place(p1), place(p2), place(p3)].sort());
    assert.is(a.shareKept(workerEnd, worker), 0);
    assert.is(a.receiveKept(proxyEnd, held), 0, "each socket is sent once");

    // the worker closes one: the proxy lets go of it, and the port is free
    a.closeSocket(fds[0]!, false);
    assert.is(await portFree(p1), false, "the proxy's copy still holds it until it hears");
    a.shareKept(workerEnd, worker);
    a.receiveKept(proxyEnd, held);
    assert.equal(a.parkedPlaces(held).sort(), [place(p2), place(p3)].sort());
    assert.is(await portFree(p1), true, "closed everywhere");

    // the worker's descriptors all go (a killed process): the proxy's copies keep the rest bound, with what arrives
    a.closeSocket(fds[2]!, false);
    assert.ok(a.handKept(fds[1]!), "a shared socket is handed over");
    assert.is(a.shareKept(workerEnd, worker), 0);
    a.receiveKept(proxyEnd, held);
    assert.equal(a.parkedPlaces(held, true), [place(p2)], "marked handed over");
    assert.equal(a.parkedPlaces(held).sort(), [place(p2)].sort(), "and the one closed after it let go of");
    tx.send(Buffer.from("late"), p2, "127.0.0.1");

    // the proxy hands it to another worker (the other end again), closing its own copy
    const next = nextOwner++;
    assert.is(a.sendParked(proxyEnd, held, "", true), 0);
    assert.equal(a.parkedPlaces(held), [], "the proxy's copy closed as it was sent");
    assert.is(a.receiveKept(workerEnd, -1), 1, "parked under the owner the record names");
    assert.is(a.claimParked(-1, place(p2), "other", next), -1, "set up otherwise: closed, not claimed");
    assert.is(await portFree(p2), true, "nothing else held it");
  } finally {
    tx.close();
    closeSync(proxyEnd);
    closeSync(workerEnd);
  }
});

test("a replacement claims what the proxy handed it, with the datagram that waited, and closes what it did not claim", async () => {
  const a = addon();
  const [proxyEnd, workerEnd] = a.channelPair();
  const old = nextOwner++;
  const held = nextOwner++;
  const port = await freePortRun(2);
  const fds = [await kept(a, old, port, "mine"), await kept(a, old, port + 1, "mine")];
  const tx = await bindUdp();
  const data = new Uint8Array(4 * RECEIVE_SLOT);
  const meta = new Int32Array(4 * META_STRIDE);
  const arena = a.createArena(data, meta, RECEIVE_SLOT, new Int32Array(8));
  try {
    a.shareKept(workerEnd, old);
    a.receiveKept(proxyEnd, held);
    for (const fd of fds) a.closeSocket(fd, false); // killed: no removal ever reaches the proxy
    tx.send(Buffer.from("waited"), port, "127.0.0.1");
    assert.is(await portFree(port), false);
    assert.is(a.sendParked(proxyEnd, held, place(port)), 0, "one place");
    assert.equal(a.parkedPlaces(held), [place(port + 1)], "the other stays with the proxy");
    a.receiveKept(workerEnd, -1);
    const fd = a.claimParked(-1, place(port), "mine", nextOwner++);
    assert.ok(fd >= 0, "claimed");
    let got = "";
    const p = a.attach(fd, arena, (count) => {
      for (let i = 0; i < count; i++) got += Buffer.from(data.subarray(i * RECEIVE_SLOT, i * RECEIVE_SLOT + meta[i * META_STRIDE]!)).toString();
    }, isBun);
    await waitFor(() => got === "waited", 3000, "the datagram that waited in the handed socket");
    a.close(p);
    a.closeSocket(fd, true);
    assert.is(await portFree(port), true);
    // the proxy's release of what nobody claimed
    assert.is(a.releaseParked(held), 1);
    assert.is(await portFree(port + 1), true);
  } finally {
    tx.close();
    closeSync(proxyEnd);
    closeSync(workerEnd);
  }
});

test("a broken channel says so; a socket not shared is not handed over (the caller closes it)", async () => {
  const a = addon();
  const [proxyEnd, workerEnd] = a.channelPair();
  const owner = nextOwner++;
  const port = await freePortRun(1);
  const fd = await kept(a, owner, port);
  try {
    assert.not.ok(a.handKept(fd), "never shared: the proxy has no copy to keep it bound");
    closeSync(proxyEnd);
    assert.is(a.shareKept(workerEnd, owner), -1, "the other end is gone");
  } finally {
    a.closeSocket(fd, false);
    closeSync(workerEnd);
  }
  assert.is(await portFree(port), true);
});

test.run();
