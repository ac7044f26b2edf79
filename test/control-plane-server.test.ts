// The control-plane server through real gRPC clients: two replicas sharing a real etcd, mutual
// TLS with SPIFFE identities from a test CA. Field-named validation with nothing half-applied,
// 20 concurrent applies through both replicas with none lost, the filter registry's checks,
// roles, snapshots that follow changes made on the other replica, ACK/NACK and stats visible on
// every replica; the embedded file store across a restart; the command line.
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { createConnection } from "node:net";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status, type Client, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { suite } from "./lib/suite.js";
import { startEtcd, startEtcdCluster, type TestEtcd } from "./lib/etcd.js";
import { filterWasm, fixture, ROOT } from "./lib/paths.js";
import { waitFor } from "./lib/udp.js";
import {
  AdminServiceClient, ProxyServiceClient,
  type ApplySegmentsResponse, type ControlMessage, type Endpoint, type FilterModule, type FilterRef, type Leg, type ProxyMessage, type ProxyStats, type ProxyStatus, type Segment, type Snapshot,
} from "../controlplane/api/proto.js";
import { channelCredentials, type TlsFiles } from "../controlplane/security/tls.js";
import { createPki, type Pki } from "../controlplane/security/pki.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { sha256Hex, type ProxySnapshot } from "../runtime/index.js";
import { pageStats, STATS_BYTES_PER_SEC } from "../controlplane/api/stats-pages.js";
import { openStore } from "../controlplane/store/index.js";
import { segmentKey } from "../controlplane/server/keys.js";

const test = suite("control-plane server", { timeoutMs: 30_000 });

const TIMING = { heartbeatMs: 300, statsIntervalMs: 200, registerTimeoutMs: 2000 };
const dirs: string[] = [];
const tmp = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

let etcd: TestEtcd;
let pki: Pki;
let otherPki: Pki;
let a: ControlPlane;
let b: ControlPlane;
const logs: string[] = [];
const clients: Client[] = [];
let adminA: Client;
let adminB: Client;
let validateRef: FilterRef;

// ---------------------------------------------------------------- helpers

/** Peers are named by SPIFFE ID; a DNS-style TLS server name keeps node from warning about an IP as SNI. */
const CHANNEL = { "grpc.ssl_target_name_override": "msm-control-plane" };

/** An AdminService client; `trustDomain` of the control plane it expects (default: its own certificate's). */
function admin(cp: Pick<ControlPlane, "port">, files: TlsFiles | "insecure", trustDomain?: string): Client {
  const c = new AdminServiceClient(`127.0.0.1:${cp.port}`, channelCredentials(files, trustDomain), CHANNEL);
  clients.push(c);
  return c;
}

function proxyClient(cp: ControlPlane, files: TlsFiles | "insecure"): Client {
  const c = new ProxyServiceClient(`127.0.0.1:${cp.port}`, channelCredentials(files), CHANNEL);
  clients.push(c);
  return c;
}

/** One unary call as a promise, with a deadline. */
function rpc<T>(client: Client, method: string, request: unknown, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!.bind(client);
    fn(request, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

async function refused(work: Promise<unknown>, code: status, pattern?: RegExp): Promise<ServiceError> {
  try {
    await work;
  } catch (err) {
    const e = err as ServiceError;
    assert.is(status[e.code], status[code], `expected ${status[code]}, got ${status[e.code]}: ${e.details}`);
    if (pattern) assert.match(e.details, pattern);
    return e;
  }
  throw new assert.Assertion({ message: `expected ${status[code]}, the call succeeded`, generated: false, operator: "refused", expects: code, actual: "ok" });
}

function seg(name: string, proxy: string, port: number, extra: Partial<Segment> = {}): Partial<Segment> {
  return {
    name,
    proxy,
    listen: { address: "127.0.0.1", port, rtcpPort: 0 },
    destinations: [{ address: "127.0.0.1", port: port + 1000, rtcpPort: 0 }],
    chain: [{ filter: "validate", version: "", configJson: "" }],
    ...extra,
  };
}

const apply = (client: Client, segments: Partial<Segment>[], dryRun = false): Promise<ApplySegmentsResponse> =>
  rpc<ApplySegmentsResponse>(client, "ApplySegments", { segments, dryRun });
const listSegments = async (client: Client, proxy = ""): Promise<Segment[]> => (await rpc<{ segments: Segment[] }>(client, "ListSegments", { proxy })).segments;
const listProxies = async (client: Client): Promise<ProxyStatus[]> => (await rpc<{ proxies: ProxyStatus[] }>(client, "ListProxies", {})).proxies;

/** A proxy's Connect stream and everything the server sent on it. */
interface Conn {
  stream: ClientDuplexStream<ProxyMessage, ControlMessage>;
  snapshots: Snapshot[];
  ended: Promise<ServiceError | null>;
  send(msg: Record<string, unknown>): void;
  /** The next snapshot whose version is above `version`. */
  next(version: number, what: string): Promise<Snapshot>;
}

function connect(client: Client): Conn {
  const stream = (client as unknown as { Connect(): ClientDuplexStream<ProxyMessage, ControlMessage> }).Connect();
  const snapshots: Snapshot[] = [];
  stream.on("data", (m: ControlMessage) => m.kind === "snapshot" && snapshots.push(m.snapshot));
  const ended = new Promise<ServiceError | null>((resolve) => {
    stream.on("error", (e: ServiceError) => resolve(e));
    stream.on("end", () => resolve(null));
  });
  return {
    stream,
    snapshots,
    ended,
    send: (msg) => stream.write(msg as unknown as ProxyMessage),
    async next(version, what) {
      await waitFor(() => snapshots.some((s) => s.version > version), 10_000, what);
      return snapshots.find((s) => s.version > version)!;
    },
  };
}

function register(conn: Conn, nodeId: string, runningVersion = 0): void {
  conn.send({ register: { nodeId, capabilities: ["runtime=node"], abiVersions: ["1.0"], runningVersion } });
}

// ---------------------------------------------------------------- set-up

let files: { cpA: TlsFiles; cpB: TlsFiles; alice: TlsFiles; nodeA: TlsFiles; nodeC: TlsFiles; nodeF: TlsFiles; nodeS: TlsFiles; nodeR: TlsFiles; foreignAdmin: TlsFiles; otherDomain: TlsFiles; noId: TlsFiles };

test.before(async () => {
  const [e] = await Promise.all([startEtcd()]);
  etcd = e;
  pki = createPki(tmp("msm-pki-"));
  otherPki = createPki(tmp("msm-pki-other-"), "some other CA");
  files = {
    cpA: pki.issue("cp-a", "spiffe://msm.local/control-plane/cp-a"),
    cpB: pki.issue("cp-b", "spiffe://msm.local/control-plane/cp-b"),
    alice: pki.issue("alice", "spiffe://msm.local/admin/alice"),
    nodeA: pki.issue("node-a", "spiffe://msm.local/proxy/node-a"),
    nodeC: pki.issue("node-c", "spiffe://msm.local/proxy/node-c"),
    nodeF: pki.issue("node-f", "spiffe://msm.local/proxy/node-f"),
    nodeS: pki.issue("node-s", "spiffe://msm.local/proxy/node-s"),
    nodeR: pki.issue("node-r", "spiffe://msm.local/proxy/node-r"),
    foreignAdmin: otherPki.issue("mallory", "spiffe://msm.local/admin/mallory"),
    otherDomain: pki.issue("bob", "spiffe://elsewhere.example/admin/bob"),
    noId: pki.issue("noid", "spiffe://msm.local/nobody/x"),
  };
  const log = (m: string): void => void logs.push(m);
  a = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: files.cpA, name: "cp-a", log, timing: TIMING });
  b = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: files.cpB, name: "cp-b", log, timing: TIMING });
  adminA = admin(a, files.alice);
  adminB = admin(b, files.alice);
});

