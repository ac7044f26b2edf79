// What a filter says while a proxy starts (its own log lines from _initialize and configureRoot,
// the host's warning about a drop-reason table it could not use) reaches the proxy's log, as it
// does at a reload: `msm proxy --config` and Proxy.start's listener hear the start's events, and
// `msm proxy --check` warns of them.
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateProxyConfig } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { fixture, ROOT } from "./lib/paths.js";
import { startProxy } from "./lib/proxy.js";
import { freePortPair, Sink, waitFor } from "./lib/udp.js";

const test = suite("events at a proxy's start", { timeoutMs: 60_000 });
const WARNING = /filter named: its own drop reasons are shown as filter_<code>: drop reason line 1 \("256 too_short drop"\): name 'too_short' is a shared reason's label/;

/** A segment on the named_reasons fixture whose table takes a shared reason's label. */
function config(listen: number, sink: number): string {
  return `filters:
  named:
    path: ${fixture("named_reasons")}
    config: { "256": "too_short drop" }
segments:
  - name: cam
    listen: { address: 127.0.0.1, port: ${listen} }
    destinations:
      - { address: 127.0.0.1, port: ${sink} }
    chain:
      - filter: named
`;
}

test("Proxy.start's listener hears what the filters logged while the proxy started", async () => {
  const sink = await Sink.open();
  const { proxy, events } = await startProxy(validateProxyConfig({
    filters: { named: { path: fixture("named_reasons"), config: { 256: "too_short drop" } } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port: await freePortPair() }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter: "named" }] }],
  }));
  try {
    const lines = events.flatMap((e) => (e.type === "log" ? [`filter ${e.filter}: ${e.message}`] : []));
    assert.ok(lines.some((l) => WARNING.test(l)), `the start's events: ${JSON.stringify(events)}`);
  } finally {
    sink.close();
    await proxy.close();
  }
});

test("msm proxy --config prints them", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-start-events-"));
  const file = join(dir, "msm.yaml");
  const sink = await Sink.open();
  writeFileSync(file, config(await freePortPair(), sink.port));
  const child = spawn(process.execPath, [join(ROOT, "dist", "cli", "msm.js"), "proxy", "--config", file], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  try {
    await waitFor(() => /cam: listen \d+\/\d+, egress \d+, chain named/.test(out), 15_000, `the proxy to start; it printed:\n${out}`);
    assert.match(out, WARNING);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msm proxy --check says valid, and warns what a start would log", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-start-events-"));
  const file = join(dir, "msm.yaml");
  writeFileSync(file, config(await freePortPair(), 9));
  try {
    const r = spawnSync(process.execPath, [join(ROOT, "dist", "cli", "msm.js"), "proxy", "--config", file, "--check"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, "msm.yaml: valid: 1 segment(s)");
    assert.match(r.stderr, /msm\.yaml: warning: filters\.named: /);
    assert.match(r.stderr, WARNING);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
