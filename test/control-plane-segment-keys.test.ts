// The proxy file's segment keys through the control plane, end to end: a segment written with
// `source: { address, strict, learnMs, idleMs }` (no port), `feedbackFrom`, `symmetricRtp` and chain
// stages with `rootConfig`, `limits` and `maxMemoryPages` is applied with msmctl (in this process,
// over real gRPC) to a real control plane (file store), reaches a real agent and its proxy, and
// takes effect on real UDP: a second sender is refused or admitted as the gate says, a stage's
// generatedPerSecond bites where it is low and not where it is the default, equal stage settings
// share a filter entry and different ones do not, a root config the filter refuses is NACKed
// naming the stage's field. `get -o yaml` applies back unchanged; bad values are refused naming
// the manifest's field, and nothing is applied.
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, type Client } from "@grpc/grpc-js";
import { AdminServiceClient, type Segment } from "../controlplane/api/proto.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { startAgent, type Agent } from "../controlplane/agent/index.js";
import { runMsmctl } from "../cli/msmctl/main.js";
import type { Io } from "../cli/msmctl/context.js";
import { parseManifests, toManifest, toSegment } from "../cli/msmctl/manifest.js";
import { describeApplyFailure, planSnapshot, SnapshotError } from "../controlplane/agent/snapshot-config.js";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, freePortRun, indexedRtp, sendPaced, Sink, waitFor } from "./lib/udp.js";

const LO = "127.0.0.1";

async function msmctl(args: string[], env: Record<string, string>, stdin = ""): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readStdin: async () => Buffer.from(stdin),
    env,
    isTty: false,
    onInterrupt: () => () => {},
  };
  const code = await runMsmctl(args, io);
  return { code, out, err };
}

// ---------------------------------------------------------------- manifests, locally

const local = suite("segment keys: manifests", { timeoutMs: 10_000 });

const FULL = `kind: Segment
metadata: { name: full }
spec:
  proxy: node-k
  listen: { address: 127.0.0.1, port: 5004 }
  destinations: [{ address: 127.0.0.1, port: 6004 }]
  source: { address: 127.0.0.1, strict: true, learnMs: 0, idleMs: 250 }
  feedbackFrom: any
  chain:
    - filter: counter@1.0.0
      config: { tag: 1 }
      rootConfig: { generation: 2 }
      limits: { generatedPerSecond: 100000, timerFiresPerSecond: 500 }
      maxMemoryPages: 512
`;

local("the proxy file's keys become Segment and ChainStage fields, and come back as written", () => {
  const m = parseManifests(FULL, "full.yaml").manifests[0]!;
  const seg = toSegment(m);
  assert.equal(seg.source, { address: LO, port: 0, rtcpPort: 0 }, "no port: port 0, any port of that address");
  assert.equal([seg.sourceStrict, seg.sourceLearnMs, seg.sourceIdleMs, seg.feedbackFrom, seg.symmetricRtp], [true, 0, 250, "any", undefined]);
  assert.equal(seg.chain[0], {
    filter: "counter", version: "1.0.0", configJson: '{"tag":1}', rootConfigJson: '{"generation":2}',
    limits: { generatedPerSecond: 100000, timerFiresPerSecond: 500 }, maxMemoryPages: 512,
  });
  const back = toManifest({ ...seg, revision: 3 }) as { spec: Record<string, unknown> };
  const wrote = m.spec as Record<string, unknown>;
  for (const key of ["source", "feedbackFrom", "chain"]) assert.equal(back.spec[key], wrote[key], key);
  // a gate without an address, as the proxy file allows (source: { idleMs: 500 }), and symmetric RTP
  const bare = toSegment(parseManifests(FULL.replace("source: { address: 127.0.0.1, strict: true, learnMs: 0, idleMs: 250 }", "source: { idleMs: 500 }").replace("feedbackFrom: any", "symmetricRtp: true"), "x").manifests[0]!);
  assert.equal([bare.source, bare.sourceIdleMs, bare.symmetricRtp], [null, 500, true]);
  assert.equal((toManifest({ ...bare, revision: 1 }) as { spec: Record<string, unknown> }).spec.source, { idleMs: 500 });
  // a key left out stays out: rtcpMux only when it is on
  assert.not.ok("rtcpMux" in (toManifest({ ...bare, rtcpMux: false, revision: 1 }) as { spec: Record<string, unknown> }).spec);
  assert.is((toManifest({ ...bare, rtcpMux: true, revision: 1 }) as { spec: Record<string, unknown> }).spec.rtcpMux, true);
});

