// A worker's stats round (counters, and states when a checkpoint is due) goes a part at a time,
// the packet loop running between parts (runtime/dataplane/stats-round.ts): in one go, over 5,000
// segments it held the loop for 100-280 ms each second. The parts must add up to one round of one
// moment: every segment once, none from before a change mixed with ones from after it.
import { Worker } from "node:worker_threads";
import * as assert from "uvu/assert";
import { takeRound, type RoundPart } from "../runtime/dataplane/stats-round.js";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import type { WorkerHandle } from "../runtime/dataplane/worker-handle.js";
import type { SegmentSnapshot } from "../runtime/dataplane/snapshot.js";
import { PARTS_IN_FLIGHT, type WorkerInit, type WorkerReply, type WorkerRequest } from "../runtime/dataplane/worker-protocol.js";
import { startProxy } from "./lib/proxy.js";
import { filterWasm } from "./lib/paths.js";
import { freePortRuns, sleep } from "./lib/udp.js";
import { suite } from "./lib/suite.js";

const test = suite("stats rounds in parts", { timeoutMs: 60_000 });

/** A stand-in data plane of `n` segments named by number; `took` records each slice's segments. */
function standIn(n: number) {
  const slices: number[][] = [];
  const plane = {
    beginRound: () => Array.from({ length: n }, (_, i) => i),
    roundSlice: (segs: readonly number[]): RoundPart => {
      slices.push([...segs]);
      return { segments: segs.map((i) => ({ name: `s${i}` }) as never), checkpoints: segs.map((i) => ({ segment: `s${i}` }) as never) };
    },
  };
  return { plane, slices };
}

test("a round over many segments comes in parts, each segment once and in order, the loop running between parts", async () => {
  const { plane, slices } = standIn(1000);
  const sent: RoundPart[] = [];
  // each turn of the loop runs this once (it queues itself for the next): it stands for the packets that come meanwhile
  let turns = 0;
  let stopped = false;
  const tick = (): void => {
    turns++;
    if (!stopped) setImmediate(tick);
  };
  setImmediate(tick);
  const turnsAtParts: number[] = [];
  const last = await takeRound(plane, false, true, (part) => {
    sent.push(part);
    turnsAtParts.push(turns);
  });
  stopped = true;
  const names = [...sent, last].flatMap((p) => p.segments.map((s) => s.name));
  assert.equal(names, Array.from({ length: 1000 }, (_, i) => `s${i}`));
  assert.equal([...sent, last].flatMap((p) => p.checkpoints.map((c) => c.segment)), names);
  assert.ok(sent.length >= 1, "more than one part");
  assert.is(slices.length, sent.length + 1);
  assert.is(slices[0]!.length, 32, "the first part is small: nothing is known yet of what a segment costs");
  assert.ok(turnsAtParts.every((t, k) => k === 0 || t > turnsAtParts[k - 1]!), `the loop turned between parts: ${turnsAtParts}`);
});

test("a round of few segments is one part, sent with the reply", async () => {
  const { plane } = standIn(5);
  const sent: RoundPart[] = [];
  const last = await takeRound(plane, true, false, (part) => void sent.push(part));
  assert.is(sent.length, 0);
  assert.is(last.segments.length, 5);
});

test("proxy: a config change waits for the round under way; a round never mixes segments from before and after it", async () => {
  const count = 200;
  const ports = await freePortRuns(count, 2);
  const sinkPort = (await freePortRuns(1, 2))[0]!;
  // A: s0..s199; B: s100..s199. Going to B removes the segments a round takes first
  const config = (from: number): ProxyConfigInput => ({
    workers: 1,
    filters: { validate: { path: filterWasm("validate") } },
    segments: ports.slice(from).map((port, k) => ({
      name: `s${from + k}`, listen: { address: "127.0.0.1", port }, rtcpMux: true, symmetricRtp: true,
      destinations: [{ address: "127.0.0.1", port: sinkPort }], chain: [{ filter: "validate" }],
    })),
  });
  const names = (from: number) => Array.from({ length: count - from }, (_, k) => `s${from + k}`);
  const { proxy } = await startProxy(config(0));
  try {
    // the round's request goes to the worker right before the commit's: the worker has taken the
    // round's first part when the commit arrives. The round's own reply is read, not lastSegments:
    // the commit's reply takes the removed segments out of that, and under Bun both replies can
    // arrive in one read of the channel, the commit's edit landing before the round is looked at
    const worker = (proxy as unknown as { workers: WorkerHandle[] }).workers[0]!;
    const commit = worker.commit.bind(worker);
    let during: Promise<SegmentSnapshot[]> | undefined;
    worker.commit = () => {
      during = worker.request({ type: "stats", streams: false }).then((reply) => reply.segments ?? []);
      return commit();
    };
    await proxy.apply(validateProxyConfig(config(count / 2)));
    assert.equal((await during!).map((s) => s.name), names(0), "the round began before the change: every segment of before it");
    await proxy.apply(validateProxyConfig(config(0)));
    assert.equal((await during!).map((s) => s.name), names(count / 2), "and back");
  } finally {
    await proxy.close();
  }
});

