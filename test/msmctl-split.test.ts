// msmctl apply and delete of more segments than etcd takes in one transaction (128 operations):
// the control plane refuses such a request whole, naming its limit, and msmctl sends it again in
// requests that fit, a proxy's segments together, a segment no earlier than the one that frees its
// port or that it would send into as it is. Against a real etcd: 320 segments on three proxies
// applied from a directory, listed, applied again unchanged, a dry run, a port swap, a chain of port
// moves and a reversed forwarding between two segments that straddle requests,
// a cycle of moves too large for one transaction (refused before anything is written), deleted by
// name and by file. A later request refused (another writer meanwhile) is partFailure's, here alone:
// the control plane runs in this process, so no writer can be slipped in between two requests.
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { runMsmctl } from "../cli/msmctl/main.js";
import type { Io } from "../cli/msmctl/context.js";
import { status } from "@grpc/grpc-js";
import { CliError } from "../cli/msmctl/client.js";
import { InseparableError, partFailure, splitRequests, type Placed } from "../cli/msmctl/split.js";
import { portDependencies } from "../cli/msmctl/port-moves.js";
import { loopDependencies } from "../cli/msmctl/loop-moves.js";
import type { Segment } from "../controlplane/api/proto.js";
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

/** Which request (from 0) each item went in. */
function requestOf(requests: readonly (readonly string[])[]): Map<string, number> {
  return new Map(requests.flatMap((r, k) => r.map((item) => [item, k] as const)));
}

local("a swap of two segments' ports goes in one request; a chain of port moves goes in order, the segment that frees a port first", () => {
  const placed = (n: number, needs: (i: number) => number[]): Placed<string>[] => Array.from({ length: n }, (_, i) => ({ item: `a${i}`, proxy: "a", needs: needs(i) }));
  // a0 and a19 swap: without the dependency a0 goes in request 1, a19 in request 3
  const swap = splitRequests(placed(20, (i) => (i === 0 ? [19] : i === 19 ? [0] : [])), 10);
  assert.is(requestOf(swap).get("a0"), requestOf(swap).get("a19"), JSON.stringify(swap));
  assert.equal(swap.map((r) => r.length), [9, 9, 2]);
  // a shift: a<i> takes a<i+1>'s port, so a<i+1> goes no later than a<i>
  const shift = splitRequests(placed(20, (i) => (i < 19 ? [i + 1] : [])), 10);
  const at = requestOf(shift);
  for (let i = 0; i < 19; i++) assert.ok(at.get(`a${i + 1}`)! <= at.get(`a${i}`)!, `a${i + 1} before a${i}: ${JSON.stringify(shift)}`);
  assert.equal(shift.map((r) => r.length), [9, 9, 2]);
  // no dependency: the order is the manifest's
  assert.equal(splitRequests(placed(4, () => []), 10), [["a0", "a1", "a2", "a3"]]);
});

local("a move between proxies: the segment that takes a port goes no earlier than the one leaving it, their proxies' segments together", () => {
  // m moves from a to b and frees a port on a that a0 takes; b's segments come first in the file
  const placed: Placed<string>[] = [
    ...Array.from({ length: 5 }, (_, i) => ({ item: `b${i}`, proxy: "b" })),
    { item: "a0", proxy: "a", needs: [6] },
    { item: "m", proxy: "b", leaves: "a" },
    ...Array.from({ length: 5 }, (_, i) => ({ item: `c${i}`, proxy: "c" })),
  ];
  const requests = splitRequests(placed, 8);
  const at = requestOf(requests);
  assert.ok(at.get("m")! <= at.get("a0")!, JSON.stringify(requests));
  assert.equal(requests, [["b0", "b1", "b2", "b3", "b4", "m"], ["a0", "c0", "c1", "c2", "c3", "c4"]]);
});

local("segments that take each other's ports in a cycle larger than one transaction: refused, naming them and their proxy", () => {
  const placed: Placed<string>[] = Array.from({ length: 12 }, (_, i) => ({ item: `a${i}`, proxy: "a", needs: [(i + 1) % 12] }));
  try {
    splitRequests(placed, 10);
    assert.unreachable("a cycle of 12 cannot fit 10 operations");
  } catch (err) {
    assert.instance(err, InseparableError);
    const e = err as InseparableError<string>;
    assert.equal(e.items, placed.map((p) => p.item));
    assert.equal(e.proxies, ["a"]);
    assert.is(e.ops, 13);
  }
  // a cycle that fits goes whole in one request
  assert.equal(splitRequests(placed.slice(0, 3).map((p, i) => ({ ...p, needs: [(i + 1) % 3] })), 10), [["a0", "a1", "a2"]]);
});

/** An API Segment on 127.0.0.1:`port`, sending to 127.0.0.1:9000 unless `extra` says otherwise. */
const seg = (name: string, proxy: string, port: number, extra: Partial<Segment> = {}): Segment => ({
  name, proxy, listen: { address: "127.0.0.1", port, rtcpPort: 0 }, rtcpMux: false, egress: null, destinations: [{ address: "127.0.0.1", port: 9000, rtcpPort: 0 }],
  source: null, chain: [], failure: null, revision: 0, legs: [], ...extra,
});