local("bad values are refused locally, naming the manifest's field", () => {
  const cases: [string, string, string][] = [
    ["learnMs: 0", "learnMs: -1", "spec.source.learnMs: must be at least 0"],
    ["idleMs: 250", "idleMs: 3600001", "spec.source.idleMs: must be at most 3600000"],
    ["strict: true", "strict: yes please", "spec.source.strict: must be a boolean"],
    ["feedbackFrom: any", "feedbackFrom: everyone", 'spec.feedbackFrom: must be "destinations" or "any"'],
    ["generatedPerSecond: 100000", "generatedPerSecond: 0", "spec.chain[0].limits.generatedPerSecond: must be at least 1"],
    ["timerFiresPerSecond: 500", "timerFirePerSecond: 500", "spec.chain[0].limits.timerFirePerSecond: unknown key"],
    ["maxMemoryPages: 512", "maxMemoryPages: 70000", "spec.chain[0].maxMemoryPages: must be at most 65536"],
    ["rootConfig: { generation: 2 }", "rootConfig: [2]", "spec.chain[0].rootConfig: must be a mapping"],
    ["source: { address: 127.0.0.1, strict: true, learnMs: 0, idleMs: 250 }", "source: { port: 4000 }", "spec.source: port and rtcpPort need an address"],
  ];
  for (const [from, to, expected] of cases) {
    assert.ok(FULL.includes(from), from);
    let message = "";
    try {
      parseManifests(FULL.replace(from, to), "bad.yaml");
    } catch (err) {
      message = (err as Error).message;
    }
    assert.ok(message.includes(`bad.yaml: document 1: ${expected}`), `${to}: ${message}`);
  }
});

local("the agent: stages with equal settings share a filter entry, other settings get one each, a sole setting keeps the name", () => {
  const ref = { name: "replicate", version: "1.0.0", sha256: "ab".repeat(32), size: 1, pushedAtMs: 1 };
  const seg = (name: string, port: number, stage: object): Segment => ({
    ...toSegment(parseManifests(FULL.replace("name: full", `name: ${name}`).replace("port: 5004", `port: ${port}`), "x").manifests[0]!),
    chain: [{ filter: "replicate", version: "1.0.0", configJson: "", ...stage }],
  });
  const plan = (segments: Segment[]) => planSnapshot({ version: 1, segments, filters: [ref] }, "modules", 1);
  const keys = (segments: Segment[]) => plan(segments).config.segments!.map((s) => s.chain![0]!.filter);

  // one set of settings: the filter's name, whatever it is
  assert.equal(keys([seg("a", 5000, { limits: { generatedPerSecond: 9 } })]), ["replicate"]);
  // equal settings in other spellings (keys in another order; a default written out) share
  const same = keys([
    seg("a", 5000, { rootConfigJson: '{"x":1,"y":2}', limits: { generatedPerSecond: 9 } }),
    seg("b", 5010, { rootConfigJson: '{"y":2,"x":1}', limits: { generatedPerSecond: 9, timerFiresPerSecond: 2000 }, maxMemoryPages: 256 }),
    seg("c", 5020, { limits: { generatedPerSecond: 50000 } }),
    seg("d", 5030, {}),
  ]);
  assert.is(same[0], same[1]);
  assert.equal([same[2], same[3]], ["replicate", "replicate"], "the defaults written out are the defaults");
  assert.match(same[0]!, /^replicate-[0-9a-f]{8}$/);
  const entries = plan([seg("a", 5000, { rootConfigJson: '{"x":1}', maxMemoryPages: 512 }), seg("d", 5030, {})]).config.filters!;
  assert.equal(Object.keys(entries).length, 2);
  const other = Object.entries(entries).find(([k]) => k !== "replicate")![1];
  assert.equal([other.config, other.maxMemoryPages, other.sha256], [{ x: 1 }, 512, ref.sha256]);
  // the key of a variant does not depend on the other segments
  const alone = keys([seg("a", 5000, { rootConfigJson: '{"x":1}', maxMemoryPages: 512 }), seg("d", 5030, {}), seg("e", 5040, { maxMemoryPages: 64 })]);
  assert.is(alone[0], keys([seg("a", 5000, { rootConfigJson: '{"x":1}', maxMemoryPages: 512 }), seg("d", 5030, {})])[0]);

  // a root config that is not an object: refused, naming the field
  try {
    plan([seg("a", 5000, { rootConfigJson: "[1]" })]);
    assert.unreachable("refused");
  } catch (err) {
    assert.instance(err, SnapshotError);
    assert.is((err as Error).message, "segments[0].chain[0].root_config_json: must be a JSON object");
  }
  // the proxy's refusal of a root config names the stage's field, not the agent's key
  const segments = [seg("a", 5000, { rootConfigJson: '{"x":1}' }), seg("d", 5030, {})];
  const p = plan(segments);
  const key = p.config.segments![0]!.chain![0]!.filter;
  assert.is(
    describeApplyFailure({ version: 1, segments, filters: [ref] }, p, "a", `segment 'a': filter '${key}' rejected its root config (filters.${key}.config): unknown key x`),
    "segments[0].chain[0].root_config_json: filter replicate@1.0.0 rejected its root config: unknown key x (segment 'a')",
  );
});

