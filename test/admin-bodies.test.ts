// /stats is written a segment at a time (runtime/admin/json-pieces.ts) and /metrics a family, or
// SEGMENTS_PER_PIECE segments of one, at a time (runtime/admin/prometheus.ts): the same bytes as
// the whole body in one string, taken by the client as it reads, and a client that goes away
// mid-body costs the proxy nothing. Against a real proxy over loopback.
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { renderPrometheus, startAdminServer, validateProxyConfig, Proxy, type AdminServer } from "../runtime/index.js";
import { prometheusPieces, SEGMENTS_PER_PIECE } from "../runtime/admin/prometheus.js";
import { WRITE_CHUNK, writePieces } from "../runtime/admin/write-pieces.js";
import { prettyJsonPieces } from "../runtime/admin/json-pieces.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortRun, indexedRtp, Sink, sleep, waitFor } from "./lib/udp.js";
import { segmentStats } from "./lib/proxy.js";
import { httpGet, httpRequest } from "./lib/http-get.js";

const test = suite("admin /stats and /metrics bodies");
const LO = "127.0.0.1";

test("the pieces join to JSON.stringify(value, null, 2): the array first, last, in the middle, empty, nested, and strings that look like JSON", () => {
  const tricky = 'a "quoted"\nline\\ with ,\n    "segments": [ and \u2028 and \u0000';
  const cases: Record<string, unknown>[] = [
    { segments: [{ a: 1 }, { b: [1, [2, { c: null }]] }], after: true },
    { before: "x", segments: [] },
    { before: { deep: [{ x: tricky }] }, segments: [{ name: tricky, nested: { list: [[], {}, [tricky]] } }, 7, "s", null, [1, 2]], last: tricky },
    { before: 1, segments: [{}], also: { segments: [1] } },
    { segments: [{ y: undefined, z: () => 1, n: Number.NaN }, undefined] },
  ];
  for (const value of cases) assert.is([...prettyJsonPieces(value, "segments")].join(""), JSON.stringify(value, null, 2), JSON.stringify(value));
  assert.throws(() => [...prettyJsonPieces({ segments: 3 }, "segments")], /'segments' is not an array/);
});

