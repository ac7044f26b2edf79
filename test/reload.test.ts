// `msm proxy --config` as it lives in production: config saved by an editor (a new file renamed
// over the old), a Kubernetes ConfigMap volume (a `..data` symlink swapped), a filter rebuilt at
// the same path, probes on the admin endpoint, and SIGTERM that drains before exit.
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "./lib/suite.js";
import { fixture, ROOT } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, sleep, waitFor } from "./lib/udp.js";
import { httpGet } from "./lib/http-get.js";

const test = suite("msm proxy reloads and stops", { timeoutMs: 60_000 });
const MSM = join(ROOT, "dist", "cli", "msm.js");

function startMsm(file: string, admin?: number) {
  const args = [MSM, "proxy", "--config", file, ...(admin !== undefined ? ["--admin", `127.0.0.1:${admin}`] : [])];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const count = (text: string): number => out.split(text).length - 1;
  return { child, output: () => out, count, exited };
}

function yaml(listen: number, sink: number, filterPath: string, tag: number): string {
  return `filters:
  counter: { path: ${filterPath} }
segments:
  - name: cam
    listen: { address: 127.0.0.1, port: ${listen} }
    destinations: [{ address: 127.0.0.1, port: ${sink} }]
    chain: [{ filter: counter, config: { tag: ${tag} } }]
`;
}