local("portDependencies: a port (or its RTCP port + 1, or a leg's) that another changed segment of the proxy holds now; not another proxy's, not a segment the apply leaves alone", () => {
  const stored = [seg("s", "p", 5000), seg("t", "p", 6000), seg("u", "q", 7000), seg("v", "p", 8000)];
  // s takes t's port, t takes s's RTCP port (5001 with rtcpMux), w (new) takes v's port (v not in the apply)
  const applied = [seg("s", "p", 6000), seg("t", "p", 5001, { rtcpMux: true }), seg("u", "q", 7002), seg("w", "p", 8000)];
  assert.equal(portDependencies(applied, stored), [[1], [0], [], []]);
  // the wildcard address takes the port on every address; another proxy's port is its own
  assert.equal(portDependencies([seg("s", "p", 6000, { listen: { address: "0.0.0.0", port: 6000, rtcpPort: 0 } }), seg("t", "q", 5000)], stored), [[1], []]);
  // a leg's port (listen.port + portOffset)
  const legs = [{ name: "fec", portOffset: 2, listen: null, destinations: [], egress: null }];
  assert.equal(portDependencies([seg("s", "p", 4000), seg("t", "p", 5000, { legs })], [seg("s", "p", 5002), seg("t", "p", 6000)]), [[], [0]]);
});

local("a later request refused: the segments stored before it, those not (refused: nothing of it stored), or perhaps (no answer)", () => {
  const parts = [["b-0", "b-1"], ["a-0", "a-1"], ["a-2"]];
  const refused = new CliError("refused", { code: status.INVALID_ARGUMENT, details: "segments[0].listen.port: port already used by segment 'x'" });
  assert.is(partFailure(refused, 1, parts, "applied", "the control plane refused the segments").message, [
    "request 2 of 3 failed, so the segments went in part only: the control plane refused the segments",
    "applied (2): b-0, b-1",
    "not applied (3): a-0, a-1, a-2",
  ].join("\n"));
  const timedOut = new CliError("no answer", { code: status.DEADLINE_EXCEEDED, details: "" });
  assert.is(partFailure(timedOut, 1, parts, "applied", "no answer").message.split("\n")[2], "perhaps applied, look with msmctl get segments (2, request 2): a-0, a-1");
});

local("loopDependencies: a segment that will send into another of the apply as it is stored now, directly or through segments the apply leaves alone; not on another proxy", () => {
  const to = (port: number, address = "127.0.0.1"): Partial<Segment> => ({ destinations: [{ address, port, rtcpPort: 0 }] });
  // stored: t sends to s, n (untouched) sends to u
  const stored = [seg("s", "p", 5000, to(9000, "10.0.0.1")), seg("t", "p", 6000, to(5000)), seg("u", "p", 7000, to(9000, "10.0.0.1")), seg("n", "p", 8000, to(7000)), seg("v", "q", 5000, to(9000, "10.0.0.1"))];
  const applied = [
    seg("s", "p", 5000, to(6000)), // into t, which still sends to s: t first
    seg("t", "p", 6000, to(9000, "10.0.0.1")),
    seg("w", "p", 4000, to(8000)), // into n, which sends to u as stored: u first
    seg("u", "p", 7000, to(9002, "10.0.0.1")),
    seg("x", "q", 4000, to(5001)), // into v's RTCP port, on its own proxy q
    seg("v", "q", 5000, to(9002, "10.0.0.1")),
  ];
  assert.equal(loopDependencies(applied, stored), [[1], [], [3], [], [5], []]);
  // the wildcard address receives what is sent to loopback; another host's address is not this one
  const wild = [seg("t", "p", 6000, { ...to(5000), listen: { address: "0.0.0.0", port: 6000, rtcpPort: 0 } })];
  assert.equal(loopDependencies([seg("s", "p", 5000, to(6000)), seg("t", "p", 6000, to(7000))], wild), [[1], []]);
  assert.equal(loopDependencies([seg("s", "p", 5000, to(6000, "10.0.0.9")), seg("t", "p", 6000, to(7000))], wild), [[], []]);
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

live("a port swap across the requests (a-0 and a-199): both in one request, the whole applied in 3 requests", async () => {
  // all changed (an unchanged segment writes nothing: the whole would fit one transaction).
  // node-b's and node-c's first (one request), then node-a's in two; a-0 takes a-199's port and
  // a-199 a-0's: apart, the first of their requests would hold a port twice
  const bc = CAMS.filter((c) => c.proxy !== "node-a").map((c) => ({ ...c, to: c.to + 4 }));
  const swapped = (c: Cam): Cam => (c.name === "a-0" ? { ...c, port: 48398 } : c.name === "a-199" ? { ...c, port: 48000 } : c);
  const a = CAMS.filter((c) => c.proxy === "node-a").map((c) => swapped({ ...c, to: c.to + 4 }));
  const file = join(dir, "swap.yaml");
  writeFileSync(file, yaml([...bc, ...a]));
  const r = await msmctl(["apply", "-f", file]);
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /^msmctl: note: sent in 3 requests/);
  assert.equal(r.out.split("\n").filter(Boolean).sort(), lines([...bc, ...a], "configured").split("\n").filter(Boolean).sort());
  const now = await stored();
  for (const c of [...bc, ...a]) assert.equal(now.get(c.name), { proxy: c.proxy, port: c.port, to: c.to }, c.name);
});

/** node-a's cameras as stored now. */
async function storedA(): Promise<Cam[]> {
  const now = await stored();
  return CAMS.filter((c) => c.proxy === "node-a").map((c) => ({ ...c, port: now.get(c.name)!.port, to: now.get(c.name)!.to }));
}

live("a chain of port moves across two requests (a-<i> takes a-<i+1>'s port): sent in an order where each port is freed first", async () => {
  const now = await storedA();
  const moved = now.map((c, i) => ({ ...c, port: i < now.length - 1 ? now[i + 1]!.port : 48400 }));
  const file = join(dir, "chain.yaml");
  writeFileSync(file, yaml(moved));
  const r = await msmctl(["apply", "-f", file]);
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /^msmctl: note: sent in 2 requests/);
  assert.is(r.out, lines([...moved].reverse(), "configured"), "a-199 first: it frees the port a-198 takes");
  const stored2 = await stored();
  for (const c of moved) assert.is(stored2.get(c.name)!.port, c.port, c.name);
});

