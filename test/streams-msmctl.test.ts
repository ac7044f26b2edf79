// ListStreams, DescribeStream and msmctl get/describe/top streams against a real control plane
// (file store): three proxies on the real ProxyService stream report per-stream stats made to
// order (test/lib/stream-stats.ts), so that every figure msmctl prints is known: the middle link
// loses 4%, and msmctl names it. Also the thresholds flags of `msm control-plane`. The same with
// real proxies and real RTP is test/streams-e2e.test.ts.
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client, ClientDuplexStream } from "@grpc/grpc-js";
import { ProxyServiceClient, type ControlMessage } from "../controlplane/api/proto.js";
import { pageStats } from "../controlplane/api/stats-pages.js";
import type { StreamPath } from "../controlplane/api/streams.js";
import { runMsmctl } from "../cli/msmctl/main.js";
import { connectAdmin } from "../cli/msmctl/client.js";
import type { Io } from "../cli/msmctl/context.js";
import { channelCredentials } from "../controlplane/security/tls.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import type { ProxySnapshot } from "../runtime/index.js";
import type { StreamStats } from "../runtime/streams/types.js";
import { ROOT } from "./lib/paths.js";
import { direction, receiverReport, streamStats } from "./lib/stream-stats.js";
import { suite } from "./lib/suite.js";
import { waitFor } from "./lib/udp.js";

const test = suite("msmctl streams against the control plane", { timeoutMs: 30_000 });
const dir = mkdtempSync(join(tmpdir(), "msm-streams-"));
const CAM = 0x1234abcd;
const LOBBY = 0xfeed;

const SEGMENTS = `kind: Segment
metadata: { name: cam }
spec: { proxy: proxy-a, listen: { address: 127.0.0.1, port: 15000 }, destinations: [{ address: 127.0.0.1, port: 16000 }] }
---
kind: Segment
metadata: { name: relay }
spec: { proxy: proxy-b, listen: { address: 127.0.0.1, port: 16000 }, destinations: [{ address: 127.0.0.1, port: 17000 }] }
---
kind: Segment
metadata: { name: edge }
spec: { proxy: proxy-c, listen: { address: 127.0.0.1, port: 17000 }, destinations: [{ address: 127.0.0.1, port: 18000 }] }
---
kind: Segment
metadata: { name: lobby }
spec: { proxy: proxy-a, listen: { address: 127.0.0.1, port: 15010 }, destinations: [{ address: 127.0.0.1, port: 18010 }] }
`;

/** A proxy on the real ProxyService stream: registers, ACKs what it is sent, reports `streams()` per segment every 50 ms. */
class Reporter {
  private readonly client: Client & { Connect(): ClientDuplexStream<object, ControlMessage> };
  private readonly call: ClientDuplexStream<object, ControlMessage>;
  private readonly timer: NodeJS.Timeout;

  constructor(port: number, nodeId: string, streams: () => Record<string, StreamStats[]>) {
    this.client = new ProxyServiceClient(`127.0.0.1:${port}`, channelCredentials("insecure")) as never;
    this.call = this.client.Connect();
    this.call.on("error", () => {});
    this.call.on("data", (msg: ControlMessage) => msg.kind === "snapshot" && this.call.write({ ack: { version: msg.snapshot.version } }));
    this.call.write({ register: { nodeId, capabilities: [], abiVersions: ["1.0"], runningVersion: 0 } });
    const send = (): void => {
      const segments = Object.entries(streams()).map(([name, list]) => ({ name, streams: list, streamsOverflow: null }));
      const pages = pageStats({ workers: 1, workerMode: "thread", watchdogRestarts: 0, addresses: ["127.0.0.1", "::1"], segments } as unknown as ProxySnapshot);
      pages.forEach((statsJson, page) => this.call.write({ stats: { statsJson, page, pages: pages.length } }));
    };
    send();
    this.timer = setInterval(send, 50);
  }

  close(): void {
    clearInterval(this.timer);
    this.call.end();
    this.client.close();
  }
}

interface Ran {
  code: number;
  out: string;
  err: string;
}

let cp: ControlPlane;
let env: Record<string, string>;
const reporters: Reporter[] = [];

async function msmctl(...args: string[]): Promise<Ran> {
  let out = "";
  let err = "";
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), readStdin: async () => Buffer.alloc(0), env, isTty: false, onInterrupt: () => () => {} };
  const code = await runMsmctl(args, io);
  return { code, out, err };
}