test.after(async () => {
  for (const c of clients) c.close();
  await a?.close();
  await b?.close();
  await a?.close(); // twice is fine
  await etcd?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------- filters

test("PushFilter: a filter is accepted and stored by digest; non-wasm, wrong ABI and other bytes for a pushed version are refused", async () => {
  const wasm = readFileSync(filterWasm("validate"));
  const pushed = await rpc<{ ref: FilterRef; alreadyPresent: boolean }>(adminA, "PushFilter", { name: "validate", version: "1.0.0", wasm });
  assert.equal([pushed.ref.name, pushed.ref.version, pushed.ref.sha256, pushed.ref.size, pushed.alreadyPresent], ["validate", "1.0.0", sha256Hex(wasm), wasm.length, false]);
  validateRef = pushed.ref;
  const again = await rpc<{ ref: FilterRef; alreadyPresent: boolean }>(adminB, "PushFilter", { name: "validate", version: "1.0.0", wasm });
  assert.ok(again.alreadyPresent, "the same bytes again (on the other replica) are fine");

  await refused(rpc(adminA, "PushFilter", { name: "junk", version: "1", wasm: Buffer.from("not wasm at all") }), status.INVALID_ARGUMENT, /^wasm: .*not a valid WebAssembly module/);
  await refused(rpc(adminA, "PushFilter", { name: "wrongabi", version: "1", wasm: readFileSync(fixture("wrong_abi")) }), status.INVALID_ARGUMENT, /^wasm: .*ABI mismatch/);
  await refused(rpc(adminA, "PushFilter", { name: "validate", version: "1.0.0", wasm: readFileSync(fixture("counter")) }), status.ALREADY_EXISTS, /validate@1\.0\.0 already exists with another module/);
  await refused(rpc(adminA, "PushFilter", { name: "Bad Name", version: "1", wasm }), status.INVALID_ARGUMENT, /^name: 'Bad Name': filter names are lower-case/);
  await refused(rpc(adminA, "PushFilter", { name: "validate", version: "", wasm }), status.INVALID_ARGUMENT, /^version: /);

  const listed = (await rpc<{ filters: FilterRef[] }>(adminB, "ListFilters", {})).filters;
  assert.equal(listed.map((f) => `${f.name}@${f.version}`), ["validate@1.0.0"], "refused modules left nothing behind");

  // a proxy fetches the bytes by digest, from either replica
  const fetched = await rpc<FilterModule>(proxyClient(b, files.nodeA), "FetchFilter", { sha256: validateRef.sha256 });
  assert.ok(Buffer.from(fetched.wasm).equals(wasm));
  assert.is(fetched.ref.name, "validate");
  await refused(rpc(proxyClient(a, files.nodeA), "FetchFilter", { sha256: "0".repeat(64) }), status.NOT_FOUND);
  await refused(rpc(proxyClient(a, files.nodeA), "FetchFilter", { sha256: "xyz" }), status.INVALID_ARGUMENT, /^sha256: /);
});

// ---------------------------------------------------------------- validation

test("ApplySegments refuses a request naming each bad field, and applies none of it", async () => {
  const bad = [
    seg("v-ok", "node-v", 20000),
    seg("v-unknown-filter", "node-v", 20010, { chain: [{ filter: "x", version: "1.2", configJson: "" }] }),
    seg("v-bad-port", "node-v", 70000),
    seg("v-bad-json", "node-v", 20020, { chain: [{ filter: "validate", version: "1.0.0", configJson: "{nope" }] }),
    seg("v-no-dest", "node-v", 20030, { destinations: [] }),
    seg("v-no-proxy", "", 20040),
    seg("v-ok", "node-v", 20050),
  ];
  const err = await refused(apply(adminA, bad), status.INVALID_ARGUMENT);
  const lines = err.details.split("\n");
  const expect = [
    /^segments\[1\]\.chain\[0\]\.filter: unknown filter 'x@1\.2'/,
    /^segments\[2\]\.listen\.port: .*65535/,
    /^segments\[3\]\.chain\[0\]\.config_json: not valid JSON/,
    /^segments\[4\]\.destinations: /,
    /^segments\[5\]\.proxy: required/,
    /^segments\[6\]\.name: duplicate segment name 'v-ok' \(also segments\[0\]\)/,
  ];
  for (const re of expect) assert.ok(lines.some((l) => re.test(l)), `no line matches ${re}:\n${err.details}`);
  assert.equal(await listSegments(adminA, "node-v"), [], "nothing was applied");

  // unknown version of a known filter: the versions there are
  await refused(apply(adminA, [seg("v1", "node-v", 20000, { chain: [{ filter: "validate", version: "9", configJson: "" }] })]), status.INVALID_ARGUMENT,
    /^segments\[0\]\.chain\[0\]\.filter: unknown filter 'validate@9' \(pushed versions: 1\.0\.0\)/);
  // the listen rtcp_port cannot be moved
  await refused(apply(adminA, [seg("v1", "node-v", 20000, { listen: { address: "127.0.0.1", port: 20000, rtcpPort: 20005 } })]), status.INVALID_ARGUMENT, /^segments\[0\]\.listen\.rtcp_port: /);
  // runtime rules with proto names in the path
  await refused(apply(adminA, [seg("v1", "node-v", 20000, { failure: { mode: "sideways", restartBackoffMs: 0, maxBackoffMs: 0, maxFailures: 0 } })]), status.INVALID_ARGUMENT, /^segments\[0\]\.failure\.mode: /);
  await refused(apply(adminA, [seg("bad name!", "node-v", 20000)]), status.INVALID_ARGUMENT, /^segments\[0\]\.name: must be 1-63/);
  await refused(apply(adminA, []), status.INVALID_ARGUMENT, /^segments: nothing to apply/);
});

test("ApplySegments: one listen port (or its RTCP port + 1) twice on one proxy is refused, within a request and against stored segments", async () => {
  await refused(apply(adminA, [seg("p1", "node-p", 21000), seg("p2", "node-p", 21000)]), status.INVALID_ARGUMENT, /^segments\[1\]\.listen\.port: port already used by segments\[0\]\.listen\.port/);
  await refused(apply(adminA, [seg("p1", "node-p", 21000), seg("p2", "node-p", 21001)]), status.INVALID_ARGUMENT, /^segments\[1\]\.listen\.port: port already used by segments\[0\]\.listen\.port \(RTCP, port \+ 1\)/);
  const r = await apply(adminA, [seg("p1", "node-p", 21000), seg("p-other", "node-q", 21000)]);
  assert.equal(r.created, ["p1", "p-other"], "the same port on another proxy is fine");
  await refused(apply(adminB, [seg("p3", "node-p", 20999)]), status.INVALID_ARGUMENT, /^segments\[0\]\.listen\.port \(RTCP, port \+ 1\): port already used by segment 'p1' listen\.port/);
  // moving p1 away frees its port in the same request
  const moved = await apply(adminB, [seg("p1", "node-p", 21100), seg("p3", "node-p", 21000)]);
  assert.equal([moved.configured, moved.created], [["p1"], ["p3"]]);
});

test("ApplySegments: a port clash is found whatever the address spelling (0.0.0.0 vs 127.0.0.1, forms of ::1), named by field", async () => {
  const at = (address: string, port: number): Partial<Endpoint> => ({ address, port, rtcpPort: 0 });
  // a wildcard takes the port on every address of its family
  await refused(apply(adminA, [seg("w1", "node-w", 25000, { listen: at("0.0.0.0", 25000) as Endpoint }), seg("w2", "node-w", 25000)]), status.INVALID_ARGUMENT,
    /^segments\[1\]\.listen\.port: port already used by segments\[0\]\.listen\.port/);
  // one IPv6 address, two spellings
  const v6 = [{ address: "::1", port: 26010, rtcpPort: 0 }];
  await refused(apply(adminA, [
    seg("w1", "node-w", 25010, { listen: at("::1", 25010) as Endpoint, destinations: v6 }),
    seg("w2", "node-w", 25010, { listen: at("0:0:0:0:0:0:0:1", 25010) as Endpoint, destinations: v6 }),
  ]), status.INVALID_ARGUMENT,
    /^segments\[1\]\.listen\.port: port already used by segments\[0\]\.listen\.port/);
  // against a stored segment, through the other replica: its RTCP port (P + 1) too
  await apply(adminA, [seg("w1", "node-w", 25020, { listen: at("127.0.0.1", 25020) as Endpoint })]);
  await refused(apply(adminB, [seg("w2", "node-w", 25019, { listen: at("0.0.0.0", 25019) as Endpoint })]), status.INVALID_ARGUMENT,
    /^segments\[0\]\.listen\.port \(RTCP, port \+ 1\): port already used by segment 'w1' listen\.port/);
  // the other family does not clash (IPv6 sockets are v6-only)
  const ok = await apply(adminB, [seg("w3", "node-w", 25020, { listen: at("::", 25020) as Endpoint, destinations: [{ address: "::1", port: 26020, rtcpPort: 0 }] })]);
  assert.equal(ok.created, ["w3"]);
  await rpc(adminA, "DeleteSegments", { names: ["w1", "w3"] });
});

/** SMPTE 2022-1 FEC as legs: column FEC on listen port + 2, row FEC on + 4, each to the destinations' port + 2 / + 4. */
const FEC_LEGS: Partial<Leg>[] = [{ name: "fec-col", portOffset: 2 }, { name: "fec-row", portOffset: 4 }];

test("ApplySegments: legs are checked with the proxy's own rules, each refusal naming the leg's field; nothing is applied", async () => {
  const at = (address: string, port: number): Endpoint => ({ address, port, rtcpPort: 0 });
  await apply(adminA, [seg("l-stored", "node-l", 23100)]);
  const cases: [string, Partial<Leg>[], RegExp][] = [
    ["a receiving leg with neither listen nor port_offset", [{ name: "fec-col", destinations: [at("127.0.0.1", 24002)] }], /^segments\[0\]\.legs\[0\]: a receiving leg needs listen or portOffset/m],
    ["a sending leg with neither destinations nor port_offset", [{ name: "fec-col", listen: at("", 23302) }], /^segments\[0\]\.legs\[0\]: a sending leg needs destinations or portOffset/m],
    ["a leg name twice", [{ name: "fec", portOffset: 2 }, { name: "fec", portOffset: 4 }], /^segments\[0\]\.legs\[1\]\.name: duplicate leg name 'fec'$/m],
    ["8 legs", Array.from({ length: 8 }, (_, k) => ({ name: `leg-${k}`, portOffset: 2 + 2 * k })), /^segments\[0\]\.legs: .*7/m],
    ["a bad leg name", [{ name: "fec col", portOffset: 2 }], /^segments\[0\]\.legs\[0\]\.name: must be 1-63 letters/m],
    ["port_offset 0 (given, not absent)", [{ name: "fec-col", portOffset: 0 }], /^segments\[0\]\.legs\[0\]\.port_offset: /m],
    ["an rtcp_port on a leg", [{ name: "fec-col", portOffset: 2, egress: { address: "127.0.0.1", port: 0, rtcpPort: 9 } }], /^segments\[0\]\.legs\[0\]\.egress\.rtcp_port: a leg carries no RTCP; leave it 0$/m],
    ["a leg on the segment's own RTCP port", [{ name: "fec-col", portOffset: 1 }], /^segments\[0\]\.legs\[0\] \(fec-col\) listen: port already used by segments\[0\]\.listen\.port \(RTCP, port \+ 1\)$/m],
    ["a leg on a port a stored segment of the proxy holds", [{ name: "fec-col", listen: at("0.0.0.0", 23100), portOffset: 2 }], /^segments\[0\]\.legs\[0\] \(fec-col\) listen: port already used by segment 'l-stored' listen\.port$/m],
    ["a leg of another family", [{ name: "fec-col", listen: at("::1", 23302), destinations: [at("::1", 24002)] }], /^segments\[0\]\.legs\[0\]\.listen\.address: IPv6, but the segment listens on IPv4/m],
  ];
  for (const [what, legs, pattern] of cases) {
    const err = await refused(apply(adminA, [seg("l1", "node-l", 23300, { legs: legs as Leg[] })]), status.INVALID_ARGUMENT);
    assert.match(err.details, pattern, `${what}:\n${err.details}`);
  }
  assert.equal((await listSegments(adminB, "node-l")).map((s) => s.name), ["l-stored"], "nothing was applied");
  // a dry run of the same checks: one good request passes, writes nothing
  const dry = await apply(adminA, [seg("l1", "node-l", 23300, { legs: FEC_LEGS as Leg[] })], true);
  assert.equal(dry.created, ["l1"]);
  assert.equal((await listSegments(adminB, "node-l")).map((s) => s.name), ["l-stored"]);
  await rpc(adminA, "DeleteSegments", { names: ["l-stored"] });
});

test("legs: stored and listed field by field on both replicas, unchanged when applied again with the defaults written out, sent whole in the proxy's snapshot", async () => {
  const legs: Partial<Leg>[] = [
    ...FEC_LEGS,
    { name: "path-b", listen: { address: "", port: 23410, rtcpPort: 0 }, destinations: [{ address: "127.0.0.1", port: 24410, rtcpPort: 0 }], egress: { address: "127.0.0.1", port: 0, rtcpPort: 0 }, send: true },
    { name: "repair", receive: false, destinations: [{ address: "127.0.0.1", port: 24420, rtcpPort: 0 }], egress: { address: "127.0.0.1", port: 23420, rtcpPort: 0 } },
  ];
  try {
    const conn = connect(proxyClient(b, files.nodeS));
    register(conn, "node-s");
    const first = await conn.next(-1, "node-s's first snapshot");
    const applied = await apply(adminA, [seg("fec1", "node-s", 23400, { legs: legs as Leg[] })]);
    assert.equal(applied.created, ["fec1"]);
    const expected: Leg[] = [
      { name: "fec-col", portOffset: 2, listen: null, receive: true, destinations: [], egress: null, send: true },
      { name: "fec-row", portOffset: 4, listen: null, receive: true, destinations: [], egress: null, send: true },
      { name: "path-b", listen: { address: "", port: 23410, rtcpPort: 0, interface: "" }, receive: true, destinations: [{ address: "127.0.0.1", port: 24410, rtcpPort: 0, interface: "" }], egress: { address: "127.0.0.1", port: 0, rtcpPort: 0, interface: "" }, send: true },
      { name: "repair", listen: null, receive: false, destinations: [{ address: "127.0.0.1", port: 24420, rtcpPort: 0, interface: "" }], egress: { address: "127.0.0.1", port: 23420, rtcpPort: 0, interface: "" }, send: true },
    ];
    // proto3 `optional` fields come with a virtual oneof field each when set: compare what the API means
    const plain = (l: Leg): Leg => ({ name: l.name, ...(l.portOffset !== undefined ? { portOffset: l.portOffset } : {}), listen: l.listen, receive: l.receive, destinations: l.destinations, egress: l.egress, send: l.send });
    for (const client of [adminA, adminB]) {
      const listed = (await listSegments(client, "node-s")).find((s) => s.name === "fec1")!;
      assert.equal(listed.legs.map(plain), expected);
    }
    const snap = await conn.next(first.version, "the snapshot with fec1");
    assert.is(snap.version, applied.revision);
    assert.equal(snap.segments[0]!.legs.map(plain), expected);
    // what the listing says, applied back; and the defaults left out again: both unchanged, the
    // segment not rewritten (its own revision; the store's moves with every ACK the proxy writes)
    const revisionOf = async (): Promise<number> => (await listSegments(adminA, "node-s")).find((x) => x.name === "fec1")!.revision;
    const rev0 = await revisionOf();
    assert.equal((await apply(adminB, [seg("fec1", "node-s", 23400, { legs: expected })])).unchanged, ["fec1"]);
    assert.equal((await apply(adminB, [seg("fec1", "node-s", 23400, { legs: legs as Leg[] })])).unchanged, ["fec1"]);
    assert.is(await revisionOf(), rev0, "not rewritten");
    // a leg changed: configured, and a new snapshot
    const changed = await apply(adminA, [seg("fec1", "node-s", 23400, { legs: FEC_LEGS as Leg[] })]);
    assert.equal(changed.configured, ["fec1"]);
    const s2 = await conn.next(snap.version, "the snapshot with two legs");
    assert.equal(s2.segments[0]!.legs.map((l) => l.name), ["fec-col", "fec-row"]);
    conn.stream.end();
    await conn.ended;
  } finally {
    await rpc(adminA, "DeleteSegments", { names: ["fec1"] }); // the next tests list node-s's segments
  }
});

test("a segment stored before legs existed reads back with none, and applied again as it was is unchanged", async () => {
  await apply(adminA, [seg("pre-legs", "node-o", 23500)]);
  // the record an older server wrote: this one's, without the `legs` key
  const store = await openStore(etcd.spec);
  let rewritten: number;
  try {
    const kv = (await store.get(segmentKey("pre-legs")))!;
    const { legs, ...old } = JSON.parse(kv.value.toString()) as Segment;
    assert.equal(legs, [], "this server stores legs");
    rewritten = (await store.txn([], [{ type: "put", key: segmentKey("pre-legs"), value: JSON.stringify(old) }])).revision;
  } finally {
    await store.close();
  }
  for (const client of [adminA, adminB]) {
    let listed: Segment | undefined;
    await waitFor(async () => (listed = (await listSegments(client, "node-o"))[0])?.revision === rewritten, 5000, "the rewritten record on every replica");
    assert.equal(listed!.legs, []);
  }
  // checked together with it (the proxy's rules run over its stored segments), another segment on its proxy
  assert.equal((await apply(adminA, [seg("post-legs", "node-o", 23510, { legs: FEC_LEGS as Leg[] })])).created, ["post-legs"]);
  const again = await apply(adminB, [seg("pre-legs", "node-o", 23500)]);
  assert.equal(again.unchanged, ["pre-legs"]);
  await rpc(adminA, "DeleteSegments", { names: ["pre-legs", "post-legs"] });
});

test("ApplySegments: created / configured / unchanged, dry_run writes nothing, DeleteSegments is all or none", async () => {
  const first = await apply(adminA, [seg("d1", "node-d", 22000), seg("d2", "node-d", 22010)]);
  assert.equal([first.created, first.configured, first.unchanged], [["d1", "d2"], [], []]);
  const second = await apply(adminB, [seg("d1", "node-d", 22000), seg("d2", "node-d", 22020), seg("d3", "node-d", 22030)], true);
  assert.equal([second.created, second.configured, second.unchanged], [["d3"], ["d2"], ["d1"]]);
  assert.is(second.revision, first.revision, "a dry run does not write");
  assert.equal((await listSegments(adminA, "node-d")).map((s) => s.name), ["d1", "d2"]);
  const same = await apply(adminA, [seg("d1", "node-d", 22000)]);
  assert.equal([same.unchanged, same.revision >= first.revision], [["d1"], true]);
  const stored = (await listSegments(adminA, "node-d")).find((s) => s.name === "d1")!;
  assert.is(stored.revision, first.revision, "Segment.revision is the revision of its last change");
  assert.is(stored.chain[0]!.version, "", "stored as applied (the newest version is resolved in snapshots)");

  // a segment moved to another proxy: both proxies' sets change, at that revision
  const moved = await apply(adminB, [seg("d2", "node-e", 22010)]);
  assert.equal(moved.configured, ["d2"]);
  assert.equal((await listSegments(adminA, "node-e")).map((s) => s.name), ["d2"]);
  const proxies = await listProxies(adminA);
  for (const node of ["node-d", "node-e"]) {
    const p = proxies.find((x) => x.nodeId === node);
    assert.equal([p?.desiredVersion, p?.connected, p?.ackedVersion], [moved.revision, false, 0], `${node}: known from its segments, never connected`);
  }

  await refused(rpc(adminA, "DeleteSegments", { names: ["d1", "nope"] }), status.NOT_FOUND, /segment "nope" not found; nothing was deleted/);
  assert.is((await listSegments(adminA)).filter((x) => x.name.startsWith("d")).length, 2, "nothing deleted");
  const del = await rpc<{ deleted: string[]; revision: number }>(adminB, "DeleteSegments", { names: ["d1", "d2"] });
  assert.equal(del.deleted, ["d1", "d2"]);
  assert.equal((await listSegments(adminA)).filter((x) => x.name.startsWith("d")), []);
  const after = (await listProxies(adminB)).map((p) => p.nodeId);
  assert.equal(after.filter((n) => n === "node-d" || n === "node-e"), [], "proxies that never connected are no longer listed once no segment names them");
});

test("secrets: listed as <redacted> unless show_secrets, sent to the proxy whole; references pass untouched; the placeholder applied back is refused", async () => {
  const config = {
    key: "c2VjcmV0LWtleS1hbmQtc2FsdA==",
    reverseKey: { $file: "/etc/msm/keys/cam-s.key" },
    peers: [{ authToken: "t0ken", port: 5 }],
    upstreamPassword: { $env: "MSM_UPSTREAM_PASSWORD" },
    keyLength: 30,
    name: "not a secret",
  };
  const r = await apply(adminA, [seg("s1", "node-s", 27000, { chain: [{ filter: "validate", version: "", configJson: JSON.stringify(config) }] })]);
  const hidden = JSON.parse((await listSegments(adminB, "node-s"))[0]!.chain[0]!.configJson);
  assert.equal(hidden, { ...config, key: "<redacted>", peers: [{ authToken: "<redacted>", port: 5 }] }, "strings of secret-looking keys hidden, references and other values as they are");
  const shown = await rpc<{ segments: Segment[] }>(adminB, "ListSegments", { proxy: "node-s", showSecrets: true });
  assert.equal(JSON.parse(shown.segments[0]!.chain[0]!.configJson), config);
  // the proxy needs them: its snapshot has everything, references untouched
  const conn = connect(proxyClient(a, files.nodeS));
  register(conn, "node-s");
  const snap = await conn.next(0, "node-s's snapshot");
  conn.stream.end();
  assert.is(snap.version, r.revision);
  assert.equal(JSON.parse(snap.segments[0]!.chain[0]!.configJson), config);
  // what a listing without secrets printed, applied back: refused, the key not replaced
  await refused(apply(adminA, [seg("s1", "node-s", 27000, { chain: [{ filter: "validate", version: "", configJson: JSON.stringify(hidden) }] })]), status.INVALID_ARGUMENT,
    /^segments\[0\]\.chain\[0\]\.config_json: 'key' is the placeholder <redacted> of a listing that hides secrets/m);
  const still = await rpc<{ segments: Segment[] }>(adminA, "ListSegments", { proxy: "node-s", showSecrets: true });
  assert.is(JSON.parse(still.segments[0]!.chain[0]!.configJson).key, config.key, "the key was not replaced");
  await rpc(adminA, "DeleteSegments", { names: ["s1"] });
});

test("regression: a relative $file reference is refused naming the field; the proxy would have read it from its own state directory (last-good.json, the keys of its other segments)", async () => {
  for (const [config, field] of [
    [{ key: { $file: "last-good.json" } }, "config_json"],
    [{ nested: [{ token: { $file: "../state/stage-state.json" } }] }, "config_json"],
  ] as const) {
    await refused(apply(adminA, [seg("rel", "node-s", 27100, { chain: [{ filter: "validate", version: "", configJson: JSON.stringify(config) }] })]), status.INVALID_ARGUMENT,
      new RegExp(`^segments\\[0\\]\\.chain\\[0\\]\\.${field}: '[^']+' is a \\$file reference to a relative path \\(.+\\); under a control plane give an absolute path on the proxy's node`, "m"));
  }
  await refused(apply(adminA, [seg("rel", "node-s", 27100, { chain: [{ filter: "validate", version: "", configJson: "{}", rootConfigJson: JSON.stringify({ key: { $file: "keys/k" } }) }] })]), status.INVALID_ARGUMENT,
    /^segments\[0\]\.chain\[0\]\.root_config_json: 'key' is a \$file reference to a relative path \(keys\/k\)/m);
  assert.equal((await listSegments(adminA)).filter((x) => x.name === "rel"), [], "nothing stored");
  // an absolute path is what the docs ask for, and passes
  await apply(adminA, [seg("rel", "node-s", 27100, { chain: [{ filter: "validate", version: "", configJson: JSON.stringify({ key: { $file: "/etc/msm/keys/k" } }) }] })]);
  await rpc(adminA, "DeleteSegments", { names: ["rel"] });
});

test("a dry run refuses what the store would refuse: too many operations for one transaction (the limit in a trailer, to send it in parts), a value too large (no trailer)", async () => {
  const many = Array.from({ length: 130 }, (_, i) => seg(`t${i}`, "node-t", 30000 + 2 * i));
  const limit = (e: ServiceError): unknown[] => e.metadata.get("msm-max-txn-ops");
  let e = await refused(apply(adminA, many, true), status.INVALID_ARGUMENT, /^segments: this request needs 131 store operations in one transaction; etcd:.* takes at most 128: split it$/);
  assert.equal(limit(e), ["128"]);
  e = await refused(apply(adminA, many), status.INVALID_ARGUMENT, /takes at most 128: split it/);
  assert.equal(limit(e), ["128"]);
  e = await refused(rpc(adminA, "DeleteSegments", { names: many.map((s) => s.name) }), status.NOT_FOUND);
  assert.equal(limit(e), [], "not found before too large");
  // a client that splits: its dry run answers, naming the limit
  const dry = await rpc<ApplySegmentsResponse>(adminB, "ApplySegments", { segments: many, dryRun: true, clientSplits: true });
  assert.equal([dry.created.length, dry.maxTxnOps], [130, 128]);
  const huge = seg("t-huge", "node-t", 31000, { chain: [{ filter: "validate", version: "", configJson: JSON.stringify({ allowedPayloadTypes: [96], note: "x".repeat(1.1 * (1 << 20)) }) }] });
  e = await refused(rpc(adminB, "ApplySegments", { segments: [huge], dryRun: true, clientSplits: true }), status.INVALID_ARGUMENT, /^segments: segment 't-huge' is \d+ bytes stored; etcd:.* takes at most 1048576 per value/);
  assert.equal(limit(e), [], "splitting would not help");
  e = await refused(rpc(adminB, "ApplySegments", { segments: [...many, huge], dryRun: true, clientSplits: true }), status.INVALID_ARGUMENT, /takes at most 128: split it\n.*'t-huge'/);
  assert.equal(limit(e), [], "too many and too large: splitting alone would not help");
  assert.equal(await listSegments(adminA, "node-t"), []);
  // deleting: the same trailer
  await apply(adminA, many.slice(0, 100));
  await apply(adminA, many.slice(100));
  e = await refused(rpc(adminA, "DeleteSegments", { names: many.map((s) => s.name) }), status.INVALID_ARGUMENT, /^segments: this request needs 131 store operations/);
  assert.equal(limit(e), ["128"]);
  await rpc(adminA, "DeleteSegments", { names: many.slice(0, 100).map((s) => s.name) });
  await rpc(adminA, "DeleteSegments", { names: many.slice(100).map((s) => s.name) });
});

test("no etcd quorum: calls answer UNAVAILABLE before the caller's deadline, saying whether anything may have changed; ListSegments with allow_copy from the replica's copy, saying so", async () => {
  const cluster = await startEtcdCluster(3);
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: cluster.spec, tls: files.cpA, name: "cp-q", log: () => {}, timing: TIMING });
  const client = admin(cp, files.alice);
  try {
    const plain = (name: string, port: number): Partial<Segment> => seg(name, "node-q", port, { chain: [] });
    await apply(client, [plain("q1", 32000)]);
    await cluster.stopMember(1);
    await cluster.stopMember(2);
    for (const deadline of [10_000, 2_500]) {
      const started = Date.now();
      await refused(rpc(client, "ListSegments", { proxy: "" }, deadline), status.UNAVAILABLE, /^store: .*(quorum|within)/);
      await refused(rpc(client, "ApplySegments", { segments: [plain("q2", 32010)] }, deadline), status.UNAVAILABLE);
      assert.ok(Date.now() - started < 2 * deadline, "answered, not timed out");
      // asked for (msmctl get does: only for showing), the replica's copy, within the deadline too
      const listed = await rpc<{ segments: Segment[]; storeUnreachable: string; copyRevision: number }>(client, "ListSegments", { proxy: "", allowCopy: true }, deadline);
      assert.equal(listed.segments.map((s) => s.name), ["q1"]);
      assert.match(listed.storeUnreachable, /quorum|within/);
      assert.ok(listed.copyRevision > 0, "the copy's revision");
    }
    const write = await refused(rpc(client, "ApplySegments", { segments: [plain("q3", 32020)] }, 2_500), status.UNAVAILABLE);
    assert.match(write.details, /may or may not be applied|quorum/);
  } finally {
    client.close();
    await cp.close();
    await cluster.stop();
  }
}, { timeoutMs: 90_000 });

