// A filter that traps, loops forever, has the wrong ABI or digest, or rejects its config is
// handled as docs/abi.md says, and segments on other workers never notice.
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApplyError, sha256Hex, validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { renderPrometheus } from "../runtime/admin/prometheus.js";
import { suite } from "./lib/suite.js";
import { fixture, filterWasm } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { DeliveryWatch } from "./lib/delivery.js";
import type { WatchdogBeacon } from "../runtime/dataplane/watchdog-beacon.js";

const test = suite("filter failures in a running proxy", { timeoutMs: 60_000 });

function command(i: number, byte: number): Uint8Array {
  const b = indexedRtp(i);
  b[12] = byte; // the misbehave fixture reads its command here
  return b;
}

async function twoSegments(mode: "open" | "closed", extra: Partial<ProxyConfigInput> = {}) {
  const [pa, pb] = [await freePortPair(), await freePortPair()];
  const [sa, sb] = [await Sink.open(), await Sink.open()];
  const input: ProxyConfigInput = {
    workers: 2,
    watchdog: { stuckMs: 300 },
    filters: { misbehave: { path: fixture("misbehave") }, counter: { path: fixture("counter") } },
    segments: [
      { name: "bad", worker: 0, listen: { address: "127.0.0.1", port: pa }, destinations: [{ address: "127.0.0.1", port: sa.port }],
        chain: [{ filter: "misbehave" }], failure: { mode, restartBackoffMs: 50, maxFailures: 3 } },
      { name: "good", worker: 1, listen: { address: "127.0.0.1", port: pb }, destinations: [{ address: "127.0.0.1", port: sb.port }],
        chain: [{ filter: "counter" }] },
    ],
    ...extra,
  };
  const t = await startProxy(input);
  const tx = await bindUdp();
  const watch = await DeliveryWatch.start(() => t.proxy, "good", [pb, sb.port]); // the good segment's listen socket and sink
  const cleanup = async (): Promise<void> => {
    tx.close(); sa.close(); sb.close();
    await t.proxy.close();
  };
  return { ...t, input, pa, pb, sa, sb, tx, watch, cleanup };
}

test("a trap: fail-open passes the stream on, the filter restarts, the other worker's segment loses nothing", async () => {
  const { proxy, events, pa, pb, sa, sb, tx, watch, cleanup } = await twoSegments("open");
  try {
    const n = 2000;
    let trapped = false;
    let badSent = 0;
    await sendPaced(tx, pb, "127.0.0.1", n, 2000, (i) => indexedRtp(i), (sent) => {
      if (sent >= 500 && !trapped) {
        trapped = true;
        tx.send(command(0, 0xde), pa, "127.0.0.1");
      } else tx.send(indexedRtp(badSent++), pa, "127.0.0.1");
    });
    await watch.expectDelivered(sb, n); // the good segment's stream: every loss the kernel's
    await waitFor(() => events.some((e) => e.type === "restarted" && e.filter === "misbehave"), 3000, "a restart");
    const bad = await segmentStats(proxy, "bad");
    assert.ok(bad.stages[0]!.failures >= 1, "the failure was counted");
    assert.is(bad.stages[0]!.state, "running");
    // fail-open: the packets of the failed batch went on untouched, including the trapping one
    await waitFor(() => sa.received >= badSent, 3000, `the bad segment's stream (${sa.received}/${badSent})`);
    const good = await segmentStats(proxy, "good");
    assert.is(good.stages[0]!.failures, 0);
  } finally {
    await cleanup();
  }
});

