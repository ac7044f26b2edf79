// A hostile filter in a running proxy, over real UDP (test/fixtures/filters/assembly/hostile.ts
// attacks on command): it cannot forge the host's drop reasons or grow the metrics' labels
// without bound, cannot send where no destination is, cannot slip packets into another segment
// through a shared instance, cannot starve the segments of its worker with a timer at 0 delay,
// and cannot forge log lines or flood the log.
import * as assert from "uvu/assert";
import type { Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApplyError, startAdminServer, validateProxyConfig, type Proxy, type ProxyConfigInput, type ProxyEvent } from "../runtime/index.js";
import { DropReason, MAX_FILTER_DROP_REASONS } from "../runtime/abi.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { DropWatch, unexplainedLoss } from "./lib/kernel-drops.js";
import { bindUdp, freePortPair, indexedRtp, sendPaced, Sink, sinksAt, sleep, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { httpBody } from "./lib/http-get.js";
import { describeEvent } from "../cli/proxy-command.js";

const test = suite("hostile filter", { timeoutMs: 60_000 });
const LO = "127.0.0.1";

/** The hostile fixture's commands (see its header). */
const Cmd = { drop: 0xc1, emit: 0xc5, emitOther: 0xc6, flood: 0xc8, stop: 0xc9, log: 0xca } as const;

function command(i: number, cmd: number, a = 0, b = 0): Buffer {
  const p = Buffer.from(indexedRtp(i, 64));
  p[12] = cmd;
  p.writeUInt32BE(a >>> 0, 16);
  p.writeUInt32BE(b >>> 0, 20);
  return p;
}

/** Counts a filter's copies (byte 13 = 0xEE) apart from the packets themselves: key 1 and 0. */
const copyOrNot = (b: Buffer): number => (b.length > 13 && b[13] === 0xee ? 1 : 0);
const copies = (s: Sink): number => s.keys.get(1) ?? 0;
const originals = (s: Sink): number => s.keys.get(0) ?? 0;

/** Sends packets a window at a time, each window once the segment has taken the last: no queue overflows. */
async function sendInWindows(tx: Socket, port: number, packets: readonly Uint8Array[], received: () => Promise<number>, window = 100): Promise<void> {
  const start = await received();
  for (let k = 0; k < packets.length; k += window) {
    for (const p of packets.slice(k, k + window)) tx.send(p, port, LO);
    const want = start + Math.min(packets.length, k + window);
    await waitFor(async () => (await received()) >= want, 10_000, `the proxy to take ${want - start} packets`);
  }
}


/** A stage's packets in, and out - generated + held + drops + discards + bypassed from /stats: equal (docs/proxy.md, msm_filter_generated_total). */
function balance(st: { packetsIn: number; packetsOut: number; generated: number; held: number; bypassed: number; drops: Record<string, number>; discards: Record<string, number> }): [number, number] {
  const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
  return [st.packetsIn, st.packetsOut - st.generated + st.held + sum(st.drops) + sum(st.discards) + st.bypassed];
}

const SHARED_NAMES = new Map(
  Object.entries(DropReason)
    .filter(([, v]) => typeof v === "number" && v < DropReason.HostFilterFailed)
    .map(([k, v]) => [v as number, k.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase()]),
);

/** What the host counts a filter's drop code as (docs/abi.md "Drop reasons"). */
function expectedReason(code: number): string {
  if (SHARED_NAMES.has(code)) return SHARED_NAMES.get(code)!;
  if (code >= 256 && code < 256 + MAX_FILTER_DROP_REASONS) return `filter_${code}`;
  return "host_bad_reason";
}

async function withProxy(proxy: Proxy, cleanup: (() => unknown)[], work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } finally {
    for (const c of cleanup) await c();
    await proxy.close();
  }
}

