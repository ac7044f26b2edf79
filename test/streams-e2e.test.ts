// One stream across three real proxies, as an operator sees it: a control plane (mTLS, file
// store), three `msm proxy --control-plane` processes (proxy-a, proxy-b, proxy-c), a chain of
// three segments applied with msmctl (proxy-b's listen a wildcard, joined by the addresses it
// reports), real RTP through it with sender reports, and a receiver that sends RTCP receiver
// reports back. proxy-b's validate drops every 20th packet (too large): `msmctl get streams`,
// `describe stream` and `top streams` name "within proxy-b" as the bad hop, at about 5%, and every
// hop's cumulative loss is accounted for: proxy-b's drop counter, or the kernel's drops on the
// socket that hop ends at (a busy machine), nothing else.
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import type { Socket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StreamHop, StreamPath } from "../controlplane/api/streams.js";
import { createPki } from "../controlplane/security/pki.js";
import { startControlPlane } from "../controlplane/server/index.js";
import { Child } from "./lib/child.js";
import { DropWatch, settled } from "./lib/kernel-drops.js";
import { filterWasm, ROOT } from "./lib/paths.js";
import { receiverReport } from "./lib/rtcp-build.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, sleep, waitFor } from "./lib/udp.js";

const test = suite("streams across proxies end to end", { timeoutMs: 120_000 });
const MSM = join(ROOT, "dist", "cli", "msm.js");
const MSMCTL = join(ROOT, "dist", "cli", "msmctl.js");

const SSRC = 0x5eed0001;
const RECEIVER_SSRC = 0x0000beef;
const RATE = 200; // packets/s
const COUNT = 2400; // 12 s
const TS_STEP = 90_000 / RATE; // RTP timestamp units per packet at 90 kHz: a steady pace, no jitter of its own
const OVERSIZE_EVERY = 20; // proxy-b's validate (maxSize 1000) drops each of these: 5%

function msmctl(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MSMCTL, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => resolve({ code, out, err }));
  });
}

/** Packet i of the stream: 200 bytes, or 1100 (too large for proxy-b) when i % 20 === 10, never the first or last. */
function rtp(i: number): Buffer {
  const b = Buffer.alloc(i % OVERSIZE_EVERY === OVERSIZE_EVERY / 2 ? 1100 : 200);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt16BE(i & 0xffff, 2);
  b.writeUInt32BE((i * TS_STEP) >>> 0, 4);
  b.writeUInt32BE(SSRC, 8);
  return b;
}

/** NTP time (RFC 3550 4): seconds since 1900 and a 32-bit fraction. */
function ntp(ms: number): { seconds: number; fraction: number } {
  const s = ms / 1000 + 2_208_988_800;
  return { seconds: Math.floor(s) >>> 0, fraction: Math.floor((s % 1) * 2 ** 32) >>> 0 };
}

/** An SR (RFC 3550 6.4.1) of the sender, no report blocks. */
function senderReport(rtpTimestamp: number, packets: number, octets: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(SSRC, 4);
  const t = ntp(Date.now());
  b.writeUInt32BE(t.seconds, 8);
  b.writeUInt32BE(t.fraction, 12);
  b.writeUInt32BE(rtpTimestamp >>> 0, 16);
  b.writeUInt32BE(packets >>> 0, 20);
  b.writeUInt32BE(octets >>> 0, 24);
  return b;
}

/** The receiver: counts the stream (A.3 loss per report interval), and answers each SR it gets with an RR whose LSR/DLSR give the round trip. */
class Receiver {
  received = 0;
  private highest = -1;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private lastSr: { middle: number; atMs: number } | null = null;
  private timer: NodeJS.Timeout | undefined;

  private constructor(readonly rtp: Socket, readonly rtcp: Socket) {
    rtp.on("message", (m) => {
      if (m.length < 12 || m.readUInt32BE(8) !== SSRC) return;
      this.received++;
      this.highest = Math.max(this.highest, m.readUInt16BE(2)); // the test's stream does not wrap
    });
    rtcp.on("message", (m) => {
      if (m.length >= 28 && m[1] === 200) this.lastSr = { middle: ((m.readUInt32BE(8) & 0xffff) << 16 | m.readUInt32BE(12) >>> 16) >>> 0, atMs: Date.now() };
    });
  }