live("a cycle of port moves larger than one transaction: refused before anything is written, naming the segments and what to do", async () => {
  const now = await storedA();
  const rotated = now.map((c, i) => ({ ...c, port: now[(i + 1) % now.length]!.port }));
  const file = join(dir, "rotate.yaml");
  writeFileSync(file, yaml(rotated));
  for (const dry of [[], ["--dry-run"]]) {
    const r = await msmctl(["apply", "-f", file, ...dry]);
    assert.is(r.code, 1, r.err);
    assert.is(r.out, "", "nothing said applied");
    const err = r.err.split("\n");
    assert.match(err[0]!, /^msmctl: the manifest is too large for one request, and 200 segments of proxy node-a depend on each other in a cycle \(each takes a port another gives up, or sends into another as it is stored now\): they can only be stored together, in one request of 201 store operations, more than the 128 the control plane's store takes in one transaction; nothing was applied$/);
    assert.is(err[1], `msmctl: segments that must go together: ${now.map((c) => c.name).join(", ")}`);
    assert.match(err[2]!, /first move some of these segments to free ports/);
  }
  const after = await stored();
  for (const c of now) assert.is(after.get(c.name)!.port, c.port, `${c.name} unchanged`);
});

live("a forwarding reversed across two requests, through a segment the file leaves alone (l-0 will send to m, which sends to l-129, which sends to l-0 until its own change): l-129 first, no loop in between", async () => {
  // 130 segments on node-d, 131 operations: two requests. As stored, l-129 sends to l-0's port
  // and m (not in the second file) to l-129's
  const external = "10.255.0.1";
  const doc = (name: string, port: number, to: string, toPort: number): string =>
    `kind: Segment\nmetadata: { name: ${name} }\nspec:\n  proxy: node-d\n  listen: { address: 127.0.0.1, port: ${port} }\n  destinations: [{ address: ${to}, port: ${toPort} }]\n`;
  const ring = (i: number, to: string, port: number): string => doc(`l-${i}`, 47000 + 2 * i, to, port);
  const before = join(dir, "ring-before.yaml");
  const m = doc("m", 47400, "127.0.0.1", 47258);
  writeFileSync(before, [...Array.from({ length: 130 }, (_, i) => (i === 129 ? ring(i, "127.0.0.1", 47000) : ring(i, external, 47600))), m].join("---\n"));
  let r = await msmctl(["apply", "-f", before]);
  assert.is(r.code, 0, r.err);
  // all changed; l-0 now sends to m, l-129 out of the host
  const after = join(dir, "ring-after.yaml");
  writeFileSync(after, Array.from({ length: 130 }, (_, i) => (i === 0 ? ring(i, "127.0.0.1", 47400) : ring(i, external, 47604))).join("---\n"));
  r = await msmctl(["apply", "-f", after]);
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /^msmctl: note: sent in 2 requests/);
  const order = [129, ...Array.from({ length: 129 }, (_, i) => i)];
  assert.is(r.out, order.map((i) => `segment/l-${i} configured\n`).join(""), "l-129 first: it stops sending to l-0");
  const now = await stored();
  assert.is(now.get("l-0")!.to, 47400);
  assert.is(now.get("l-129")!.to, 47604);
  r = await msmctl(["delete", "-f", before]);
  assert.is(r.code, 0, r.err);
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