// ---------------------------------------------------------------- concurrency

test("20 concurrent ApplySegments of different segments on one proxy, through two replicas sharing etcd: all 20 present", async () => {
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => apply(i % 2 === 0 ? adminA : adminB, [seg(`c${String(i).padStart(2, "0")}`, "node-c", 23000 + i * 10)])),
  );
  assert.equal(results.map((r) => r.created.length), Array(20).fill(1));
  assert.is(new Set(results.map((r) => r.revision)).size, 20, "each at its own revision");
  for (const client of [adminA, adminB]) assert.is((await listSegments(client, "node-c")).length, 20);

  // the proxy's set record was not lost either: its snapshot has all 20, at the last revision
  const conn = connect(proxyClient(a, files.nodeC));
  register(conn, "node-c");
  const snap = await conn.next(0, "node-c's snapshot");
  assert.is(snap.segments.length, 20);
  assert.is(snap.version, Math.max(...results.map((r) => r.revision)));
  conn.stream.end();

  // and two requests that claim the same port on one proxy, on two replicas at once: one wins
  const race = await Promise.allSettled([apply(adminA, [seg("race-a", "node-c", 24000)]), apply(adminB, [seg("race-b", "node-c", 24000)])]);
  assert.equal(race.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
  const loser = race.find((r) => r.status === "rejected") as PromiseRejectedResult;
  assert.match((loser.reason as ServiceError).details, /port already used by segment 'race-/);
});