test("forged host reasons and codes out of the filter's range count as host_bad_reason; /metrics keeps few reason labels; the host's lines about them name the segment", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy, events } = await startProxy({
    filters: { hostile: { path: fixture("hostile") } },
    segments: [{ name: "forger", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "hostile" }] }],
  });
  const admin = await startAdminServer(proxy, LO, 0);
  const tx = await bindUdp();
  await withProxy(proxy, [() => tx.close(), () => sink.close(), () => admin.close()], async () => {
    const codes = [...Array.from({ length: 2048 }, (_, c) => c), 65535, 0x10000, 0x7fffffff, 0xffffffff];
    const kernel = new DropWatch([listen]);
    await sendInWindows(tx, listen, codes.map((c, i) => command(i, Cmd.drop, c)), async () => (await segmentStats(proxy, "forger")).packetsIn);
    const seg = await segmentStats(proxy, "forger");
    assert.is(kernel.since().total, 0, "every packet reached the proxy");
    const expected: Record<string, number> = {};
    for (const c of codes) expected[expectedReason(c)] = (expected[expectedReason(c)] ?? 0) + 1;
    assert.equal(seg.drops, expected, "each code counted as the ABI says");
    assert.equal(seg.stages[0]!.drops, expected);
    assert.is(expected.host_bad_reason, codes.length - SHARED_NAMES.size - MAX_FILTER_DROP_REASONS);
    assert.is(sink.received, 0);
    const metrics = await httpBody(admin.port, "/metrics");
    const reasons = (family: string): Set<string> =>
      new Set([...metrics.matchAll(new RegExp(`^${family}\\{[^}]*segment="forger"[^}]*reason="([^"]+)"\\} (\\d+)$`, "gm"))].map((m) => m[1]!));
    for (const family of ["msm_segment_drops_total", "msm_filter_drops_total"]) {
      const labels = reasons(family);
      assert.ok(labels.size <= SHARED_NAMES.size + MAX_FILTER_DROP_REASONS + 1, `${family}: ${labels.size} labels`);
      assert.equal([...labels].sort(), Object.keys(expected).sort(), family);
      assert.ok([...labels].every((l) => !l.startsWith("host_") || l === "host_bad_reason"), `${family}: no forged host reason`);
    }
    assert.match(metrics, new RegExp(`^msm_segment_drops_total\\{segment="forger",reason="host_bad_reason"\\} ${expected.host_bad_reason}$`, "m"));
    // one instance serves every segment of the worker that runs the filter: its line says which segment's packet it was
    const lines = events.filter((e) => e.type === "log" && e.message.includes("as host_bad_reason"));
    assert.ok(lines.length > 0, "the host said why it dropped them");
    assert.ok(lines.every((e) => e.type === "log" && e.segment === "forger"), JSON.stringify(lines[0]));
    assert.match(describeEvent(lines[0]!), /^filter hostile \(segment forger\): the host dropped packet \d+ of the batch as host_bad_reason: drop reason /);
  });
});

