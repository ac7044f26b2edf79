// The addon's parked sockets (runtime/native/msm_udp.c, "Listen sockets a worker thread leaves
// bound"): a keepable socket outlives the worker thread that took it, with what it holds; the
// replacement claims it only as it was set up; whatever is not claimed is closed on release.
import * as assert from "uvu/assert";
import { Worker } from "node:worker_threads";
import { META_STRIDE, RECEIVE_SLOT } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { bindUdp, builtUdpAddon as addon, freePortRun, portFree, waitFor } from "./lib/udp.js";

const test = suite("parked sockets", { timeoutMs: 30_000 });

/** Owners far from those the proxies of this process number their workers with. */
let nextOwner = 1_000_000;

/** The descriptor a thread says, once the thread has ended (its exit listened for from the start: it may end before the message is handled). */
async function descriptorThenExit(worker: Worker): Promise<number> {
  const exited = new Promise((resolve) => worker.once("exit", resolve));
  const fd = await new Promise<number>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  await exited;
  return fd;
}

/** Runs test/lib/park-worker in a thread that ends with the socket open; its descriptor. */
async function socketLeftBy(owner: number, port: number, detail: string, park: boolean, hand = false): Promise<number> {
  const worker = new Worker(new URL("./lib/park-worker.js", import.meta.url), { workerData: { owner, port, detail, park, hand } });
  return descriptorThenExit(worker);
}

test("a keepable socket stays bound after its thread ends, and the claim gets it with the datagram that arrived meanwhile", async () => {
  const a = addon();
  const owner = nextOwner++;
  const port = await freePortRun(1);
  await socketLeftBy(owner, port, "d1", true);
  assert.equal(a.parkedPlaces(owner), [`127.0.0.1|${port}`]);
  assert.is(await portFree(port), false, "still bound");
  const tx = await bindUdp();
  tx.send(Buffer.from("held"), port, "127.0.0.1");
  const fd = a.claimParked(-1, `127.0.0.1|${port}`, "d1", -1);
  assert.ok(fd >= 0, "claimed (from any owner)");
  assert.equal(a.parkedPlaces(owner), [], "no longer parked");
  const data = new Uint8Array(4 * RECEIVE_SLOT);
  const meta = new Int32Array(4 * META_STRIDE);
  const arena = a.createArena(data, meta, RECEIVE_SLOT, new Int32Array(8));
  let got = "";
  const p = a.attach(fd, arena, (count) => {
    for (let i = 0; i < count; i++) got += Buffer.from(data.subarray(i * RECEIVE_SLOT, i * RECEIVE_SLOT + meta[i * META_STRIDE]!)).toString();
  });
  try {
    await waitFor(() => got === "held", 3000, "the datagram the parked socket held");
  } finally {
    a.close(p);
    a.closeSocket(fd, true);
    tx.close();
  }
  assert.is(await portFree(port), true, "closed by its new owner");
});

test("a claim with another detail closes it (its place can be bound again), and so does a release; a socket not keepable closes with its thread", async () => {
  const a = addon();
  const owner = nextOwner++;
  const [p1, p2, p3] = [await freePortRun(1), await freePortRun(1), await freePortRun(1)];
  await socketLeftBy(owner, p1, "rcvbuf 4 MiB", true);
  await socketLeftBy(owner, p2, "rcvbuf 4 MiB", true);
  await socketLeftBy(owner, p3, "", false);
  assert.is(await portFree(p3), true, "not keepable: closed at the thread's end");
  assert.equal(a.parkedPlaces(owner).sort(), [`127.0.0.1|${p1}`, `127.0.0.1|${p2}`].sort());
  assert.is(a.claimParked(owner, `127.0.0.1|${p1}`, "rcvbuf 8 MiB", -1), -1, "set up otherwise: not handed over");
  assert.is(await portFree(p1), true, "and closed");
  assert.is(a.claimParked(owner + 1, `127.0.0.1|${p2}`, "rcvbuf 4 MiB", -1), -1, "another owner's: not found");
  assert.is(a.releaseParked(owner), 1);
  assert.is(await portFree(p2), true, "released: closed");
  assert.equal(a.parkedPlaces(owner), []);
});

test("a claimed socket is keepable for its new owner: parked again when that thread ends", async () => {
  const a = addon();
  const [first, second] = [nextOwner++, nextOwner++];
  const port = await freePortRun(1);
  await socketLeftBy(first, port, "d", true);
  // a thread of its own claims it for `second` and ends with it open
  const worker = new Worker(`
    const { parentPort, workerData } = require("node:worker_threads");
    const addon = require(workerData.path);
    parentPort.postMessage(addon.claimParked(workerData.first, workerData.place, "d", workerData.second));
  `, { eval: true, workerData: { path: process.env.MSM_NATIVE_ADDON ?? new URL("../../runtime/native/build/Release/msm_udp.node", import.meta.url).pathname, first, second, place: `127.0.0.1|${port}` } });
  const fd = await descriptorThenExit(worker);
  assert.ok(fd >= 0, "claimed in the thread");
  assert.equal(a.parkedPlaces(first), []);
  assert.equal(a.parkedPlaces(second), [`127.0.0.1|${port}`], "parked under its new owner");
  assert.is(a.releaseParked(second), 1);
  assert.is(await portFree(port), true);
});

test("a release of what a worker handed over leaves what its thread's end parked (a worker that crashed just now, its exit not seen yet)", async () => {
  const a = addon();
  const owner = nextOwner++;
  const [handed, exited] = [await freePortRun(1), await freePortRun(1)];
  await socketLeftBy(owner, handed, "d", true, true);
  await socketLeftBy(owner, exited, "d", true);
  assert.is(a.releaseParked(owner, true), 1, "the handed-over one");
  assert.is(await portFree(handed), true);
  assert.equal(a.parkedPlaces(owner), [`127.0.0.1|${exited}`], "the one its thread's end parked stays for the replacement");
  assert.is(a.releaseParked(owner), 1);
  assert.is(await portFree(exited), true);
});

test.run();