test("fail-closed drops (counted) while the filter is down, then gives up after maxFailures", async () => {
  const { proxy, events, pa, sa, tx, cleanup } = await twoSegments("closed");
  try {
    for (let k = 0; k < 3; k++) {
      tx.send(command(k, 0xde), pa, "127.0.0.1");
      await waitFor(() => events.filter((e) => e.type === "failure").length >= k + 1, 3000, `failure ${k + 1}`);
      await sleep(k < 2 ? 400 : 50); // let the restart (backoff 50, 100 ms) happen, except after the last
    }
    await waitFor(() => events.some((e) => e.type === "gave-up" && e.segment === "bad"), 3000, "give-up");
    for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), pa, "127.0.0.1");
    await sleep(200);
    const bad = await segmentStats(proxy, "bad");
    assert.is(bad.stages[0]!.state, "gave-up");
    assert.is(bad.stages[0]!.failures, 3);
    assert.ok((bad.drops.host_filter_failed ?? 0) >= 20, `dropped and counted: ${JSON.stringify(bad.drops)}`);
    assert.is(sa.received, 0, "closed: nothing passes a filter that is down");
    const st = bad.stages[0]!;
    const drops = Object.values(st.drops).reduce((a, b) => a + b, 0);
    assert.is(st.packetsIn, st.packetsOut - st.generated + st.held + drops + st.bypassed, `a stage's counts add up while it is down: ${JSON.stringify({ ...st, metrics: undefined })}`);
  } finally {
    await cleanup();
  }
});

test("an endless loop: the watchdog restarts that worker; the other worker's stream loses nothing", async () => {
  const { proxy, events, pa, pb, sa, sb, tx, watch, cleanup } = await twoSegments("open");
  try {
    for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), pa, "127.0.0.1");
    await waitFor(() => sa.received >= 20, 3000, "the bad segment's first packets");
    await proxy.stats(); // what the proxy knows when the worker dies
    const n = 3000;
    let looped = false;
    await sendPaced(tx, pb, "127.0.0.1", n, 1500, (i) => indexedRtp(i), (sent) => {
      if (sent >= 600 && !looped) {
        looped = true;
        tx.send(command(sent, 0xad), pa, "127.0.0.1");
      }
    });
    await watch.expectDelivered(sb, n); // the good segment's stream: every loss the kernel's
    const wd = events.find((e) => e.type === "watchdog");
    assert.ok(wd, "the watchdog fired");
    assert.equal(wd!.type === "watchdog" && [wd.filter, wd.segments], ["misbehave", ["bad"]]);
    // the export it was stuck in, as the harness names it (it said only "a filter call" before)
    assert.is(wd!.type === "watchdog" && wd.call, "msm_on_batch");
    await waitFor(() => events.some((e) => e.type === "failure" && e.filter === "misbehave"), 5000, "the failure the new worker reports");
    const failure = events.find((e) => e.type === "failure" && e.filter === "misbehave");
    assert.is(failure!.type === "failure" && failure.reason, "stuck in msm_on_batch (an endless loop?): the watchdog restarted the worker");
    // the restarted worker serves the bad segment again
    // while the new worker takes its segments "bad" still shows (its stage down), then runs again
    await waitFor(async () => (await segmentStats(proxy, "bad")).stages[0]?.state === "running", 5000, "bad segment running again");
    const before = sa.received;
    for (let i = 0; i < 10; i++) tx.send(indexedRtp(i), pa, "127.0.0.1");
    await waitFor(() => sa.received >= before + 10, 3000, "traffic through the restarted worker");
    const bad = await segmentStats(proxy, "bad");
    assert.ok(bad.packetsIn >= 30, `counters carried across the worker restart (${bad.packetsIn})`);
    assert.is(bad.stages[0]!.failures, 1);
  } finally {
    await cleanup();
  }
});