test("/stats and /metrics of a proxy with traffic: chunked, the bytes of the whole-string body, and the same after a client left mid-body", async () => {
  const n = 120;
  const base = await freePortRun(n);
  const sink = await Sink.open();
  const names = Array.from({ length: n }, (_, k) => `seg-${k}`);
  const proxy = await Proxy.start(validateProxyConfig({
    segments: names.map((name, k) => ({ name, rtcpMux: true, symmetricRtp: true, listen: { address: LO, port: base + k }, destinations: [{ address: LO, port: sink.port }] })),
  }));
  const admin = await startAdminServer(proxy, LO, 0, { metrics: () => "# HELP owner_family x\n# TYPE owner_family gauge\nowner_family 1\n" });
  const tx = await bindUdp();
  try {
    for (let k = 0; k < n; k++) for (let i = 0; i < 3; i++) tx.send(indexedRtp(i), base + k, LO);
    await waitFor(async () => (await segmentStats(proxy, `seg-${n - 1}`)).packetsIn >= 3, 5000, "every segment's packets taken");
    const r = await httpRequest(admin.port, "/stats", "GET");
    assert.is(r.status, 200);
    assert.is(r.headers["transfer-encoding"], "chunked", "written in pieces, not one body");
    assert.ok(r.body.length > 3 * 64 * 1024, `a body of several chunks (${r.body.length} bytes)`);
    const parsed = JSON.parse(r.body) as { segments: { name: string; packetsIn: number; streams: unknown[] }[] };
    assert.is(r.body, JSON.stringify(parsed, null, 2), "the bytes JSON.stringify(snapshot, null, 2) gives");
    assert.equal(parsed.segments.map((s) => s.name).sort(), [...names].sort());
    assert.ok(parsed.segments.every((s) => s.packetsIn === 3 && s.streams.length === 1), "every segment with its stream");
    const head = await httpRequest(admin.port, "/stats", "HEAD");
    assert.equal([head.status, head.body, head.headers["content-type"]], [200, "", "application/json"]);

    // /metrics: a family per piece (up to SEGMENTS_PER_PIECE segments), the same text as in one string, the owner's families last
    const snap = await proxy.stats();
    const pieces = [...prometheusPieces(snap)];
    assert.ok(pieces.length > 30 && pieces.every((p) => p.startsWith("# HELP ") && p.endsWith("\n")), "one family per piece");
    assert.is(pieces.join(""), renderPrometheus(snap));
    // more segments than a piece holds: a family's pieces hold SEGMENTS_PER_PIECE segments at most
    const many = { ...snap, segments: Array.from({ length: 2 * SEGMENTS_PER_PIECE + 7 }, (_, k) => ({ ...snap.segments[k % n]!, name: `many-${k}` })) };
    const manyPieces = [...prometheusPieces(many)];
    const ofFamily = (p: string): number => p.split("\n").filter((l) => l.startsWith("msm_segment_packets_in_total{")).length;
    assert.equal(manyPieces.map(ofFamily).filter((k) => k > 0), [SEGMENTS_PER_PIECE, SEGMENTS_PER_PIECE, 7], "msm_segment_packets_in_total in three pieces");
    assert.ok(manyPieces.every((p) => p.endsWith("\n") && p.length > 1), "each piece whole lines");
    assert.is(manyPieces.join("").split("\n").filter((l) => l.startsWith("msm_stream_packets_total{")).length, 2 * (2 * SEGMENTS_PER_PIECE + 7), "each segment's stream, both directions");
    const m = await httpRequest(admin.port, "/metrics", "GET");
    assert.is(m.status, 200);
    assert.is(m.headers["transfer-encoding"], "chunked", "written in pieces, not one body");
    assert.is(m.headers["content-type"], "text/plain; version=0.0.4");
    assert.ok(m.body.endsWith("\n# HELP owner_family x\n# TYPE owner_family gauge\nowner_family 1\n"), "the owner's families come last");
    const packetsIn = m.body.split("\n").filter((l) => l.startsWith("msm_segment_packets_in_total{"));
    assert.is(packetsIn.length, n, "a series per segment");
    assert.ok(packetsIn.every((l) => l.endsWith(" 3")), "each segment's 3 packets");
    assert.is(m.body.split("\n").filter((l) => l.startsWith("msm_stream_packets_total{") && l.includes('direction="ingress"')).length, n, "a stream per segment");

    // a client that reads the head and a little, then goes away
    await new Promise<void>((resolve, reject) => {
      const sock = connect(admin.port, LO, () => sock.write("GET /stats HTTP/1.1\r\nhost: x\r\n\r\n"));
      sock.once("data", () => {
        sock.destroy();
        resolve();
      });
      sock.once("error", reject);
    });
    const again = await httpGet(admin.port, "/stats");
    assert.is(again.status, 200, "answered after a client left mid-body");
    assert.is((JSON.parse(again.body) as { segments: unknown[] }).segments.length, n);
    assert.is((await httpGet(admin.port, "/metrics")).status, 200);
  } finally {
    tx.close();
    sink.close();
    await admin.close();
    await proxy.close();
  }
});

/** A proxy of one segment and its admin endpoint, whose /metrics carries owner families of 24 MB: more than loopback's socket buffers take for a client that reads nothing. */
async function withBigMetrics(options: { writeStallMs?: number }): Promise<{ proxy: Proxy; admin: AdminServer }> {
  const base = await freePortRun(1);
  const proxy = await Proxy.start(validateProxyConfig({
    segments: [{ name: "a", rtcpMux: true, listen: { address: LO, port: base }, destinations: [{ address: LO, port: 9 }] }],
  }));
  const series = Array.from({ length: 200_000 }, (_, i) => `owner_big{i="${i}",pad="${"y".repeat(90)}"} 1\n`).join("");
  const admin = await startAdminServer(proxy, LO, 0, { ...options, metrics: () => `# HELP owner_big x\n# TYPE owner_big gauge\n${series}` });
  return { proxy, admin };
}

