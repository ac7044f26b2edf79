// Grouped sockets (a segment's media socket and its legs'): after a stall, the addon hands the
// packets of all of them over in the kernel's arrival order, whichever socket woke the loop;
// a member that closes leaves the group; a group that cannot be made is refused.
import * as assert from "uvu/assert";
import { createSocket } from "node:dgram";
import { BatchedIo, loadAddon, planIo, RECEIVE_SLOT, socketHandle, type NativePort } from "../runtime/dataplane/batched-io.js";
import { peer, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";
import { bindUdp, waitFor } from "./lib/udp.js";

const test = suite("batched I/O: grouped sockets", { timeoutMs: 30_000 });
const LO = "127.0.0.1";
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const addon = peer("the batched-I/O addon", "built by `npm install` (python3, make, a C compiler; node scripts/build-native.mjs)", () => planIo("auto").send === "native");
/** Bun has no libuv poll handles: only the watcher thread. */
const MODES = isBun ? (["thread"] as const) : (["loop", "thread"] as const);

/** A send-only port with `peers` in its table: send() is one synchronous sendmmsg, packets in the order given. */
async function sender(peers: number[]) {
  const a = loadAddon()!;
  const tx = createSocket("udp4");
  await new Promise<void>((r) => tx.bind(0, LO, r));
  const arena = a.createArena(new Uint8Array(64), new Int32Array(11), 64, new Int32Array(7));
  const port = a.attach(socketHandle(tx).fd, arena, null);
  peers.forEach((p, i) => a.setPeer(port, i, LO, p));
  return {
    /** Packet k carries k (u32 at byte 0) and goes to peer to[k]. */
    send(to: number[]): void {
      const memory = new Uint8Array(to.length * 100);
      const view = new DataView(memory.buffer);
      const entries = new Int32Array(to.length * 3);
      to.forEach((p, k) => {
        view.setUint32(k * 100, k);
        entries.set([k * 100, 100, p], k * 3);
      });
      assert.is(a.send(port, memory, entries, to.length), to.length, "the kernel took every packet");
    },
    close(): void {
      a.close(port);
      tx.close();
    },
  };
}

/** Keeps the JS thread (and so the loop) from running for `ms`: a stall. */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** `members` sockets on an arena of `slots` (16: a share of 5 each for 3, so a backlog of 30 takes several reads of each). */
async function group(mode: "loop" | "thread", members: number, slots = 16, onPacket?: (member: number, k: number) => void) {
  const io = new BatchedIo({ receive: "native", send: "native", watch: mode, gso: false, note: "" }, slots);
  const view = new DataView(io.data.buffer, io.data.byteOffset, io.data.byteLength);
  const got: { member: number; k: number; waitedMs: number; waitedUs: number }[] = [];
  const sockets: { close(): void }[] = [];
  const ports: NativePort[] = [];
  const addresses: number[] = [];
  for (let m = 0; m < members; m++) {
    const raw = await bindUdp();
    addresses.push(raw.address().port);
    const socket = mode === "thread" ? io.take(raw) : raw;
    sockets.push(socket);
    ports.push(io.attach(socket, (count, first) => {
      for (let i = first; i < first + count; i++) {
        got.push({ member: m, k: view.getUint32(i * RECEIVE_SLOT), waitedMs: Date.now() - io.arrivalMs(i), waitedUs: io.waitedUs(i) });
        onPacket?.(m, got.at(-1)!.k);
      }
    }));
  }
  return {
    io, got, ports, addresses,
    /**
     * The kernel stamps datagrams as they arrive only once its timestamping is on, which it turns
     * on some time after the first socket asks (deferred work); until then a datagram is stamped
     * when read, and no wait looks like a stall. Sends probes until one shows the wait it had.
     */
    async stampsArrivals(tx: { send(to: number[]): void }): Promise<void> {
      const until = Date.now() + 5000;
      for (;;) {
        got.length = 0;
        tx.send([0]);
        stall(5);
        await waitFor(() => got.length > 0, 2000, "a probe");
        if (got[0]!.waitedMs >= 3) break;
        if (Date.now() > until) throw new Error(`the kernel does not stamp arrivals (a probe read 5 ms after it came waited ${got[0]!.waitedMs} ms)`);
        await new Promise((r) => setTimeout(r, 20));
      }
      got.length = 0;
    },
    sockets,
    close(): void {
      for (const p of ports) io.close(p);
      for (const s of sockets) s.close();
    },
  };
}

/** Packet k's socket, of `n`: media on socket 0, every third packet on socket 1, every fifth of the rest on socket 2. */
const spread = (n: number): number[] => Array.from({ length: n }, (_, k) => (k % 3 === 0 ? 1 : k % 5 === 0 ? 2 : 0));
const inOrder = (n: number): number[] => Array.from({ length: n }, (_, k) => k);

/** Sends packet k to socket to[k] while the loop is stalled, then lets it run until `done`. */
async function afterStall(tx: { send(to: number[]): void }, to: number[], done: () => boolean): Promise<void> {
  tx.send(to);
  stall(5);
  await waitFor(done, 5000, `the ${to.length} packets sent during a stall`);
}

for (const mode of MODES) {
  peerTest(test, addon, `${mode}: a stalled loop gets three sockets' backlogs in arrival order, not one socket's after another's`, async () => {
    const g = await group(mode, 3);
    const tx = await sender(g.addresses);
    try {
      await g.stampsArrivals(tx);
      g.io.group(g.ports);
      const to = spread(30);
      await afterStall(tx, to, () => g.got.length >= 30);
      assert.equal(g.got.map((x) => x.k), inOrder(30), "in the order they arrived");
      assert.equal(g.got.map((x) => x.member), to, "each from its socket");
      // a member that closes leaves the group; the others go on merged
      g.io.close(g.ports[1]!);
      g.got.length = 0;
      await afterStall(tx, to.map((m) => (m === 1 ? 2 : m)), () => g.got.length >= 30);
      assert.equal(g.got.map((x) => x.k), inOrder(30), "in order with one member gone");
    } finally {
      tx.close();
      g.close();
    }
  });

  peerTest(test, addon, `${mode}: receiveNow reads a group's backlogs at once, in arrival order, and a lone port's; each packet says how long it waited`, async () => {
    const g = await group(mode, 3);
    const tx = await sender(g.addresses);
    try {
      await g.stampsArrivals(tx);
      g.io.group([g.ports[0]!, g.ports[1]!]);
      // all in one turn of the loop: no wakeup can hand anything over before receiveNow does
      const to = spread(30);
      tx.send(to);
      stall(5);
      g.io.receiveNow(g.ports[0]!);
      const grouped = to.flatMap((m, k) => (m === 2 ? [] : [k]));
      assert.equal(g.got.map((x) => x.k), grouped, "the group's packets at once, in the order they arrived");
      for (const x of g.got) assert.ok(x.waitedUs >= 4000 && x.waitedUs < 1e6, `packet ${x.k} waited ${x.waitedUs} us (stalled 5 ms)`);
      g.got.length = 0;
      g.io.receiveNow(g.ports[2]!);
      assert.equal(g.got.map((x) => x.k), to.flatMap((m, k) => (m === 2 ? [k] : [])), "the lone port's");
      g.got.length = 0;
      g.io.receiveNow(g.ports[0]!);
      assert.equal(g.got, [], "nothing left");
    } finally {
      tx.close();
      g.close();
    }
  });

  peerTest(test, addon, `${mode}: receiveNow reads a wakeup's worth and says when more waits; from inside a callback it refuses`, async () => {
    // 4 slots: a wakeup reads 8 batches of 4
    let inside: string | undefined;
    const g = await group(mode, 1, 4, () => {
      if (inside !== undefined) return;
      try {
        g.io.receiveNow(g.ports[0]!);
        inside = "read";
      } catch (err) {
        inside = (err as Error).message;
      }
    });
    const tx = await sender(g.addresses);
    try {
      await g.stampsArrivals(tx);
      inside = undefined;
      tx.send(Array.from({ length: 100 }, () => 0));
      stall(5);
      assert.ok(g.io.receiveNow(g.ports[0]!), "more waits after the first 32");
      assert.is(g.got.length, 32);
      assert.match(inside ?? "", /inside a callback/, "receiveNow inside onBatch throws");
      let calls = 1;
      while (g.io.receiveNow(g.ports[0]!)) calls++;
      assert.equal(g.got.map((x) => x.k), inOrder(100), "all of it, in order, by repeated calls");
      assert.is(calls, 3, "three reads of 32 found more waiting; the fourth read the last 4");
    } finally {
      tx.close();
      g.close();
    }
  });

  peerTest(test, addon, `${mode}: a backlog far past a wakeup's budget (8 batches) still comes in arrival order`, async () => {
    // 4 slots: a share of 1 per socket, a budget of 32 packets and at most 256 in all, against a backlog of 240
    const g = await group(mode, 3, 4);
    const tx = await sender(g.addresses);
    try {
      await g.stampsArrivals(tx);
      g.io.group(g.ports);
      await afterStall(tx, spread(240), () => g.got.length >= 240);
      assert.equal(g.got.map((x) => x.k), inOrder(240), "in the order they arrived");
    } finally {
      tx.close();
      g.close();
    }
  });

  peerTest(test, addon, `${mode}: a callback that closes another socket of the group in the middle of a merge: the others go on in order`, async () => {
    let g: Awaited<ReturnType<typeof group>> | null = null;
    let closedAt = -1;
    g = await group(mode, 3, 16, (member, k) => {
      if (member === 0 && k >= 10 && closedAt < 0) {
        closedAt = k;
        g!.io.close(g!.ports[2]!); // its packets already read are not handed over
      }
    });
    const tx = await sender(g.addresses);
    try {
      await g.stampsArrivals(tx);
      g.io.group(g.ports);
      const to = spread(30);
      const expected = inOrder(30).filter((k) => to[k] !== 2);
      await afterStall(tx, to, () => g!.got.filter((x) => x.member !== 2).length >= expected.length);
      assert.ok(closedAt >= 10, "the callback closed socket 2");
      assert.equal(g.got.filter((x) => x.member !== 2).map((x) => x.k), expected, "the open sockets' packets in arrival order");
      assert.ok(g.got.filter((x) => x.member === 2).every((x) => x.k < closedAt), "nothing of the closed socket after its close");
    } finally {
      tx.close();
      g.io.close(g.ports[0]!);
      g.io.close(g.ports[1]!);
      for (const s of g.sockets) s.close();
    }
  });
}

peerTest(test, addon, "packets read without a stall still arrive, each socket's as it comes", async () => {
  const g = await group(MODES[0], 2);
  const tx = await sender(g.addresses);
  try {
    g.io.group(g.ports);
    for (let round = 0; round < 20; round++) {
      tx.send([round % 2]);
      await waitFor(() => g.got.length > round, 2000, `packet ${round}`);
    }
    assert.equal(g.got.map((x) => x.member), Array.from({ length: 20 }, (_, k) => k % 2));
  } finally {
    tx.close();
    g.close();
  }
});

peerTest(test, addon, "a group is refused when a port is in one already, sends only, or stands alone", async () => {
  const g = await group(MODES[0], 3);
  const tx = await sender([]);
  const sendOnly = await bindUdp();
  const sendPort = g.io.attach(sendOnly, null);
  try {
    assert.throws(() => g.io.group([g.ports[0]!]), /2 to 8 ports/);
    assert.throws(() => g.io.group([g.ports[0]!, sendPort]), /each port receives through the addon/);
    assert.throws(() => g.io.group([g.ports[0]!, g.ports[0]!]), /once/);
    g.io.group([g.ports[0]!, g.ports[1]!]);
    assert.throws(() => g.io.group([g.ports[1]!, g.ports[2]!]), /in no other group/);
  } finally {
    g.io.close(sendPort);
    sendOnly.close();
    tx.close();
    g.close();
  }
});

test.run();