test.before(async () => {
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${join(dir, "store")}`, tls: "insecure", name: "cp-0", timing: { statsIntervalMs: 50 }, log: () => {} });
  env = { MSM_SERVER: `127.0.0.1:${cp.port}`, MSM_INSECURE: "1" };
  const file = join(dir, "segments.yaml");
  writeFileSync(file, SEGMENTS);
  const applied = await msmctl("apply", "-f", file);
  assert.is(applied.code, 0, applied.err);
  // every proxy's last window the same second, as real proxies' reports are (docs/streams.md)
  const windowEndMs = Math.floor(Date.now() / 1000) * 1000;
  const d = (o: Parameters<typeof direction>[1] = {}) => direction(Date.now(), { windowEndMs, ...o });
  reporters.push(
    new Reporter(cp.port, "proxy-a", () => ({ cam: [streamStats(CAM, d({ transit: 100 }), d({ transit: 101 }))], lobby: [streamStats(LOBBY, d({ jitter: 0.5 }), d({ jitter: 0.6 }))] })),
    new Reporter(cp.port, "proxy-b", () => ({ relay: [streamStats(CAM, d({ transit: 103 }), d({ transit: 104 }))] })),
    new Reporter(cp.port, "proxy-c", () => ({
      edge: [streamStats(CAM, d({ lost: 40, fraction: 0.04, jitter: 2.5, transit: 110 }), d({ lost: 40, fraction: 0.04, jitter: 2.6, transit: 111 }), [receiverReport(0xbeef, Date.now() - 500, { fraction: 0.04, jitter: 3, rtt: 8 })])],
    })),
  );
  // every proxy's report stored: the path of cam has all three proxies' figures
  await waitFor(async () => {
    const paths = await cp.streamPaths();
    return paths.find((p) => p.name === "cam")?.hops.every((h) => h.note === null) === true;
  }, 10_000, "the three reports to be joined");
});

test.after(async () => {
  for (const r of reporters) r.close();
  await cp?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("get streams: one row per stream, the bad hop named with why; --bad and --proxy choose; -o json gives whole paths", async () => {
  const r = await msmctl("get", "streams");
  assert.is(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.match(lines[0]!, /^NAME\s+SSRC\s+HOPS\s+LOSS\s+JITTER\s+BITRATE\s+BAD HOP$/);
  assert.match(lines[1]!, /^cam\s+0x1234abcd\s+3\s+4\.00%\s+3\.0ms\s+480kb\/s\s+proxy-b -> proxy-c: loss 4\.00% > 0\.50%$/, r.out);
  assert.match(lines[2]!, /^lobby\s+0x0000feed\s+1\s+0\.00%\s+0\.6ms\s+480kb\/s\s+-$/, r.out);
  assert.is(lines.length, 3);

  assert.match((await msmctl("get", "streams", "--bad")).out, /^NAME.*\ncam\s[^\n]*\n$/);
  assert.match((await msmctl("get", "streams", "--proxy", "proxy-c")).out, /^NAME.*\ncam\s[^\n]*\n$/);
  const none = await msmctl("get", "streams", "--proxy", "proxy-z");
  assert.is(none.code, 0);
  assert.is(none.err, "No streams found crossing proxy proxy-z.\n");

  const list = JSON.parse((await msmctl("get", "streams", "-o", "json")).out) as { kind: string; items: StreamPath[] };
  assert.is(list.kind, "List");
  assert.equal(list.items.map((p) => p.name), ["cam", "lobby"]);
  const one = JSON.parse((await msmctl("get", "stream/cam", "-o", "json")).out) as StreamPath;
  assert.equal(one.segments.map((s) => s.proxy), ["proxy-a", "proxy-b", "proxy-c"]);
  assert.is(one.hops[one.worst]!.label, "proxy-b -> proxy-c");
  assert.is(one.hops[one.worst]!.lost, 40);

  const typo = await msmctl("get", "streams", "cma");
  assert.is(typo.code, 1);
  assert.is(typo.err, 'msmctl: stream "cma" not found (close names: cam)\n');
  assert.is((await msmctl("get", "streams", "--bad", "--proxy")).code, 2, "--proxy needs a value");
  assert.match((await msmctl("get", "segments", "--bad")).err, /--bad applies to get streams/);
});

test("describe stream: the path hop by hop, the bad hop marked with why, what each proxy measured, the receivers' reports", async () => {
  const r = await msmctl("describe", "stream", "cam");
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^Name:\s+cam$/m);
  assert.match(r.out, /^Path:\s+sender -> proxy-a\/cam -> proxy-b\/relay -> proxy-c\/edge$/m);
  assert.match(r.out, /^End to end:\s+loss 4\.00%, jitter 3\.0ms, 480kb\/s, 50 packets\/s$/m);
  assert.match(r.out, /^Bad hop:\s+proxy-b -> proxy-c \(link\): loss 4\.00% > 0\.50%$/m);
  assert.match(r.out, /^Thresholds:\s+a hop is bad above 0\.50% loss or 5 ms of jitter added$/m);
  assert.match(r.out, /^\s+HOP\s+KIND\s+LOSS\s+LOST\s+JITTER\s+ADDED\s+DELAY\s+STATE$/m);
  assert.match(r.out, /^\s+proxy-b -> proxy-c\s+link\s+4\.00%\s+40\s+2\.5ms\s+\+1\.5ms\s+6\.0ms\s+BAD: loss 4\.00% > 0\.50%$/m);
  assert.match(r.out, /^\s+proxy-a -> proxy-b\s+link\s+0\.00%\s+0\s+1\.0ms\s+\+0\.0ms\s+2\.0ms\s+ok$/m);
  assert.match(r.out, /^\s+within proxy-b\s+proxy\s+0\.00%\s+0\s+1\.0ms\s+\+0\.0ms\s+1\.0ms\s+ok$/m);
  assert.match(r.out, /^\s+proxy-c -> receiver 0x0000beef\s+last-link\s+0\.00%\s+-\s+3\.0ms\s+\+0\.4ms\s+4\.0ms\s+ok$/m);
  assert.match(r.out, /^\s+proxy-c\s+edge\s+ingress\s+960\s+40\s+0\s+0\s+4\.00%\s+2\.5ms\s+50\s+480kb\/s\s+\d+s ago$/m);
  assert.match(r.out, /^\s+0x0000beef\s+proxy-c\s+4\.00%\s+0\s+3\.0ms\s+8\.0ms\s+-\s+\d+s ago$/m);

  const json = JSON.parse((await msmctl("describe", "stream", "cam", "-o", "json")).out) as { thresholds: { loss: number }; paths: StreamPath[] };
  assert.is(json.thresholds.loss, 0.005);
  assert.is(json.paths[0]!.name, "cam");

  const typo = await msmctl("describe", "stream", "lobyb");
  assert.is(typo.code, 1);
  assert.is(typo.err, 'msmctl: stream "lobyb" not found (close names: lobby)\n');
  const far = await msmctl("describe", "stream", "zzzzzzzz");
  assert.is(far.err, 'msmctl: stream "zzzzzzzz" not found (2 streams: msmctl get streams lists them)\n');
  assert.is((await msmctl("describe", "stream")).code, 2);
});

test("describe segment and describe proxy: the streams through it, and where their bad hop is from there (into it, out of it, upstream, downstream)", async () => {
  // the bad link proxy-b -> proxy-c: out of relay, into edge, downstream of cam
  const edge = await msmctl("describe", "segment", "edge");
  assert.is(edge.code, 0, edge.err);
  assert.match(edge.out, /^Streams:\s+cam \(0x1234abcd\): BAD on the link into this segment, proxy-b -> proxy-c: loss 4\.00% > 0\.50% \(msmctl describe stream cam\)$/m, edge.out);
  const relay = await msmctl("describe", "segment", "relay");
  assert.match(relay.out, /^Streams:\s+cam \(0x1234abcd\): BAD on the link out of this segment, proxy-b -> proxy-c: loss 4\.00% > 0\.50% \(msmctl describe stream cam\)$/m, relay.out);
  const cam = await msmctl("describe", "segment", "cam");
  assert.match(cam.out, /^Streams:\s+cam \(0x1234abcd\): BAD downstream, proxy-b -> proxy-c: loss 4\.00% > 0\.50% \(msmctl describe stream cam\)$/m, cam.out);
  const lobby = await msmctl("describe", "segment", "lobby");
  assert.match(lobby.out, /^Streams:\s+lobby \(0x0000feed\): no bad hop$/m, lobby.out);
  // a proxy: each stream through it, once
  const a = await msmctl("describe", "proxy", "proxy-c");
  assert.is(a.code, 0, a.err);
  assert.match(a.out, /\nStreams \(1\):\n  cam \(0x1234abcd\) through edge: BAD on the link into this segment, proxy-b -> proxy-c: loss 4\.00% > 0\.50% \(msmctl describe stream cam\)\n/, a.out);
  // -o json keeps its shape (the streams are describe stream's)
  const json = JSON.parse((await msmctl("describe", "segment", "edge", "-o", "json")).out) as Record<string, unknown>;
  assert.equal(Object.keys(json), ["segment", "proxy", "stats", "statsAtMs"]);
});

test("the examples in docs/control-plane.md are what msmctl prints (ages aside)", async () => {
  const doc = readFileSync(join(ROOT, "docs", "control-plane.md"), "utf8");
  const ages = (text: string): string => text.replace(/\b\d+s ago\b/g, "Ns ago");
  for (const command of ["get streams", "describe stream cam"]) {
    const example = new RegExp(`\`\`\`\\n\\$ msmctl ${command}\\n([\\s\\S]*?)\`\`\``).exec(doc)?.[1];
    assert.ok(example, `docs/control-plane.md shows msmctl ${command}`);
    const r = await msmctl(...command.split(" "));
    assert.is(ages(r.out), ages(example!), command);
  }
});