test("a stage whose config or module changed starts its count toward maxFailures again, and the failure counter only goes up: 2 stalls, a config swap, 2, a rebuilt module, 1: running, msm_filter_failures_total 5", async () => {
  // the module from a file of its own, rebuilt in place below (the scaffold's watch-and-reload)
  const dir = mkdtempSync(join(tmpdir(), "msm-failures-"));
  const modulePath = join(dir, "misbehave.wasm");
  copyFileSync(fixture("misbehave"), modulePath);
  const { proxy, events, input, pa, sa, tx, cleanup } = await twoSegments("open", { watchdog: { stuckMs: 300 }, filters: { misbehave: { path: modulePath }, counter: { path: fixture("counter") } } });
  const stuckOnce = async (from: number, expected: number): Promise<void> => {
    tx.send(command(from, 0xad), pa, "127.0.0.1");
    await waitFor(async () => {
      // (once in CI the segment was missing from stats for a moment around the restart: waited through)
      const st = (await proxy.stats()).segments.find((x) => x.name === "bad")?.stages[0];
      return st?.state === "running" && st.failures === expected;
    }, 10_000, `failure ${expected} counted, the stage running again`);
    const before = sa.received;
    tx.send(indexedRtp(from + 1), pa, "127.0.0.1");
    await waitFor(() => sa.received > before, 3000, "traffic through the restarted worker");
  };
  try {
    for (let i = 0; i < 5; i++) tx.send(indexedRtp(i), pa, "127.0.0.1");
    await waitFor(() => sa.received >= 5, 3000, "the bad segment's first packets");
    await stuckOnce(10, 1);
    await stuckOnce(15, 2); // maxFailures is 3
    // the stage's config changes: a fresh stage, whose own count toward maxFailures starts again
    const changed = structuredClone(input);
    const stage = changed.segments![0]!.chain![0]!;
    stage.config = { loopIn: "" };
    await proxy.apply(validateProxyConfig(changed));
    await stuckOnce(20, 3); // the fresh stage's first: not given up
    await stuckOnce(25, 4);
    // the same path, a new build (a custom section more: another digest, the same code)
    const wasm = readFileSync(modulePath);
    writeFileSync(modulePath, Buffer.concat([wasm, Buffer.from([0, 4, 3, 0x6d, 0x73, 0x6d])]));
    await proxy.apply(validateProxyConfig(changed));
    await stuckOnce(30, 5); // the new build's first: not given up
    assert.not.ok(events.some((e) => e.type === "gave-up"), "nothing given up");
    const line = renderPrometheus(await proxy.stats()).split("\n").find((l) => l.startsWith("msm_filter_failures_total{") && l.includes('segment="bad"'));
    assert.ok(line?.endsWith(" 5"), `the counter: ${line}`);
  } finally {
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a stall of an instance two segments share counts once for each of them toward maxFailures: after 2 stalls (maxFailures 2) both give up", async () => {
  const [p1, p2] = [await freePortPair(), await freePortPair()];
  const [s1, s2] = [await Sink.open(), await Sink.open()];
  const seg = (name: string, port: number, sink: number) => ({
    name, worker: 0, listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: sink }],
    chain: [{ filter: "misbehave" }], failure: { mode: "open" as const, restartBackoffMs: 50, maxFailures: 2 },
  });
  const { proxy } = await startProxy({ workers: 1, watchdog: { stuckMs: 300 }, filters: { misbehave: { path: fixture("misbehave") } }, segments: [seg("one", p1, s1.port), seg("two", p2, s2.port)] });
  const tx = await bindUdp();
  try {
    tx.send(indexedRtp(0), p1, "127.0.0.1");
    tx.send(indexedRtp(0), p2, "127.0.0.1");
    await waitFor(() => s1.received >= 1 && s2.received >= 1, 3000, "both segments forwarding");
    await proxy.stats(); // the main thread knows the instance's users before it stalls
    tx.send(command(1, 0xad), p1, "127.0.0.1");
    await waitFor(async () => {
      const st = await proxy.stats();
      return st.segments.length === 2 && st.segments.every((x) => x.stages[0]?.state === "running" && x.stages[0].failures > 0);
    }, 10_000, "both stages running again after the stall");
    let shown = (await proxy.stats()).segments.map((x) => [x.name, x.stages[0]!.failures]);
    assert.equal(shown, [["one", 1], ["two", 1]]);
    tx.send(command(2, 0xad), p1, "127.0.0.1");
    await waitFor(async () => {
      const st = await proxy.stats();
      return st.segments.length === 2 && st.segments.every((x) => x.stages[0]?.state !== "down" && x.stages[0]!.failures === 2);
    }, 10_000, "the second stall counted for both");
    shown = (await proxy.stats()).segments.map((x) => [x.name, x.stages[0]!.state]);
    assert.equal(shown, [["one", "gave-up"], ["two", "gave-up"]], "each reached its limit");
  } finally {
    tx.close();
    s1.close();
    s2.close();
    await proxy.close();
  }
});

