// FileReloader (cli/file-reloader.ts) in process, on a real file, with a stand-in for the proxy:
// an edit written while a reload is under way is reloaded after it, whatever that reload read.
// The edit lands from the reloader's read hook, right after the read (in the field: during the
// long validation of a 100,003-destination file), so no timing is involved.
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileReloader } from "../cli/file-reloader.js";
import { parseProxyConfig, type Proxy, type ProxyConfig } from "../runtime/index.js";
import { suite } from "./lib/suite.js";

const test = suite("file reloader", { timeoutMs: 10_000 });

function yaml(port: number): string {
  return `segments:
  - name: cam
    listen: { address: 127.0.0.1, port: 7000 }
    destinations: [{ address: 127.0.0.1, port: ${port} }]
`;
}

/** Reloads an invalid edit while `second` is written over it; returns the log and the configs applied. */
async function editDuringReload(second: string): Promise<{ lines: string[]; applied: ProxyConfig[] }> {
  const dir = mkdtempSync(join(tmpdir(), "msm-file-reloader-"));
  const file = join(dir, "proxy.yaml");
  const lines: string[] = [];
  const applied: ProxyConfig[] = [];
  const proxy = { apply: async (c: ProxyConfig) => void applied.push(c), noteRefusedConfig: () => {}, segmentsNotRunning: [], stats: async () => ({ segments: [] }) } as unknown as Proxy;
  let next: Promise<void> | undefined;
  const read = async (path: string): Promise<string> => {
    const text = await readFile(path, "utf8");
    if (next === undefined) {
      writeFileSync(file, second);
      next = reloader.reload("file changed", true); // as the watch would, seeing that write
    }
    return text;
  };
  const first = yaml(7010);
  writeFileSync(file, first);
  const reloader = await FileReloader.start(file, proxy, parseProxyConfig(first, file), first, undefined, false, (line) => lines.push(line), read);
  try {
    writeFileSync(file, yaml(99999));
    await reloader.reload("file changed", true);
    await next;
    return { lines, applied };
  } finally {
    reloader.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a valid edit written while an invalid one is being reloaded is applied after it", async () => {
  const { lines, applied } = await editDuringReload(yaml(7050));
  assert.is(lines.length, 2, lines.join("\n"));
  assert.match(lines[0]!, /^config NOT reloaded \(file changed\).*port: Too big/s);
  assert.is(lines[1], "config reloaded (file changed)");
  assert.equal(applied.map((c) => c.segments[0]!.destinations), [[{ address: "127.0.0.1", port: 7050 }]]);
});

test("an invalid edit written while another is being reloaded is reported too", async () => {
  const { lines, applied } = await editDuringReload(yaml(7050).replace("name: cam", "name: cam\n    nonsense: 1"));
  assert.is(lines.length, 2, lines.join("\n"));
  assert.match(lines[0]!, /port: Too big/);
  assert.match(lines[1]!, /^config NOT reloaded \(file changed\).*nonsense/s);
  assert.is(applied.length, 0);
});

/** Reloads `file` once (its text written by `write`) with `read` as the reloader's read; the log, the configs applied, the refusals counted. */
async function reloadOnce(write: string, read?: (path: string) => Promise<string>): Promise<{ lines: string[]; applied: ProxyConfig[]; refused: number }> {
  const dir = mkdtempSync(join(tmpdir(), "msm-file-reloader-"));
  const file = join(dir, "proxy.json");
  const lines: string[] = [];
  const applied: ProxyConfig[] = [];
  let refused = 0;
  const proxy = { apply: async (c: ProxyConfig) => void applied.push(c), noteRefusedConfig: () => void refused++, segmentsNotRunning: [], stats: async () => ({ segments: [] }) } as unknown as Proxy;
  const first = JSON.stringify(parseProxyConfig(yaml(7010), "p.yaml"));
  writeFileSync(file, first);
  const reloader = await FileReloader.start(file, proxy, parseProxyConfig(first, file), first, undefined, false, (line) => lines.push(line), read);
  try {
    writeFileSync(file, write);
    await reloader.reload("SIGHUP", false);
    return { lines, applied, refused };
  } finally {
    reloader.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a file nested 5,000 levels deep is refused and counted refused (it was a RangeError, 'reload failed', refused 0)", async () => {
  // valid but for the depth of a filter's config
  const config = { ...JSON.parse(JSON.stringify(parseProxyConfig(yaml(7050), "p.yaml"))), filters: { v: { path: "v.wasm", config: { zz: "DEEP" } } } };
  const deep = JSON.stringify(config).replace('"DEEP"', `${"[".repeat(5000)}1${"]".repeat(5000)}`);
  const { lines, applied, refused } = await reloadOnce(deep);
  assert.is(lines.length, 1, lines.join("\n"));
  assert.match(lines[0]!, /^config NOT reloaded \(SIGHUP\), the running config stays: .*proxy\.json: nested deeper than 64 levels of mappings and lists at line 1, column \d+$/);
  assert.is(applied.length, 0);
  assert.is(refused, 1);
});

test("a reload that fails in a way not foreseen is counted refused, the running config kept", async () => {
  const { lines, applied, refused } = await reloadOnce(yaml(7050), async () => {
    throw new TypeError("a failure of no known kind");
  });
  assert.match(lines[0]!, /^reload failed, the running config stays: TypeError: a failure of no known kind/);
  assert.is(applied.length, 0);
  assert.is(refused, 1);
});

test.run();