test("top streams --once: worst first; -o json the same order", async () => {
  const r = await msmctl("top", "streams", "--once");
  assert.is(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.match(lines[0]!, /^NAME\s+SSRC\s+LOSS\s+JITTER\s+BITRATE\s+PKTS\/S\s+WORST HOP$/);
  assert.match(lines[1]!, /^cam\s+0x1234abcd\s+4\.00%\s+3\.0ms\s+480kb\/s\s+50\s+proxy-b -> proxy-c: loss 4\.00% > 0\.50%$/, r.out);
  assert.match(lines[2]!, /^lobby\s/);
  const json = JSON.parse((await msmctl("top", "streams", "--once", "-o", "json")).out) as { streams: StreamPath[] };
  assert.equal(json.streams.map((p) => p.name), ["cam", "lobby"]);
  assert.match((await msmctl("top", "segments", "--bad")).err, /--bad applies to top streams/);
});

test("ListStreams pages by name: a page token is the last name given", async () => {
  const api = connectAdmin({ server: env.MSM_SERVER!, tls: "insecure", timeoutMs: 5000 });
  try {
    const all = await api.listStreams({ proxy: "", badOnly: false });
    assert.equal(all.paths.map((p) => p.name), ["cam", "lobby"]);
    assert.equal(all.thresholds, { loss: 0.005, jitterMs: 5 });
  } finally {
    api.close();
  }
  const { AdminServiceClient } = await import("../controlplane/api/proto.js");
  const raw = new AdminServiceClient(env.MSM_SERVER!, channelCredentials("insecure")) as unknown as Record<string, (req: object, cb: (err: Error | null, res: { pathsJson: string; nextPageToken: string }) => void) => void> & Client;
  try {
    const after = await new Promise<{ pathsJson: string; nextPageToken: string }>((resolve, reject) => raw.listStreams!({ pageToken: "cam" }, (err, res) => (err ? reject(err) : resolve(res))));
    assert.equal((JSON.parse(after.pathsJson) as StreamPath[]).map((p) => p.name), ["lobby"]);
    assert.is(after.nextPageToken, "");
  } finally {
    raw.close();
  }
});

/** `msm control-plane` as an operator starts it. */
function startCli(args: string[]): { exited: Promise<number | null>; output: () => string; stop: () => void } {
  const child = spawn(process.execPath, [join(ROOT, "dist", "cli", "msm.js"), "control-plane", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return { exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))), output: () => out, stop: () => child.kill("SIGTERM") };
}