test("a worker stuck in a filter when the proxy stops: close ends it, and no watchdog restart is reported or counted", async () => {
  const { proxy, events, pa, sa, tx, cleanup } = await twoSegments("open", { watchdog: { stuckMs: 600 } });
  try {
    for (let i = 0; i < 5; i++) tx.send(indexedRtp(i), pa, "127.0.0.1");
    await waitFor(() => sa.received >= 5, 3000, "the bad segment's first packets");
    tx.send(command(5, 0xad), pa, "127.0.0.1");
    // the beacon the watchdog reads: worker 0 is inside a filter call that does not return
    const beacon = (proxy as unknown as { workers: { beacon: WatchdogBeacon }[] }).workers[0]!.beacon;
    await waitFor(() => beacon.stuckSlot(20) !== 0, 3000, "worker 0 stuck in the filter");
    const closing = events.length;
    await proxy.close(); // waits up to a second for the stuck worker, then kills it: longer than stuckMs
    const after = events.slice(closing).filter((e) => e.type === "watchdog");
    assert.equal(after, [], "no watchdog restart while stopping");
  } finally {
    await cleanup();
  }
});

test("stats asked of a stuck worker that the watchdog then replaces: its counts are not added twice", async () => {
  const { proxy, events, pa, sa, tx, cleanup } = await twoSegments("open", { watchdog: { stuckMs: 600 } });
  try {
    const n = 20;
    for (let i = 0; i < n; i++) tx.send(indexedRtp(i), pa, "127.0.0.1");
    await waitFor(() => sa.received >= n, 3000, "the bad segment's first packets");
    assert.is((await segmentStats(proxy, "bad")).packetsIn, n);
    tx.send(command(n, 0xad), pa, "127.0.0.1");
    const beacon = (proxy as unknown as { workers: { beacon: WatchdogBeacon }[] }).workers[0]!.beacon;
    await waitFor(() => beacon.stuckSlot(20) !== 0, 3000, "worker 0 stuck in the filter");
    // answered once the watchdog has killed the worker, after its counts were carried over
    const during = await segmentStats(proxy, "bad");
    assert.ok(events.some((e) => e.type === "watchdog"), "the watchdog replaced the worker meanwhile");
    assert.ok(during.packetsIn >= n && during.packetsIn <= n + 1, `packets in while the worker is replaced: ${during.packetsIn} (sent ${n + 1})`);
    await waitFor(async () => (await segmentStats(proxy, "bad")).stages[0]?.state === "running", 5000, "bad segment running again");
    const after = await segmentStats(proxy, "bad");
    assert.ok(after.packetsIn >= n && after.packetsIn <= n + 1, `packets in after the restart: ${after.packetsIn} (sent ${n + 1})`);
  } finally {
    await cleanup();
  }
});