local.run();

// ---------------------------------------------------------------- against a control plane and a real proxy

const live = suite("segment keys: msmctl, the control plane, an agent and its proxy", { timeoutMs: 60_000 });
const dir = mkdtempSync(join(tmpdir(), "msm-segkeys-"));
let cp: ControlPlane;
let agent: Agent;
let env: Record<string, string>;

live.before(async () => {
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${join(dir, "store")}`, tls: "insecure", name: "cp-0", log: () => {} });
  env = { MSM_SERVER: `127.0.0.1:${cp.port}`, MSM_INSECURE: "1" };
  agent = await startAgent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-k", stateDir: join(dir, "state"), tls: "insecure" });
  for (const [ref, wasm] of [["counter@1.0.0", fixture("counter")], ["replicate@1.0.0", filterWasm("replicate")]] as const) {
    const r = await msmctl(["filter", "push", ref, wasm], env);
    assert.is(r.code, 0, r.err);
  }
});

live.after(async () => {
  await agent?.close();
  await cp?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Applies a manifest with msmctl and waits until the agent runs the revision it was stored as. */
async function applyAndRun(name: string, yaml: string): Promise<number> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const r = await msmctl(["apply", "-f", file], env);
  assert.is(r.code, 0, r.err);
  const revision = Number(/stored as revision (\d+)/.exec(r.err)?.[1] ?? 0);
  assert.ok(revision > 0, r.out + r.err);
  await waitFor(() => agent.runningVersion >= revision, 15_000, `the agent to run revision ${revision}`);
  return revision;
}

async function stageStats(segment: string) {
  const stats = await agent.proxy!.stats();
  return stats.segments.find((s) => s.name === segment)!;
}

live("source: { address, strict, learnMs, idleMs } (no port) decides on the proxy whether a second sender gets in", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const [first, second] = [await bindUdp(), await bindUdp()];
  const gate = (source: string): string => `kind: Segment
metadata: { name: gate }
spec:
  proxy: node-k
  listen: { address: 127.0.0.1, port: ${listen} }
  destinations: [{ address: 127.0.0.1, port: ${sink.port} }]
  source: ${source}
  feedbackFrom: any
`;
  try {
    // strict, no learning window, never re-learned: the first sender (any port of 127.0.0.1) keeps the segment
    await applyAndRun("gate", gate("{ address: 127.0.0.1, learnMs: 0, idleMs: 0 }"));
    for (let i = 0; i < 20; i++) first.send(indexedRtp(i), listen, LO);
    await waitFor(() => sink.received >= 20, 10_000, "the first sender's packets");
    for (let i = 0; i < 20; i++) second.send(indexedRtp(1000 + i), listen, LO);
    await waitFor(async () => ((await stageStats("gate")).drops.host_source_refused ?? 0) >= 20, 10_000, "the second sender refused");
    assert.is(sink.tally(20, 1000).missing, 20, "nothing of the second sender's reached the destination");
    assert.is((await stageStats("gate")).ports.sender, `${LO}:${first.address().port}`);

    // strict off: the proxy re-latches on every packet, so the second sender gets through
    await applyAndRun("gate", gate("{ address: 127.0.0.1, strict: false }"));
    for (let i = 0; i < 20; i++) second.send(indexedRtp(2000 + i), listen, LO);
    await waitFor(() => sink.tally(20, 2000).missing === 0, 10_000, "the second sender's packets once strict is off");

    // an allow list of one address: a sender on another address is refused whatever the gate's windows
    await applyAndRun("gate", gate("{ address: 127.0.0.2, strict: false, learnMs: 600000 }"));
    const refusedBefore = (await stageStats("gate")).drops.host_source_refused ?? 0;
    for (let i = 0; i < 20; i++) second.send(indexedRtp(3000 + i), listen, LO);
    await waitFor(async () => ((await stageStats("gate")).drops.host_source_refused ?? 0) >= refusedBefore + 20, 10_000, "a sender off the allow list refused");
    assert.is(sink.tally(20, 3000).missing, 20);

    // what msmctl shows, and what get -o yaml gives applies back unchanged
    const described = await msmctl(["describe", "segment", "gate"], env);
    assert.match(described.out, /^Source:\s+only 127\.0\.0\.2, any port; RTCP port learned\n\s+not strict/m, described.out);
    assert.match(described.out, /^Feedback from:\s+anyone$/m, described.out);
    const yaml = (await msmctl(["get", "segment", "gate", "-o", "yaml"], env)).out;
    assert.match(yaml, /source:\n\s+address: 127\.0\.0\.2\n\s+strict: false\n\s+learnMs: 600000\n/, yaml);
    const again = await msmctl(["apply", "-f", "-"], env, yaml);
    assert.is(again.out, "segment/gate unchanged\n", again.err);
  } finally {
    first.close();
    second.close();
    sink.close();
    await msmctl(["delete", "segment", "gate"], env);
  }
});

live("chain stages' limits and rootConfig reach the proxy: a low generatedPerSecond bites, equal settings share a filter entry, a refused root config is NACKed by field", async () => {
  // three dual-path senders (replicate copies every packet to leg 1: generated packets)
  const base = await freePortRun(6);
  const sinks = await Promise.all(Array.from({ length: 6 }, () => Sink.open()));
  const tx = await bindUdp();
  const dual = (name: string, k: number, limits: string): string => `kind: Segment
metadata: { name: ${name} }
spec:
  proxy: node-k
  listen: { address: 127.0.0.1, port: ${base + 2 * k} }
  destinations: [{ address: 127.0.0.1, port: ${sinks[2 * k]!.port} }]
  legs:
    - { name: path-b, receive: false, destinations: [{ address: 127.0.0.1, port: ${sinks[2 * k + 1]!.port} }] }
  chain:
    - filter: replicate@1.0.0
      config: { copyToLegs: [1] }
${limits}`;
  const low = "      limits: { generatedPerSecond: 1 }\n      rootConfig: { bufferBudgetKiB: 1024 }\n";
  const yaml = [dual("low-a", 0, low), dual("low-b", 1, low), dual("default", 2, "")].join("---\n");
  try {
    await applyAndRun("dual", yaml);
    const n = 3000; // over the budget's burst (2048) at 1 packet/s, far under the default's (5000)
    for (const k of [0, 1, 2]) await sendPaced(tx, base + 2 * k, LO, n, 20_000, (i) => indexedRtp(i));
    await waitFor(async () => ((await stageStats("low-a")).stages[0]!.drops.host_budget_exceeded ?? 0) > 0, 10_000, "generatedPerSecond: 1 to bite");
    await waitFor(async () => ((await stageStats("low-b")).stages[0]!.drops.host_budget_exceeded ?? 0) > 0, 10_000, "generatedPerSecond: 1 to bite on the other segment too");
    // more copies than the low budget's burst went through where the limits are the defaults, and none was refused
    await waitFor(async () => (await stageStats("default")).stages[0]!.generated > 2048 + 100, 10_000, "the default segment's copies");
    assert.is((await stageStats("default")).stages[0]!.drops.host_budget_exceeded ?? 0, 0, "the default limits let every copy through");
    // equal settings: one filter entry; different: another, named after its settings
    const [la, lb, dd] = [await stageStats("low-a"), await stageStats("low-b"), await stageStats("default")];
    assert.is(la.stages[0]!.filter, lb.stages[0]!.filter, "low-a and low-b share a filter entry");
    assert.is(dd.stages[0]!.filter, "replicate", "the stage with the defaults keeps the filter's name");
    assert.match(la.stages[0]!.filter, /^replicate-[0-9a-f]{8}$/);
    // the config the agent gave its proxy (what last-good.json keeps)
    const ran = JSON.parse(readFileSync(join(dir, "state", "last-good.json"), "utf8")) as { config: { filters: Record<string, { config?: unknown; limits?: unknown }> } };
    assert.equal(Object.keys(ran.config.filters).sort(), [la.stages[0]!.filter, "replicate"].sort(), "two entries for three stages");
    assert.equal([ran.config.filters[la.stages[0]!.filter]!.config, ran.config.filters[la.stages[0]!.filter]!.limits], [{ bufferBudgetKiB: 1024 }, { generatedPerSecond: 1 }]);
    assert.equal([ran.config.filters.replicate!.config, ran.config.filters.replicate!.limits], [{}, undefined]);

    const described = await msmctl(["describe", "segment", "low-a"], env);
    assert.match(described.out, /^Chain:\s+1\. replicate@1\.0\.0  \{"copyToLegs":\[1\]\}; root config \{"bufferBudgetKiB":1024\}; limits generatedPerSecond 1$/m, described.out);
    const listed = (await msmctl(["get", "segments", "low-a", "low-b", "default", "-o", "yaml"], env)).out;
    const again = await msmctl(["apply", "-f", "-"], env, listed);
    assert.is(again.out, "segment/low-a unchanged\nsegment/low-b unchanged\nsegment/default unchanged\n", again.err);

    // a root config the filter refuses (bufferBudgetKiB below 256): NACKed naming the stage's field; the old config runs on
    const running = agent.runningVersion;
    const refused = new Promise<string>((resolve) => agent.once("refused", (e) => resolve(e.error)));
    const file = join(dir, "refused.yaml");
    writeFileSync(file, dual("low-a", 0, "      rootConfig: { bufferBudgetKiB: 100 }\n"));
    const r = await msmctl(["apply", "-f", file], env);
    assert.is(r.code, 0, r.err);
    const error = await refused;
    assert.match(error, /segments\[\d\]\.chain\[0\]\.root_config_json: filter replicate@1\.0\.0 rejected its root config: .*bufferBudgetKiB/, error);
    assert.not.match(error, /filters\./, "the agent's own filter keys are not shown");
    assert.is(agent.runningVersion, running);
  } finally {
    tx.close();
    for (const s of sinks) s.close();
    await msmctl(["delete", "segment", "low-a", "low-b", "default", "--ignore-not-found"], env);
  }
});

live("refused by the server, naming the field, and nothing applied: rules across keys, and values msmctl would not send", async () => {
  const listen = await freePortPair();
  const file = join(dir, "rules.yaml");
  const yaml = (extra: string): string => `kind: Segment
metadata: { name: rules }
spec:
  proxy: node-k
  listen: { address: 127.0.0.1, port: ${listen} }
  egress: { address: 127.0.0.1 }
  destinations: [{ address: 127.0.0.1, port: 9 }]
${extra}`;
  writeFileSync(file, yaml("  symmetricRtp: true\n  feedbackFrom: any\n  source: { address: \"::1\" }\n"));
  const r = await msmctl(["apply", "-f", file], env);
  assert.is(r.code, 1);
  assert.ok(r.err.includes(`${file}: document 1: spec.egress: with symmetricRtp the segment sends from its listen socket; remove egress or symmetricRtp\n`), r.err);
  assert.ok(r.err.includes(`${file}: document 1: spec.feedbackFrom: 'any' with symmetricRtp:`), r.err);
  assert.ok(r.err.includes(`${file}: document 1: spec.source.address: IPv6, but the segment listens on IPv4\n`), r.err);
  assert.is((await msmctl(["get", "segment", "rules"], env)).code, 1, "nothing applied");

  // a client other than msmctl: the server checks the same ranges, naming the request's fields
  const admin = new AdminServiceClient(`127.0.0.1:${cp.port}`, credentials.createInsecure()) as Client & Record<string, Function>;
  try {
    const segment = toSegment(parseManifests(yaml("  chain: [{ filter: counter }]\n"), "x").manifests[0]!);
    const bad: Segment = {
      ...segment,
      sourceLearnMs: 700_000,
      chain: [{ ...segment.chain[0]!, rootConfigJson: "[1]", limits: { generatedPerSecond: 0 }, maxMemoryPages: 0 }],
    };
    const details = await new Promise<string>((resolve) => {
      admin.ApplySegments({ segments: [bad], dryRun: false }, (err: { details?: string } | null) => resolve(err?.details ?? "accepted"));
    });
    for (const field of ["segments[0].source_learn_ms: ", "segments[0].chain[0].root_config_json: must be a JSON object", "segments[0].chain[0].limits.generated_per_second: ", "segments[0].chain[0].max_memory_pages: "]) {
      assert.ok(details.includes(field), `${field} in:\n${details}`);
    }
    const redacted: Segment = { ...segment, chain: [{ ...segment.chain[0]!, rootConfigJson: '{"key":"<redacted>"}' }] };
    const placeholder = await new Promise<string>((resolve) => {
      admin.ApplySegments({ segments: [redacted], dryRun: true }, (err: { details?: string } | null) => resolve(err?.details ?? "accepted"));
    });
    assert.match(placeholder, /^segments\[0\]\.chain\[0\]\.root_config_json: 'key' is the placeholder <redacted>/, placeholder);
  } finally {
    admin.close();
  }
  assert.is((await msmctl(["get", "segment", "rules"], env)).code, 1, "nothing applied");
});

live.run();
