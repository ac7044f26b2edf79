// Config changes that used to fail or do nothing: a new segment taking the port of one the same
// change removes (also across workers), a .wasm rebuilt at the same path, secrets given by
// reference, and a removed segment that still held packets in a filter.
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApplyError, renderPrometheus, sha256Hex, validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { readFileSync } from "node:fs";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, freePortRun, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";

const test = suite("config changes", { timeoutMs: 60_000 });
const LO = "127.0.0.1";

for (const [label, workerB] of [["on the same worker", 0], ["on another worker", 1]] as const) {
  test(`a new segment takes the port of a segment the same change removes (${label})`, async () => {
    const port = await freePortPair();
    const [sinkA, sinkB] = [await Sink.open(), await Sink.open()];
    const seg = (name: string, sink: Sink, worker: number) => ({
      name, worker, listen: { address: LO, port }, destinations: [{ address: LO, port: sink.port }],
    });
    // the wildcard address too: 0.0.0.0:P and 127.0.0.1:P are one port
    const { proxy } = await startProxy({ workers: 2, segments: [{ ...seg("old", sinkA, 0), listen: { address: "0.0.0.0", port } }] });
    const tx = await bindUdp();
    try {
      tx.send(indexedRtp(1), port, LO);
      await waitFor(() => sinkA.received === 1, 2000, "old's stream");
      await proxy.apply(validateProxyConfig({ workers: 2, segments: [seg("new", sinkB, workerB)] }));
      tx.send(indexedRtp(2), port, LO);
      await waitFor(() => sinkB.received === 1, 2000, "new's stream");
      assert.is(sinkA.received, 1, "the removed segment forwards nothing more");
      assert.equal((await proxy.stats()).segments.map((s) => s.name), ["new"]);
    } finally {
      tx.close(); sinkA.close(); sinkB.close();
      await proxy.close();
    }
  });
}

test("a .wasm rebuilt at the same path is swapped in on the next apply (compared by digest, not by path)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-apply-"));
  const path = join(dir, "filter.wasm");
  copyFileSync(fixture("counter"), path);
  const listen = await freePortPair();
  const input: ProxyConfigInput = {
    filters: { f: { path } },
    segments: [{ name: "s", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: 9 }], chain: [{ filter: "f" }] }],
  };
  const { proxy, events } = await startProxy(input);
  try {
    assert.is((await segmentStats(proxy, "s")).stages[0]!.digest, sha256Hex(readFileSync(fixture("counter"))));
    await proxy.apply(validateProxyConfig(input)); // same file: nothing to do
    assert.is(events.filter((e) => e.type === "swap").length, 0);
    copyFileSync(fixture("misbehave"), path); // "rebuilt"
    await proxy.apply(validateProxyConfig(input));
    assert.is(events.filter((e) => e.type === "swap").length, 1);
    assert.is((await segmentStats(proxy, "s")).stages[0]!.digest, sha256Hex(readFileSync(fixture("misbehave"))));
  } finally {
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** One segment on `listen` whose misbehave stage refuses its context with `reject` as the reason: the reason shows what the filter was given. */
function misbehaveRejecting(listen: number, reject: unknown): ProxyConfigInput {
  return {
    filters: { misbehave: { path: fixture("misbehave") } },
    segments: [{ name: "s", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: 9 }], chain: [{ filter: "misbehave", config: { reject } }] }],
  };
}

