// ConfigWatch (cli/config-watch.ts) on a real folder: a file written beside the config (a log, a
// capture) neither triggers reloads nor holds back the one an edit needs.
import * as assert from "uvu/assert";
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigWatch, configFingerprint } from "../cli/config-watch.js";
import { parseProxyConfig } from "../runtime/index.js";
import { suite } from "./lib/suite.js";

const test = suite("config watch", { timeoutMs: 20_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const config = (port: number) => `segments:\n  - name: cam\n    listen: { address: 127.0.0.1, port: 7000 }\n    destinations: [{ address: 127.0.0.1, port: ${port} }]\n`;

/** A watch on a fresh folder holding proxy.yaml; `calls` counts its `changed` calls. */
function watched(maxWaitMs?: number): { dir: string; file: string; calls: () => number; close: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "msm-config-watch-"));
  const file = join(dir, "proxy.yaml");
  writeFileSync(file, config(7010));
  let calls = 0;
  const watch = new ConfigWatch(file, () => calls++, 200, maxWaitMs);
  watch.follow(parseProxyConfig(config(7010), file));
  return { dir, file, calls: () => calls, close: () => { watch.close(); rmSync(dir, { recursive: true, force: true }); } };
}

test("a log written beside the config every 50 ms: no reload for it, and an edit meanwhile is taken within the writes", async () => {
  const w = watched();
  try {
    const log = join(w.dir, "proxy.log");
    for (let i = 0; i < 10; i++) { appendFileSync(log, `line ${i}\n`); await sleep(50); }
    await sleep(400);
    assert.is(w.calls(), 0, "writes to another file are not a change");
    writeFileSync(w.file, config(7020));
    // the log goes on for up to 10 s: the edit must not wait for it to stop
    const until = Date.now() + 10_000;
    while (w.calls() === 0 && Date.now() < until) { appendFileSync(log, "more\n"); await sleep(50); }
    assert.is(w.calls(), 1, "the edit was taken while the log was still being written");
  } finally {
    w.close();
  }
});

test("a burst of events on the config itself that never pauses still calls every maxWaitMs", async () => {
  const w = watched(500);
  try {
    const until = Date.now() + 10_000;
    let port = 7030;
    while (w.calls() < 2 && Date.now() < until) { writeFileSync(w.file, config(port++)); await sleep(50); }
    assert.ok(w.calls() >= 2, `called ${w.calls()} times while the writes went on`);
  } finally {
    w.close();
  }
});

test("a ConfigMap's '..data' swap counts", async () => {
  const w = watched();
  try {
    writeFileSync(join(w.dir, "..data_tmp"), "x");
    const until = Date.now() + 5_000;
    while (w.calls() === 0 && Date.now() < until) await sleep(50);
    assert.is(w.calls(), 1);
  } finally {
    w.close();
  }
});

test("the fingerprint of a config naming a module file of 1 GiB does not read it (it is refused unread), yet changes when the file does", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-config-watch-"));
  try {
    const file = join(dir, "proxy.yaml");
    const module = join(dir, "huge.wasm");
    writeFileSync(module, "");
    truncateSync(module, 1 << 30); // sparse
    const text = `filters:\n  huge: { path: huge.wasm }\n${config(7010)}`;
    const parsed = parseProxyConfig(text, file);
    const before = process.resourceUsage().maxRSS;
    const first = await configFingerprint(file, text, parsed);
    const grewMiB = (process.resourceUsage().maxRSS - before) / 1024;
    assert.ok(grewMiB < 256, `the peak resident set grew by ${grewMiB.toFixed(0)} MiB`);
    truncateSync(module, (1 << 30) + 4096);
    assert.is.not(await configFingerprint(file, text, parsed), first, "a change of the file changes it");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