// ---------------------------------------------------------------- security

test("roles: a proxy certificate may not administer, an admin may not Connect, a proxy may only be itself", async () => {
  const asProxy = admin(a, files.nodeA);
  await refused(apply(asProxy, [seg("x", "node-a", 25000)]), status.PERMISSION_DENIED, /spiffe:\/\/msm\.local\/proxy\/node-a .*needs the 'admin' role/);
  await refused(rpc(asProxy, "ListSegments", { proxy: "" }), status.PERMISSION_DENIED);
  await refused(rpc(proxyClient(a, files.alice), "FetchFilter", { sha256: validateRef.sha256 }), status.PERMISSION_DENIED, /needs the 'proxy' role/);

  const asAdmin = connect(proxyClient(a, files.alice));
  register(asAdmin, "alice");
  const e1 = await asAdmin.ended;
  assert.is(e1?.code, status.PERMISSION_DENIED);

  const impostor = connect(proxyClient(a, files.nodeA));
  register(impostor, "node-c");
  const e2 = await impostor.ended;
  assert.is(e2?.code, status.PERMISSION_DENIED);
  assert.match(e2!.details, /node_id is 'node-c' but the certificate is for proxy 'node-a'/);
});

test("identities: another CA's certificate is refused at the handshake; no SPIFFE ID of our trust domain is UNAUTHENTICATED", async () => {
  const foreign = admin(a, { ca: pki.ca, cert: files.foreignAdmin.cert, key: files.foreignAdmin.key });
  await refused(rpc(foreign, "ListSegments", { proxy: "" }, 3000), status.UNAVAILABLE);
  // a client of another trust domain does not take our server for its control plane...
  await refused(rpc(admin(a, files.otherDomain), "ListSegments", { proxy: "" }), status.UNAVAILABLE, /not a control plane: .*spiffe:\/\/msm\.local\/control-plane\/cp-a, not spiffe:\/\/elsewhere\.example\/control-plane/);
  // ...and one told to talk to it anyway is refused by the server
  const otherDomain = admin(a, files.otherDomain, "msm.local");
  await refused(rpc(otherDomain, "ListSegments", { proxy: "" }), status.UNAUTHENTICATED, /trust domain 'msm\.local'/);
  const noRole = admin(b, files.noId);
  await refused(rpc(noRole, "ListSegments", { proxy: "" }), status.UNAUTHENTICATED);
  // a client that does not trust our CA gives up too (the server's certificate is checked)
  const distrust = admin(a, { ca: otherPki.ca, cert: files.alice.cert, key: files.alice.key });
  await refused(rpc(distrust, "ListSegments", { proxy: "" }, 3000), status.UNAVAILABLE);
});