test("worker: a round asked for after an open step holds the segments the open started, though the open took turns of the loop", async () => {
  // the open step of a real worker can take turns of its loop (a segment the change took out still
  // sending, a multicast join): a round that began meanwhile took the segments of before the open,
  // and its answer, after the open's, replaced the main thread's lastSegments (what a restart
  // carries on from, and a moved segment's egress ports) with a list without the opened ones
  const count = 300;
  const ports = await freePortRuns(count + 2, 2);
  const sinkPort = (await freePortRuns(1, 2))[0]!;
  const config = (moving: number) => validateProxyConfig({
    workers: 1, io: "dgram",
    filters: { validate: { path: filterWasm("validate") } },
    segments: [...ports.slice(0, count).map((port, k) => ({ name: `s${k}`, port })), { name: "moving", port: ports[moving]! }].map(({ name, port }) => ({
      name, listen: { address: "127.0.0.1", port }, rtcpMux: true, symmetricRtp: true,
      destinations: [{ address: "127.0.0.1", port: sinkPort }], chain: [{ filter: "validate" }],
    })),
  });
  const init: WorkerInit = {
    index: 0, batchSize: 32, io: { receive: "dgram", send: "dgram", watch: "loop", gso: false, note: "" },
    socketReceiveBuffer: 1 << 20, streams: { max: 0, maxPerSegment: 0, idleMs: 10_000 },
  };
  const worker = new Worker(new URL("./lib/slow-open-worker.js", import.meta.url), { workerData: init });
  const waiting = new Map<number, (m: Extract<WorkerReply, { type: "reply" }>) => void>();
  const parts = new Map<number, SegmentSnapshot[]>();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  worker.on("message", (m: WorkerReply) => {
    if (m.type === "ready") ready();
    else if (m.type === "part") {
      parts.set(m.id, [...(parts.get(m.id) ?? []), ...m.segments]);
      worker.postMessage({ type: "partTaken", id: m.id } satisfies WorkerRequest); // else it sends no more than PARTS_IN_FLIGHT
    }
    else if (m.type === "reply") waiting.get(m.id)?.(m);
  });
  let nextId = 1;
  type Body = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, "id"> : never) : never;
  const ask = async (body: Body): Promise<{ errors: unknown[]; names: string[] }> => {
    const id = nextId++;
    const replied = new Promise<Extract<WorkerReply, { type: "reply" }>>((r) => waiting.set(id, r));
    worker.postMessage({ ...body, id });
    const reply = await replied;
    return { errors: reply.errors, names: [...(parts.get(id) ?? []), ...(reply.segments ?? [])].map((s) => s.name) };
  };
  const change = async (moving: number): Promise<void> => {
    const { filters, segments } = config(moving);
    assert.equal((await ask({ type: "prepare", request: { filters, segments } })).errors, [], "prepare");
    assert.equal((await ask({ type: "commit" })).errors, [], "commit");
    assert.equal((await ask({ type: "released" })).errors, [], "released");
  };
  try {
    await isReady;
    await change(count);
    assert.equal((await ask({ type: "open" })).errors, [], "the first open");
    // "moving" listens elsewhere now: its new sockets are bound, and it runs again, in the open step
    await change(count + 1);
    const opened = ask({ type: "open" });
    const round = ask({ type: "stats", streams: false });
    assert.equal((await opened).errors, [], "open");
    const { names } = await round;
    assert.ok(names.includes("moving"), "the round, asked for after the open, counts the segment the open started");
    assert.is(names.length, count + 1);
  } finally {
    await Promise.race([ask({ type: "close" }), new Promise((r) => setTimeout(r, 2000))]);
    await worker.terminate();
  }
});