test("editor saves (rename over the file), twice: both reload; an unrelated file in the folder does not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-reload-"));
  const file = join(dir, "proxy.yaml");
  const listen = await freePortPair();
  writeFileSync(file, yaml(listen, 9, fixture("counter"), 1));
  const p = startMsm(file);
  const save = (tag: number): void => {
    writeFileSync(join(dir, ".proxy.yaml.swp"), yaml(listen, 9, fixture("counter"), tag));
    renameSync(join(dir, ".proxy.yaml.swp"), file);
  };
  try {
    await waitFor(() => p.output().includes("proxy running"), 15_000, "the proxy to start");
    save(2);
    await waitFor(() => p.count("config reloaded (file changed)") === 1, 5000, "the first reload");
    save(3);
    await waitFor(() => p.count("config reloaded (file changed)") === 2, 5000, `the second reload (a watch on the file itself stops after the first rename)\n${p.output()}`);
    writeFileSync(join(dir, "notes.txt"), "not a config");
    await sleep(600);
    assert.is(p.count("config reloaded"), 2, "an unrelated file changes nothing");
  } finally {
    p.child.kill("SIGTERM");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a refused file is tried once: writes in its folder (the proxy's own log there) do not retry it until it changes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-refused-"));
  const file = join(dir, "proxy.yaml");
  const listen = await freePortPair();
  writeFileSync(file, yaml(listen, 9, fixture("counter"), 1));
  const p = startMsm(file);
  const unrelatedWrites = async (): Promise<void> => {
    for (let k = 0; k < 3; k++) {
      writeFileSync(join(dir, "proxy.log"), `line ${k}\n`, { flag: "a" });
      await sleep(400); // past the watch's debounce each time
    }
  };
  try {
    await waitFor(() => p.output().includes("proxy running"), 15_000, "the proxy to start");
    // one that does not validate, then one the filter refuses (tag out of its range)
    writeFileSync(file, yaml(listen, 9, fixture("counter"), 1).replace("port: 9 }", "port: 70000 }"));
    await waitFor(() => p.count("NOT reloaded") === 1, 5000, `the invalid file refused\n${p.output()}`);
    await unrelatedWrites();
    assert.is(p.count("NOT reloaded"), 1, `tried once\n${p.output()}`);
    writeFileSync(file, yaml(listen, 9, fixture("counter"), 2_000_000));
    await waitFor(() => p.count("NOT reloaded") === 2, 5000, `the refused config\n${p.output()}`);
    assert.match(p.output(), /NOT reloaded \(file changed\), the running config stays: \n  segments\[0\]\.chain\[0\]\.config: filter 'counter' rejected its config: .* \(segment 'cam'\)/);
    assert.not.match(p.output(), /running config is unchanged/, "said once, not twice");
    await unrelatedWrites();
    assert.is(p.count("NOT reloaded"), 2, `tried once\n${p.output()}`);
    p.child.kill("SIGHUP"); // an operator's SIGHUP tries it again
    await waitFor(() => p.count("NOT reloaded (SIGHUP)") === 1, 5000, "SIGHUP retries");
    writeFileSync(file, yaml(listen, 9, fixture("counter"), 3));
    await waitFor(() => p.count("config reloaded (file changed)") === 1, 5000, `the fixed file applies\n${p.output()}`);
  } finally {
    p.child.kill("SIGTERM");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a listen port moved onto one another process holds: the change is refused before anything closes, the segment runs on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-taken-"));
  const file = join(dir, "proxy.yaml");
  const [listen, moved] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const holder = await bindUdp(moved); // another program on the port the edit moves to
  writeFileSync(file, yaml(listen, sink.port, fixture("counter"), 1));
  const p = startMsm(file, (await freePortPair()) + 1);
  const tx = await bindUdp();
  try {
    await waitFor(() => p.output().includes("proxy running"), 15_000, "the proxy to start");
    writeFileSync(file, yaml(moved, sink.port, fixture("counter"), 1));
    await waitFor(() => p.count("NOT reloaded") === 1, 5000, `the move refused\n${p.output()}`);
    assert.match(p.output(), new RegExp(`segments\\[0\\] \\(segment 'cam'\\): cannot bind listen\\.port 127\\.0\\.0\\.1:${moved}: the port is taken \\(another process holds it\\)`));
    assert.not.match(p.output(), /NOT running/);
    for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), listen, "127.0.0.1");
    await waitFor(() => sink.received >= 20, 3000, `cam still runs on its old port (${sink.received}/20)`);
  } finally {
    tx.close();
    holder.close();
    sink.close();
    p.child.kill("SIGTERM");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the admin endpoint is fixed while running: a changed admin is refused, not ignored", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-admin-"));
  const file = join(dir, "proxy.yaml");
  const listen = await freePortPair();
  const admin = (await freePortPair()) + 1;
  const withAdmin = (port: number, tag: number): string => `admin: { address: 127.0.0.1, port: ${port} }\n${yaml(listen, 9, fixture("counter"), tag)}`;
  writeFileSync(file, withAdmin(admin, 1));
  const p = startMsm(file);
  try {
    await waitFor(() => p.output().includes("proxy running"), 15_000, "the proxy to start");
    writeFileSync(file, withAdmin(admin - 1, 2));
    await waitFor(() => p.count("NOT reloaded") === 1, 5000, `the admin change refused\n${p.output()}`);
    assert.match(p.output(), /admin: cannot change from .* while running; restart the proxy/);
    assert.is((await httpGet(admin, "/healthz")).status, 200, "still where it was");
    writeFileSync(file, withAdmin(admin, 3));
    await waitFor(() => p.count("config reloaded (file changed)") === 1, 5000, `the same admin applies\n${p.output()}`);
  } finally {
    p.child.kill("SIGTERM");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a ConfigMap volume's symlink swap reloads, and so does a filter rebuilt at the same path", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-configmap-"));
  const listen = await freePortPair();
  const wasm = join(dir, "filters", "counter.wasm");
  mkdirSync(join(dir, "filters"));
  copyFileSync(fixture("counter"), wasm);
  // the kubelet's layout: proxy.yaml -> ..data/proxy.yaml, ..data -> ..v1
  for (const [v, tag] of [["..v1", 1], ["..v2", 2]] as const) {
    mkdirSync(join(dir, v));
    writeFileSync(join(dir, v, "proxy.yaml"), yaml(listen, 9, wasm, tag));
  }
  symlinkSync("..v1", join(dir, "..data"));
  symlinkSync(join("..data", "proxy.yaml"), join(dir, "proxy.yaml"));
  const p = startMsm(join(dir, "proxy.yaml"));
  try {
    await waitFor(() => p.output().includes("proxy running"), 15_000, "the proxy to start");
    symlinkSync("..v2", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    await waitFor(() => p.count("config reloaded (file changed)") === 1, 5000, `a reload on the symlink swap\n${p.output()}`);
    // "rebuilt": the same filter with a custom section appended (valid WebAssembly, another digest),
    // written as a compiler writes its output
    writeFileSync(wasm, Buffer.concat([readFileSync(fixture("counter")), Buffer.from([0, 5, 4, ...Buffer.from("test")])]));
    await waitFor(() => p.count("config reloaded (file changed)") === 2, 5000, `a reload on the rebuilt filter\n${p.output()}`);
    assert.match(p.output(), /segment cam: chain swapped/);
  } finally {
    p.child.kill("SIGTERM");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("probes answer, and SIGTERM hands over what filters hold before the proxy exits", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-stop-"));
  const file = join(dir, "proxy.yaml");
  const listen = await freePortPair();
  const admin = await freePortPair();
  const sink = await Sink.open();
  writeFileSync(file, `filters:
  delay: { path: ${fixture("delay")} }
segments:
  - name: cam
    listen: { address: 127.0.0.1, port: ${listen} }
    destinations: [{ address: 127.0.0.1, port: ${sink.port} }]
    chain: [{ filter: delay, config: { delayMs: 10000 } }]
`);
  const p = startMsm(file, admin);
  const tx = await bindUdp();
  try {
    await waitFor(() => p.output().includes("proxy running"), 15_000, "the proxy to start");
    assert.equal(await httpGet(admin, "/healthz"), { status: 200, body: "ok\n" });
    assert.equal(await httpGet(admin, "/readyz"), { status: 200, body: "ok\n" });
    for (let i = 0; i < 50; i++) tx.send(indexedRtp(i), listen, "127.0.0.1");
    await sleep(300);
    assert.is(sink.received, 0, "held for 10 s by the filter");
    p.child.kill("SIGTERM");
    assert.is(await p.exited, 0, p.output());
    await waitFor(() => sink.received >= 50, 2000, `the held packets, handed over at shutdown (${sink.received})`);
    assert.equal(sink.tally(50), { missing: 0, duplicates: 0 });
    assert.match(p.output(), /stopping: draining the segments/);
  } finally {
    tx.close();
    sink.close();
    if (p.child.exitCode === null) p.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