// ---------------------------------------------------------------- proxies

test("Connect: a snapshot right after Register, a new one for changes applied on the other replica, ACK/NACK and stats visible on both replicas", async () => {
  const conn = connect(proxyClient(b, files.nodeA));
  register(conn, "node-a");
  const first = await conn.next(-1, "the first snapshot");
  assert.equal([first.version, first.segments, first.filters], [0, [], []], "nothing for node-a yet");

  // applied on replica A, the proxy is connected to B
  const applied = await apply(adminA, [seg("cam1", "node-a", 26000, { chain: [{ filter: "validate", version: "", configJson: '{ "probation": 0 }' }] })]);
  const s1 = await conn.next(first.version, "the snapshot with cam1");
  assert.is(s1.version, applied.revision);
  assert.equal(s1.segments.map((s) => s.name), ["cam1"]);
  assert.is(s1.segments[0]!.revision, applied.revision);
  assert.equal(s1.segments[0]!.chain[0], { filter: "validate", version: "1.0.0", configJson: '{"probation":0}', rootConfigJson: "", limits: null }, "the newest version, resolved; config canonical; no filter entry settings");
  assert.equal(s1.filters.map((f) => [f.name, f.version, f.sha256]), [["validate", "1.0.0", validateRef.sha256]]);
  conn.send({ ack: { version: s1.version } });

  // another proxy's changes do not wake this one
  await apply(adminB, [seg("other", "node-z", 26100)]);

  // a newer version of a filter the chain names without a version: a new snapshot
  const pushed = await rpc<{ ref: FilterRef }>(adminB, "PushFilter", { name: "validate", version: "1.1.0", wasm: readFileSync(filterWasm("validate", true)) });
  const s2 = await conn.next(s1.version, "the snapshot after the push");
  assert.ok(s2.version > s1.version);
  assert.equal(s2.filters.map((f) => f.version), ["1.1.0"]);
  assert.is(s2.filters[0]!.sha256, pushed.ref.sha256);
  conn.send({ nack: { version: s2.version, error: "segments[0].chain[0].filter: no thanks\x1b[2J\nFORGED LOG LINE" } });
  conn.send({ stats: { statsJson: JSON.stringify({ segments: [{ name: "cam1", packetsIn: 42 }] }) } });
  assert.is(conn.snapshots.filter((s) => s.version > s1.version && s.version < s2.version).length, 0, "node-z's change sent nothing to node-a");

  for (const client of [adminA, adminB]) {
    let st: ProxyStatus | undefined;
    await waitFor(async () => {
      st = (await listProxies(client)).find((p) => p.nodeId === "node-a");
      return st?.nackedVersion === s2.version;
    }, 5000, "the NACK in ListProxies");
    assert.equal(
      [st!.connected, st!.server, st!.desiredVersion, st!.ackedVersion, st!.nackedVersion, st!.nackError, st!.capabilities, st!.abiVersions],
      [true, "cp-b", s2.version, s1.version, s2.version, "segments[0].chain[0].filter: no thanks\x1b[2J\nFORGED LOG LINE", ["runtime=node"], ["1.0"]],
    );
    assert.ok(Date.now() - st!.lastSeenMs < 5000);
    assert.match(st!.peer, /127\.0\.0\.1/);
  }
  // the server's log quotes the proxy on one printable line
  const logged = logs.find((l) => l.includes(`refused version ${s2.version}`))!;
  assert.is(logged, `proxy node-a refused version ${s2.version}: segments[0].chain[0].filter: no thanks\\x1b[2J\\nFORGED LOG LINE`);
  let stats: ProxyStats[] = [];
  await waitFor(async () => {
    stats = (await rpc<{ proxies: ProxyStats[] }>(adminA, "GetStats", { proxy: "node-a" }).catch(() => ({ proxies: [] }))).proxies;
    return stats.length === 1;
  }, 5000, "the stats report");
  assert.equal(JSON.parse(stats[0]!.statsJson), { segments: [{ name: "cam1", packetsIn: 42 }] });
  await refused(rpc(adminA, "GetStats", { proxy: "node-nobody" }), status.NOT_FOUND);

  // a delete is a change too: an empty snapshot at a higher version
  const del = await rpc<{ revision: number }>(adminA, "DeleteSegments", { names: ["cam1"] });
  const s3 = await conn.next(s2.version, "the snapshot after the delete");
  assert.equal([s3.version, s3.segments, s3.filters], [del.revision, [], []]);

  // the proxy leaves: every replica shows it disconnected
  conn.stream.end();
  await conn.ended;
  await waitFor(async () => (await listProxies(adminA)).find((p) => p.nodeId === "node-a")?.connected === false, 5000, "node-a disconnected");
  const versions = conn.snapshots.map((s) => s.version);
  assert.equal(versions, [...versions].sort((x, y) => x - y), "versions only grow");
});