test("secrets by reference: $file and $env are read by the proxy; a missing one names the field; the config keeps the reference", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-secret-"));
  writeFileSync(join(dir, "why"), "from a file\n");
  process.env.MSM_TEST_SECRET = "from the environment";
  const listen = await freePortPair();
  const input = (reject: unknown): ProxyConfigInput => misbehaveRejecting(listen, reject);
  const { proxy } = await startProxy(input(""));
  try {
    const refusal = async (reject: unknown): Promise<string> => {
      try {
        await proxy.apply(validateProxyConfig(input(reject), dir));
      } catch (err) {
        assert.instance(err, ApplyError);
        return (err as Error).message;
      }
      return "applied";
    };
    assert.match(await refusal({ $file: "why" }), /rejected its config: from a file$/m); // relative to the config's folder
    assert.match(await refusal({ $env: "MSM_TEST_SECRET" }), /rejected its config: from the environment$/m);
    assert.match(await refusal({ $file: "nope" }), /segments\[0\]\.chain\[0\]\.config\.reject: cannot read secret file .*nope: ENOENT/);
    assert.match(await refusal({ $env: "MSM_TEST_UNSET_VARIABLE" }), /segments\[0\]\.chain\[0\]\.config\.reject: environment variable MSM_TEST_UNSET_VARIABLE is not set/);
    assert.throws(() => validateProxyConfig(input({ $file: "why", other: 1 }), dir), /config\.reject: a \$file reference stands alone in its object/);
    // what the proxy keeps (and an agent would save) is the reference, never the value
    assert.equal(proxy.currentConfig.segments[0]!.chain[0]!.config, { reject: "" });
  } finally {
    await proxy.close();
    delete process.env.MSM_TEST_SECRET;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a $file secret is held to a regular file of at most 64 KiB: a FIFO, a device, a huge file are refused naming the field, and the running config runs on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-secret-"));
  writeFileSync(join(dir, "why"), "from a file\n");
  writeFileSync(join(dir, "huge"), Buffer.alloc((64 << 10) + 1, 0x41));
  writeFileSync(join(dir, "fits"), Buffer.alloc(64 << 10, 0x41));
  execFileSync("mkfifo", [join(dir, "fifo")]);
  const listen = await freePortPair();
  const input = (reject: unknown): ProxyConfigInput => misbehaveRejecting(listen, reject);
  const { proxy } = await startProxy(input(""));
  try {
    // before, a FIFO blocked the apply (and a thread of the pool) until a writer came: bound the wait
    const refusal = async (reject: unknown): Promise<string> => {
      const outcome = proxy.apply(validateProxyConfig(input(reject), dir)).then(() => "applied", (err: Error) => err.message);
      const timer = new Promise<string>((r) => setTimeout(() => r("still waiting after 10 s"), 10_000).unref());
      return Promise.race([outcome, timer]);
    };
    assert.match(await refusal({ $file: "fifo" }), /segments\[0\]\.chain\[0\]\.config\.reject: cannot read secret file .*fifo: it is a FIFO, not a regular file/);
    assert.match(await refusal({ $file: "huge" }), /config\.reject: cannot read secret file .*huge: it holds 65537 bytes, more than the 64 KiB a secret may hold/);
    // a device never ends: before, the proxy read /dev/zero until it ran out of memory
    assert.match(await refusal({ $file: "/dev/zero" }), /config\.reject: cannot read secret file \/dev\/zero: it is a character device, not a regular file/);
    assert.match(await refusal({ $file: "." }), /config\.reject: cannot read secret file .*: it is a directory, not a regular file/);
    // 64 KiB exactly is read whole, and then meets the filter's own limit on its config
    assert.match(await refusal({ $file: "fits" }), /rejected its config: config of 655\d\d bytes exceeds the filter's scratch area/);
    assert.match(await refusal({ $file: "why" }), /rejected its config: from a file$/m);
    assert.equal(proxy.currentConfig.segments[0]!.chain[0]!.config, { reject: "" });
  } finally {
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("secrets.files and secrets.env narrow what a reference may name: a file outside the directories (by symlink or '..' too) or another variable is refused naming the field", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-secret-"));
  const keys = join(dir, "keys");
  const mount = join(keys, "..2026_12_07"); // a Kubernetes Secret volume: keys/cam -> ..data/cam -> ..<time>/cam
  mkdirSync(mount, { recursive: true });
  writeFileSync(join(mount, "cam"), "the camera's key\n");
  symlinkSync("..2026_12_07", join(keys, "..data"));
  symlinkSync("..data/cam", join(keys, "cam"));
  writeFileSync(join(dir, "outside"), "not a key\n");
  symlinkSync(join(dir, "outside"), join(keys, "escape"));
  process.env.MSM_KEY_CAM = "from the environment";
  process.env.MSM_TEST_OTHER = "not a key";
  const listen = await freePortPair();
  const secrets = { files: [keys], env: ["MSM_KEY_*"] };
  const input = (reject: unknown): ProxyConfigInput => ({ ...misbehaveRejecting(listen, reject), secrets });
  const { proxy } = await startProxy(input(""));
  try {
    const refusal = async (reject: unknown): Promise<string> => proxy.apply(validateProxyConfig(input(reject), dir)).then(() => "applied", (err: Error) => err.message);
    assert.match(await refusal({ $file: join(keys, "cam") }), /rejected its config: the camera's key$/m);
    assert.match(await refusal({ $env: "MSM_KEY_CAM" }), /rejected its config: from the environment$/m);
    const outside = (f: string): RegExp => new RegExp(`segments\\[0\\]\\.chain\\[0\\]\\.config\\.reject: cannot read secret file ${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: it is not under a directory secrets\\.files allows \\(${keys.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\)`);
    assert.match(await refusal({ $file: join(dir, "outside") }), outside(join(dir, "outside")));
    assert.match(await refusal({ $file: join(keys, "escape") }), outside(join(keys, "escape")), "a symlink out of the directory");
    assert.match(await refusal({ $file: join(keys, "..", "outside") }), outside(join(keys, "..", "outside")), "'..' out of the directory");
    assert.match(await refusal({ $file: "/etc/passwd" }), outside("/etc/passwd"));
    assert.match(await refusal({ $env: "MSM_TEST_OTHER" }), /config\.reject: environment variable MSM_TEST_OTHER is not one secrets\.env allows \(MSM_KEY_\*\)/);
    assert.equal(proxy.currentConfig.segments[0]!.chain[0]!.config, { reject: "" }, "the running config runs on");
    assert.throws(() => validateProxyConfig({ secrets: { files: ["relative/keys"] } }), /secrets\.files\[0\]: must be an absolute directory path/);
    assert.throws(() => validateProxyConfig({ secrets: { env: ["MSM KEY"] } }), /secrets\.env\[0\]: must be a variable name, or a prefix ending in '\*'/);
  } finally {
    await proxy.close();
    delete process.env.MSM_KEY_CAM;
    delete process.env.MSM_TEST_OTHER;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a removed segment, and a proxy that stops, hand over what their filters hold (msm_context_drain)", async () => {
  const [pa, pb] = [await freePortPair(), await freePortPair()];
  const [sa, sb] = [await Sink.open(), await Sink.open()];
  const seg = (name: string, port: number, sink: Sink) => ({
    name, listen: { address: LO, port }, destinations: [{ address: LO, port: sink.port }],
    chain: [{ filter: "delay", config: { delayMs: 10_000 } }], // held far longer than the test runs
  });
  const input = (...segments: ReturnType<typeof seg>[]): ProxyConfigInput => ({ filters: { delay: { path: fixture("delay") } }, segments });
  const { proxy } = await startProxy(input(seg("a", pa, sa), seg("b", pb, sb)));
  const tx = await bindUdp();
  try {
    for (let i = 0; i < 100; i++) { // more than one output area (64) each
      tx.send(indexedRtp(i), pa, LO);
      tx.send(indexedRtp(i), pb, LO);
    }
    await waitFor(async () => (await segmentStats(proxy, "a")).stages[0]!.held === 100 && (await segmentStats(proxy, "b")).stages[0]!.held === 100, 3000, "all held");
    assert.is(sa.received + sb.received, 0);
    await proxy.apply(validateProxyConfig(input(seg("b", pb, sb))));
    await waitFor(() => sa.received >= 100, 2000, `a's held packets, handed over on removal (${sa.received})`);
    await proxy.close();
    await waitFor(() => sb.received >= 100, 2000, `b's held packets, handed over at shutdown (${sb.received})`);
    assert.equal([sa.tally(100), sb.tally(100)], [{ missing: 0, duplicates: 0 }, { missing: 0, duplicates: 0 }]);
  } finally {
    tx.close(); sa.close(); sb.close();
    await proxy.close();
  }
});

test("a port another program holds refuses a move before anything closes: the segment runs on where it was", async () => {
  const [pa, pb] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (port: number) => validateProxyConfig({ segments: [{ name: "moving", listen: { address: LO, port }, destinations: [{ address: LO, port: sink.port }] }] });
  const { proxy } = await startProxy(config(pa));
  const squatter = await bindUdp(pb + 1, LO); // another program holds the RTCP port of where the segment moves
  const tx = await bindUdp();
  try {
    await proxy.apply(config(pb));
    assert.unreachable("applied");
  } catch (err) {
    assert.instance(err, ApplyError);
    assert.is((err as ApplyError).committed, false);
    assert.match((err as Error).message, new RegExp(`segment 'moving': cannot bind listen\\.port \\(RTCP, port \\+ 1\\) 127\\.0\\.0\\.1:${pb + 1}: the port is taken \\(another process holds it\\)`));
    tx.send(indexedRtp(0), pa, LO);
    await waitFor(() => sink.received === 1, 3000, "the segment on its old port");
    assert.ok(proxy.health().ready);
  } finally {
    tx.close();
    squatter.close();
    sink.close();
    await proxy.close();
  }
});

test("a port taken after the check, before the bind: the change says which segment is NOT running, /readyz and /metrics show it until an apply binds it", async () => {
  const [pa, pb] = [await freePortPair(), await freePortPair()];
  const dir = mkdtempSync(join(tmpdir(), "msm-race-"));
  // the module's file is a FIFO: the worker's prepare (after the port check) waits on it, so the
  // test takes the port exactly between the check and the bind that follows the commit
  const fifo = join(dir, "counter.wasm");
  execFileSync("mkfifo", [fifo]);
  const config = (port: number, path: string) => validateProxyConfig({
    filters: { counter: { path } },
    segments: [{ name: "moving", listen: { address: LO, port }, destinations: [{ address: LO, port: 9 }], chain: [{ filter: "counter" }] }],
  });
  const { proxy } = await startProxy(config(pa, fixture("counter")));
  let squatter: Awaited<ReturnType<typeof bindUdp>> | undefined;
  try {
    const applying = proxy.apply(config(pb, fifo)).then(() => null, (err: unknown) => err);
    const writer = await open(fifo, "w"); // returns once the worker opened it to read: the check is done
    squatter = await bindUdp(pb, LO);
    await writer.writeFile(readFileSync(fixture("counter")));
    await writer.close();
    const err = await applying;
    assert.instance(err, ApplyError);
    assert.is((err as ApplyError).committed, true);
    assert.match((err as Error).message, /^config applied, except these segments, which are NOT running:\n {2}segment 'moving': cannot bind listen 127\.0\.0\.1:\d+: the port is taken \(another process holds it\)/);
    assert.equal((await proxy.stats()).segments, []);
    const health = proxy.health();
    assert.is(health.ready, false);
    assert.ok(health.live, "the proxy itself is fine");
    assert.match(health.problems.join("\n"), /segment 'moving' is NOT running: cannot bind listen 127\.0\.0\.1:\d+/);
    assert.match(renderPrometheus(await proxy.stats()), /\nmsm_segments_not_running 1\n/);
    assert.equal(proxy.segmentsNotRunning, ["moving"]);
    // still taken: the next apply of the same config is refused, and nothing changes
    await proxy.apply(config(pb, fixture("counter"))).then(() => assert.unreachable("applied"), (e: unknown) => assert.is((e as ApplyError).committed, false));
    assert.equal(proxy.segmentsNotRunning, ["moving"]);
    squatter.close();
    squatter = undefined;
    // the worker restarts (crash) with the port free: it binds the segment, which runs again
    await (proxy as unknown as { workers: { kill(): Promise<void> }[] }).workers[0]!.kill();
    const again = await open(fifo, "w"); // the restarted worker reads the running config's module
    await again.writeFile(readFileSync(fixture("counter")));
    await again.close();
    await waitFor(() => proxy.health().ready, 10_000, `ready after the restart: ${proxy.health().problems.join("; ")}`);
    assert.equal(proxy.segmentsNotRunning, []);
    await proxy.apply(config(pb, fixture("counter"))); // and a change applies (a stale entry refused every one)
    assert.ok(proxy.health().ready);
    assert.match(renderPrometheus(await proxy.stats()), /\nmsm_segments_not_running 0\n/);
    assert.equal((await proxy.stats()).segments.map((x) => x.name), ["moving"]);
  } finally {
    squatter?.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("srtp must fail closed: with failure mode 'open', an srtp instance that runs out of memory sends no plaintext", async () => {
  const [pe, pbig] = [await freePortPair(), await freePortRun(4)];
  const sink = await Sink.open(0, { keep: true });
  const key = "inline:" + Buffer.alloc(30, 3).toString("base64");
  const secure = {
    name: "secure", listen: { address: LO, port: pe }, destinations: [{ address: LO, port: sink.port }],
    chain: [{ filter: "srtp", config: { direction: "protect", key } }], failure: { mode: "open" as const, restartBackoffMs: 1500 },
  };
  const input = (extra: object[]): ProxyConfigInput => ({ filters: { srtp: { path: filterWasm("srtp"), maxMemoryPages: 16 } }, segments: [secure, ...extra] as ProxyConfigInput["segments"] });
  const { proxy, events } = await startProxy(input([]));
  const tx = await bindUdp();
  try {
    assert.is((await segmentStats(proxy, "secure")).stages[0]!.failureMode, "closed", "the filter's policy overrides the segment's mode");
    tx.send(indexedRtp(0), pe, LO);
    await waitFor(() => sink.received === 1, 2000, "the first protected packet");
    // two segments whose contexts each fit a fresh instance (so the change's probe lets each
    // through) but not both beside secure's: the shared instance runs out of memory and traps
    const big = (k: number) => ({ name: `big${k}`, listen: { address: LO, port: pbig + 2 * k }, destinations: [{ address: LO, port: 9 }], chain: [{ filter: "srtp", config: { direction: "protect", key, maxSources: 384 } }] });
    try {
      await proxy.apply(validateProxyConfig(input([big(0), big(1)])));
      assert.unreachable("applied");
    } catch (err) {
      assert.match((err as Error).message, /failed in msm_context_create: .*most likely out of memory: the instance uses \d+ of its 16 pages/);
    }
    assert.ok(events.some((e) => e.type === "failure" && e.segments.includes("secure")), "secure's stage went down");
    for (let i = 1; i <= 50; i++) tx.send(indexedRtp(i), pe, LO); // while the instance is down
    await waitFor(async () => ((await segmentStats(proxy, "secure")).drops.host_filter_failed ?? 0) >= 50, 1000, "drops while down");
    await waitFor(() => events.some((e) => e.type === "restarted" && e.segments.includes("secure")), 5000, "the restart");
    tx.send(indexedRtp(51), pe, LO);
    await waitFor(() => sink.received === 2, 2000, "protected packets again");
    assert.ok(sink.packets.every((p) => p.bytes.length === 210), `only SRTP (210 bytes) reached the sink: ${sink.packets.map((p) => p.bytes.length)}`);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
