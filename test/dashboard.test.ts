// The control plane's dashboard as a unit: a real control plane (mutual TLS, a test CA, proxies
// registered over real gRPC) whose stream paths are fixtures the test changes, served over HTTPS
// to admin certificates only; msmctl dashboard in front of it on loopback; the page driven in
// Debian's Chromium (playwright-core): it loads, draws the proxies, updates live, marks the bad
// hop red with its reason, escapes names; a screenshot is saved. Also: /metrics in Prometheus
// form, the live-update limits, `msm control-plane --dashboard`, and the Grafana example's queries.
import * as assert from "uvu/assert";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect as netConnect } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client, ClientDuplexStream } from "@grpc/grpc-js";
import { suite } from "./lib/suite.js";
import { peer, peerTest, runsOk } from "./lib/peers.js";
import { fixture, ROOT } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, sleep, waitFor } from "./lib/udp.js";
import { httpBody } from "./lib/http-get.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { startAdminServer } from "../runtime/index.js";
import { Child } from "./lib/child.js";
import { ProxyServiceClient, type ProxyMessage } from "../controlplane/api/proto.js";
import type { StreamHop, StreamPath, StreamPoint } from "../controlplane/api/streams.js";
import { startDashboard, type Dashboard, type DashboardOptions } from "../controlplane/dashboard/index.js";
import { channelCredentials, type TlsFiles } from "../controlplane/security/tls.js";
import { createPki } from "../controlplane/security/pki.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { runMsmctl } from "../cli/msmctl/main.js";
import type { Io } from "../cli/msmctl/context.js";

const test = suite("dashboard", { timeoutMs: 30_000 });

const CHROMIUM = "/usr/bin/chromium";
const chromium = peer("Chromium", "Debian package chromium, npm playwright-core", () => existsSync(CHROMIUM) && runsOk(CHROMIUM, ["--version"]));
const OUTPUT = join(ROOT, "test-output");
const TD = "msm.test";

// ---------------------------------------------------------------- fixtures: stream paths as the control plane states them

const point = (proxy: string, segment: string, direction: StreamPoint["direction"]): StreamPoint => ({ proxy, segment, direction, stats: null, reportedAtMs: Date.now(), stale: false });

interface Figures {
  loss?: number;
  jitterAdded?: number;
  delay?: number;
  why?: string;
  /** Not measured, and why (the figures null). */
  note?: string;
}

/**
 * A stream through `hops` proxies in a chain: first link, then each proxy and the link to the next,
 * then the last link. `bad` names hops by label with their figures and reason.
 */
function chain(name: string, ssrc: number, through: [proxy: string, segment: string][], bad: Record<string, Figures> = {}): StreamPath {
  const hops: StreamHop[] = [];
  const add = (kind: StreamHop["kind"], from: StreamPoint | null, to: StreamPoint | null, label: string): void => {
    const f = bad[label] ?? {};
    const measured = f.note === undefined;
    hops.push({
      kind, from, to, label,
      receiver: kind === "last-link" ? { reporterSsrc: 0xfeed, fractionLost: 0, cumulativeLost: 0, highestSeq: 1000, jitterMs: 1.2, egressJitterMs: 1.1, rttMs: 0.8, linkFractionLost: 0, xr: null, atMs: Date.now() } : null,
      lossFraction: measured ? f.loss ?? 0 : null,
      lost: measured ? (f.loss ? Math.round(f.loss * 1000) : 0) : null,
      jitterMs: measured ? 1 + (f.jitterAdded ?? 0.1) : null,
      jitterAddedMs: measured ? f.jitterAdded ?? 0.1 : null,
      delayMs: measured ? f.delay ?? 0.4 : null,
      bad: f.why !== undefined,
      why: f.why ?? null,
      note: f.note ?? null,
    });
  };
  const [first] = through;
  add("first-link", null, point(first![0], first![1], "ingress"), `sender -> ${first![0]}`);
  through.forEach(([proxy, segment], i) => {
    add("proxy", point(proxy, segment, "ingress"), point(proxy, segment, "egress"), proxy);
    const next = through[i + 1];
    if (next) add("link", point(proxy, segment, "egress"), point(next[0], next[1], "ingress"), `${proxy} -> ${next[0]}`);
  });
  const last = through[through.length - 1]!;
  add("last-link", point(last[0], last[1], "egress"), null, `${last[0]} -> receiver`);
  const worstBad = hops.map((h, i) => [h, i] as const).filter(([h]) => h.bad).sort(([a], [b]) => (b.lossFraction ?? 0) - (a.lossFraction ?? 0))[0];
  const loss = hops.reduce((sum, h) => sum + (h.lossFraction ?? 0), 0);
  return {
    name, ssrc,
    segments: through.map(([proxy, segment]) => ({ proxy, segment })),
    hops,
    worst: worstBad ? worstBad[1] : -1,
    lossFraction: loss, jitterMs: 2.5, bitrateBps: 2_400_000, packetRate: 210,
  };
}