/** Every stats page GetStats has for `proxy`, page token by page token; with each answer's size. */
async function allStats(client: Client, proxy: string): Promise<{ pages: ProxyStats[]; answers: number[] }> {
  const pages: ProxyStats[] = [];
  const answers: number[] = [];
  let pageToken = "";
  do {
    const res = await rpc<{ proxies: ProxyStats[]; nextPageToken: string }>(client, "GetStats", { proxy, pageToken });
    pages.push(...res.proxies);
    answers.push(res.proxies.reduce((n, p) => n + p.statsJson.length, 0));
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return { pages, answers };
}

test("stats: a report of 4000 segments (more than etcd's 1 MiB value limit) is stored in pages and read back whole, page by page; a report half received is not stored; a shorter one removes the pages it no longer has", async () => {
  const segment = (i: number) => ({
    name: `seg-${i}`, packetsIn: i, bytesIn: i * 1200, packetsOut: i, bytesOut: i * 1200, rtcpIn: 0, upstreamIn: 0, dropsTotal: 0, drops: {},
    stages: [{ filter: "validate", digest: "cd".repeat(32), state: "running", packetsIn: i, packetsOut: i, drops: {}, failures: 0, nsPerPacket: 200, metrics: [{ name: "packets", kind: "counter", value: i }] }],
  });
  const report = (n: number): string[] => pageStats({ workers: 1, workerMode: "thread", watchdogRestarts: 0, segments: Array.from({ length: n }, (_, i) => segment(i)) } as unknown as ProxySnapshot);
  const big = report(4000);
  assert.ok(big.join("").length > 1 << 20, "the report is larger than one etcd value");
  const conn = connect(proxyClient(b, files.nodeS));
  register(conn, "node-s");
  big.forEach((statsJson, page) => conn.send({ stats: { statsJson, page, pages: big.length } }));
  let read = { pages: [] as ProxyStats[], answers: [] as number[] };
  await waitFor(async () => (read = await allStats(adminA, "node-s").catch(() => read)).pages.length === big.length, 10_000, `${big.length} pages stored`);
  assert.equal(read.pages.map((p) => [p.page, p.pages]), big.map((_, i) => [i, big.length]));
  const names = read.pages.flatMap((p) => (JSON.parse(p.statsJson) as { segments: { name: string }[] }).segments.map((x) => x.name));
  assert.equal(names, Array.from({ length: 4000 }, (_, i) => `seg-${i}`));
  assert.ok(read.answers.length > 1 || big.length <= 8, "answers come in parts");
  for (const bytes of read.answers) assert.ok(bytes <= (2 << 20) + 300_000, `an answer of ${bytes} bytes`);
  assert.not.ok(logs.some((l) => /stats .*dropped/.test(l)), logs.join("\n"));

  // the next report, all but its last page: several write intervals pass and the store still
  // holds the whole first report, not its last pages beside the new one's first
  const firstAtMs = read.pages[0]!.atMs;
  assert.ok(read.pages.every((p) => p.atMs === firstAtMs), "one report");
  big.slice(0, -1).forEach((statsJson, page) => conn.send({ stats: { statsJson, page, pages: big.length } }));
  const writeGapMs = (big.join("").length / STATS_BYTES_PER_SEC) * 1000; // the server's pace for a report this large
  await new Promise((r) => setTimeout(r, writeGapMs + 5 * TIMING.statsIntervalMs));
  read = await allStats(adminA, "node-s");
  assert.equal(read.pages.map((p) => p.atMs), big.map(() => firstAtMs), "a report half received is not stored");
  conn.send({ stats: { statsJson: big.at(-1)!, page: big.length - 1, pages: big.length } });
  await waitFor(async () => (read = await allStats(adminA, "node-s").catch(() => read)).pages.every((p) => p.atMs > firstAtMs), 10_000, "the second report stored");
  assert.equal(new Set(read.pages.map((p) => p.atMs)).size, 1, "one report");
  assert.is(read.pages.length, big.length);

  const small = report(3);
  conn.send({ stats: { statsJson: small[0], page: 0, pages: 1 } });
  await waitFor(async () => (await allStats(adminB, "node-s")).pages.length === 1, 10_000, "the pages of the longer report removed");
  // every proxy's pages in one listing, the other proxies' too
  const everyone = await allStats(adminB, "");
  assert.ok(everyone.pages.some((p) => p.nodeId === "node-s") && everyone.pages.some((p) => p.nodeId !== "node-s"));
  await refused(rpc(adminA, "GetStats", { proxy: "node-s", pageToken: "/msm/v1/desired/segments/x" }), status.INVALID_ARGUMENT, /page_token/);
  conn.stream.end();
});

test("a replica started while etcd is down runs: NOT_SERVING and no snapshot to a proxy (an empty one would remove its segments) until etcd answers; then SERVING, and the stored segments go out", async () => {
  const own = await startEtcd();
  const logged: string[] = [];
  let late: ControlPlane | undefined;
  try {
    const early = await startControlPlane({ listen: "127.0.0.1:0", store: own.spec, tls: files.cpA, name: "cp-early", log: () => {}, timing: TIMING });
    const earlyAdmin = admin(early, files.alice);
    await rpc(earlyAdmin, "PushFilter", { name: "validate", version: "1.0.0", wasm: readFileSync(filterWasm("validate")) });
    await apply(earlyAdmin, [seg("late-cam", "node-l", 41000)]);
    await early.close();
    await own.pause();

    late = await startControlPlane({ listen: "127.0.0.1:0", store: own.spec, tls: files.cpB, name: "cp-late", log: (m) => logged.push(m), timing: TIMING });
    assert.ok(logged.some((l) => /^listing the desired state failed \(.*\): serving without it, NOT_SERVING, no snapshot sent, until the store answers; retrying$/.test(l)), logged.join("\n"));
    await waitFor(() => logged.some((l) => /^health: NOT_SERVING \(store etcd:/.test(l)), 5000, `NOT_SERVING logged\n${logged.join("\n")}`);
    const conn = connect(proxyClient(late, pki.issue("node-l", "spiffe://msm.local/proxy/node-l")));
    register(conn, "node-l", 7); // a proxy that runs its last good config (version 7)
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(conn.snapshots, [], "no snapshot while the desired state is not listed");

    // etcd back while the replica waits to list again (8 s after its 5th try: 0.5, 1, 2, 4 s between the first five): stream paths are
    // refused, not built from the empty mirror (answered [] and kept, before)
    await waitFor(() => logged.filter((l) => l.startsWith("listing the desired state failed")).length >= 5, 20_000, `5 listings failed\n${logged.join("\n")}`);
    await own.resume();
    assert.not.ok(logged.some((l) => l.startsWith("health: SERVING")), "precondition: the state is not listed yet");
    const refused = await late.streamPaths().then((p) => `answered ${JSON.stringify(p)}`, (e: Error) => e.message);
    assert.match(refused, "the desired state is not listed yet");
    const first = await conn.next(0, "the first snapshot once etcd answers");
    assert.equal(first.segments.map((x) => x.name), ["late-cam"]);
    assert.is(conn.snapshots.length, 1, "one snapshot: the stored state, no empty one before it");
    await waitFor(() => logged.some((l) => l === "health: SERVING (the store answers, the desired state is listed)"), 10_000, `SERVING logged\n${logged.join("\n")}`);
    // what its Register said, which the store could not take then, is recorded once it can
    const lateAdmin = admin(late, files.alice);
    await waitFor(async () => (await listProxies(lateAdmin)).find((p) => p.nodeId === "node-l")?.capabilities.includes("runtime=node") === true, 10_000, "the registration recorded");
    conn.stream.end();
    await conn.ended;
  } finally {
    await late?.close();
    await own.stop();
  }
}, { timeoutMs: 60_000 });

test("stats: a refused page is a gap in its report: a refused last page does not keep the report from the store, and no page of the report before stays in a refused one's place", async () => {
  const conn = connect(proxyClient(b, files.nodeR));
  register(conn, "node-r");
  const send = (round: string, refusedPage: number): void => {
    for (let page = 0; page < 3; page++) conn.send({ stats: { statsJson: page === refusedPage ? "{not json" : JSON.stringify({ round, page }), page, pages: 3 } });
  };
  const stored = async (): Promise<string[]> =>
    (await allStats(adminA, "node-r").catch(() => ({ pages: [] as ProxyStats[] }))).pages.map((p) => `${p.page}:${(JSON.parse(p.statsJson) as { round: string }).round}`);
  send("r1", -1);
  await waitFor(async () => (await stored()).join() === "0:r1,1:r1,2:r1", 10_000, "the first report stored");
  send("r2", 1);
  await waitFor(async () => (await stored()).join() === "0:r2,2:r2", 10_000, "the second report stored without its page 1 (not the first report's)");
  send("r3", 2);
  await waitFor(async () => (await stored()).join() === "0:r3,1:r3", 10_000, "the third report stored though its last page was refused");
  assert.ok(logs.some((l) => /node-r: a stats page was dropped, not JSON/.test(l)), logs.join("\n"));
  conn.stream.end();
});

test("Connect: the first message must be Register; a silent stream is closed", async () => {
  const conn = connect(proxyClient(a, files.nodeF));
  conn.send({ ack: { version: 1 } });
  const e = await conn.ended;
  assert.is(e?.code, status.INVALID_ARGUMENT);
  assert.match(e!.details, /first message .* must be Register/);
  const silent = connect(proxyClient(a, files.nodeF));
  const e2 = await silent.ended;
  assert.is(e2?.code, status.DEADLINE_EXCEEDED);
});

test("the proxies of a replica that shuts down are told UNAVAILABLE, and reconnect to the other", async () => {
  const c = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: files.cpA, name: "cp-c", log: () => {}, timing: TIMING });
  const conn = connect(proxyClient(c, files.nodeF));
  register(conn, "node-f");
  await conn.next(-1, "node-f's snapshot");
  await c.close();
  const e = await conn.ended;
  assert.is(e?.code, status.UNAVAILABLE);
  await waitFor(async () => (await listProxies(adminA)).find((p) => p.nodeId === "node-f")?.connected === false, 5000, "node-f disconnected");
  const again = connect(proxyClient(b, files.nodeF));
  register(again, "node-f");
  await again.next(-1, "node-f's snapshot from cp-b");
  await waitFor(async () => (await listProxies(adminA)).find((p) => p.nodeId === "node-f")?.server === "cp-b", 5000, "node-f on cp-b");
  again.stream.end();
});