test("unknown dests and legs are refused and counted; a destination index and a FEC leg still work", async () => {
  const { base: d0, sinks: [s0, s0fec, s0far] } = await sinksAt([0, 2, 4], { keyOf: copyOrNot });
  const { base: d1, sinks: [s1, s1fec, s1far] } = await sinksAt([0, 2, 4], { keyOf: copyOrNot });
  const all = [s0!, s0fec!, s0far!, s1!, s1fec!, s1far!];
  const listen = await freePortPair();
  const { proxy } = await startProxy({
    filters: { hostile: { path: fixture("hostile") } },
    segments: [{ name: "dests", listen: { address: LO, port: listen },
      destinations: [{ address: LO, port: d0 }, { address: LO, port: d1 }],
      legs: [{ name: "fec-column", portOffset: 2, receive: false }], chain: [{ filter: "hostile" }] }],
  });
  const tx = await bindUdp();
  await withProxy(proxy, [() => tx.close(), ...all.map((s) => () => s.close())], async () => {
    const n = 5;
    // `leg` is the raw descriptor byte the filter writes
    const cases: { label: string; dest: number; leg: number; refused: "bad_descriptor" | "no_destination" | null; to: Sink | null }[] = [
      { label: "destination 0", dest: 16, leg: 0, refused: null, to: s0! },
      { label: "destination 1 on leg 1 (FEC column, port + 2)", dest: 17, leg: 1, refused: null, to: s1fec! },
      ...Array.from({ length: 14 }, (_, k) => ({ label: `dest ${k + 2}`, dest: k + 2, leg: 0, refused: "bad_descriptor" as const, to: null })),
      { label: "leg 8 (past MAX_LEGS)", dest: 0, leg: 8, refused: "bad_descriptor", to: null },
      { label: "leg 255", dest: 16, leg: 0xff, refused: "bad_descriptor", to: null },
      { label: "leg 2, which the segment lacks", dest: 0, leg: 2, refused: "no_destination", to: null },
      { label: "leg 1 toward the sender", dest: 1, leg: 1, refused: "no_destination", to: null },
      { label: "destination 5 of 2", dest: 21, leg: 0, refused: "no_destination", to: null },
    ];
    const packets = cases.flatMap((c, k) => Array.from({ length: n }, (_, j) => command(k * n + j, Cmd.emit, c.dest, c.leg)));
    const kernel = new DropWatch([listen, d0, d1, d0 + 2, d1 + 2]);
    await sendInWindows(tx, listen, packets, async () => (await segmentStats(proxy, "dests")).packetsIn);
    const made = cases.filter((c) => c.to !== null).length * n;
    await waitFor(() => originals(s0!) + originals(s1!) + copies(s0!) + copies(s1fec!) >= 2 * packets.length + made - kernel.since().total, 5000, "the packets and the good copies");
    await sleep(200); // anything sent where it must not go would have arrived by now
    assert.is(kernel.since().total, 0, "nothing was lost in the kernel (the counts below are exact)");
    assert.is(originals(s0!), packets.length, "every command packet itself passes");
    assert.is(originals(s1!), packets.length);
    assert.equal(all.map(copies), [n, 0, 0, 0, n, 0], "copies only where a good descriptor sent them");
    const seg = await segmentStats(proxy, "dests");
    const count = (r: string): number => cases.filter((c) => c.refused === r).length * n;
    assert.is(seg.drops.host_bad_descriptor, count("bad_descriptor"));
    assert.is(seg.drops.host_no_destination, count("no_destination"));
    const stage = seg.stages[0]!;
    assert.is(stage.generated, cases.length * n, "every copy the filter made, refused or not");
    assert.is(stage.drops.host_bad_descriptor, count("bad_descriptor"), "the stage counts the refused ones as its drops");
    assert.is(stage.generated - stage.drops.host_bad_descriptor!, made + count("no_destination"), "the host took only the good descriptors from the stage");
    assert.equal(balance(stage), [packets.length, packets.length], "in = out - generated + held + drops + discards + bypassed");
  });
});

test("a shared instance cannot emit one segment's packets into another: refused, counted, delivered nowhere", async () => {
  const [la, lb] = [await freePortPair(), await freePortPair()];
  const [sa, sb] = [await Sink.open(0, { keyOf: copyOrNot }), await Sink.open(0, { keyOf: copyOrNot })];
  const { proxy } = await startProxy({
    workers: 1, // one worker: both segments hold a context in the same instance
    filters: { hostile: { path: fixture("hostile") } },
    segments: [
      { name: "a", listen: { address: LO, port: la }, destinations: [{ address: LO, port: sa.port }], chain: [{ filter: "hostile" }] },
      { name: "b", listen: { address: LO, port: lb }, destinations: [{ address: LO, port: sb.port }], chain: [{ filter: "hostile" }] },
    ],
  });
  const tx = await bindUdp();
  await withProxy(proxy, [() => tx.close(), () => sa.close(), () => sb.close()], async () => {
    const n = 20;
    const kernel = new DropWatch([la, lb, sa.port, sb.port]);
    await sendInWindows(tx, la, Array.from({ length: n }, (_, i) => command(i, Cmd.emitOther)), async () => (await segmentStats(proxy, "a")).packetsIn);
    await sendInWindows(tx, lb, Array.from({ length: n }, (_, i) => command(i, Cmd.emitOther)), async () => (await segmentStats(proxy, "b")).packetsIn);
    await waitFor(() => originals(sa) + originals(sb) >= 2 * n - kernel.since().total, 5000, "the command packets");
    await sleep(200);
    assert.is(kernel.since().total, 0);
    assert.equal([originals(sa), copies(sa), originals(sb), copies(sb)], [n, 0, n, 0]);
    const [a, b] = [await segmentStats(proxy, "a"), await segmentStats(proxy, "b")];
    // each packet made the filter write a copy naming the other segment's context: the proof
    // that the instance is shared, and that the host refused every one
    assert.is(a.drops.host_bad_descriptor, n);
    assert.is(b.drops.host_bad_descriptor, n);
    for (const st of [a.stages[0]!, b.stages[0]!]) {
      assert.is(st.generated, n, "each copy was made (generated) and refused (a drop)");
      assert.is(st.drops.host_bad_descriptor, n);
      assert.equal(balance(st), [n, n], "the stage's counts add up");
    }
  });
});