const CAM1 = [["proxy-a", "cam-1"], ["proxy-b", "cam-1-b"], ["proxy-c", "cam-1-c"]] as [string, string][];
const HOSTILE = `<img src=x onerror="window.__pwned=1">"\\\nend`;
const LOSS_BC = "loss 5.0% > 0.5% (proxy-b -> proxy-c)";
const JITTER_AB = "jitter +12.0 ms > 5 ms (proxy-a -> proxy-b)";
const STALE_RR = "the receiver's last report is 12 s old (stale)";

/** The first state: loss between proxy B and proxy C on cam-1. */
function lossOnBC(): StreamPath[] {
  return [
    chain("cam-2", 0x2222, [["proxy-a", "cam-2"], ["proxy-c", "cam-2-c"]], { "proxy-c -> receiver": { note: STALE_RR } }),
    chain("cam-1", 0x1111, CAM1, { "proxy-b -> proxy-c": { loss: 0.05, why: LOSS_BC } }),
    chain(HOSTILE, 0x3333, [["proxy-a", `<b>seg</b>`]]),
  ];
}

/** The second: B to C recovered, jitter between A and B. */
function jitterOnAB(): StreamPath[] {
  return [
    chain("cam-2", 0x2222, [["proxy-a", "cam-2"], ["proxy-c", "cam-2-c"]], { "proxy-c -> receiver": { note: STALE_RR } }),
    chain("cam-1", 0x1111, CAM1, { "proxy-a -> proxy-b": { jitterAdded: 12, why: JITTER_AB } }),
    chain(HOSTILE, 0x3333, [["proxy-a", `<b>seg</b>`]]),
  ];
}

// ---------------------------------------------------------------- set-up: a control plane, its proxies, the dashboard

const dirs: string[] = [];
const tmp = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

