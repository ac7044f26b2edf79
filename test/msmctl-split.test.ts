// msmctl apply and delete of more segments than etcd takes in one transaction (128 operations):
// the control plane refuses such a request whole, naming its limit, and msmctl sends it again in
// requests that fit, a proxy's segments together. Against a real etcd: 320 segments on three
// proxies applied from a directory, listed, applied again unchanged, a dry run, a port swap that
// a later request cannot take (which segments were applied, which not), deleted by name and by file.
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { runMsmctl } from "../cli/msmctl/main.js";
import type { Io } from "../cli/msmctl/context.js";
import { splitRequests } from "../cli/msmctl/split.js";
import { suite } from "./lib/suite.js";
import { startEtcd, type TestEtcd } from "./lib/etcd.js";

const local = suite("msmctl split: requests that fit", { timeoutMs: 10_000 });

local("a proxy's segments go together when they fit; a proxy too large for one request is cut; a moved segment counts the proxy it leaves", () => {
  const at = (proxy: string, n: number, from = "p"): { item: string; proxy: string }[] =>
    Array.from({ length: n }, (_, i) => ({ item: `${proxy}${i}`, proxy, ...(from !== "p" ? { leaves: from } : {}) }));
  // 10 operations at most: a segment each, and each proxy key
  assert.equal(splitRequests([...at("a", 4), ...at("b", 4), ...at("c", 3)], 10).map((r) => r.length), [8, 3], "a and b (4 + 4 + 2 keys), then c");
  assert.equal(splitRequests([...at("a", 3), ...at("b", 6)], 10).map((r) => r.length), [3, 6], "b does not straddle two requests when it fits in one");
  assert.equal(splitRequests(at("a", 20), 10).map((r) => r.length), [9, 9, 2]);
  assert.equal(splitRequests(at("a", 20, "z"), 10).map((r) => r.length), [8, 8, 4], "each request also writes the key of the proxy the segments leave");
  assert.equal(splitRequests(at("a", 3, "z"), 2), [["a0"], ["a1"], ["a2"]], "a segment that cannot fit alone goes alone");
});

local.run();

const live = suite("msmctl split against a real etcd", { timeoutMs: 60_000 });
let etcd: TestEtcd;
let cp: ControlPlane;
let env: Record<string, string>;
const dir = mkdtempSync(join(tmpdir(), "msmctl-split-"));

interface Ran {
  code: number;
  out: string;
  err: string;
}

async function msmctl(args: string[]): Promise<Ran> {
  let out = "";
  let err = "";
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), readStdin: async () => Buffer.alloc(0), env, isTty: false, onInterrupt: () => () => {} };
  const code = await runMsmctl(args, io);
  return { code, out, err };
}

interface Cam {
  name: string;
  proxy: string;
  port: number;
  to: number;
}

/** 200 segments on node-a, 80 on node-b, 40 on node-c: 320 in all. */
const CAMS: Cam[] = [
  ...Array.from({ length: 200 }, (_, i) => ({ name: `a-${i}`, proxy: "node-a", port: 48000 + 2 * i, to: 48600 })),
  ...Array.from({ length: 80 }, (_, i) => ({ name: `b-${i}`, proxy: "node-b", port: 48000 + 2 * i, to: 48600 })),
  ...Array.from({ length: 40 }, (_, i) => ({ name: `c-${i}`, proxy: "node-c", port: 48000 + 2 * i, to: 48600 })),
];

const yaml = (cams: readonly Cam[]): string =>
  cams.map((c) => `kind: Segment\nmetadata: { name: ${c.name} }\nspec:\n  proxy: ${c.proxy}\n  listen: { address: 127.0.0.1, port: ${c.port} }\n  destinations: [{ address: 127.0.0.1, port: ${c.to} }]\n`).join("---\n");

/** The cameras in `files` files of a new directory (as an operator splits a large manifest). */
function manifestDir(name: string, cams: readonly Cam[], files: number): string {
  const d = join(dir, name);
  mkdirSync(d);
  const per = Math.ceil(cams.length / files);
  for (let f = 0; f < files; f++) writeFileSync(join(d, `cams-${f}.yaml`), yaml(cams.slice(f * per, (f + 1) * per)));
  return d;
}

const lines = (cams: readonly Cam[], outcome: string): string => cams.map((c) => `segment/${c.name} ${outcome}\n`).join("");

async function stored(): Promise<Map<string, { proxy: string; port: number; to: number }>> {
  const r = await msmctl(["get", "segments", "-o", "json"]);
  assert.is(r.code, 0, r.err);
  const items = (JSON.parse(r.out) as { items: { metadata: { name: string }; spec: { proxy: string; listen: { port: number }; destinations: { port: number }[] } }[] }).items;
  return new Map(items.map((s) => [s.metadata.name, { proxy: s.spec.proxy, port: s.spec.listen.port, to: s.spec.destinations[0]!.port }]));
}

live.before(async () => {
  etcd = await startEtcd();
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", name: "cp-split", log: () => {} });
  env = { MSM_SERVER: `127.0.0.1:${cp.port}`, MSM_INSECURE: "1" };
});