// ---------------------------------------------------------------- file store, insecure

test("the embedded file store, insecure: segments (legs too), filters and versions survive a restart", async () => {
  const dir = tmp("msm-cp-file-");
  const spec = `file:${dir}`;
  let cp = await startControlPlane({ listen: "127.0.0.1:0", store: spec, tls: "insecure", log: () => {}, timing: TIMING });
  let client = admin(cp, "insecure");
  await rpc(client, "PushFilter", { name: "validate", version: "1.0.0", wasm: readFileSync(filterWasm("validate")) });
  const r = await apply(client, [seg("f1", "node-1", 27000), seg("f2", "node-1", 27010, { legs: FEC_LEGS as Leg[] })]);
  let conn = connect(proxyClient(cp, "insecure"));
  register(conn, "node-1");
  const before = await conn.next(-1, "node-1's snapshot");
  assert.is(before.version, r.revision);
  conn.stream.end();
  await conn.ended;
  await cp.close();

  cp = await startControlPlane({ listen: "127.0.0.1:0", store: spec, tls: "insecure", log: () => {}, timing: TIMING });
  try {
    client = admin(cp, "insecure");
    assert.equal((await listSegments(client)).map((s) => [s.name, s.revision, s.legs.map((l) => [l.name, l.portOffset, l.receive, l.send])]), [
      ["f1", r.revision, []],
      ["f2", r.revision, [["fec-col", 2, true, true], ["fec-row", 4, true, true]]],
    ]);
    conn = connect(proxyClient(cp, "insecure"));
    register(conn, "node-1", before.version); // it kept running what it had
    const after = await conn.next(-1, "node-1's snapshot after the restart");
    assert.equal(after, before, "the same snapshot, the same version");
    const next = await apply(client, [seg("f3", "node-1", 27020)]);
    assert.ok(next.revision > r.revision);
    const s = await conn.next(after.version, "a snapshot after the restart");
    assert.is(s.segments.length, 3);
    let st: ProxyStatus | undefined;
    await waitFor(async () => (st = (await listProxies(client)).find((p) => p.nodeId === "node-1"))?.connected === true, 5000, "node-1 connected");
    assert.ok(st!.server.endsWith(`:${cp.port}`), "the default replica name is host:port");
    assert.is(st!.ackedVersion, before.version, "Register.running_version counts as acknowledged");
    conn.stream.end();
    await conn.ended;
  } finally {
    await cp.close();
  }
});