let files: { cp: TlsFiles; admin: TlsFiles; proxyA: TlsFiles; proxyB: TlsFiles; proxyC: TlsFiles; foreignAdmin: TlsFiles; otherDomain: TlsFiles };
let cp: ControlPlane;
let dashboard: Dashboard;
let paths: StreamPath[] = lossOnBC();
const logs: string[] = [];
const grpcClients: Client[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

/** A proxy connected to the control plane over real gRPC with its own certificate, registered as `nodeId`. */
function connectProxy(tls: TlsFiles, nodeId: string): void {
  const client = new ProxyServiceClient(`127.0.0.1:${cp.port}`, channelCredentials(tls), { "grpc.ssl_target_name_override": "msm-control-plane" });
  grpcClients.push(client);
  const stream = (client as unknown as { Connect(): ClientDuplexStream<ProxyMessage, unknown> }).Connect();
  stream.on("data", () => {});
  stream.on("error", () => {});
  stream.write({ register: { nodeId, capabilities: ["runtime=node"], abiVersions: ["1.0"], runningVersion: 0 } } as unknown as ProxyMessage);
}

async function dashboardWith(options: Partial<DashboardOptions>): Promise<Dashboard> {
  const d = await startDashboard({ listen: "127.0.0.1:0", tls: files.cp, trustDomain: TD, getPaths: async () => paths, log: (m) => void logs.push(m), ...options });
  cleanups.push(() => d.close());
  return d;
}

test.before(async () => {
  const pki = createPki(tmp("msm-dash-pki-"));
  const otherPki = createPki(tmp("msm-dash-pki-other-"), "some other CA");
  files = {
    cp: pki.issue("cp", `spiffe://${TD}/control-plane/cp-0`),
    admin: pki.issue("ops", `spiffe://${TD}/admin/ops`),
    proxyA: pki.issue("proxy-a", `spiffe://${TD}/proxy/proxy-a`),
    proxyB: pki.issue("proxy-b", `spiffe://${TD}/proxy/proxy-b`),
    proxyC: pki.issue("proxy-c", `spiffe://${TD}/proxy/proxy-c`),
    foreignAdmin: otherPki.issue("mallory", `spiffe://${TD}/admin/mallory`),
    otherDomain: pki.issue("bob", "spiffe://elsewhere.example/admin/bob"),
  };
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${tmp("msm-dash-store-")}`, tls: files.cp, trustDomain: TD, name: "cp-0", log: (m) => void logs.push(m) });
  connectProxy(files.proxyA, "proxy-a");
  connectProxy(files.proxyB, "proxy-b");
  connectProxy(files.proxyC, "proxy-c");
  await waitFor(async () => (await cp.proxies()).filter((p) => p.connected).length === 3, 10_000, "three proxies connected");
  dashboard = await dashboardWith({ getProxies: () => cp.proxies(), limits: { updateIntervalMs: 200 } });
});

test.after(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const c of grpcClients) c.close();
  await cp?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------- HTTP helpers

interface Reply {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** One GET over HTTPS with a client certificate (or none), or over plain HTTP. */
function get(url: string, tls?: TlsFiles | null, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const options = {
      method: "GET",
      headers,
      timeout: 10_000,
      ...(u.protocol === "https:"
        ? {
            ca: readFileSync(files.cp.ca),
            ...(tls ? { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}),
            checkServerIdentity: () => undefined, // the test's CA signs it; its SPIFFE ID is checked by msmctl's own test below
          }
        : {}),
    };
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(u, options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** A live-update (SSE) stream: its status and the frames received so far. */
function follow(url: string, tls?: TlsFiles): Promise<{ status: number; frames: string[]; body: () => string; close: () => void }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const send = u.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(u, tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), checkServerIdentity: () => undefined } : {}, (res) => {
      let text = "";
      const frames: string[] = [];
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
        let end: number;
        while ((end = text.indexOf("\n\n")) >= 0) {
          frames.push(text.slice(0, end));
          text = text.slice(end + 2);
        }
      });
      res.on("error", () => {});
      resolve({ status: res.statusCode ?? 0, frames, body: () => text, close: () => req.destroy() });
    });
    req.on("error", reject);
    req.end();
  });
}

/** The TLS handshake is refused: the request fails before any HTTP answer. */
async function handshakeRefused(url: string, tls: TlsFiles | null): Promise<string> {
  try {
    const r = await get(url, tls);
    throw new assert.Assertion({ message: `expected the TLS handshake to fail, got HTTP ${r.status}: ${r.body}`, generated: false, operator: "refused", expects: "TLS error", actual: r.status });
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

/** msmctl dashboard in this process: its URL once it serves, and a stop that returns its exit code and output. */
async function startMsmctlDashboard(args: string[]): Promise<{ url: string; stop: () => Promise<{ code: number; out: string; err: string }> }> {
  let out = "";
  let err = "";
  let interrupt: (() => void) | undefined;
  const io: Io = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readStdin: async () => Buffer.alloc(0),
    env: {},
    isTty: false,
    onInterrupt: (fn) => {
      interrupt = fn;
      return () => (interrupt = undefined);
    },
  };
  const exited = runMsmctl(["dashboard", "--port", "0", ...args], io);
  let code: number | undefined;
  void exited.then((c) => (code = c));
  await waitFor(() => /at http:\/\/127\.0\.0\.1:\d+\//.test(out) || code !== undefined, 10_000, "msmctl dashboard to serve");
  if (code !== undefined) throw new Error(`msmctl dashboard exited ${code}: ${out}${err}`);
  const url = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(out)![1]!;
  let stopped: Promise<{ code: number; out: string; err: string }> | undefined;
  const stop = (): Promise<{ code: number; out: string; err: string }> =>
    (stopped ??= (async () => {
      interrupt?.();
      const c = await exited;
      return { code: c, out, err };
    })());
  cleanups.push(async () => void (await stop()));
  return { url, stop };
}

const adminFlags = (tls: TlsFiles): string[] => ["--tls-ca", tls.ca, "--tls-cert", tls.cert, "--tls-key", tls.key];

// ---------------------------------------------------------------- the server

test("HTTPS with the admin certificate: the paths worst first, the page's state, health, the page and uPlot", async () => {
  const streams = await get(`${dashboard.url}/api/streams`, files.admin);
  assert.is(streams.status, 200, streams.body);
  assert.match(String(streams.headers["content-type"]), /^application\/json/);
  const got = JSON.parse(streams.body) as StreamPath[];
  assert.equal(got.map((p) => p.name), ["cam-1", "cam-2", HOSTILE], "worst first: the stream with a bad hop, then the one with hops without figures (not known to be fine), then by loss and name");
  assert.equal(got[0], JSON.parse(JSON.stringify(paths[1])), "the StreamPath as given");
  assert.is(got[0]!.hops[got[0]!.worst]!.label, "proxy-b -> proxy-c");

  const state = JSON.parse((await get(`${dashboard.url}/api/state`, files.admin)).body) as { total: number; bad: number; streams: { name: string }[]; mesh: { nodes: { id: string; connected: boolean | null }[]; edges: { from: string; to: string; bad: number; why: string | null }[] } };
  assert.is(state.total, 3);
  assert.is(state.bad, 1);
  const proxies = state.mesh.nodes.filter((n) => !n.id.startsWith("@"));
  assert.equal(proxies.map((n) => [n.id, n.connected]).sort(), [["proxy-a", true], ["proxy-b", true], ["proxy-c", true]], "the proxies the control plane knows, connected");
  const bc = state.mesh.edges.find((e) => e.from === "proxy-b" && e.to === "proxy-c");
  assert.equal(bc && { bad: bc.bad, why: bc.why }, { bad: 1, why: `cam-1: ${LOSS_BC}` });

  assert.is((await get(`${dashboard.url}/healthz`, files.admin)).body, "ok\n");
  const page = await get(`${dashboard.url}/`, files.admin);
  assert.is(page.status, 200);
  assert.match(page.body, /<script type="module" src="\/static\/app\.js">/);
  assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
  const uplot = await get(`${dashboard.url}/static/uplot.esm.js`, files.admin);
  assert.is(uplot.status, 200);
  assert.match(String(uplot.headers["content-type"]), /^text\/javascript/);
  assert.ok(uplot.body.includes("export { uPlot as default }") || /export default/.test(uplot.body), "uPlot's ES module");
  assert.is((await get(`${dashboard.url}/static/../../package.json`, files.admin)).status, 404, "no path reaches the file system");
  assert.is((await get(`${dashboard.url}/nope`, files.admin)).status, 404);
});

test("HTTPS refuses everyone but an admin of the CA: no certificate and another CA's fail the handshake; a proxy's is 403, another trust domain's 401", async () => {
  const noCert = await handshakeRefused(`${dashboard.url}/api/streams`, null);
  const otherCa = await handshakeRefused(`${dashboard.url}/api/streams`, files.foreignAdmin);
  console.log(`    no certificate: ${noCert}; another CA's admin: ${otherCa}`);
  const proxy = await get(`${dashboard.url}/api/streams`, files.proxyA);
  assert.is(proxy.status, 403);
  assert.is(proxy.body, `spiffe://${TD}/proxy/proxy-a may not read the dashboard: it needs the 'admin' role\n`);
  assert.not.match(proxy.body, /cam-1/);
  const elsewhere = await get(`${dashboard.url}/metrics`, files.otherDomain);
  assert.is(elsewhere.status, 401);
  assert.match(elsewhere.body, /no SPIFFE ID of trust domain 'msm\.test'/);
  const sse = await follow(`${dashboard.url}/api/events`, files.proxyB);
  assert.is(sse.status, 403, "live updates too");
  sse.close();
});

test("/metrics: per-hop gauges in base units, labels escaped, unmeasured figures absent, counts of all streams", async () => {
  const r = await get(`${dashboard.url}/metrics`, files.admin);
  assert.is(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  const text = r.body;
  const bc = `{stream="cam-1",hop="proxy-b -> proxy-c",kind="link"}`;
  assert.ok(text.includes(`msm_hop_loss_ratio${bc} 0.05\n`), text);
  assert.ok(text.includes(`msm_hop_bad${bc} 1\n`));
  assert.ok(text.includes(`msm_hop_delay_seconds${bc} 0.0004\n`));
  assert.ok(text.includes(`msm_hop_jitter_added_seconds{stream="cam-1",hop="proxy-a -> proxy-b",kind="link"} 0.0001\n`));
  assert.ok(text.includes(`msm_hop_bad{stream="cam-2",hop="proxy-a -> proxy-c",kind="link"} 0\n`));
  assert.ok(text.includes(`msm_paths{state="bad"} 1\nmsm_paths{state="unknown"} 1\nmsm_paths{state="ok"} 1\n`), text);
  assert.ok(text.includes(`# TYPE msm_hop_jitter_seconds gauge\n`));
  // the hostile name: its quote, backslash and newline escaped as the format says
  assert.ok(text.includes(`msm_path_loss_ratio{stream="<img src=x onerror=\\"window.__pwned=1\\">\\"\\\\\\nend"} 0\n`), text);
  for (const line of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
    assert.match(line, /^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$/, `a sample line: ${line}`);
  }
  // a figure nobody measured has no sample
  const unmeasured = structuredClone(lossOnBC());
  unmeasured[0]!.hops[0]!.delayMs = null;
  paths = unmeasured;
  try {
    const again = (await get(`${dashboard.url}/metrics`, files.admin)).body;
    assert.not.ok(again.includes(`msm_hop_delay_seconds{stream="cam-2",hop="sender -> proxy-a"`), "no delay sample for an unmeasured hop");
    assert.ok(again.includes(`msm_hop_loss_ratio{stream="cam-2",hop="sender -> proxy-a",kind="first-link"} 0\n`));
  } finally {
    paths = lossOnBC();
  }
});

test("live updates: a frame at once and one per interval; a failing source becomes a failure event; the client limit answers 503", async () => {
  let failing = false;
  const d = await dashboardWith({ tls: "insecure", getPaths: async () => (failing ? Promise.reject(new Error("etcd: no quorum")) : paths), limits: { updateIntervalMs: 100, maxEventClients: 2 } });
  const one = await follow(`${d.url}/api/events`);
  const two = await follow(`${d.url}/api/events`);
  assert.is(one.status, 200);
  assert.is(two.status, 200);
  await waitFor(() => one.frames.filter((f) => f.startsWith("event: state")).length >= 3, 10_000, "three state frames");
  const frame = one.frames.find((f) => f.startsWith("event: state"))!;
  const state = JSON.parse(frame.split("\n").find((l) => l.startsWith("data: "))!.slice(6)) as { total: number; streams: { name: string }[] };
  assert.is(state.total, 3);
  assert.is(state.streams[0]!.name, "cam-1");
  const third = await follow(`${d.url}/api/events`);
  assert.is(third.status, 503);
  await waitFor(() => /too many live-update clients \(at most 2\)/.test(third.body()), 5000, "the refusal's text");
  third.close();
  failing = true;
  await waitFor(() => one.frames.some((f) => f.startsWith("event: failure") && f.includes("etcd: no quorum")), 5000, "a failure event");
  failing = false;
  one.close();
  await waitFor(async () => (await follow(`${d.url}/api/events`).then((c) => (c.close(), c.status))) === 200, 5000, "room for a client again");
  two.close();
  const metrics = (await get(`${d.url}/metrics`)).body;
  assert.match(metrics, /msm_dashboard_event_clients_refused_total [1-9]/);
});

test("live updates: a client that stops reading is dropped once its unsent data passes the limit; the others keep theirs", async () => {
  // many streams with long names: a large frame (~200 KB) every 100 ms, so the kernel's buffers
  // fill within seconds; the limit is the default's 4 MiB, 20 frames, so that the reading client
  // (in this busy process) is not dropped too (300 streams, ~1 MB frames, every 20 ms against
  // 256 KiB dropped it in a CI run)
  const many = Array.from({ length: 60 }, (_, i) => chain(`stream-${i}-${"x".repeat(200)}`, i, CAM1, i % 3 === 0 ? { "proxy-b -> proxy-c": { loss: 0.02, why: "loss" } } : {}));
  const d = await dashboardWith({ tls: "insecure", getPaths: async () => many, limits: { updateIntervalMs: 100, maxBufferedBytes: 4 << 20, maxPageStreams: 300 } });
  const reader = await follow(`${d.url}/api/events`);
  const port = Number(new URL(d.url).port);
  const stalled = netConnect(port, "127.0.0.1");
  stalled.on("error", () => {});
  stalled.write("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  stalled.pause(); // never reads
  cleanups.push(() => void stalled.destroy());
  try {
    await waitFor(async () => /msm_dashboard_event_clients_dropped_total [1-9]/.test((await get(`${d.url}/metrics`)).body), 60_000, "the stalled client to be dropped");
    assert.match((await get(`${d.url}/metrics`)).body, /msm_dashboard_event_clients_dropped_total 1\n/, "the stalled client alone");
    assert.ok(logs.some((l) => /dropped a live-update client that reads too slowly/.test(l)), logs.join("\n"));
    const before = reader.frames.length;
    await waitFor(() => reader.frames.length > before + 3, 10_000, "the reading client to keep getting frames");
    assert.match((await get(`${d.url}/metrics`)).body, /msm_dashboard_event_clients 1\n/);
  } finally {
    reader.close();
    stalled.destroy();
  }
}, { timeoutMs: 90_000 });

// ---------------------------------------------------------------- msmctl dashboard

test("msmctl dashboard: serves the HTTPS dashboard on loopback with the admin certificate; refuses foreign Host headers and other methods", async () => {
  const m = await startMsmctlDashboard(["--dashboard-url", dashboard.url, ...adminFlags(files.admin)]);
  const health = await get(`${m.url}/healthz`);
  assert.is(health.status, 200);
  assert.is(health.body, "ok\n");
  const streams = await get(`${m.url}/api/streams`);
  assert.is((JSON.parse(streams.body) as StreamPath[])[0]!.name, "cam-1");
  assert.match(String(streams.headers["content-security-policy"]), /default-src 'none'/, "the dashboard's headers pass through");
  const live = await follow(`${m.url}/api/events`);
  assert.is(live.status, 200);
  await waitFor(() => live.frames.some((f) => f.startsWith("event: state")), 10_000, "a live frame through msmctl");
  live.close();
  const rebinding = await get(`${m.url}/api/streams`, null, { host: "evil.example:7480" });
  assert.is(rebinding.status, 403);
  assert.match(rebinding.body, /not Host 'evil\.example:7480'/);
  const post = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${m.url}/api/streams`, { method: "POST" }, (res) => (res.resume(), resolve(res.statusCode ?? 0)));
    req.on("error", reject);
    req.end("{}");
  });
  assert.is(post, 405);
  const { code, out } = await m.stop();
  assert.is(code, 0);
  assert.match(out, new RegExp(`^Serving the dashboard of ${dashboard.url.replace(/[.]/g, "\\.")} at http://127\\.0\\.0\\.1:\\d+/ \\(Ctrl-C to stop\\)\\n$`));
});

test("msmctl dashboard: a proxy's certificate is refused by the dashboard (403 passed on); a server that is not a control plane is refused; no dashboard is explained", async () => {
  const asProxy = await startMsmctlDashboard(["--dashboard-url", dashboard.url, ...adminFlags(files.proxyA)]);
  const r = await get(`${asProxy.url}/api/streams`);
  assert.is(r.status, 403);
  assert.match(r.body, /needs the 'admin' role/);
  await asProxy.stop();

  // a dashboard that presents a proxy's certificate is not the control plane's
  const impostor = await dashboardWith({ tls: files.proxyB });
  const toImpostor = await startMsmctlDashboard(["--dashboard-url", impostor.url, ...adminFlags(files.admin)]);
  const i = await get(`${toImpostor.url}/api/streams`);
  assert.is(i.status, 502);
  assert.match(i.body, /refusing the server at https:\/\/127\.0\.0\.1:\d+: the server is not a control plane: its certificate has spiffe:\/\/msm\.test\/proxy\/proxy-b/);
  const stopped = await toImpostor.stop();
  assert.match(stopped.err, /^msmctl: refusing the server/);

  const closed = await dashboardWith({ tls: files.cp });
  const url = closed.url;
  await closed.close();
  const toNothing = await startMsmctlDashboard(["--dashboard-url", url, ...adminFlags(files.admin)]);
  const n = await get(`${toNothing.url}/healthz`);
  assert.is(n.status, 502);
  assert.match(n.body, /cannot connect to the dashboard at https:\/\/127\.0\.0\.1:\d+: connection refused \(is the control plane running with --dashboard\?\)/);
  await toNothing.stop();
});

test("msmctl dashboard: usage errors name the flag", async () => {
  const run = async (args: string[], env: Record<string, string> = {}): Promise<{ code: number; err: string }> => {
    let err = "";
    const io: Io = { out: () => {}, err: (t) => void (err += t), readStdin: async () => Buffer.alloc(0), env, isTty: false, onInterrupt: () => () => {} };
    return { code: await runMsmctl(["dashboard", ...args], io), err };
  };
  const none = await run(adminFlags(files.admin));
  assert.is(none.code, 2);
  assert.match(none.err, /give --dashboard-url https:\/\/HOST:PORT/);
  const plain = await run(["--dashboard-url", "http://127.0.0.1:1", ...adminFlags(files.admin)]);
  assert.is(plain.code, 2);
  assert.match(plain.err, /is http:\/\/ \(a control plane started --insecure\): give --insecure too/);
  const path = await run(["--dashboard-url", "https://127.0.0.1:1/x"], { MSM_INSECURE: "1" });
  assert.match(path.err, /scheme:\/\/HOST:PORT only/);
  const port = await run(["--dashboard-url", "https://127.0.0.1:1", "--port", "70000", ...adminFlags(files.admin)]);
  assert.match(port.err, /--port must be 0-65535/);
  const wrongCommand = await run(["--dashboard-url", "https://127.0.0.1:1", "--once"]);
  assert.match(wrongCommand.err, /--once does not apply to 'dashboard'/);
});

// ---------------------------------------------------------------- the page in Chromium

peerTest(test, chromium, "the page in Chromium (through msmctl dashboard): the mesh's proxies, the bad hop red with its reason, live updates without a reload, names escaped; screenshot saved", async () => {
  paths = lossOnBC();
  const m = await startMsmctlDashboard(["--dashboard-url", dashboard.url, ...adminFlags(files.admin)]);
  const { chromium: browserType } = await import("playwright-core");
  const browser = await browserType.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
  cleanups.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1440, height: 1300 } });
  const problems: string[] = [];
  page.on("console", (msg) => void (msg.type() === "error" && problems.push(`console: ${msg.text()}`)));
  page.on("pageerror", (err) => void problems.push(`page error: ${err.message}`));
  await page.goto(`${m.url}/`);

  // the mesh: every proxy, connected; the link B -> C red, its reason listed
  await page.waitForSelector('#mesh g.node.proxy[data-id="proxy-c"]', { timeout: 15_000 });
  for (const id of ["proxy-a", "proxy-b", "proxy-c"]) {
    const cls = await page.getAttribute(`#mesh g.node.proxy[data-id="${id}"]`, "class");
    assert.match(cls ?? "", /\bconnected\b/, `${id} drawn as connected`);
    assert.is(await page.textContent(`#mesh g.node.proxy[data-id="${id}"] .node-name`), id);
  }
  assert.is(await page.locator("#mesh g.edge.bad").count(), 1, "one bad link in the mesh");
  assert.is(await page.getAttribute("#mesh g.edge.bad", "data-from"), "proxy-b");
  assert.is(await page.getAttribute("#mesh g.edge.bad", "data-to"), "proxy-c");
  assert.match((await page.textContent("#mesh-bad")) ?? "", new RegExp(`proxy-b \u2192 proxy-c.*cam-1: ${LOSS_BC.replace(/[.()+]/g, "\\$&")}`));

  // the worst stream is picked: its path names the bad hop, red, with the reason
  const badHop = page.locator("#path g.hop.bad");
  assert.is(await badHop.count(), 1);
  assert.is(await badHop.getAttribute("data-label"), "proxy-b -> proxy-c");
  assert.is(await badHop.locator(".why").textContent(), LOSS_BC);
  // a live update may redraw the hop between finding it and reading its style (a detached node
  // reads ""): wait for the red on whichever node is current, then read it for the message
  const RED = "rgb(242, 73, 92)";
  const strokeOfBadHop = (): string => {
    const el = document.querySelector("#path g.hop.bad path");
    return el ? getComputedStyle(el).stroke : "";
  };
  await page.waitForFunction((red) => {
    const el = document.querySelector("#path g.hop.bad path");
    return el !== null && getComputedStyle(el).stroke === red;
  }, RED, { timeout: 5000 }).catch(() => undefined);
  assert.is(await page.evaluate(strokeOfBadHop), RED, "drawn red");
  assert.match((await page.textContent("#verdict")) ?? "", /Bad hop: proxy-b -> proxy-c/);
  assert.is(await page.locator("#path g.node.segment").count(), 3, "a box per segment");
  // the table, worst first; the hostile name shown as text, never run
  assert.equal(await page.locator("#streams-body tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-stream"))), ["cam-1", "cam-2", HOSTILE]);
  assert.match((await page.getAttribute("#streams-body tr:first-child", "class")) ?? "", /\bbad\b/);
  assert.is(await page.locator("img").count(), 0, "no element from a name");
  assert.is(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
  assert.ok(((await page.locator("#streams-body").textContent()) ?? "").includes('<img src=x onerror="window.__pwned=1">'), "the name as text");
  // the charts: one series per hop of the picked stream
  await page.waitForSelector("#chart-loss .uplot");
  assert.equal(await page.locator("#chart-loss .u-legend .u-series .u-label").allTextContents(), lossOnBC()[1]!.hops.map((hop) => hop.label));

  // live: the fixture changes, the page follows without a reload
  await page.evaluate(() => ((window as unknown as { __sameDocument: boolean }).__sameDocument = true));
  paths = jitterOnAB();
  await page.waitForFunction(() => document.querySelector("#path g.hop.bad")?.getAttribute("data-label") === "proxy-a -> proxy-b", null, { timeout: 15_000 });
  assert.is(await page.locator("#path g.hop.bad .why").textContent(), JITTER_AB);
  assert.is(await page.getAttribute("#mesh g.edge.bad", "data-from"), "proxy-a");
  assert.is(await page.getAttribute("#mesh g.edge.bad", "data-to"), "proxy-b");
  assert.ok(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument), "the same document: updated live, not reloaded");
  assert.match((await page.textContent("#status")) ?? "", /live/);

  // picking another stream: its path, no bad hop, but hops without figures: not called fine
  await page.selectOption("#picker", "cam-2");
  await page.waitForFunction(() => document.querySelectorAll("#path g.node.segment").length === 2);
  assert.match((await page.textContent("#verdict")) ?? "", /No hop is known to break a threshold, but \d+ of \d+ hops have no figures/);
  assert.is(await page.getAttribute("#verdict", "class"), "verdict unknown");
  // a hop not measured says why under it, all of it in its tooltip
  const unmeasured = page.locator('#path g.hop[data-label="proxy-c -> receiver"]');
  assert.equal(await unmeasured.locator(".hop-label").allTextContents(), ["not measured"]);
  assert.equal(await unmeasured.locator(".note").allTextContents(), ["the receiver's last report", "is 12 s old (stale)"]);
  assert.match((await unmeasured.locator("title").textContent()) ?? "", new RegExp(`${STALE_RR.replace(/[()]/g, "\\$&")}$`));
  await page.selectOption("#picker", "cam-1");
  await page.waitForSelector('#path g.hop.bad[data-label="proxy-a -> proxy-b"]');
  await sleep(1500); // a few more points on the charts for the screenshot

  mkdirSync(OUTPUT, { recursive: true });
  const shot = join(OUTPUT, "dashboard.png");
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`    screenshot: ${shot}`);
  assert.equal(problems, [], "no script errors, no content-security-policy violations");
  await browser.close();
  await m.stop();
}, { timeoutMs: 90_000 });