  static async open(port: number): Promise<Receiver> {
    return new Receiver(await bindUdp(port), await bindUdp(port + 1));
  }

  /** Sends an RR about the stream to `port` (the last proxy's egress RTCP port) every second. */
  reportTo(port: number): void {
    this.timer = setInterval(() => {
      if (this.highest < 0) return;
      const expected = this.highest + 1;
      const expectedInterval = expected - this.expectedPrior;
      const lostInterval = expectedInterval - (this.received - this.receivedPrior);
      this.expectedPrior = expected;
      this.receivedPrior = this.received;
      const fraction = expectedInterval > 0 && lostInterval > 0 ? Math.min(255, Math.floor((lostInterval * 256) / expectedInterval)) : 0;
      const lsr = this.lastSr?.middle ?? 0;
      const dlsr = this.lastSr ? Math.round(((Date.now() - this.lastSr.atMs) / 1000) * 65536) : 0;
      // Jitter 0: this receiver does not measure it.
      const b = receiverReport(RECEIVER_SSRC, SSRC, fraction, Math.max(0, expected - this.received), this.highest, 0, lsr, dlsr);
      this.rtcp.send(b, port, "127.0.0.1");
    }, 1000);
  }

  close(): void {
    clearInterval(this.timer);
    this.rtp.close();
    this.rtcp.close();
  }
}

const hop = (p: StreamPath, label: string): StreamHop => {
  const h = p.hops.find((x) => x.label === label);
  if (!h) throw new Error(`no hop '${label}': ${p.hops.map((x) => x.label).join(", ")}`);
  return h;
};