test("wrong ABI, digest mismatch, rejected config: refused with the reason, the running config untouched", async () => {
  const { proxy, input, pb, sb, tx, watch, cleanup } = await twoSegments("open");
  try {
    const counterDigest = sha256Hex(new Uint8Array(await readFile(fixture("counter"))));
    const cases: [string, ProxyConfigInput, RegExp][] = [
      ["wrong ABI", { ...input, filters: { ...input.filters, counter: { path: fixture("wrong_abi") } } }, /ABI mismatch: module declares msm_abi_version_2_0/],
      ["digest", { ...input, filters: { ...input.filters, counter: { path: fixture("counter"), sha256: "ab".repeat(32) } } }, /digest mismatch: pinned sha256:(ab){32}, module is sha256:/],
      ["rejected config", { ...input, segments: input.segments!.map((s) => s.name === "good" ? { ...s, chain: [{ filter: "misbehave", config: { reject: "bitrate cap must be positive" } }] } : s) }, /bitrate cap must be positive/],
      ["missing file", { ...input, filters: { ...input.filters, counter: { path: "/nonexistent/x.wasm" } } }, /cannot read \/nonexistent\/x\.wasm/],
    ];
    let i = 0;
    for (const [label, bad, pattern] of cases) {
      for (let k = 0; k < 50; k++) tx.send(indexedRtp(i++), pb, "127.0.0.1");
      try {
        await proxy.apply(validateProxyConfig(bad));
        assert.unreachable(`${label}: applied`);
      } catch (err) {
        assert.instance(err, ApplyError, label);
        assert.match((err as Error).message, pattern, label);
        assert.match((err as Error).message, /running config is unchanged/);
      }
    }
    for (let k = 0; k < 50; k++) tx.send(indexedRtp(i++), pb, "127.0.0.1");
    await watch.expectDelivered(sb, i); // the stream across refused applies: every loss the kernel's
    const good = await segmentStats(proxy, "good");
    assert.is(good.stages[0]!.filter, "counter");
    assert.is(good.stages[0]!.digest, counterDigest);
    assert.is(good.stages[0]!.metrics.find((m) => m.name === "packets")?.value, i, "the same counter context kept counting");
    // and a good config still applies afterwards (with a correct pin)
    await proxy.apply(validateProxyConfig({ ...input, filters: { ...input.filters, counter: { path: fixture("counter"), sha256: counterDigest } } }));
  } finally {
    await cleanup();
  }
});

test("a validate chain keeps running next to a failing filter on the same worker", async () => {
  const [pa, pb] = [await freePortPair(), await freePortPair()];
  const [sa, sb] = [await Sink.open(), await Sink.open()];
  const { proxy, events } = await startProxy({
    workers: 1,
    filters: { misbehave: { path: fixture("misbehave") }, validate: { path: filterWasm("validate") } },
    segments: [
      { name: "bad", listen: { address: "127.0.0.1", port: pa }, destinations: [{ address: "127.0.0.1", port: sa.port }], chain: [{ filter: "misbehave" }] },
      { name: "checked", listen: { address: "127.0.0.1", port: pb }, destinations: [{ address: "127.0.0.1", port: sb.port }], chain: [{ filter: "validate" }] },
    ],
  });
  const tx = await bindUdp();
  // validate holds the first packets of a new source in probation (RFC 3550 A.1, MIN_SEQUENTIAL)
  // and may drop them so; every other loss must be the kernel's on a busy machine
  const watch = await DeliveryWatch.start(() => proxy, "checked", [pb, sb.port], ["probation"]);
  try {
    const n = 500;
    let trapped = false;
    await sendPaced(tx, pb, "127.0.0.1", n, 2000, (i) => indexedRtp(i), (sent) => {
      // sendPaced reports progress per burst, so `sent` skips values: never wait for an exact one
      if (sent >= 100 && !trapped) {
        trapped = true;
        tx.send(command(0, 0xde), pa, "127.0.0.1");
      }
    });
    await waitFor(() => events.some((e) => e.type === "failure" && e.filter === "misbehave"), 3000, "the trap, mid-stream");
    const delivery = await watch.expectDelivered(sb, n); // a CI run once waited 3 s for it, in vain, on a loaded machine
    assert.ok(delivery.proxyLoadDrops <= 2, `validate dropped ${delivery.proxyLoadDrops} (probation holds 2 at most)`);
  } finally {
    tx.close(); sa.close(); sb.close();
    await proxy.close();
  }
});

test.run();