// ---------------------------------------------------------------- command line

test("connections that never begin TLS (silent, or plain text that stops) are closed, not held; so are silent ones to a plain-text server", async () => {
  const plain = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${tmp("msm-idle-")}`, tls: "insecure", log: () => {} });
  /** Resolves with how long the server kept the connection, or rejects after `ms`. */
  const heldFor = (port: number, send: string, ms: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const socket = createConnection(port, "127.0.0.1", () => void (send && socket.write(send)));
      socket.on("error", () => {});
      socket.resume(); // read whatever the server sends, so that its close is seen
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`the server held the connection for ${ms} ms`));
      }, ms);
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(Date.now() - started);
      });
    });
  try {
    const [silent, partial, silentPlain] = await Promise.all([
      heldFor(a.port, "", 25_000),
      heldFor(a.port, "\x16\x03", 25_000), // the first bytes of a TLS record, and nothing more
      heldFor(plain.port, "", 25_000),
    ]);
    console.log(`    closed after ${silent} ms (silent, TLS), ${partial} ms (a partial handshake), ${silentPlain} ms (silent, plain text)`);
  } finally {
    await plain.close();
  }
}, { timeoutMs: 40_000 });

test("a closed replica leaves no timer behind (its wait for the sessions' disconnections held the process up to 2 s)", async () => {
  const script = `
    const { startControlPlane } = await import(${JSON.stringify(join(ROOT, "dist", "controlplane", "server", "index.js"))});
    const cp = await startControlPlane({ listen: "127.0.0.1:0", store: ${JSON.stringify(`file:${tmp("msm-cp-close-")}`)}, tls: "insecure", log: () => {} });
    await cp.close();
    console.log(JSON.stringify(process.getActiveResourcesInfo().filter((r) => r === "Timeout")));`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once("exit", r));
  assert.is(out.trim().split("\n").at(-1), "[]", out);
});

test("msm control-plane: refuses to start without TLS files unless --insecure; runs and stops on SIGTERM", async () => {
  const MSM = join(ROOT, "dist", "cli", "msm.js");
  const run = (args: string[]) => {
    const child = spawn(process.execPath, [MSM, "control-plane", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, exited, output: () => out };
  };
  const dir = tmp("msm-cp-cli-");
  const noTls = run(["--listen", "127.0.0.1:0", "--store", `file:${dir}`]);
  assert.is(await noTls.exited, 2);
  assert.match(noTls.output(), /needs --tls-ca, --tls-cert and --tls-key/);
  const missing = run(["--listen", "127.0.0.1:0", "--store", `file:${dir}`, "--tls-ca", join(dir, "nope.pem"), "--tls-cert", files.cpA.cert, "--tls-key", files.cpA.key]);
  assert.is(await missing.exited, 2);
  assert.match(missing.output(), /no such file/);

  const ok = run(["--listen", "127.0.0.1:0", "--store", `file:${dir}`, "--insecure", "--name", "cli-cp"]);
  try {
    await waitFor(() => /listening on 127\.0\.0\.1:\d+/.test(ok.output()), 10_000, "the control plane to start");
    assert.match(ok.output(), /control plane cli-cp listening .*INSECURE/);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(ok.output())![1]);
    const client = admin({ port }, "insecure");
    assert.equal(await listSegments(client), []);
    // a second one on the same port: msm's own message, not grpc-js's log line before it
    const taken = run(["--listen", `127.0.0.1:${port}`, "--store", `file:${tmp("msm-cp-cli-taken-")}`, "--insecure"]);
    assert.is(await taken.exited, 1);
    assert.is(taken.output(), `msm: cannot listen on 127.0.0.1:${port}: the address is in use (another control plane, or another program, listens there)\n`);
  } finally {
    ok.child.kill("SIGTERM");
  }
  assert.is(await ok.exited, 0);

  const tlsFiles = run(["--listen", "127.0.0.1:0", "--store", `file:${dir}`, "--tls-ca", files.cpA.ca, "--tls-cert", files.cpA.cert, "--tls-key", files.cpA.key]);
  try {
    await waitFor(() => /mutual TLS/.test(tlsFiles.output()), 10_000, "the TLS control plane to start");
  } finally {
    tlsFiles.child.kill("SIGTERM");
  }
  assert.is(await tlsFiles.exited, 0);
});

test.run();

process.on("exit", () => {
  if ((process.exitCode || process.env.MSM_TEST_VERBOSE) && logs.length > 0) console.error(`server log:\n  ${logs.join("\n  ")}`);
});