// ---------------------------------------------------------------- msm control-plane --dashboard

test("msm control-plane --dashboard: serves the dashboard, says loudly when it is plain HTTP, stops on SIGTERM", async () => {
  const MSM = join(ROOT, "dist", "cli", "msm.js");
  const child = new Child(process.execPath, [MSM, "control-plane", "--listen", "127.0.0.1:0", "--store", `file:${tmp("msm-dash-cli-")}`, "--insecure", "--dashboard", "127.0.0.1:0"], { limitMs: 30_000 });
  try {
    await waitFor(() => /dashboard on http:\/\/127\.0\.0\.1:\d+/.test(child.stderr) || child.exit !== null, 15_000, "the dashboard to start");
    assert.match(child.stderr, /dashboard on http:\/\/127\.0\.0\.1:\d+ \(INSECURE: plain HTTP, anyone who reaches it reads the mesh's streams\)/);
    const url = /dashboard on (http:\/\/127\.0\.0\.1:\d+)/.exec(child.stderr)![1]!;
    assert.is((await get(`${url}/healthz`)).body, "ok\n");
    assert.is((await get(`${url}/`)).status, 200);
  } finally {
    await child.stop("SIGTERM");
  }
  assert.is(child.exit?.code, 0, child.describe());
  const bad = new Child(process.execPath, [MSM, "control-plane", "--listen", "127.0.0.1:0", "--store", `file:${tmp("msm-dash-cli-")}`, "--insecure", "--dashboard", "nowhere"], { limitMs: 30_000 });
  const badExit = await bad.exited;
  assert.is(badExit.code, 2, bad.describe());
  assert.match(bad.stderr, /^msm: --dashboard: dashboard address 'nowhere' must be HOST:PORT/);
  assert.not.match(bad.stderr, /listening/, "refused before starting anything");
});

// ---------------------------------------------------------------- the Grafana example

/** Every exporter source's text: the proxy's (runtime/) and the dashboard's. */
function exporterSources(): string {
  const texts: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) texts.push(readFileSync(path, "utf8"));
    }
  };
  walk(join(ROOT, "runtime"));
  walk(join(ROOT, "controlplane", "dashboard"));
  return texts.join("\n");
}