test("msm control-plane --bad-loss / --bad-jitter-ms: a bad value names the flag; good ones are the thresholds ListStreams judges by", async () => {
  const store = `file:${join(dir, "cli-store")}`;
  for (const [flag, value, why] of [["--bad-loss", "2", /--bad-loss must be a number from 0 to 1, got '2'/], ["--bad-jitter-ms", "fast", /--bad-jitter-ms must be a number from 0 to 60000, got 'fast'/]] as const) {
    const bad = startCli(["--listen", "127.0.0.1:0", "--store", store, "--insecure", flag, value]);
    assert.is(await bad.exited, 2, bad.output());
    assert.match(bad.output(), why);
  }
  const ok = startCli(["--listen", "127.0.0.1:0", "--store", store, "--insecure", "--bad-loss", "0.05", "--bad-jitter-ms", "12.5"]);
  try {
    await waitFor(() => /listening on 127\.0\.0\.1:\d+/.test(ok.output()), 10_000, "the control plane to start");
    const port = /listening on 127\.0\.0\.1:(\d+)/.exec(ok.output())![1];
    const api = connectAdmin({ server: `127.0.0.1:${port}`, tls: "insecure", timeoutMs: 5000 });
    try {
      assert.equal((await api.listStreams({ proxy: "", badOnly: false })).thresholds, { loss: 0.05, jitterMs: 12.5 });
    } finally {
      api.close();
    }
  } finally {
    ok.stop();
  }
  assert.is(await ok.exited, 0);
});

test.run();