test("worker: a round sends at most PARTS_IN_FLIGHT parts the main thread has not taken (it reads every queued message before its loop turns: parts sent as fast as they were taken held a /healthz for a whole round)", async () => {
  const count = 1000; // parts of 32, 64, ... segments: six at least
  const ports = await freePortRuns(count, 2);
  const sinkPort = (await freePortRuns(1, 2))[0]!;
  const { filters, segments } = validateProxyConfig({
    workers: 1, io: "dgram",
    segments: ports.map((port, k) => ({ name: `s${k}`, listen: { address: "127.0.0.1", port }, rtcpMux: true, symmetricRtp: true, destinations: [{ address: "127.0.0.1", port: sinkPort }] })),
  });
  const init: WorkerInit = {
    index: 0, batchSize: 32, io: { receive: "dgram", send: "dgram", watch: "loop", gso: false, note: "" },
    socketReceiveBuffer: 1 << 20, streams: { max: 0, maxPerSegment: 0, idleMs: 10_000 },
  };
  const worker = new Worker(new URL("../runtime/dataplane/worker-entry.js", import.meta.url), { workerData: init });
  const parts: SegmentSnapshot[][] = [];
  const replies = new Map<number, Extract<WorkerReply, { type: "reply" }>>();
  let ready = false;
  let roundUnderTest = -1; // the parts of other rounds (the open sends the counters it starts with) are taken at once
  worker.on("message", (m: WorkerReply) => {
    if (m.type === "ready") ready = true;
    else if (m.type === "part" && m.id === roundUnderTest) parts.push(m.segments);
    else if (m.type === "part") worker.postMessage({ type: "partTaken", id: m.id } satisfies WorkerRequest);
    else if (m.type === "reply") replies.set(m.id, m);
  });
  let nextId = 1;
  type Body = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, "id"> : never) : never;
  const post = (body: Body): number => {
    const id = nextId++;
    worker.postMessage({ ...body, id });
    return id;
  };
  const replyTo = async (id: number, what: string): Promise<Extract<WorkerReply, { type: "reply" }>> => {
    for (let waited = 0; !replies.has(id); waited += 10) {
      if (waited > 30_000) throw new Error(`no reply to ${what}`);
      await sleep(10);
    }
    return replies.get(id)!;
  };
  try {
    for (let waited = 0; !ready; waited += 10) {
      assert.ok(waited < 30_000, "the worker started");
      await sleep(10);
    }
    for (const step of [{ type: "prepare", request: { filters, segments } }, { type: "commit" }, { type: "released" }, { type: "open" }] as Body[]) {
      assert.equal((await replyTo(post(step), step.type)).errors, [], step.type);
    }
    const round = (roundUnderTest = nextId);
    post({ type: "stats", streams: false });
    let taken = 0;
    for (;;) {
      // what it sends before it hears of the parts taken so far
      await sleep(200);
      assert.ok(parts.length - taken <= PARTS_IN_FLIGHT, `${parts.length} parts sent, ${taken} taken`);
      if (replies.has(round)) break;
      assert.is(parts.length - taken, PARTS_IN_FLIGHT, `it waits with ${PARTS_IN_FLIGHT} parts untaken (${parts.length} sent, ${taken} taken)`);
      worker.postMessage({ type: "partTaken", id: round } satisfies WorkerRequest);
      taken++;
    }
    assert.ok(parts.length >= 4, `a round of ${count} segments in parts: ${parts.length} and the reply`);
    const names = [...parts.flat(), ...(replies.get(round)!.segments ?? [])].map((s) => s.name);
    assert.equal(names, segments.map((s) => s.name), "every segment once, in order");
  } finally {
    const closing = post({ type: "close" });
    await Promise.race([replyTo(closing, "close").catch(() => undefined), sleep(2000)]);
    await worker.terminate();
  }
});

test.run();
