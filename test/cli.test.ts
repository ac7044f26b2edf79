// The msm command line as an operator uses it: a proxy from a YAML file, reloaded on SIGHUP and
// on file change; a bad file names the field and the running config stays; the demo's verdict.
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeEvent } from "../cli/proxy-command.js";
import { applyErrorLines } from "../cli/apply-errors.js";
import { demoVerdict } from "../cli/demo.js";
import { ApplyError, validateProxyConfig } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture, ROOT } from "./lib/paths.js";
import { bindUdp, freePortPair, freePortRun, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { DropWatch, unexplainedLoss } from "./lib/kernel-drops.js";

const test = suite("msm CLI", { timeoutMs: 60_000 });
const MSM = join(ROOT, "dist", "cli", "msm.js");

function run(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [MSM, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Whether process `pid` has `path` open (its /proc fd links). */
function holdsOpen(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false; // the process ended
  }
}

function yaml(listen: number, sink: number, tag: number, extra = ""): string {
  return `# test config
filters:
  counter:
    path: ${fixture("counter")}
segments:
  - name: cam
    listen: { address: 127.0.0.1, port: ${listen} }
    destinations:
      - { address: 127.0.0.1, port: ${sink} }
    chain:
      - filter: counter
        config: { tag: ${tag} }
${extra}`;
}

/** Waits (bounded) until `pattern` shows in what the process printed after `mark` (a length of its output). */
function printed(p: { output: () => string }, mark: number, pattern: RegExp, ms: number, what: string): Promise<void> {
  return waitFor(() => pattern.test(p.output().slice(mark)), ms, `${what}; it printed:\n${p.output().slice(mark)}`);
}

test("msm proxy: runs a YAML config, reloads on SIGHUP and file change, keeps running on a bad file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-"));
  const file = join(dir, "proxy.yaml");
  const listen = await freePortPair();
  const sink = await Sink.open();
  // with an admin endpoint: what the reloads come to, counted in /metrics
  const admin = "admin: { address: 127.0.0.1, port: 0 }\n";
  writeFileSync(file, yaml(listen, sink.port, 1) + admin);
  const p = run(["proxy", "--config", file]);
  let code: number | null = null;
  const tx = await bindUdp();
  // loss is accepted only where the kernel dropped the datagrams (a busy machine)
  const kernel = new DropWatch([listen, sink.port]);
  let i = 0;
  const pump = async (k: number): Promise<void> => {
    for (let j = 0; j < k; j++) tx.send(indexedRtp(i++), listen, "127.0.0.1");
    await waitFor(() => sink.received + kernel.since().total >= i, 5000, `packets through the proxy (${sink.received}/${i})`);
  };
  try {
    // the segment lines follow "proxy running" and may arrive in a later chunk of the pipe
    // msm proxy watches its config (and SIGHUP reloads) before it says it runs
    await waitFor(() => /cam: listen \d+\/\d+, egress \d+, chain counter/.test(p.output()), 15_000, "the proxy to start");
    await pump(20);

    // a bad edit: the field is named, nothing changes, traffic keeps flowing
    let mark = p.output().length;
    writeFileSync(file, yaml(listen, sink.port, 1).replace("port: " + sink.port, "port: 70000") + admin);
    await printed(p, mark, /NOT reloaded/, 5000, "the bad file to be refused");
    assert.match(p.output().slice(mark), /segments\[0\]\.destinations\[0\]\.port: .*(65535|too big)/i);
    await pump(20);

    mark = p.output().length;
    writeFileSync(file, yaml(listen, sink.port, 1, "    rtcpMux: false\n    bogus: 1\n") + admin);
    await printed(p, mark, /NOT reloaded/, 5000, "unknown key refused");
    assert.match(p.output().slice(mark), /segments\[0\]: unknown key 'bogus'/);

    // a good edit: reloaded through a hot swap, and again on SIGHUP
    mark = p.output().length;
    writeFileSync(file, yaml(listen, sink.port, 2) + admin);
    await printed(p, mark, /config reloaded \(file changed\)/, 5000, "reload on change");
    assert.match(p.output().slice(mark), /segment cam: chain swapped \(state carried: counter/);
    mark = p.output().length;
    p.child.kill("SIGHUP");
    await printed(p, mark, /config reloaded \(SIGHUP\)/, 5000, "reload on SIGHUP");
    await pump(20);
    const adminPort = Number(/admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(p.output())![1]);
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    assert.match(metrics, '\nmsm_config_applies_total{result="applied"} 3\n', "the start, the edit and SIGHUP");
    assert.match(metrics, '\nmsm_config_applies_total{result="refused"} 2\n', "the two bad files");
    assert.match(metrics, "\nmsm_proxy_running 1\n");
    // a reload that adds a segment says where it listens, as the start does; one that removes it says so
    const second = await freePortPair();
    const cam2 = `  - name: cam-2\n    listen: { address: 127.0.0.1, port: ${second} }\n    destinations: [{ address: 127.0.0.1, port: ${sink.port + 0} }]\n`;
    mark = p.output().length;
    writeFileSync(file, yaml(listen, sink.port, 2).replace("segments:\n", `segments:\n${cam2}`) + admin);
    await printed(p, mark, /config reloaded \(file changed\)\n {2}started cam-2: listen \d+\/\d+, egress \d+, chain \(empty\)/, 5000, "the added segment's ports");
    mark = p.output().length;
    writeFileSync(file, yaml(listen, sink.port, 2) + admin);
    await printed(p, mark, /config reloaded \(file changed\); stopped: cam-2/, 5000, "the removed segment");
    await pump(20);
    const { duplicates } = sink.tally(i);
    const verdict = unexplainedLoss({ sent: i, received: sink.received, proxyDrops: 0, kernel, duplicates });
    assert.is(verdict, null, `packets lost across the reloads: ${verdict}`);
  } finally {
    p.child.kill("SIGTERM");
    code = await p.exited;
    tx.close();
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
  // after the finally, so that a failure above is reported as itself
  assert.is(code, 0, `msm proxy exits cleanly on SIGTERM:\n${p.output()}`);
});

test("msm proxy --config <(...): runs, says a process substitution cannot be reloaded, and a SIGHUP is refused at once with the running config kept (the spent pipe read as an empty config would have removed every segment)", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const child = spawn("bash", ["-c", `exec "$0" "$1" proxy --config <(printf '%s' "$2")`, process.execPath, MSM, yaml(listen, sink.port, 7)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const p = { output: () => out };
  const tx = await bindUdp();
  try {
    await printed(p, 0, /reload: not from \/dev\/fd\/\d+, a process substitution read once \(give a file, or a FIFO a program fills, to reload\); stop: kill \d+/, 15_000, "the start");
    const mark = out.length;
    child.kill("SIGHUP");
    await printed(p, mark, /config NOT reloaded \(SIGHUP\), the running config stays: \/dev\/fd\/\d+: cannot read: a pipe that was closed with nothing in it/, 5000, "the reload refused");
    // the segment still forwards (a packet at each look: one the kernel dropped is not the proxy's)
    let i = 0;
    await waitFor(() => (tx.send(indexedRtp(i++), listen, "127.0.0.1"), sink.received > 0), 10_000, "a packet through the segment after the refused reload");
  } finally {
    tx.close();
    sink.close();
    child.kill();
  }
});

test("msm proxy: started while another process holds one segment's port, the others forward, the missing one is named (log, /readyz) and runs once a retry finds the port free", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-taken-"));
  const file = join(dir, "proxy.yaml");
  const [pa, pb] = [await freePortPair(), await freePortPair()];
  const [sinkA, sinkB] = [await Sink.open(), await Sink.open()];
  const camB = `  - name: cam-b\n    listen: { address: 127.0.0.1, port: ${pb} }\n    destinations:\n      - { address: 127.0.0.1, port: ${sinkB.port} }\n`;
  writeFileSync(file, yaml(pa, sinkA.port, 1).replace("segments:\n", `segments:\n${camB}`) + "admin: { address: 127.0.0.1, port: 0 }\n");
  let squatter: Awaited<ReturnType<typeof bindUdp>> | undefined = await bindUdp(pb, "127.0.0.1");
  const p = run(["proxy", "--config", file]);
  const tx = await bindUdp();
  try {
    await waitFor(() => /admin: http:\/\/127\.0\.0\.1:\d+\/metrics/.test(p.output()) && /segment 'cam-b' NOT running/.test(p.output()), 15_000, `the proxy to start; it printed:\n${p.output()}`);
    assert.match(p.output(), `segment 'cam-b' NOT running: cannot bind listen 127.0.0.1:${pb}: the port is taken (another process holds it)`);
    assert.match(p.output(), "1 segment(s) NOT running (cam-b): next try in 1 s");
    const admin = Number(/admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(p.output())![1]);
    const readyz = await fetch(`http://127.0.0.1:${admin}/readyz`);
    assert.is(readyz.status, 503);
    assert.match(await readyz.text(), "segment 'cam-b' is NOT running");
    tx.send(indexedRtp(0), pa, "127.0.0.1");
    await waitFor(() => sinkA.received === 1, 5000, "a packet through cam-a");
    // a log written into the config's folder changes nothing: the retries go on backing off
    for (let k = 0; k < 5; k++) {
      writeFileSync(join(dir, "proxy.log"), `line ${k}\n`, { flag: "a" });
      await new Promise((r) => setTimeout(r, 150));
    }
    await waitFor(() => /next try in 2 s/.test(p.output()), 15_000, "the second retry's back-off");
    assert.is(p.output().split("NOT running (cam-b): next try in 1 s").length - 1, 1, `said once, the back-off not reset by the log:\n${p.output()}`);
    squatter.close();
    squatter = undefined;
    await waitFor(() => /retry: every segment runs/.test(p.output()), 40_000, "a retry to bind cam-b");
    assert.is((await fetch(`http://127.0.0.1:${admin}/readyz`)).status, 200);
    tx.send(indexedRtp(1), pb, "127.0.0.1");
    await waitFor(() => sinkB.received === 1, 5000, "a packet through cam-b");
  } finally {
    squatter?.close();
    tx.close();
    p.child.kill("SIGTERM");
    await p.exited;
    sinkA.close();
    sinkB.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm proxy: a segment NOT running after a reload (its port taken after the check) fails /readyz and runs once a retry finds the port free", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-retry-"));
  const file = join(dir, "proxy.yaml");
  // the module's file is a FIFO: the worker's prepare, after the port check, waits on it, so the
  // test takes the port exactly between the check and the bind after the commit (test/apply.test.ts)
  const fifo = join(dir, "counter.wasm");
  execFileSync("mkfifo", [fifo]);
  const module = readFileSync(fixture("counter"));
  const [pa, pb] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const config = (listen: number, path: string) => yaml(listen, sink.port, 1).replace(`path: ${fixture("counter")}`, `path: ${path}`) + "admin: { address: 127.0.0.1, port: 0 }\n";
  writeFileSync(file, config(pa, fixture("counter")));
  const p = run(["proxy", "--config", file]);
  let squatter: Awaited<ReturnType<typeof bindUdp>> | undefined;
  let feeding = true;
  const tx = await bindUdp();
  try {
    await waitFor(() => /admin: http:\/\/127\.0\.0\.1:\d+\/metrics/.test(p.output()) && /cam: listen/.test(p.output()), 15_000, "the proxy to start");
    const admin = Number(/admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(p.output())![1]);
    const readyz = async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).status;
    assert.is(await readyz(), 200);
    const mark = p.output().length;
    writeFileSync(file, config(pb, fifo));
    const writer = await open(fifo, "w"); // returns once the worker opened it to read: the check is done
    squatter = await bindUdp(pb, "127.0.0.1");
    await writer.writeFile(module);
    await writer.close();
    await printed(p, mark, /1 segment\(s\) NOT running \(cam\): next try in 1 s/, 10_000, "the segment NOT running");
    assert.match(p.output().slice(mark), /config reloaded \(file changed\), but these segments are NOT running:\n {2}segments\[0\] \(segment 'cam'\): cannot bind listen 127\.0\.0\.1:\d+: the port is taken \(another process holds it\)/, p.output().slice(mark));
    assert.is(await readyz(), 503);
    // each retry applies the running config again, which reads the module (the FIFO) again. The
    // feeder opens the FIFO anew only once the proxy closed its last reader: a writer reopening
    // before that reader saw end of file would hand it a second module, and on a busy machine
    // a slow reader could read modules for ever (the retry never ends).
    void (async () => {
      while (feeding) {
        const w = await open(fifo, "w");
        await w.writeFile(module).catch(() => {}); // EPIPE: the reader gave up; the next gets a whole module
        await w.close();
        while (feeding && holdsOpen(p.child.pid!, realpathSync(fifo))) await new Promise((r) => setTimeout(r, 5));
      }
    })().catch(() => {}); // an open after the finally removed the directory
    squatter.close();
    squatter = undefined;
    await printed(p, mark, /retry: every segment runs/, 15_000, "a retry to bind the segment");
    assert.is(await readyz(), 200);
    tx.send(indexedRtp(0), pb, "127.0.0.1");
    await waitFor(() => sink.received === 1, 5000, "a packet through the segment on its new port");
  } finally {
    feeding = false;
    squatter?.close();
    tx.close();
    p.child.kill("SIGTERM");
    // a feeder waiting on the FIFO for a reader is let go by one
    const reader = await open(fifo, "r+").catch(() => null);
    await reader?.close();
    await p.exited;
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm proxy --check: a file a start would take passes without binding a port; what a start would refuse is named, field by field, filters' own refusals included", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-check-"));
  const file = join(dir, "proxy.yaml");
  const held = await bindUdp(); // the listen port is taken: a check binds nothing, so it passes
  const validate = `  validate:\n    path: ${filterWasm("validate")}\n`;
  const config = (stageConfig: string, extraFilter = "") => yaml(held.address().port, 9, 1)
    .replace("segments:", `${extraFilter}segments:`)
    .replace("      - filter: counter\n        config: { tag: 1 }", `      - filter: counter\n        config: { tag: 1 }\n      - filter: validate\n        config: ${stageConfig}`);
  const check = (...more: string[]) => {
    const r = spawnSync(process.execPath, [MSM, "proxy", "--config", file, "--check", ...more], { encoding: "utf8", timeout: 30_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  try {
    writeFileSync(file, config("{ allowedPayloadTypes: [96] }", validate));
    let r = check();
    assert.is(r.code, 0, r.err);
    assert.match(r.out, `${file}: valid: 1 segment(s), 2 filter(s) loaded, each of which accepted its root config and every stage's config`);
    // a stage config the filter refuses, a secret that is not there: each named
    writeFileSync(file, config("{ allowedPayloadTypes: [200] }", validate).replace("config: { tag: 1 }", "config: { tag: 1, key: { $env: MSM_CHECK_UNSET } }"));
    r = check();
    assert.is(r.code, 1, r.out);
    assert.match(r.err, `msm proxy: ${file}: NOT valid, a start would refuse it:\n  segments[0].chain[0].config.key: environment variable MSM_CHECK_UNSET is not set`);
    writeFileSync(file, config("{ allowedPayloadTypes: [200] }", validate));
    r = check();
    assert.is(r.code, 1, r.out);
    assert.match(r.err, /segments\[0\] \(segment 'cam'\)\.chain\[1\]\.config: filter 'validate' rejected its config: config key 'allowedPayloadTypes' must be an array of integers between 0 and 127/);
    // a module that is not there, and a filter that never returns from a context's creation
    // (ended from outside, named; a start would be stuck there)
    writeFileSync(file, config("{}", validate).replace(`${filterWasm("validate")}`, join(dir, "nothere.wasm")));
    r = check();
    assert.is(r.code, 1, r.out);
    assert.match(r.err, `filters.validate.path: cannot read ${join(dir, "nothere.wasm")}: ENOENT`);
    writeFileSync(file, config("{}", `  misbehave:\n    path: ${fixture("misbehave")}\n`).replace("filter: validate\n        config: {}", "filter: misbehave\n        config: { loopIn: create }"));
    const t0 = Date.now();
    r = check();
    assert.is(r.code, 1, r.out + r.err);
    assert.match(r.err, "segments[0] (segment 'cam').chain[1].config: the filter did not return within 2000 ms from msm_context_create (an endless loop?)");
    assert.ok(Date.now() - t0 < 20_000, `ended in ${Date.now() - t0} ms`);
    // the file's own rules, as at a start
    writeFileSync(file, config("{}", validate).replace("filter: validate", "filter: validat"));
    r = check();
    assert.is(r.code, 1, r.out);
    assert.match(r.err, "segments[0].chain[1].filter: unknown filter 'validat'");
    // with --control-plane, the node's file
    writeFileSync(file, "socketReceiveBuffer: 1\n");
    const node = spawnSync(process.execPath, [MSM, "proxy", "--control-plane", "127.0.0.1:1", "--node-id", "n", "--state-dir", dir, "--insecure", "--config", file, "--check"], { encoding: "utf8", timeout: 10_000 });
    assert.is(node.status, 1, node.stdout);
    assert.match(node.stderr, "socketReceiveBuffer: ");
    // the flags a start would refuse, --check refuses too (exit 2, naming the flag)
    writeFileSync(file, "workers: 1\n");
    const flagged = (more: string[]) => spawnSync(process.execPath, [MSM, "proxy", ...more, "--check"], { encoding: "utf8", timeout: 10_000 });
    const agent = ["--control-plane", "127.0.0.1:1", "--node-id", "n", "--state-dir", dir, "--insecure", "--config", file];
    for (const [more, why] of [
      [[...agent, "--workers", "abc"], "--workers must be a number from 1 to 64, got 'abc'"],
      [[...agent, "--gso", "maybe"], "--gso must be auto or off, got 'maybe'"],
      [[...agent, "--admin", "9494"], "--admin takes HOST:PORT, got '9494'"],
      [[...agent, "--admin", ""], "--admin takes HOST:PORT, got ''"],
      [["--control-plane", "127.0.0.1:1", "--node-id", "n", "--insecure", "--config", file], "--control-plane needs --state-dir (missing)"],
      [["--config", file, "--admin", "127.0.0.1:99999"], "--admin takes HOST:PORT, got '127.0.0.1:99999'"],
    ] as [string[], string][]) {
      const r2 = flagged(more);
      assert.is(r2.status, 2, `${more.join(" ")}: ${r2.stdout}`);
      assert.match(r2.stderr, why);
    }
  } finally {
    held.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm proxy: a bad file at start names the field and exits 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-"));
  const file = join(dir, "bad.yaml");
  writeFileSync(file, yaml(5004, 6000, 1).replace("filter: counter", "filter: countr"));
  try {
    const p = run(["proxy", "--config", file]);
    assert.is(await p.exited, 1);
    assert.match(p.output(), /segments\[0\]\.chain\[0\]\.filter: unknown filter 'countr'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm proxy: a filter's root config refused at start is named as the filter entry's, not the segment's", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-"));
  const file = join(dir, "root.yaml");
  writeFileSync(file, yaml(await freePortPair(), 9, 1).replace(`path: ${fixture("counter")}`, `path: ${fixture("counter")}\n    config: { generation: -1 }`));
  try {
    const p = run(["proxy", "--config", file]);
    assert.is(await p.exited, 1);
    assert.match(p.output(), /the proxy did not start: its config could not be applied:\n {2}segments\[0\] \(segment 'cam'\): filter 'counter' rejected its root config \(filters\.counter\.config\): /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm proxy: segments needing more sockets than ulimit -n allows are refused up front, with what to change", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-"));
  const file = join(dir, "many.yaml");
  // n segments without rtcpMux need 4n sockets; the limit below is 200
  const segments = (n: number, prefix: string, base: number): string => "segments:\n" + Array.from({ length: n }, (_, i) => `  - name: ${prefix}${i}
    listen: { address: 127.0.0.1, port: ${base + 2 * i} }
    destinations: [{ address: 127.0.0.1, port: 9 }]
`).join("");
  const start = (): { child: ChildProcess; output: () => string; exited: Promise<number | null> } => {
    const child = spawn("sh", ["-c", `ulimit -n 200 && exec "${process.execPath}" "${MSM}" proxy --config "${file}"`], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    return { child, output: () => out, exited: new Promise((resolve) => child.on("exit", (c) => resolve(c))) };
  };
  // 160 ports handed out, not fixed ones: another test file may run beside this one (test/run.ts)
  const base = await freePortRun(160);
  try {
    // at start: 60 segments need 240
    writeFileSync(file, segments(60, "s", base));
    const refused = start();
    assert.is(await refused.exited, 1, refused.output());
    assert.match(refused.output(), /segments: 60 segments need 240 sockets, but the open-files limit is 200 \(ulimit -n\)/);
    assert.match(refused.output(), /use rtcpMux/);
    assert.not.match(refused.output(), /EMFILE/);

    // 30 segments (120 sockets) run; 30 others instead would need 240 while the change is prepared
    const running = segments(30, "a", base);
    writeFileSync(file, running);
    const p = start();
    let code: number | null = null;
    try {
      await waitFor(() => p.output().includes("proxy running: 30 segment(s)"), 15_000, "the proxy to start");
      const mark = p.output().length;
      writeFileSync(file, segments(30, "b", base + 100));
      await printed(p, mark, /NOT reloaded/, 10_000, "the change to be refused");
      assert.match(p.output().slice(mark), /segments: 60 segments \(running and new ones together, while the change is prepared\) need 240 sockets/);
      assert.not.match(p.output(), /EMFILE/);
    } finally {
      p.child.kill("SIGTERM");
      code = await p.exited;
    }
    assert.is(code, 0, p.output());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm proxy: an admin port another process holds stops the start with exit 1, naming the endpoint", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-"));
  const file = join(dir, "proxy.yaml");
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  const taken = (holder.address() as AddressInfo).port;
  const listen = await freePortPair();
  writeFileSync(file, `admin: { address: 127.0.0.1, port: ${taken} }\nstateFile: state.json\n${yaml(listen, 9, 1)}`);
  try {
    const p = run(["proxy", "--config", file]);
    assert.is(await p.exited, 1, p.output());
    assert.match(p.output(), new RegExp(`admin endpoint 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE.*; the proxy did not start`));
    // its RTP port is free again: nothing of the half-started proxy stays behind
    const again = await bindUdp(listen);
    again.close();
    // nor a stateFile of stages that never ran, which the next start said it restored
    assert.not.ok(existsSync(join(dir, "state.json")), "no stateFile written");
  } finally {
    holder.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm COMMAND --help prints that command's usage (or the whole, for one without its own) and exits 0", async () => {
  const expected: [string, RegExp][] = [
    ["proxy", /^usage: msm proxy --config FILE .*\n.*msm proxy --control-plane/],
    ["control-plane", /^usage: msm control-plane --listen/],
    ["demo", /Usage:\n  msm proxy --config FILE/],
  ];
  for (const [cmd, usage] of expected) {
    const p = run([cmd, "--help"]);
    assert.is(await p.exited, 0, cmd);
    assert.match(p.output(), usage, cmd);
  }
});

test("a usage error says what is wrong first, and the command's usage or where to find it, not the whole help", async () => {
  const p = run(["demo", "--nope", "1"]);
  assert.is(await p.exited, 2);
  assert.is(p.output(), "msm: unknown flag --nope (its flags: --seconds, --rate, --bad-percent)\n(msm help: every command and flag)\n");
  const typo = run(["proxy", "--conifg", "proxy.yaml"]);
  assert.is(await typo.exited, 2);
  assert.match(typo.output(), /^msm: unknown flag --conifg; did you mean --config\?\n/);
  const q = run(["proxy"]);
  assert.is(await q.exited, 2);
  assert.match(q.output(), /^msm: give --config, or --control-plane\nusage: msm proxy/);
  assert.not.match(q.output(), "Media Streaming Mesh data plane");
  const extra = run(["filter", "new", "a", "/nonexistent/x", "extra"]);
  assert.is(await extra.exited, 2, "an extra word is refused, not ignored");
  assert.match(extra.output(), /^msm: unexpected 'extra'\nusage: msm filter new NAME DIR/);
  const v = run(["version"]);
  assert.is(await v.exited, 0);
  assert.match(v.output(), /^msm \d+\.\d+\.\d+ \(filter ABI 1\.\d+, (Node\.js|Bun) [\d.]+\)\n$/);
});

test("msm demo piped into a reader that stops early (| head): exits quietly, no EPIPE stack trace", async () => {
  const child = spawn(process.execPath, [MSM, "demo", "--seconds", "3"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
  child.stdout!.destroy(); // as head does after its lines
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  assert.is(code, 0, err);
  assert.not.match(err, /EPIPE|Error|at /, err);
});

test("msm with an unknown command or flag prints usage and exits 2", async () => {
  const a = run(["frobnicate"]);
  assert.is(await a.exited, 2);
  assert.match(a.output(), /unknown command 'frobnicate'/);
  // a misspelt command with --help, or after help, is no answer either
  const typo = run(["proxyy", "--help"]);
  assert.is(await typo.exited, 2);
  assert.match(typo.output(), /unknown command 'proxyy'/);
  const topic = run(["help", "proxyy"]);
  assert.is(await topic.exited, 2);
  assert.match(topic.output(), /^msm: no help for 'proxyy': not a command \(proxy, demo, control-plane, filter, version\)/);
  const proxyHelp = run(["help", "proxy"]);
  assert.is(await proxyHelp.exited, 0);
  assert.match(proxyHelp.output(), /^usage: msm proxy --config FILE/);
  const b = run(["demo", "--nope", "1"]);
  assert.is(await b.exited, 2);
  assert.match(b.output(), /unknown flag --nope/);
  const c = run(["proxy", "--control-plane", "127.0.0.1:9", "--node-id", "n2", "--insecure"]);
  assert.is(await c.exited, 2);
  assert.match(c.output(), /--control-plane needs --state-dir \(missing\)/, "the one missing is named");
  const d = run(["proxy", "--control-plane", "127.0.0.1:9", "--node-id", "n2", "--state-dir", "/tmp/x", "--tls-ca", "ca.pem"]);
  assert.is(await d.exited, 2);
  assert.match(d.output(), /missing: --tls-cert, --tls-key\), or --insecure/);
  // a --store of no known form is the command line's fault too (it exited 1, as a store failure)
  for (const [spec, why] of [["bogus:x", "unknown store 'bogus:x'"], ["etcd:", "needs at least one URL"], ["file:", "needs a directory"]]) {
    const e = run(["control-plane", "--listen", "127.0.0.1:0", "--store", spec!, "--insecure"]);
    assert.is(await e.exited, 2, e.output());
    assert.match(e.output(), "msm: --store: ");
    assert.match(e.output(), why!);
  }
});

test("msm filter new refuses a name whose metrics the proxy would refuse (drops), before writing anything, and exits 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-new-"));
  try {
    const p = run(["filter", "new", "drops", join(dir, "x")]);
    assert.is(await p.exited, 1);
    assert.match(p.output(), /^msm: invalid filter name "drops": its metrics could take the name of the host's msm_filter_drops_total; choose another filter name$/m);
    assert.not.ok(existsSync(join(dir, "x")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm demo: every good packet delivered, every malformed one dropped and counted", async () => {
  const p = run(["demo", "--seconds", "2", "--rate", "500", "--bad-percent", "10"]);
  const code = await p.exited;
  assert.is(code, 0, p.output());
  assert.match(p.output(), /^OK: every good packet arrived once; every malformed packet was dropped and counted\.$/m);
  assert.match(p.output(), /bad_version\s+\d+\s+\d+/);
});

test("msm proxy with a config file that has no segments (an empty file): runs, and says that nothing is forwarded", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-empty-"));
  const file = join(dir, "proxy.yaml");
  writeFileSync(file, "");
  const p = run(["proxy", "--config", file]);
  try {
    await waitFor(() => /reload: edit /.test(p.output()), 15_000, `the proxy to start; it printed:\n${p.output()}`);
    assert.match(p.output(), /proxy running: 0 segment\(s\)/);
    assert.ok(p.output().includes(`note: ${file} has no segments: nothing is forwarded until it gets some`), p.output());
  } finally {
    p.child.kill("SIGINT");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm demo's verdict: the kernel's drops at a full socket (a busy machine) are said and excused, loss they do not cover is NOT OK", () => {
  const base = { goodSent: 950, badSent: 50, probation: 1, goodArrived: 949, duplicates: 0, validateDrops: 51, kernel: { listen: 0, sink: 0 } };
  const quiet = demoVerdict(base);
  assert.equal([quiet.ok, quiet.lines], [true, ["\nOK: every good packet arrived once; every malformed packet was dropped and counted."]]);
  // 23 good ones the sink's socket dropped, 2 malformed ones the proxy's
  const busy = demoVerdict({ ...base, goodArrived: 926, validateDrops: 49, kernel: { listen: 2, sink: 23 } });
  assert.ok(busy.ok);
  assert.match(busy.lines[0]!, /the kernel dropped 25 packet\(s\) at a full socket buffer .*\(the proxy's listen socket 2, the sink's 23\): a busy machine, not the proxy/);
  assert.is(busy.lines[1], "\nOK, but for the kernel's drops above: 23 good packet(s) missing; 2 malformed packet(s) not counted by validate.");
  // one more missing than the kernel dropped: the proxy's
  assert.not.ok(demoVerdict({ ...base, goodArrived: 925, validateDrops: 49, kernel: { listen: 2, sink: 23 } }).ok);
  assert.match(demoVerdict({ ...base, goodArrived: 948 }).lines.at(-1)!, /^\nNOT OK: 1 good packet\(s\) missing;/);
  assert.not.ok(demoVerdict({ ...base, duplicates: 1 }).ok, "a duplicate is the proxy's");
  assert.not.ok(demoVerdict({ ...base, goodArrived: 948, validateDrops: 52, kernel: { listen: 5, sink: 0 } }).ok, "validate dropped a good packet");
});

test("the watchdog's log line names the segments, or says no running segment was in the call", () => {
  assert.is(describeEvent({ type: "watchdog", worker: 0, filter: "evil", segments: ["cam-1", "cam-2"], stuckMs: 500 }), "watchdog: worker 0 stuck in filter evil for over 500 ms (segments cam-1, cam-2); restarting it");
  assert.is(describeEvent({ type: "watchdog", worker: 1, filter: "evil", segments: [], stuckMs: 500 }), "watchdog: worker 1 stuck in filter evil for over 500 ms (no running segment: a call a change made); restarting it");
  assert.is(describeEvent({ type: "watchdog", worker: 0, filter: "evil", segments: ["cam-1"], stuckMs: 500, call: "msm_on_timer" }), "watchdog: worker 0 stuck in filter evil (in msm_on_timer: an endless loop?) for over 500 ms (segments cam-1); restarting it");
});

test("a restart's and a move's log lines say whether the listen sockets were kept with what they held", () => {
  assert.is(describeEvent({ type: "worker-restarted", worker: 0, segments: 2, carried: 1, spare: true, kept: 3 }),
    "worker 0 restarted with its 2 segment(s) (the spare worker took its place); state carried from the last checkpoint for 1 stage(s); 3 listen socket(s) kept bound, what they held read by the new worker");
  assert.is(describeEvent({ type: "worker-restarted", worker: 0, segments: 2, carried: 1, kept: 0 }), "worker 0 restarted with its 2 segment(s); state carried from the last checkpoint for 1 stage(s)");
  assert.is(describeEvent({ type: "segment-moved", segment: "cam", from: 0, to: 1, carried: 1, handedOver: true }),
    "segment cam: moved from worker 0 to worker 1 (state carried for 1 stage(s); its listen sockets handed over, with what they held)");
  assert.is(describeEvent({ type: "segment-moved", segment: "cam", from: 0, to: 1, carried: 1, handedOver: false }),
    "segment cam: moved from worker 0 to worker 1 (state carried for 1 stage(s); packets sent while its ports changed hands are lost)");
});

test("a filter module that cannot load is its entry's error, at the field it is about, once for the segments that use it", () => {
  const seg = (name: string, port: number) => ({ name, listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: port + 100 }], chain: [{ filter: "validate" }] });
  const config = validateProxyConfig({ filters: { validate: { path: "/x/validate.wasm", sha256: "0".repeat(64) } }, segments: [seg("a", 30000), seg("b", 30010), seg("c", 30020)] });
  const digest = `filter 'validate': digest mismatch: pinned sha256:${"0".repeat(64)}, module is sha256:${"a".repeat(64)}`;
  const lines = applyErrorLines(new ApplyError([
    { segment: "a", message: `segment 'a': ${digest}` },
    { segment: "b", message: digest },
    { segment: "c", message: "filter 'validate' rejected its config: no" },
  ], false, true), config).split("\n  ");
  assert.equal(lines, [
    `filters.validate.sha256: digest mismatch: pinned sha256:${"0".repeat(64)}, module is sha256:${"a".repeat(64)} (used by segments 'a', 'b')`,
    "segments[2].chain[0].config: filter 'validate' rejected its config: no (segment 'c')",
  ]);
  const unread = new ApplyError([{ segment: "a", message: "filter 'validate': cannot read /x/validate.wasm: ENOENT" }]);
  assert.is(applyErrorLines(unread, config), "filters.validate.path: cannot read /x/validate.wasm: ENOENT (used by segment 'a')");
});

test.run();