test("a timer at 0 delay filling the output area stays within its budgets; a segment on the same worker keeps its stream", async () => {
  const [lf, lg] = [await freePortPair(), await freePortPair()];
  const [sf, sg] = [await Sink.open(), await Sink.open()];
  const limits = { generatedPerSecond: 1000, timerFiresPerSecond: 50 };
  const { proxy } = await startProxy({
    workers: 1,
    filters: { hostile: { path: fixture("hostile"), limits }, counter: { path: fixture("counter") } },
    segments: [
      { name: "flood", listen: { address: LO, port: lf }, destinations: [{ address: LO, port: sf.port }], chain: [{ filter: "hostile" }] },
      { name: "good", listen: { address: LO, port: lg }, destinations: [{ address: LO, port: sg.port }], chain: [{ filter: "counter" }] },
    ],
  });
  const tx = await bindUdp();
  await withProxy(proxy, [() => tx.close(), () => sf.close(), () => sg.close()], async () => {
    const kernel = new DropWatch([lg, sg.port]);
    const t0 = performance.now();
    tx.send(command(0, Cmd.flood, 0), lf, LO);
    const n = 3000;
    await sendPaced(tx, lg, LO, n, 1000, (i) => indexedRtp(i));
    const flooded = async () => (await segmentStats(proxy, "flood")).stages[0]!;
    await waitFor(async () => ((await flooded()).drops.host_budget_exceeded ?? 0) > 0, 10_000, "the budget of generated packets to bite");
    tx.send(command(1, Cmd.stop), lf, LO);
    await waitFor(async () => (await segmentStats(proxy, "flood")).packetsIn >= 2, 5000, "the stop command");
    const stage = await flooded();
    const elapsedS = (performance.now() - t0) / 1000;
    const fires = stage.metrics.find((m) => m.name === "fires")!.value!;
    const refused = stage.drops.host_budget_exceeded ?? 0;
    // budgets are token buckets with a tenth of a second's burst (at least 2048 packets, 8 firings)
    assert.ok(fires <= 8 + limits.timerFiresPerSecond * elapsedS + 1, `${fires} firings in ${elapsedS.toFixed(2)} s`);
    assert.ok(stage.timersDeferred > 0, "firings beyond the budget were put off");
    // generated counts what the timer made, refused or not; what left the stage stays within the budget
    const left = stage.generated - refused;
    assert.ok(left <= 2048 + limits.generatedPerSecond * elapsedS + 1, `${left} of ${stage.generated} generated left in ${elapsedS.toFixed(2)} s`);
    assert.is(stage.generated, fires * 64, "every packet the timer made is generated, whether sent on or refused by the budget");
    assert.equal(balance(stage), [stage.packetsIn, stage.packetsIn], "the stage's counts add up");
    await waitFor(() => sg.received >= n - kernel.since().total, 5000, "the good stream");
    const good = await segmentStats(proxy, "good");
    const t = sg.tally(n);
    assert.is(t.duplicates, 0);
    const loss = unexplainedLoss({ sent: n, received: n - t.missing, proxyDrops: good.dropsTotal, kernel });
    assert.is(loss, null, loss ?? "");
    assert.is(good.dropsTotal, 0, `the good segment dropped nothing: ${JSON.stringify(good.drops)}`);
    assert.ok(sf.received <= left + 2, "the flood's sink got no more than the budget let through (and the two commands)");
  });
});

