// Priority drop (filters/congestion README "Priority drop") against a bottleneck's tail drop, with
// a real H.264 stream from an origin that ignores feedback:
//
//   FFmpeg libx264 (about 850 kbit/s, 2 B frames, non-reference) -> proxy A ==tbf 600 kbit/s==> proxy B -> FFmpeg decoder
//
// libx264 asked for 2 Mbit/s of the test pattern gives about 850 kbit/s (its quantizer floor: the
// pattern is easy), so the bottleneck is set below that: the origin sends 1.4x what it carries.
// Of those bytes, B frames are about 42%, P frames 33%, IDR frames 25% (ffprobe, 10 s).
//
// Twice: plain forwarding (empty chains: the tbf queue drops whatever finds it full) and with the
// congestion filter (A: sender mode, H.264 priority, no circuit breaker; B: receiver mode). The
// stream is captured as it reaches A and as it reaches the receiver; test/lib/h264-frames.ts
// rebuilds the frames of both and counts the decodable ones (whole, and every reference frame
// since the last IDR whole too). FFmpeg's decoder judges the same stream (corrupt frames). Every
// packet lost between the two captures is attributed: A's drops by cause, the tbf queue, the veth
// pairs, the proxies' sockets, B's drops.
//
// Seen here with the filter's defaults (a run on Dec 4, 15 GOPs of 25 frames): the first GOP decodes
// in both runs (the queues are still short). After it, tail drop leaves almost nothing decodable
// (19 of 375 frames, all in the first GOP). Priority drop leaves every IDR frame and the reference
// frames right after it, 3 to 4 frames a GOP (80 of 375, FFmpeg found no corrupt frame): the IDR's
// own bytes do not count in the queue the decisions look at (README "Priority drop"), so the P
// frames behind it go; but the origin ignores feedback and keeps sending 1.4x what the bottleneck
// carries, so within a few frames even without the B frames the queue passes priority.referenceMs
// (120): a P frame goes as reference and the rest of the GOP as dependent, until the next IDR.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as assert from "uvu/assert";
import type { ProxySnapshot } from "../runtime/index.js";
import { capturedRtp } from "./lib/cc-capture.js";
import { CONGESTION_DROPS, congestionMetric } from "./lib/cc-metrics.js";
import { h264Census, type FrameCensus } from "./lib/h264-frames.js";
import { DEFAULT_H264, ffmpegX264Peer, runH264Trial, type H264Quality, type H264Stream } from "./lib/h264-quality.js";
import { clearImpairment, impair, impairmentPeer } from "./lib/link-impairment.js";
import { PathWatch, type PathCounters } from "./lib/loss-trial.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { startNsProxy, type NsProxy } from "./lib/ns-proxy.js";
import { filterWasm } from "./lib/paths.js";
import { allOf, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";
import { startCapture, tsharkPeer } from "./lib/tshark.js";

const test = suite("congestion: priority drop of H.264 frames", { timeoutMs: 90_000 });
const PEERS = allOf(netnsPeer, impairmentPeer, ffmpegX264Peer, tsharkPeer);

const PORT = 5004;
const SINK_PORT = 6000;
const CAPACITY_KBIT = 600;
/**
 * 15 s, 375 frames, an IDR frame every second, 2 B frames after each reference frame; ~850 kbit/s.
 * 15 GOPs: the first decodes in both runs (before the queues fill), so the comparison rests on the others.
 */
const STREAM: H264Stream = { ...DEFAULT_H264, seconds: 15, bitrateKbit: 2000, bFrames: 2 };

let lab: NetnsLab | undefined;
const theLab = (): NetnsLab => (lab ??= NetnsLab.create(["sender", "a", "b", "sink"]));
const dir = mkdtempSync(join(tmpdir(), "msm-cc-priority-"));
test.after(() => {
  lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

function proxyConfigs(l: NetnsLab, withFilter: boolean): { role: string; config: Record<string, unknown> }[] {
  const filters = withFilter ? { congestion: { path: filterWasm("congestion") } } : {};
  const segment = (to: string, port: number, stage: Record<string, unknown>) => ({
    name: "media", listen: { address: "0.0.0.0", port: PORT }, destinations: [{ address: to, port }],
    ...(withFilter && { chain: [{ filter: "congestion", config: stage }] }),
  });
  return [
    { role: "a", config: { filters, segments: [segment(l.address("b", "a"), PORT, { mode: "sender", priority: { h264PayloadTypes: [STREAM.payloadType] }, circuitBreaker: { enabled: false } })] } },
    { role: "b", config: { filters, segments: [segment(l.address("sink", "b"), SINK_PORT, { mode: "receiver" })] } },
  ];
}

interface Trial {
  readonly label: string;
  readonly origin: FrameCensus;
  readonly received: FrameCensus;
  readonly originPackets: number;
  readonly receivedPackets: number;
  readonly quality: H264Quality;
  readonly path: PathCounters;
  /** A's media drops by cause: the filter's counters (with the filter), the segment's drops (without). */
  readonly aDrops: Readonly<Record<string, number>>;
  /** Media lost on the a>b link (what A sent that B's socket never got), and what the link's counters say it dropped (any packet). */
  readonly linkMediaLost: number;
  readonly linkDrops: number;
  /** Packets lost between the captures that nothing accounts for. */
  readonly unexplained: number;
}

const sum = (r: Readonly<Record<string, number>>): number => Object.values(r).reduce((a, b) => a + b, 0);
const media = (snap: ProxySnapshot): { in: number; out: number; rtcpIn: number; drops: Record<string, number> } => {
  const s = snap.segments.find((x) => x.name === "media")!;
  return { in: s.legs[0]!.packetsIn, out: s.legs[0]!.packetsOut, rtcpIn: s.rtcpIn, drops: s.drops };
};

async function runTrial(label: string, withFilter: boolean): Promise<Trial> {
  const l = theLab();
  const proxies: NsProxy[] = [];
  const files = { origin: join(dir, `${label}-origin.pcapng`), received: join(dir, `${label}-received.pcapng`) };
  try {
    for (const p of proxyConfigs(l, withFilter)) proxies.push(await startNsProxy(l, p.role, p.config));
    impair(l, "a", "b", { rateKbit: CAPACITY_KBIT });
    const atOrigin = await startCapture(l, "a", { dev: l.link("a", "sender").from.dev, filter: `udp dst port ${PORT}`, file: files.origin });
    const atReceiver = await startCapture(l, "sink", { dev: l.link("sink", "b").from.dev, filter: `udp dst port ${SINK_PORT}`, file: files.received });
    const watch = await PathWatch.start(l, "a", "sink", proxies);
    const decoding = runH264Trial(l, { from: "sender", to: { address: l.address("a", "sender"), port: PORT }, receiver: "sink", port: SINK_PORT, stream: STREAM });
    if (withFilter) await sampleFilter(proxies[0]!, decoding);
    const quality = await decoding;
    const path = await watch.since();
    for (const c of [atOrigin, atReceiver]) {
      const r = await c.stop();
      assert.is(r.dropped, 0, `dumpcap dropped ${r.dropped} packets of ${r.file}`);
    }
    const origin = await capturedRtp(files.origin, PORT, STREAM.ssrc);
    const received = await capturedRtp(files.received, SINK_PORT, STREAM.ssrc);
    const [a, b] = [media(path.stats.get("a")!), media(path.stats.get("b")!)];
    const aDrops: Record<string, number> = {};
    if (withFilter) {
      for (const cause of CONGESTION_DROPS) {
        const n = congestionMetric(path.stats.get("a")!, `dropped_${cause}`);
        if (n > 0) aDrops[cause] = n;
      }
    } else Object.assign(aDrops, a.drops);
    const kernel = (where: string): number => path.kernel[where] ?? 0;
    const link = path.links["a>b"]!;
    const lastLink = path.links["b>sink"]!;
    // each step of the path, exact: what reached a socket and what each proxy let through
    assert.is(origin.length - kernel(`a:${PORT}`), a.in, `A's media in: ${origin.length} captured - ${kernel(`a:${PORT}`)} socket drops`);
    assert.is(a.in - sum(aDrops), a.out, `A's media out: ${a.in} in - drops ${JSON.stringify(aDrops)}`);
    const linkMediaLost = a.out - b.in - kernel(`b:${PORT}`);
    const linkDrops = link.queueDrops + link.interfaceDrops;
    assert.is(b.in - sum(b.drops), b.out, `B's media out: ${b.in} in - drops ${JSON.stringify(b.drops)}`);
    assert.is(b.out - lastLink.interfaceDrops - lastLink.queueDrops, received.length, "what B sent reached the receiver's link");
    // the link's counters count every packet (the origin's RTCP too): they must hold the media it lost
    assert.ok(linkMediaLost <= linkDrops && linkDrops - linkMediaLost <= a.rtcpIn, `a>b lost ${linkMediaLost} media packets; its queue and veths dropped ${linkDrops} (A forwarded ${a.rtcpIn} RTCP packets)`);
    const explained = kernel(`a:${PORT}`) + sum(aDrops) + linkMediaLost + kernel(`b:${PORT}`) + sum(b.drops) + lastLink.interfaceDrops + lastLink.queueDrops;
    const trial: Trial = {
      label, origin: h264Census(origin), received: h264Census(received), originPackets: origin.length, receivedPackets: received.length,
      quality, path, aDrops, linkMediaLost, linkDrops, unexplained: origin.length - received.length - explained,
    };
    console.log(`${label}: ${JSON.stringify({ ...trial, origin: summary(trial.origin), received: summary(trial.received), path: { links: path.links, kernel: path.kernel, proxyDrops: path.proxyDrops } })}`);
    return trial;
  } finally {
    const stops = await Promise.allSettled(proxies.map((p) => p.stop()));
    clearImpairment(l, "a", "b");
    const failed = stops.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
  }
}

/** Prints A's estimate, queue and drops every 500 ms while `until` runs (at most 60 samples): how the filter came to its drops. */
async function sampleFilter(a: NsProxy, until: Promise<unknown>): Promise<void> {
  let done = false;
  until.then(() => (done = true), () => (done = true));
  const names = ["target_bps", "acked_bps", "pacing_queue_ms", "dropped_non_reference", "dropped_reference", "dropped_dependent", "dropped_queue_full"];
  const rows: string[] = [];
  const started = Date.now();
  for (let i = 0; i < 60 && !done; i++) {
    const snap = await a.stats();
    rows.push(`${Date.now() - started}ms ${names.map((n) => congestionMetric(snap, n)).join("/")}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  console.log(`A (${names.join("/")}): ${rows.join(", ")}`);
}

/** Decodable frames in each GOP received (from one IDR frame to the next). */
function perGop(c: FrameCensus): number[] {
  const counts: number[] = [];
  for (const f of c.frames) {
    if (f.kind === "idr" || counts.length === 0) counts.push(0);
    if (f.decodable) counts[counts.length - 1]!++;
  }
  return counts;
}

const summary = (c: FrameCensus): object => ({ total: c.total, complete: c.complete, decodable: c.decodable, byKind: c.byKind, missingPackets: c.missingPackets });

const trials: Trial[] = [];

function table(): string {
  const drops = (t: Trial): string => Object.entries(t.aDrops).map(([k, v]) => `${k} ${v}`).join(", ") || "-";
  const kernel = (t: Trial): string => Object.entries(t.path.kernel).map(([k, v]) => `${k} ${v}`).join(", ") || "0";
  const kinds = (c: FrameCensus): string => `${c.byKind.idr.decodable}/${c.byKind.reference.decodable}/${c.byKind["non-reference"].decodable}`;
  return [
    "| trial | packets sent | received | A drops (by cause) | a>b link drops (tbf, veth) | kernel drops | unexplained | frames sent | frames received | complete | decodable (IDR/ref/non-ref) | FFmpeg decoded | FFmpeg corrupt |",
    "|---|--:|--:|---|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ...trials.map((t) => `| ${t.label} | ${t.originPackets} | ${t.receivedPackets} | ${drops(t)} | ${t.linkDrops} | ${kernel(t)} | ${t.unexplained} | ` +
      `${t.origin.total} | ${t.received.total} | ${t.received.complete} | ${t.received.decodable} (${kinds(t.received)}) | ${t.quality.framesDecoded} | ${t.quality.corruptFrames} |`),
  ].join("\n");
}

/** What holds for both trials: the origin's stream whole and with non-reference frames, every loss attributed. */
function checkTrial(t: Trial): void {
  assert.is(t.unexplained, 0, `${t.label}: ${t.unexplained} packets lost between the captures that nothing accounts for`);
  assert.is(t.origin.missingPackets, 0, `${t.label}: the origin's stream as it reached A misses packets`);
  assert.is(t.origin.decodable, t.origin.total, `${t.label}: every frame the origin sent is decodable at A`);
  // 25 fps for 15 s, give or take the encoder's last frames
  assert.ok(t.origin.total >= STREAM.seconds * STREAM.fps - 5 && t.origin.total <= STREAM.seconds * STREAM.fps, `${t.label}: ${t.origin.total} frames sent`);
  assert.is(t.origin.byKind.idr.total, Math.ceil(t.origin.total / STREAM.gop));
  // 2 B frames per reference frame: close to 2/3 of the frames are non-reference
  assert.ok(t.origin.byKind["non-reference"].total > t.origin.total / 2, `${t.label}: only ${t.origin.byKind["non-reference"].total} of ${t.origin.total} frames are non-reference`);
  assert.ok(t.receivedPackets < t.originPackets, `${t.label}: the bottleneck dropped nothing (${t.receivedPackets} of ${t.originPackets})`);
}

peerTest(test, PEERS, "plain forwarding: the bottleneck's tail drop", async () => {
  const t = await runTrial("tail drop", false);
  trials.push(t);
  checkTrial(t);
  assert.ok(t.linkMediaLost > 0, "the tbf queue dropped no media");
  console.log(`\n${table()}\n`);
});

peerTest(test, PEERS, "the congestion filter's priority drop: more decodable frames", async () => {
  const t = await runTrial("priority drop", true);
  trials.push(t);
  checkTrial(t);
  const plain = trials.find((x) => x.label === "tail drop");
  assert.ok(plain, "the plain trial ran first");
  console.log(`\n${table()}\n`);
  console.log(`decodable frames at the receiver: ${t.received.decodable} of ${t.origin.total} with priority drop, ${plain.received.decodable} with tail drop ` +
    `(${t.received.decodable - plain.received.decodable >= 0 ? "+" : ""}${t.received.decodable - plain.received.decodable}); ` +
    `FFmpeg's corrupt frames ${t.quality.corruptFrames} vs ${plain.quality.corruptFrames}`);
  for (const x of [plain, t]) console.log(`${x.label}, decodable frames per GOP (of ${STREAM.gop}): ${perGop(x.received).join(" ")}`);
  assert.ok(t.received.decodable > plain.received.decodable, `priority drop: ${t.received.decodable} decodable frames, tail drop: ${plain.received.decodable}`);
});

test.run();