test("docs/grafana/msm-proxy-dashboard.json: valid, and every metric its queries name is one the code exports", () => {
  const file = join(ROOT, "docs", "grafana", "msm-proxy-dashboard.json");
  const dash = JSON.parse(readFileSync(file, "utf8")) as { title: string; uid: string; panels: { title: string; type: string; targets?: { expr: string }[]; panels?: unknown[] }[]; templating: { list: { name: string; type: string }[] } };
  assert.ok(dash.title && dash.uid, "a title and a uid");
  assert.ok(dash.templating.list.some((v) => v.type === "datasource"), "the Prometheus data source is a variable (asked on import)");
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  assert.ok(exprs.length >= 12, `queries: ${exprs.length}`);
  const sources = exporterSources();
  const named = new Set<string>();
  for (const { panel, expr } of exprs) {
    const metrics = expr.match(/\bmsm_[a-z0-9_]+/g) ?? [];
    assert.ok(metrics.length > 0, `panel '${panel}' queries an MSM metric: ${expr}`);
    for (const metric of metrics) {
      named.add(metric);
      assert.ok(sources.includes(`"${metric}"`), `panel '${panel}': ${metric} is exported by no source under runtime/ or controlplane/dashboard/ (${expr})`);
    }
  }
  for (const family of ["msm_stream_packets_total", "msm_stream_window_loss_ratio", "msm_stream_receiver_rtt_seconds", "msm_segment_drops_total", "msm_filter_drops_total", "msm_filter_discards_total", "msm_hop_loss_ratio", "msm_hop_bad"]) {
    assert.ok(named.has(family), `the dashboard charts ${family}`);
  }
  // discards (a merge's duplicates) are expected, drops are losses: a panel of their own, by filter and reason
  const discards = dash.panels.filter((p) => (p.targets ?? []).some((t) => /\bmsm_filter_discards_total\b/.test(t.expr)));
  assert.is(discards.length, 1, "one panel charts the filters' discards");
  assert.ok(discards[0]!.targets!.every((t) => !/drops_total/.test(t.expr)), "not mixed with drops");
  assert.match(discards[0]!.targets![0]!.expr, /^sum by \(segment, filter, reason\) \(rate\(msm_filter_discards_total\{/, "by filter and reason, as the drops are");
  const ids = dash.panels.map((p) => (p as { id?: number }).id);
  assert.is(new Set(ids).size, ids.length, "panel ids are unique");
});

/** The label names of each family's series in a /metrics text (`instance` and `job` are Prometheus' own, added at the scrape). */
function seriesLabels(body: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of body.split("\n")) {
    const m = /^(msm_[a-z0-9_]+)\{([^}]*)\}/.exec(line);
    if (!m) continue;
    if (!out.has(m[1]!)) out.set(m[1]!, new Set(["instance", "job"]));
    for (const label of m[2]!.matchAll(/([a-z_]+)="/g)) out.get(m[1]!)!.add(label[1]!);
  }
  return out;
}

test("the Grafana panels of a proxy's series: each label they group by or match is one a real proxy's /metrics gives them (drops and discards by filter and reason included)", async () => {
  const dash = JSON.parse(readFileSync(join(ROOT, "docs", "grafana", "msm-proxy-dashboard.json"), "utf8")) as { panels: { title: string; targets?: { expr: string }[] }[] };
  // a filter that discards (code 256, named 'duplicate discard') and drops (257, 'late drop')
  const LO = "127.0.0.1";
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy } = await startProxy({
    filters: { named: { path: fixture("named_reasons"), config: { 256: "duplicate discard", 257: "late drop" } } },
    segments: [{ name: "cam1", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "named" }] }],
  });
  const admin = await startAdminServer(proxy, LO, 0);
  const tx = await bindUdp();
  try {
    const pts = [96, 64, 65]; // passed, discarded, dropped
    for (let i = 0; i < 30; i++) tx.send(indexedRtp(i, 200, 0x1234abcd, pts[i % pts.length]!), listen, LO);
    await waitFor(async () => (await segmentStats(proxy, "cam1")).packetsIn >= 30 && sink.received >= 10, 5000, "the stream");
    const labels = seriesLabels(await httpBody(admin.port, "/metrics"));
    const checked = new Set<string>();
    for (const panel of dash.panels) {
      for (const { expr } of panel.targets ?? []) {
        // each query names one family: the labels it groups by, and those its selector matches
        const grouped = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(",").map((l) => l.trim()));
        for (const m of expr.matchAll(/\b(msm_[a-z0-9_]+)(?:\{([^}]*)\})?/g)) {
          const family = m[1]!;
          const has = labels.get(family);
          if (!has) continue; // not a series this proxy exports now (the control plane's, a hop's)
          checked.add(family);
          const used = [...grouped, ...[...(m[2] ?? "").matchAll(/([a-z_]+)=~?"/g)].map((x) => x[1]!)];
          for (const label of used) assert.ok(has.has(label), `panel '${panel.title}': ${family} has no label '${label}' (it has ${[...has].join(", ")}): ${expr}`);
        }
      }
    }
    for (const family of ["msm_filter_drops_total", "msm_filter_discards_total", "msm_segment_drops_total"]) assert.ok(checked.has(family), `${family} checked against a real scrape`);
  } finally {
    tx.close();
    sink.close();
    await admin.close();
    await proxy.close();
  }
});

test.run();