test("a filter that asks for a checkpoint at every packet (ABI 1.8 checkpoint_wanted) gets one round every 50 ms at most, and its stream goes on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-checkpoint-asker-"));
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy } = await startProxy({
    workers: 1,
    stateFile: join(dir, "stages.json"),
    stateCheckpointMs: 600_000, // no periodic checkpoint after the first tick's: what comes is asked for
    filters: { hostile: { path: fixture("hostile") } },
    segments: [{ name: "asker", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "hostile" }] }],
  });
  const tx = await bindUdp();
  try {
    await withProxy(proxy, [() => tx.close(), () => sink.close()], async () => {
      const exports = async (): Promise<number> => (await segmentStats(proxy, "asker")).stages[0]!.metrics.find((m) => m.name === "exports")?.value ?? 0;
      await sleep(300); // the first tick's periodic round
      const before = await exports();
      const kernel = new DropWatch([listen, sink.port]);
      const n = 1000;
      const t0 = performance.now();
      await sendPaced(tx, listen, LO, n, 1000, (i) => command(i, 0xd1));
      await waitFor(() => sink.received >= n - kernel.since().total, 5000, "the stream");
      await sleep(100); // a round asked for by the last packets
      const elapsedMs = performance.now() - t0;
      const rounds = (await exports()) - before;
      console.log(`  ${rounds} checkpoint rounds in ${elapsedMs.toFixed(0)} ms of asking at every packet`);
      assert.ok(rounds >= 2, `the asks were answered more than once with the period at 10 minutes: ${rounds} rounds`);
      assert.ok(rounds <= Math.ceil(elapsedMs / 50) + 1, `${rounds} rounds in ${elapsedMs.toFixed(0)} ms: more than one every 50 ms`);
      const st = await segmentStats(proxy, "asker");
      const loss = unexplainedLoss({ sent: n, received: sink.received, proxyDrops: st.dropsTotal, kernel });
      assert.is(loss, null, loss ?? "");
    });
  } finally {
    rmSync(dir, { recursive: true, force: true }); // after close: a write may be under way until then
  }
});

test("a replacement's first checkpoint answered after a round that skipped its worker began its write: the checkpoints go on (they stopped for good)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-checkpoint-race-"));
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy } = await startProxy({
    workers: 1,
    stateFile: join(dir, "stages.json"),
    stateCheckpointMs: 200,
    filters: { hostile: { path: fixture("hostile") } },
    segments: [{ name: "raced", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "hostile" }] }],
  });
  const tx = await bindUdp();
  try {
    await withProxy(proxy, [() => tx.close(), () => sink.close()], async () => {
      const exports = async (): Promise<number> => (await segmentStats(proxy, "raced")).stages[0]!.metrics.find((m) => m.name === "exports")?.value ?? 0;
      tx.send(command(0, 0), listen, LO); // a context, whose state each round exports
      await waitFor(() => sink.received >= 1, 5000, "the first packet");
      await waitFor(async () => (await exports()) >= 1, 5000, "a first round");
      type Inner = { workers: object[]; stateWrites: Promise<void>; checkpointNow(w: object): void; wished: Set<object>; takeDueCheckpoints(): Promise<void> };
      const inner = proxy as unknown as Inner;
      const w = inner.workers[0]!;
      await inner.stateWrites;
      // the order a restart can bring: the replacement's first checkpoint is asked for (the
      // "restarted" event), and before it answers a round (here one a filter asked for; the periodic
      // tick does the same) finds the worker already asked, skips it, and writes the file without it
      inner.checkpointNow(w);
      inner.wished.add(w);
      await inner.takeDueCheckpoints();
      await inner.stateWrites;
      const before = await exports();
      await sleep(1000);
      const rounds = (await exports()) - before;
      assert.ok(rounds >= 3, `rounds every 200 ms go on: ${rounds} in 1 s`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true }); // after close: a write may be under way until then
  }
});