test("three proxies, one stream: msmctl joins its path, states every hop's loss, jitter and delay, and names the proxy that drops 5% as the bad hop", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-streams-e2e-"));
  const pki = createPki(join(dir, "pki"));
  const cp = await startControlPlane({
    listen: "127.0.0.1:0", store: `file:${join(dir, "store")}`, trustDomain: "msm.test", name: "cp-1",
    tls: pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), timing: { statsIntervalMs: 200 }, log: () => {},
  });
  const op = pki.issue("op", "spiffe://msm.test/admin/alice");
  const env = { MSM_SERVER: `127.0.0.1:${cp.port}`, MSM_TLS_CA: op.ca, MSM_TLS_CERT: op.cert, MSM_TLS_KEY: op.key };
  const proxies = ["proxy-a", "proxy-b", "proxy-c"].map((node) => {
    const tls = pki.issue(node, `spiffe://msm.test/proxy/${node}`);
    return new Child(process.execPath, [MSM, "proxy", "--control-plane", `127.0.0.1:${cp.port}`, "--node-id", node, "--state-dir", join(dir, node), "--tls-ca", tls.ca, "--tls-cert", tls.cert, "--tls-key", tls.key], { limitMs: 110_000 });
  });
  const listenA = await freePortPair();
  const listenB = await freePortPair("0.0.0.0");
  const listenC = await freePortPair();
  const egressC = await freePortPair();
  const sinkPort = await freePortPair();
  const sender = await bindUdp();
  const senderRtcp = await bindUdp();
  const receiver = await Receiver.open(sinkPort);
  try {
    const pushed = await msmctl(["filter", "push", "validate@1.0.0", filterWasm("validate")], env);
    assert.is(pushed.code, 0, pushed.err);
    const file = join(dir, "chain.yaml");
    writeFileSync(file, `kind: Segment
metadata: { name: cam }
spec:
  proxy: proxy-a
  listen: { address: 127.0.0.1, port: ${listenA} }
  destinations: [{ address: 127.0.0.1, port: ${listenB} }]
---
kind: Segment
metadata: { name: relay }
spec:
  proxy: proxy-b
  listen: { address: 0.0.0.0, port: ${listenB} }
  destinations: [{ address: 127.0.0.1, port: ${listenC} }]
  chain: [{ filter: validate, config: { maxSize: 1000 } }]
---
kind: Segment
metadata: { name: edge }
spec:
  proxy: proxy-c
  listen: { address: 127.0.0.1, port: ${listenC} }
  egress: { address: 127.0.0.1, port: ${egressC} }
  destinations: [{ address: 127.0.0.1, port: ${sinkPort} }]
`);
    const applied = await msmctl(["apply", "-f", file], env);
    assert.is(applied.code, 0, applied.err);
    await waitFor(async () => {
      const r = await msmctl(["get", "proxies", "-o", "json"], env);
      const items = (JSON.parse(r.out || "{}") as { items?: { nodeId: string; connected: boolean; ackedVersion: number; desiredVersion: number; notRunning: string[] }[] }).items ?? [];
      return items.length === 3 && items.every((p) => p.connected && p.desiredVersion > 0 && p.ackedVersion >= p.desiredVersion && p.notRunning.length === 0);
    }, 20_000, `the three proxies to run their segments\n${proxies.map((p) => p.describe()).join("\n")}`);

    receiver.reportTo(egressC + 1);
    const kernel = new DropWatch([listenA, listenB, listenC, sinkPort]);
    let octets = 0;
    let sent = 0;
    const started = Date.now();
    let lastSr = 0;
    let during: { got: string; described: string; top: string; live: StreamPath } | undefined;
    let polling: Promise<void> | undefined;
    // the stream, paced; an SR every second; msmctl asked while it flows
    while (sent < COUNT) {
      if (Date.now() - started > (COUNT / RATE) * 1000 + 10_000) throw new Error(`the sender overran its time bound (${sent}/${COUNT} sent)`);
      const due = Math.min(COUNT, Math.floor(((Date.now() - started) / 1000) * RATE) + 1);
      while (sent < due) {
        const p = rtp(sent++);
        octets += p.length - 12;
        sender.send(p, listenA, "127.0.0.1");
      }
      if (Date.now() - lastSr >= 1000) {
        lastSr = Date.now();
        senderRtcp.send(senderReport(((sent - 1) * TS_STEP) >>> 0, sent, octets), listenA + 1, "127.0.0.1");
      }
      if (!polling && !during && Date.now() - started > 6000) {
        polling = (async () => {
          // the path, its three proxies' figures joined, while the stream flows
          let live: StreamPath | undefined;
          let text = "";
          await waitFor(async () => {
            const r = await msmctl(["describe", "stream", "cam", "-o", "json"], env);
            text = r.out + r.err;
            live = r.code === 0 ? (JSON.parse(r.out) as { paths: StreamPath[] }).paths[0] : undefined;
            return live !== undefined && live.segments.length === 3 && hop(live, "within proxy-b").bad && live.hops.every((h) => h.note === null);
          }, 15_000, "msmctl describe stream to join the three proxies' figures").catch((err: Error) => {
            throw new Error(`${err.message}; it says:\n${text}`);
          });
          const got = (await msmctl(["get", "streams"], env)).out;
          const described = (await msmctl(["describe", "stream", "cam"], env)).out;
          const top = (await msmctl(["top", "streams", "--once"], env)).out;
          during = { got, described, top, live: live! };
        })();
      }
      await sleep(1);
    }
    await polling;
    assert.ok(during, "msmctl was asked while the stream flowed");
    const { got, described, top, live } = during!;
    assert.match(got, /^NAME\s+SSRC\s+HOPS\s+LOSS\s+JITTER\s+BITRATE\s+BAD HOP$/m);
    assert.match(described, /^Path:\s+sender -> proxy-a\/cam -> proxy-b\/relay -> proxy-c\/edge$/m, described);
    // a window of about a second holds about 200 packets, 10 of them too large: 5%, give or take a packet
    const withinLive = hop(live, "within proxy-b");
    assert.ok(withinLive.lossFraction! >= 0.035 && withinLive.lossFraction! <= 0.065, `loss within proxy-b ${withinLive.lossFraction}`);
    assert.match(described, /^\s+within proxy-b\s+proxy\s+\d+\.\d\d%\s+\d+\s+\S+\s+\S+\s+\S+\s+BAD: loss \d+\.\d\d% > 0\.50%/m, described);
    // the bad hop named: proxy-b's, unless a busy machine's kernel dropped more on a link (checked below)
    const named = [
      /^Bad hop:\s+(.+?) \(\S+\): loss \d+\.\d\d% > 0\.50%/m.exec(described)?.[1],
      /^cam\s+0x5eed0001\s+3\s.*\s(\S+ -> \S+|within \S+): loss \d+\.\d\d% > 0\.50%/m.exec(got)?.[1],
      /^cam\s+0x5eed0001\s.*\s(\S+ -> \S+|within \S+): loss/.exec(top.split("\n")[1] ?? "")?.[1],
      live.hops[live.worst]!.label,
    ];
    assert.ok(named.every((n) => n !== undefined), `${got}\n${described}\n${top}`);
    assert.match(described, /^\s+proxy-c -> receiver 0x0000beef\s+last-link\s/m, described);
    assert.match(described, /^\s+0x0000beef\s+proxy-c\s+\d+\.\d\d%\s+\d+\s+\S+\s+\d+\.\dms\s/m, "the receiver's report, with a round trip from LSR/DLSR");
    // while it flows, every window has packets: the mean one-way delays on loopback (one clock) are small
    for (const h of live.hops.filter((x) => x.kind === "link" || x.kind === "proxy")) {
      assert.ok(h.delayMs !== null && h.delayMs > -5 && h.delayMs < 500, `${h.label}: delay ${h.delayMs} ms on loopback`);
      assert.ok(h.jitterMs !== null && h.jitterAddedMs !== null, `${h.label}: jitter measured`);
    }
    const rtt = live.hops.at(-1)!.receiver!.rttMs;
    assert.ok(rtt !== null && rtt >= 0 && rtt < 500, `round trip ${rtt} ms`);

    // after the stream: every hop's cumulative loss accounted for
    const drops = kernel.since().byPort;
    const endsAt: Record<string, number> = { "sender -> proxy-a": listenA, "proxy-a -> proxy-b": listenB, "proxy-b -> proxy-c": listenC };
    for (const n of named) assert.ok(n === "within proxy-b" || (drops[endsAt[n!] ?? -1] ?? 0) > 0, `'${n}' named as the bad hop, with no kernel drops to explain its loss`);
    await settled(() => receiver.received);
    await sleep(2500); // the proxies' last reports (every second) stored
    const final = JSON.parse((await msmctl(["describe", "stream", "cam", "-o", "json"], env)).out) as { paths: StreamPath[] };
    const path = final.paths[0]!;
    assert.equal(path.segments.map((s) => `${s.proxy}/${s.segment}`), ["proxy-a/cam", "proxy-b/relay", "proxy-c/edge"]);
    assert.equal(path.hops.map((h) => h.kind), ["first-link", "proxy", "link", "proxy", "link", "proxy", "last-link"]);
    const relay = JSON.parse((await msmctl(["describe", "segment", "relay", "-o", "json"], env)).out) as { stats: { dropsTotal: number } };
    const oversize = Math.floor((COUNT - OVERSIZE_EVERY / 2 - 1) / OVERSIZE_EVERY) + 1;
    const withinB = hop(path, "within proxy-b");
    assert.is(withinB.lost, relay.stats.dropsTotal, "proxy-b's loss is what its chain dropped");
    assert.ok(relay.stats.dropsTotal <= oversize && relay.stats.dropsTotal >= oversize - (drops[listenB] ?? 0), `proxy-b dropped ${relay.stats.dropsTotal} of ${oversize} too large`);
    assert.is(hop(path, "sender -> proxy-a").lost, drops[listenA], "loss on the first link: the kernel's drops at proxy-a's listen");
    assert.is(hop(path, "proxy-a -> proxy-b").lost, drops[listenB]);
    assert.is(hop(path, "proxy-b -> proxy-c").lost, drops[listenC]);
    assert.is(hop(path, "within proxy-a").lost, 0);
    assert.is(hop(path, "within proxy-c").lost, 0);
    const edge = hop(path, "within proxy-c").to!.stats!;
    assert.is(receiver.received + (drops[sinkPort] ?? 0), edge.packets, "the receiver got what proxy-c sent, but for the kernel's drops at its socket");
  } finally {
    receiver.close();
    sender.close();
    senderRtcp.close();
    await Promise.all(proxies.map((p) => p.stop()));
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