test("admin.close() while a client holds a body it does not read: the connection is dropped, the close returns (a stop of msm proxy waits on it)", async () => {
  const { proxy, admin } = await withBigMetrics({});
  const received: Buffer[] = [];
  const sock = connect(admin.port, LO, () => sock.write("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n"));
  const ended = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  sock.on("error", () => {}); // the server may reset it
  sock.pause(); // takes nothing: the server's writes wait for room
  let closed = false;
  try {
    await waitFor(() => sock.bytesWritten > 0, 5000, "the request sent");
    await sleep(1500); // the body under way: the admin's writes stalled
    const closing = admin.close().then(() => (closed = true));
    await Promise.race([closing, sleep(20_000)]);
    assert.ok(closed, "admin.close() returned with a client that reads nothing");
    sock.on("data", (d: Buffer) => received.push(d));
    sock.resume();
    await ended;
    const text = Buffer.concat(received).toString();
    assert.ok(text.startsWith("HTTP/1.1 200"), "the client got the head");
    assert.not.ok(text.endsWith("\r\n0\r\n\r\n"), "the body was cut, not finished: the client was mid-body when the admin closed");
  } finally {
    sock.destroy();
    if (!closed) await Promise.race([admin.close(), sleep(1000)]);
    await proxy.close();
  }
});

/** The TCP state (hex, /proc/net/tcp: 01 established) of the loopback socket from `localPort` to `remotePort`, or null when there is none. */
function tcpState(localPort: number, remotePort: number): string | null {
  const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (local?.endsWith(`:${hex(localPort)}`) && remote?.endsWith(`:${hex(remotePort)}`)) return state!;
  }
  return null;
}

test("a client that takes nothing of a body for writeStallMs is dropped, and the endpoint serves others meanwhile", async () => {
  const { proxy, admin } = await withBigMetrics({ writeStallMs: 300 });
  const sock = connect(admin.port, LO, () => sock.write("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n"));
  sock.on("error", () => {}); // the server may reset it
  sock.pause(); // takes nothing: the server's writes wait for room
  try {
    await waitFor(() => sock.localPort !== undefined && tcpState(admin.port, sock.localPort) === "01", 5000, "the server's side of the connection");
    const health = await httpGet(admin.port, "/healthz");
    assert.is(health.status, 200, "other requests are served while a body waits");
    // the server's socket leaves ESTABLISHED once it drops the connection (FIN_WAIT1 with what the client never took, or gone)
    await waitFor(() => tcpState(admin.port, sock.localPort!) !== "01", 20_000, "the server to drop a client that takes nothing");
  } finally {
    sock.destroy();
    await admin.close();
    await proxy.close();
  }
});

test("regression: a body for a client that takes every write at once still gives the loop a turn between chunks (a /metrics of 10,000 segments held /healthz 3.5 s)", async () => {
  const pieces = 20;
  const turns: boolean[] = [];
  let turned = true;
  function* body(): Generator<string> {
    for (let k = 0; k < pieces; k++) {
      turns.push(turned); // did the loop turn since the piece before?
      turned = false;
      setImmediate(() => (turned = true));
      yield "x".repeat(WRITE_CHUNK);
    }
  }
  const server = createServer((_req, res) => {
    const it = body();
    res.writeHead(200, { "content-type": "text/plain" });
    void writePieces(res, it.next(), it);
  });
  await new Promise<void>((r) => server.listen(0, LO, r));
  try {
    const got = await httpGet((server.address() as AddressInfo).port, "/");
    assert.is(got.body.length, pieces * WRITE_CHUNK, "the whole body");
    assert.equal(turns, Array.from({ length: pieces }, () => true), "a turn of the loop before each piece");
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test.run();