live.after(async () => {
  await cp?.close();
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

live("apply -f DIR of 320 segments: in 3 requests (node-a's 200 cut in two, node-b's and node-c's together), each segment's line, a note that it was not atomic", async () => {
  const r = await msmctl(["apply", "-f", manifestDir("all", CAMS, 6)]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, lines(CAMS, "created"));
  assert.match(r.err, /^msmctl: note: sent in 3 requests, one after another, because the control plane's store takes at most 128 operations in one transaction: each request was atomic, the whole was not\n/);
  assert.match(r.err, /stored as revisions \d+ to \d+; proxies node-a, node-b, node-c have not accepted it yet/);
  const now = await stored();
  assert.is(now.size, 320);
  for (const c of CAMS) assert.equal(now.get(c.name), { proxy: c.proxy, port: c.port, to: c.to }, c.name);
});

live("applied again: unchanged, in one request (nothing to write)", async () => {
  const r = await msmctl(["apply", "-f", join(dir, "all")]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, lines(CAMS, "unchanged"));
  assert.is(r.err, "");
});

live("--dry-run of a change too large for one transaction: every segment checked and said, a real apply would take 3 requests, nothing changed", async () => {
  const changed = CAMS.map((c) => ({ ...c, to: c.to + 2 }));
  const r = await msmctl(["apply", "-f", manifestDir("dry", changed, 1), "--dry-run"]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, lines(CAMS, "configured (dry run)"));
  assert.match(r.err, /^msmctl: note: the whole manifest is valid; it is too large for one request, so a real apply goes in 3 requests, one after another \(the control plane's store takes at most 128 operations in one transaction\)/);
  assert.is((await stored()).get("a-0")!.to, 48600, "a dry run changes nothing");
  const json = JSON.parse((await msmctl(["apply", "-f", join(dir, "dry"), "--dry-run", "-o", "json"])).out) as { configured: string[]; requests: number };
  assert.is(json.configured.length, 320);
  assert.is(json.requests, 3);
});

live("a later request refused (a port swap across two requests): stops there, exit 1, names the applied segments and those not applied", async () => {
  // all changed (an unchanged segment writes nothing: the whole would fit one transaction).
  // node-b's and node-c's first (one request), then node-a's in two; a-0 (request 2) takes
  // a-199's port, which a-199 (request 3) gives up only later
  const bc = CAMS.filter((c) => c.proxy !== "node-a").map((c) => ({ ...c, to: c.to + 4 }));
  const swapped = (c: Cam): Cam => (c.name === "a-0" ? { ...c, port: 48398 } : c.name === "a-199" ? { ...c, port: 48000 } : c);
  const a = CAMS.filter((c) => c.proxy === "node-a").map((c) => swapped({ ...c, to: c.to + 4 }));
  const file = join(dir, "swap.yaml");
  writeFileSync(file, yaml([...bc, ...a]));
  const r = await msmctl(["apply", "-f", file]);
  assert.is(r.code, 1, r.err);
  assert.is(r.out, lines(bc, "configured"), "the first request's segments, as stored");
  const [head, ...rest] = r.err.split("\n");
  assert.is(head, "msmctl: request 2 of 3 failed, so the segments went in part only: the control plane at " + env.MSM_SERVER + " refused the segments:");
  assert.match(rest.join("\n"), new RegExp(`^msmctl: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: document 121: spec\\.listen\\.port: port already used by segment 'a-199'`, "m"));
  assert.ok(rest.includes(`msmctl: applied (120): ${bc.map((c) => c.name).join(", ")}`), r.err);
  assert.ok(rest.includes(`msmctl: not applied (200): ${a.map((c) => c.name).join(", ")}`), r.err);
  const now = await stored();
  assert.is(now.get("b-0")!.to, 48604, "request 1 stored");
  assert.is(now.get("a-0")!.port, 48000, "request 2 not");
  assert.is(now.get("a-199")!.port, 48398, "request 3 not sent");
});

live("delete NAME... and delete -f DIR of more than one transaction takes: in requests, a proxy's segments together", async () => {
  const names = CAMS.filter((c) => c.proxy === "node-a").map((c) => c.name);
  let r = await msmctl(["delete", "segment", ...names]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, names.map((n) => `segment/${n} deleted\n`).join(""));
  assert.match(r.err, /^msmctl: note: sent in 2 requests, one after another, because the control plane's store takes at most 128 operations/);
  assert.is((await stored()).size, 120);
  r = await msmctl(["delete", "-f", join(dir, "all"), "--ignore-not-found"]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, lines(CAMS.filter((c) => c.proxy !== "node-a"), "deleted"));
  assert.is(r.err, "", "120 segments and 2 proxies fit one transaction");
  await msmctl(["apply", "-f", join(dir, "all")]);
  r = await msmctl(["delete", "-f", join(dir, "all")]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, lines(CAMS, "deleted"));
  assert.match(r.err, /sent in 3 requests/);
  assert.is((await stored()).size, 0);
});

live.run();