test("a filter that never returns from a context's creation: a start fails naming it, a reload is refused, and the running segments keep their stream", async () => {
  const [ps, pl] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (loop: boolean, name = "steady"): ProxyConfigInput => ({
    workers: 1,
    watchdog: { stuckMs: 200 },
    filters: { misbehave: { path: fixture("misbehave") } },
    segments: [
      { name, listen: { address: "127.0.0.1", port: ps }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "misbehave" }] },
      ...(loop ? [{ name: "looping", listen: { address: "127.0.0.1", port: pl }, destinations: [{ address: "127.0.0.1", port: 9 }], chain: [{ filter: "misbehave", config: { loopIn: "create" } }] }] : []),
    ],
  });
  // a start: refused within the watchdog's time, not hung
  const t0 = Date.now();
  const err = await startProxy(config(true)).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof ApplyError, `the start failed: ${String(err)}`);
  assert.match(err.message, /worker 0 was stuck in filter 'misbehave' for over 200 ms while the change was prepared \(an endless loop in a new stage's msm_context_create\?\); the watchdog restarted it/);
  assert.ok(Date.now() - t0 < 15_000, `in ${Date.now() - t0} ms`);
  // the same in the module's own start (its root config)
  const root = config(false);
  root.filters!.misbehave!.config = { loopIn: "root" };
  const rootErr = await startProxy(root).then(() => null, (e: unknown) => e);
  assert.ok(rootErr instanceof ApplyError, `the start failed: ${String(rootErr)}`);
  assert.match(rootErr.message, "was stuck in filter 'misbehave' for over 200 ms while the change was prepared (an endless loop in its _initialize or msm_configure_root?)");
  // a reload: refused; the running segment comes back on the restarted worker and forwards
  const t = await startProxy(config(false));
  const tx = await bindUdp();
  try {
    const refused = await t.proxy.apply(validateProxyConfig(config(true))).then(() => null, (e: unknown) => e);
    assert.ok(refused instanceof ApplyError && !refused.committed, `refused before the commit: ${String(refused)}`);
    assert.match(refused.message, "was stuck in filter 'misbehave' for over 200 ms while the change was prepared");
    let i = 0;
    await waitFor(() => {
      tx.send(indexedRtp(i++), ps, "127.0.0.1");
      return sink.received > 0;
    }, 10_000, "steady's stream on the restarted worker");
    assert.equal((await t.proxy.stats()).segments.map((x) => x.name), ["steady"]);
    assert.ok(t.events.some((e) => e.type === "watchdog"), "the watchdog said so");
    // refused again and again (an operator's retries, an agent's): the stage running on the same
    // instance did not fail, so it never reaches its failure limit (5) and keeps forwarding
    for (let k = 0; k < 6; k++) {
      const again = await t.proxy.apply(validateProxyConfig(config(true))).then(() => null, (e: unknown) => e);
      assert.ok(again instanceof ApplyError && !again.committed, `try ${k + 2} refused: ${String(again)}`);
    }
    const before = sink.received;
    await waitFor(() => {
      tx.send(indexedRtp(i++), ps, "127.0.0.1");
      return sink.received > before;
    }, 10_000, "steady's stream after the retries");
    const stage = (await t.proxy.stats()).segments[0]!.stages[0]!;
    assert.equal([stage.state, stage.failures], ["running", 0], "no failure charged to the running stage");
    assert.not.ok(t.events.some((e) => e.type === "gave-up"), "nothing given up");
    const watchdogs = t.events.filter((e) => e.type === "watchdog");
    assert.ok(watchdogs.length >= 7 && watchdogs.every((e) => e.type === "watchdog" && e.segments.length === 0), "each stuck probe said, naming no running segment");
  } finally {
    tx.close();
    sink.close();
    await t.proxy.close();
  }
});

test("a filter that never returns from a state export (a checkpoint) or a context's destruction: the watchdog restarts the worker, the proxy answers, the other segment forwards", async () => {
  const [ps, pl] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (loopIn: string | null): ProxyConfigInput => ({
    workers: 1,
    watchdog: { stuckMs: 200 },
    stateCheckpointMs: 100,
    filters: { misbehave: { path: fixture("misbehave") }, counter: { path: fixture("counter") } },
    segments: [
      { name: "steady", listen: { address: "127.0.0.1", port: ps }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "counter" }] },
      ...(loopIn ? [{ name: "looping", listen: { address: "127.0.0.1", port: pl }, destinations: [{ address: "127.0.0.1", port: 9 }], chain: [{ filter: "misbehave", config: { loopIn } }] }] : []),
    ],
  });
  const stuckIn = (t: { events: ProxyEvent[] }): number => t.events.filter((e) => e.type === "watchdog" && e.filter === "misbehave").length;
  const tx = await bindUdp();
  let i = 0;
  const forwards = async (what: string, proxy: Proxy): Promise<void> => {
    const before = sink.received;
    await waitFor(() => {
      tx.send(indexedRtp(i++), ps, "127.0.0.1");
      return sink.received > before;
    }, 10_000, what);
    assert.ok((await proxy.stats()).segments.some((x) => x.name === "steady"), "the proxy answers");
  };
  // every checkpoint exports the looping stage's state
  const exporting = await startProxy(config("export"));
  try {
    await waitFor(() => stuckIn(exporting) > 0, 10_000, "the watchdog to catch the export");
    await forwards("steady's stream on the restarted worker", exporting.proxy);
  } finally {
    await exporting.proxy.close();
  }
  // removing the segment destroys its context
  const destroying = await startProxy(config("destroy"));
  try {
    await forwards("steady's stream", destroying.proxy);
    await destroying.proxy.apply(validateProxyConfig(config(null))).catch(() => {}); // applied or refused: either, as long as it returns
    await waitFor(() => stuckIn(destroying) > 0, 10_000, "the watchdog to catch the destruction");
    await forwards("steady's stream after the destruction", destroying.proxy);
  } finally {
    tx.close();
    sink.close();
    await destroying.proxy.close();
  }
});

test("log lines: cut at 1024 bytes, control characters escaped; at most 100 a second, the rest counted", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy, events } = await startProxy({
    filters: { hostile: { path: fixture("hostile") } },
    segments: [{ name: "logger", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "hostile" }] }],
  });
  const tx = await bindUdp();
  const logs = (): string[] => events.flatMap((e: ProxyEvent) => (e.type === "log" && e.filter === "hostile" ? [e.message] : []));
  await withProxy(proxy, [() => tx.close(), () => sink.close()], async () => {
    // the fixture's line: 45 bytes that try to clear the screen and forge a second line, then 'x's
    const head = "\\x1b[2J\\x1b[31mFORGED\\x0a[error] proxy: forged line\\x0d\\x07\\x00";
    const cases: [number, string][] = [
      [40, "\\x1b[2J\\x1b[31mFORGED\\x0a[error] proxy: forged li"],
      [1024, head + "x".repeat(1024 - 45)],
      [5000, `${head}${"x".repeat(1024 - 45)}... (5000 bytes, cut at 1024)`],
      [0x7fffffff, `${head}${"x".repeat(1024 - 45)}... (2147483647 bytes, cut at 1024)`], // more than its memory
    ];
    cases.forEach(([len], i) => tx.send(command(i, Cmd.log, len, 1), listen, LO));
    await waitFor(() => logs().length >= cases.length && sink.received >= cases.length, 5000, "the log lines and the packets");
    assert.equal(logs(), cases.map(([, line]) => line));
    assert.ok(logs().every((l) => !/[\u0000-\u001f\u007f-\u009f]/.test(l)), "no control character reaches the log");
  });
});

test("log rate: a burst of 300 lines gives 100, and the rest is reported as suppressed, even if the filter then falls silent", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy, events } = await startProxy({
    filters: { hostile: { path: fixture("hostile") } },
    segments: [{ name: "chatty", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "hostile" }] }],
  });
  const tx = await bindUdp();
  const logs = (): string[] => events.flatMap((e: ProxyEvent) => (e.type === "log" && e.filter === "hostile" ? [e.message] : []));
  await withProxy(proxy, [() => tx.close(), () => sink.close()], async () => {
    tx.send(command(0, Cmd.log, 10, 300), listen, LO);
    await waitFor(() => sink.received >= 1, 5000, "the burst");
    // the window is one second; the host closes it by itself (no further line needed) and reports
    await waitFor(() => logs().some((l) => /suppressed/.test(l)), 5000, "the suppression report, with the filter silent");
    const lines = logs().filter((l) => !/suppressed/.test(l)).length;
    const suppressed = logs().map((l) => /^(\d+) log lines suppressed \(limit 100\/s\)$/.exec(l)).reduce((s, m) => s + (m ? Number(m[1]) : 0), 0);
    assert.ok(lines >= 100 && lines < 300, `${lines} lines of the burst logged`);
    assert.is(lines + suppressed, 300, "every line logged or counted");
  });
});

test.run();
