// Issue #13's proof: the per-stream stats of three proxies in a chain, across network namespaces,
// point at the one link that hurts, and their figures agree with Wireshark's.
//
//   sender --> proxy a --> proxy b ==[ router wan ]==> proxy c --> sink
//   FFmpeg            dumpcap on b's side ^   loss 3%, a   ^ dumpcap on c's side
//                                             congested     GStreamer rtpbin at the sink
//                                             7 Mbit/s link (RTCP receiver reports back to c)
//
// The proxies are agents of a control plane in the root namespace, reached over a unix-domain
// socket (no control traffic crosses a link), their segments applied with msmctl, and the stream
// read back with `msmctl describe stream cam -o json` while it flows: every description that
// judges the hop b -> c must mark it bad and worst (but for at most one whose window's random loss
// fell under the threshold, as its figures then say), and no other hop bad (but for a hop before b's
// interface named for jitter that tshark there saw too, and for the last link named for jitter
// the receiver stamped but the kernel at its interface did not see: stalls of the busy machine). The stream is
// real: H.264 in MPEG-TS over RTP (static payload type 33, 90 kHz: tshark needs no SDP), about
// 300 packets/s for 12 s. Between proxy b and proxy c sits a router, namespace wan. The way
// through it loses 3% at random (iptables on its link in; where the kernel has tc netem, netem on
// its link out: test/lib/link-impairment.ts); its link out is a 7 Mbit/s tbf bottleneck that
// bursty cross traffic fills for about 30 ms at a time, so packets of the stream wait behind the
// bursts: the jitter a congested link adds, made by queueing in the kernel (netem's delay is not
// used: not every kernel has netem). "The link b -> c" of the mesh is so two veth pairs and a router.
//
// dumpcap captures the stream where it enters the link (b's interface) and where it leaves it (c's
// interface, the packets proxy c's socket gets, stamped by the same kernel clock), and where it
// reaches b (which second b counted a packet in, by its arrival there). tshark's RTP
// stream analysis of these files is the referee. Its A.8 jitter after each packet is recomputed
// from tshark's own per-packet fields and checked to be tshark's (the mean and maximum it prints),
// so that it can be read after the very packet a proxy had counted last when it reported. Then:
// - loss at c: proxy c's RFC 3550 A.3 count = tshark's Lost + what c's socket dropped, exactly,
//   over the whole stream and at every report;
// - jitter at c: proxy c's estimate = tshark's after the same packet, within JITTER_TOLERANCE_MS
//   (both read the kernel's receive timestamp, SO_TIMESTAMPNS under batched I/O; what is left is
//   rounding: measured under 0.0001 ms);
// - jitter at b's egress: proxy b's estimate = tshark's at b's interface, within
//   EGRESS_TOLERANCE_MS: a proxy stamps a batch as it leaves the chain, in user space, before the
//   kernel sends it; a send delayed by d after its stamp moves one step of A.8 by d and the
//   estimate by d / 16, so 0.5 ms allows a send held 8 ms (measured: up to 0.05 ms on an idle
//   machine, 0.08 ms beside stress-ng --cpu 2, 0.22 ms once with a build running too);
// - the hop b -> c as msmctl describes it: its lost (c's minus b's, cumulative, and the stream's
//   first packets if the link lost them before c began counting) = tshark's at c minus at b, and
//   the jitter it adds = the same difference of tshark's figures, each after the last packet its
//   end counted in the second both ends' windows hold (b's: the last to reach b in that second, as
//   b may send it any time later; within the sum of both tolerances); over the stream, the packets it lost (b's egress
//   minus c's ingress) = what tshark saw enter the link and not leave it;
// - no proxy's dwell is below zero (one host: one clock), nor a link's but by what the proxy
//   before it reads high (a stall at a second's edge: their sum is not), and the link's is given in most
//   descriptions (both proxies' last windows the same second);
// - the last link c -> sink loses nothing: the receiver's own cumulative count (RTCP RR) is
//   tshark's loss before c, up to the same packet.
// Every loss on the path is attributed (link counters, queues, veths, sockets, proxy drops), and
// only b -> c loses more than those: a busy machine changes the numbers, not the verdict.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as assert from "uvu/assert";
import type { StreamHop, StreamPath } from "../controlplane/api/streams.js";
import { commonSecond } from "../controlplane/server/stream-paths.js";
import { ROLL_GRACE_MS } from "../runtime/streams/stream-table.js";
import type { StreamDirection } from "../runtime/streams/types.js";
import { startControlPlaneProcess, type ControlPlaneProcess } from "./lib/control-plane-cli.js";
import { ffmpegX264Peer } from "./lib/h264-quality.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { impair, impairmentBackend, impairmentPeer } from "./lib/link-impairment.js";
import { PathWatch, type PathCounters } from "./lib/loss-trial.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { startNsAgent, type NsProxy } from "./lib/ns-proxy.js";
import { runNsBursts, startNsSink } from "./lib/ns-rtp.js";
import { DEFAULT_STREAM } from "./lib/ns-tools/rtp-stream.js";
import { ROOT } from "./lib/paths.js";
import { allOf, peer, peerTest, runsOk } from "./lib/peers.js";
import { suite } from "./lib/suite.js";
import { MP2T_PAYLOAD_TYPE, rtpbinPeer, sendTsOverRtp, startRtpbinReceiver } from "./lib/ts-over-rtp.js";
import { analyseStream, startCapture, tsharkPeer, type StreamAnalysis } from "./lib/tshark.js";
import { sleep, waitFor } from "./lib/udp.js";

/** The control plane's default bad-hop thresholds (msm control-plane --bad-jitter-ms, --bad-loss). */
const BAD_JITTER_MS = 5;
const BAD_LOSS = 0.005;
/** The hops before b's interface, where tshark's capture at b sees what they did to the stream. */
const UPSTREAM_HOPS = ["sender -> a", "within a", "a -> b", "within b"];
const test = suite("per-stream stats across namespaces: the bad hop named, the figures against tshark", { timeoutMs: 90_000 });

const PORT = 5004; // every proxy's listen
const SINK_PORT = 6000;
const C_EGRESS = 5100; // proxy c's egress: the receiver's RTCP goes to C_EGRESS + 1
const CROSS_PORT = 9000; // the cross traffic's sink, in c
/** About 300 packets/s of 1356 bytes: 3.3 Mbit/s on the wire. */
const STREAM = { seconds: 12, bitrateKbit: 3000 };
const LOSS = 0.03;
const BOTTLENECK_KBIT = 7000;
/** Bursts of 36 KB every 80-160 ms: 2.4 Mbit/s beside the stream, each about 30 ms of queue at 7 Mbit/s. */
const CROSS = { burst: 30, gapMs: [80, 160] as const, format: { ...DEFAULT_STREAM, ssrc: 0xc7055, minSize: 1200, maxSize: 1200 } };
/** Proxy c's jitter (kernel receive times) vs tshark's at c's interface, after the same packet. */
const JITTER_TOLERANCE_MS = 0.05;
/** Proxy b's egress jitter (user-space send times) vs tshark's at b's interface, after the same packet. */
const EGRESS_TOLERANCE_MS = 0.5;
/**
 * A packet that reached a proxy before a second's edge and left it this much later: the proxy was
 * held across the edge longer than its roll timer waits for what came before the edge (see heldAcrossEdge).
 */
const HELD_AT_EDGE_MS = ROLL_GRACE_MS;
const ROLES = ["a", "b", "c"] as const;
const CHROMIUM = "/usr/bin/chromium";
const chromiumPeer = peer("Chromium", "Debian package chromium, npm playwright-core", () => existsSync(CHROMIUM) && runsOk(CHROMIUM, ["--version"]));

/**
 * The control plane's dashboard in Chromium while the stream flows: waits until the mesh marks
 * the link b -> c bad and no other (the figures move window by window: a moment is asked for, as
 * of msmctl's descriptions), then saves a screenshot. Returns what it saw.
 */
async function dashboardNamesTheLink(url: string): Promise<string[]> {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    await page.goto(`${url}/`);
    await page.waitForFunction(() => {
      const bad = Array.from(document.querySelectorAll("#mesh g.edge.bad")).map((e) => `${e.getAttribute("data-from")} -> ${e.getAttribute("data-to")}`);
      return bad.length === 1 && bad[0] === "b -> c";
    }, null, { timeout: 20_000 });
    const seen = await page.locator("#mesh g.edge.bad").evaluateAll((edges) => edges.map((e) => `${e.getAttribute("data-from")} -> ${e.getAttribute("data-to")}`));
    mkdirSync(join(ROOT, "test-output"), { recursive: true });
    const shot = join(ROOT, "test-output", "streams-netns-dashboard.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`the dashboard during the impaired run: ${shot}`);
    return seen;
  } finally {
    await browser.close();
  }
}

/** The three segments as msmctl applies them (a manifest of three documents), and each proxy's share as a config (for PathWatch). */
function segments(lab: NetnsLab): { manifest: string; configs: Map<string, Record<string, unknown>> } {
  const specs = [
    { name: "cam", proxy: "a", listen: { address: lab.address("a", "sender"), port: PORT }, destinations: [{ address: lab.address("b", "a"), port: PORT }] },
    { name: "cam-b", proxy: "b", listen: { address: lab.address("b", "a"), port: PORT }, destinations: [{ address: lab.address("c", "wan"), port: PORT }] },
    {
      name: "cam-c", proxy: "c", listen: { address: lab.address("c", "wan"), port: PORT },
      egress: { address: lab.address("c", "sink"), port: C_EGRESS }, destinations: [{ address: lab.address("sink", "c"), port: SINK_PORT }],
    },
  ];
  const manifest = specs.map(({ name, ...spec }) => JSON.stringify({ kind: "Segment", metadata: { name }, spec })).join("\n---\n");
  return { manifest, configs: new Map(specs.map(({ proxy, ...s }) => [proxy, { segments: [s] }])) };
}

/** `msmctl describe stream cam -o json`: the stream's path as the control plane states it; null while no proxy reports the stream. */
async function describeStream(cp: ControlPlaneProcess): Promise<StreamPath | null> {
  const r = await cp.msmctl(["describe", "stream", "cam", "-o", "json"]);
  if (r.code !== 0 && /not found/.test(r.err)) return null;
  assert.is(r.code, 0, r.err);
  const { paths } = JSON.parse(r.out) as { paths: StreamPath[] };
  assert.is(paths.length, 1, `one path, a -> b -> c: ${paths.map((p) => p.name).join(", ")}`);
  return paths[0]!;
}

/** The stream at each proxy (a, b, c), both ways, as one description of its path holds it. */
type Sample = ReadonlyMap<string, { readonly ingress: StreamDirection; readonly egress: StreamDirection }>;

/** The points of a path by proxy; null unless each of a, b and c has fresh figures both ways. */
function pointsOf(path: StreamPath): Sample | null {
  const points = new Map<string, { ingress?: StreamDirection; egress?: StreamDirection }>();
  for (const h of path.hops) {
    for (const p of [h.from, h.to]) {
      if (!p?.stats || p.stale) continue;
      const known = points.get(p.proxy) ?? {};
      points.set(p.proxy, { ...known, [p.direction]: p.stats });
    }
  }
  return ROLES.every((n) => points.get(n)?.ingress && points.get(n)?.egress) ? (points as Sample) : null;
}

const hopNamed = (path: StreamPath, label: string): StreamHop => {
  const h = path.hops.find((x) => x.label === label);
  assert.ok(h, `a hop ${label} in ${path.hops.map((x) => x.label).join(", ")}`);
  return h!;
};

/** What each step of the path adds over one sample: packets lost (what one point counted and the next did not) and jitter (ms). */
function steps(s: Sample): { hop: string; lost: number; jitterMs: number }[] {
  const [a, b, c] = ROLES.map((n) => s.get(n)!);
  const step = (hop: string, near: StreamDirection | null, far: StreamDirection): { hop: string; lost: number; jitterMs: number } =>
    ({ hop, lost: near ? near.packets - far.packets : far.lost, jitterMs: far.jitterMs - (near?.jitterMs ?? 0) });
  return [
    step("sender -> a", null, a!.ingress), step("within a", a!.ingress, a!.egress), step("a -> b", a!.egress, b!.ingress),
    step("within b", b!.ingress, b!.egress), step("b -> c", b!.egress, c!.ingress), step("within c", c!.ingress, c!.egress),
  ];
}

/** What the counters along the path dropped, per step of the path (as steps() names them). */
function dropsPerStep(path: PathCounters): Record<string, number> {
  const link = (name: string): number => {
    const l = path.links[name]!;
    return l.lost + l.queueDrops + l.interfaceDrops;
  };
  const socket = (role: string): number => path.kernel[`${role}:${PORT}`] ?? 0;
  const proxy = (role: string): number => Object.values(path.proxyDrops[role] ?? {}).reduce((x, y) => x + y, 0);
  return {
    "sender -> a": link("sender>a") + socket("a"), "within a": proxy("a"), "a -> b": link("a>b") + socket("b"),
    "within b": proxy("b"), "b -> c": link("b>wan") + link("wan>c") + socket("c"), "within c": proxy("c"),
  };
}

/** tshark's figures after the packet with extended sequence number `extSeq` (the last one a proxy or a receiver counted); fails when the capture lacks it. */
function sharkAfter(at: StreamAnalysis, extSeq: number, where: string): { lost: number; jitterMs: number } {
  const f = at.after(extSeq);
  assert.ok(f, `the capture at ${where} holds packet ${extSeq}, the last one counted`);
  return f!;
}

/** The end of the latest second both points' reports hold whole (the control plane's own choice), or null. */
function commonEnd(near: StreamDirection, far: StreamDirection): number | null {
  const same = commonSecond(near, far);
  return same && same.near.jitterMs !== undefined && same.far.jitterMs !== undefined ? same.near.endMs : null;
}

const table = (head: string[], rows: (string | number)[][]): string =>
  [`| ${head.join(" | ")} |`, `|${head.map(() => "--:|").join("")}`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
const ms = (x: number): string => x.toFixed(4);

peerTest(test, allOf(netnsPeer, impairmentPeer, tsharkPeer, ffmpegX264Peer, rtpbinPeer, chromiumPeer), "three proxies, a real stream, one impaired link: the per-hop figures (msmctl and the dashboard) name it and agree with tshark", async () => {
  const lab = NetnsLab.create(["sender", "a", "b", "wan", "c", "sink"]);
  const dir = mkdtempSync(join(tmpdir(), "msm-streams-netns-"));
  const cp = await startControlPlaneProcess(["--dashboard", "127.0.0.1:0"]);
  await waitFor(() => /dashboard on http:/.test(cp.child.stderr), 10_000, "the control plane's dashboard").catch(() => {});
  const dashboardUrl = /dashboard on (http:\/\/\S+)/.exec(cp.child.stderr)?.[1];
  const proxies: NsProxy[] = [];
  try {
    const { manifest, configs } = segments(lab);
    writeFileSync(join(dir, "cam.yaml"), manifest);
    const applied = await cp.msmctl(["apply", "-f", join(dir, "cam.yaml")]);
    assert.is(applied.code, 0, applied.err);
    proxies.push(...await Promise.all(ROLES.map((role) => startNsAgent(lab, role, { controlPlane: cp.address, config: configs.get(role)! }))));

    const cIn = lab.link("c", "wan").from; // c's end of the link from wan
    const bIn = lab.link("b", "a").from; // b's end of the link from a
    const bOut = lab.link("b", "wan").from; // b's end of the link to wan
    const sinkIn = lab.link("sink", "c").from; // the receiver's end of the last link
    const crossCount = CROSS.burst * Math.round((STREAM.seconds * 1000) / ((CROSS.gapMs[0] + CROSS.gapMs[1]) / 2));
    const receiver = await startRtpbinReceiver(lab, "sink", { port: SINK_PORT, rtcpTo: { address: lab.address("c", "sink"), port: C_EGRESS + 1 } });
    const crossSink = await startNsSink(lab, "c", { port: CROSS_PORT, count: crossCount, format: CROSS.format });
    const captures = await Promise.all([
      startCapture(lab, "b", { dev: bIn.dev, filter: `udp dst port ${PORT}`, file: join(dir, "b-in.pcapng") }),
      startCapture(lab, "b", { dev: bOut.dev, filter: `udp dst port ${PORT}`, file: join(dir, "b-out.pcapng") }),
      startCapture(lab, "c", { dev: cIn.dev, filter: `udp dst port ${PORT}`, file: join(dir, "c-in.pcapng") }),
      startCapture(lab, "sink", { dev: sinkIn.dev, filter: `udp dst port ${SINK_PORT}`, file: join(dir, "sink-in.pcapng") }),
    ]);
    // the loss must fall between the two captures: netem drops on a link's sending end, before
    // that end's capture sees the packet; the iptables fallback on its receiving end, after
    const loss = { kind: "random", p: LOSS } as const;
    if (impairmentBackend() === "netem") impair(lab, "wan", "c", { loss, rateKbit: BOTTLENECK_KBIT });
    else {
      impair(lab, "b", "wan", { loss });
      impair(lab, "wan", "c", { rateKbit: BOTTLENECK_KBIT });
    }
    const watch = await PathWatch.start(lab, "sender", "c", proxies);
    const sinkSocket = new DropWatch([SINK_PORT], lab.procNet("sink"));

    // while the stream flows: the stream's path as msmctl describes it, from the proxies' reports (every 2 s)
    const described: StreamPath[] = [];
    let describedText = "";
    let sending = true;
    let dashboard: Promise<string[] | Error> | undefined;
    const describing = (async () => {
      while (sending) {
        const d = await describeStream(cp);
        if (d && d.hops.map((h) => h.to?.reportedAtMs).join() !== described.at(-1)?.hops.map((h) => h.to?.reportedAtMs).join()) described.push(d);
        if (described.length === 4 && !describedText) describedText = (await cp.msmctl(["describe", "stream", "cam"])).out;
        if (described.length === 2 && !dashboard && dashboardUrl) dashboard = dashboardNamesTheLink(dashboardUrl).catch((err: Error) => err);
        await sleep(500);
      }
    })();
    try {
      await Promise.all([
        sendTsOverRtp(lab, "sender", { address: lab.address("a", "sender"), port: PORT }, STREAM),
        runNsBursts(lab, "wan", { address: cIn.ipv4, port: CROSS_PORT, count: crossCount, ...CROSS }),
      ]);
    } finally {
      sending = false;
      await describing;
    }
    assert.ok(dashboardUrl, `the control plane said where its dashboard is:\n${cp.child.stderr.slice(-500)}`);
    const onPage = await dashboard;
    assert.ok(onPage !== undefined, "the dashboard was opened while the stream flowed");
    assert.ok(!(onPage instanceof Error), `the dashboard marks the link b -> c bad, and no other: ${onPage instanceof Error ? onPage.message.split("\n")[0] : ""}`);
    assert.equal(onPage, ["b -> c"]);
    await sleep(1000); // the last packets through the bottleneck and the proxies
    const [capturedBIn, capturedB, capturedC, capturedSink] = await Promise.all(captures.map((cap) => cap.stop()));
    const path = await watch.since();
    const cross = await crossSink.stop();
    const sinkDrops = sinkSocket.since().total;
    await receiver.stop();

    // the proxies' final figures, once the control plane holds them
    let last: { path: StreamPath; points: Sample } | null = null;
    await waitFor(async () => {
      const d = await describeStream(cp);
      const points = d && pointsOf(d);
      last = points && { path: d!, points };
      return ROLES.every((n) => points?.get(n)!.egress.packets === path.stats.get(n)!.segments[0]!.streams[0]?.egress?.packets);
    }, 15_000, "the control plane to hold every proxy's final figures");
    const final = last!.points;
    const [b, c] = [final.get("b")!, final.get("c")!];
    const stream = path.stats.get("c")!.segments[0]!.streams[0]!;
    for (const n of ROLES) assert.is(path.stats.get(n)!.io.receive, "native", `proxy ${n} reads with batched I/O: the kernel's arrival times`);
    assert.ok(described.every((d) => d.ssrc === stream.ssrc), "one SSRC along the path");
    assert.is(stream.payloadType, MP2T_PAYLOAD_TYPE);
    assert.is(stream.clockRateFrom, "payload-type");
    assert.is(capturedBIn!.dropped + capturedB!.dropped + capturedC!.dropped + capturedSink!.dropped, 0, "dumpcap kept every packet (a 64 MiB buffer)");
    const [intoB, atB, atC] = await Promise.all([capturedBIn!, capturedB!, capturedC!].map((cap) => analyseStream(cap.file, PORT, stream.ssrc, stream.clockRate)));
    const atSink = await analyseStream(capturedSink!.file, SINK_PORT, stream.ssrc, stream.clockRate);
    /** The kernel's view of the last link: tshark's jitter at the receiver's interface after packet `seq`. */
    const sinkJitterAfter = (seq: number): number => sharkAfter(atSink, seq, "the sink").jitterMs;
    const cSocket = path.kernel[`c:${PORT}`] ?? 0;
    const ci = c.ingress;
    const be = b.egress;

    // every description with each proxy's figures, the one after the stream last
    const reports = [...described, last!.path].flatMap((d) => {
      const points = pointsOf(d);
      return points ? [{ path: d, points }] : [];
    });
    console.log(`\nimpairment backend: ${impairmentBackend()}; msmctl described the stream ${described.length} times while it flowed, the 4th:\n\n${describedText}`);
    console.log(table(["the stream", "tshark at b's interface", "proxy b (egress)", "tshark at c's interface", "proxy c (ingress)"], [
      ["packets", atB.row.packets, be.packets, atC.row.packets, `${ci.packets} (+ ${cSocket} its socket dropped)`],
      ["lost (RFC 3550 A.3)", atB.row.lost, be.lost, atC.row.lost, ci.lost],
      ["jitter after the last packet (ms)", ms(atB.jitter.at(-1)!), ms(be.jitterMs), ms(atC.jitter.at(-1)!), ms(ci.jitterMs)],
      ["jitter mean / max (ms)", `${atB.row.meanJitterMs} / ${atB.row.maxJitterMs}`, "-", `${atC.row.meanJitterMs} / ${atC.row.maxJitterMs}`, "-"],
    ]));

    // at c, the whole stream: proxy c's loss = tshark's + its socket's drops
    assert.is(ci.lost, atC.row.lost + cSocket, "proxy c's loss: tshark's at c's interface and c's socket drops");
    assert.is(ci.packets + cSocket, atC.row.packets, "proxy c's packets: tshark's, less c's socket drops");
    // at every description: loss and jitter at c, jitter at b, and the hop b -> c as msmctl states it
    // the stream's first packets lost on the link: c counts from a later one, and the hop counts
    // those it never saw as lost on it (tshark's captures at both ends begin before the stream)
    const cLater = (atC.arrivals[0]!.seq - atB.arrivals[0]!.seq) & 0xffff;
    if (cLater > 0) console.log(`the link lost the stream's first ${cLater} packets: c counts from a later one`);
    const estimatesAfter = (at: StreamAnalysis) => (seq: number): number[] => { const f = at.after(seq); return f ? [f.jitterMs] : []; };
    // A proxy held across the second's edge longer than ROLL_GRACE_MS (its last packet before the
    // edge left it that much after the edge) may end that second on its once-a-second timer
    // before it reads what came just before the edge: the second's figures are then those of an
    // earlier packet than any the referee can name (CI, loaded, before the grace: 2.38 ms against
    // 1.79, held over 5 ms), so that second's jitter added is not compared, loudly.
    const heldAcrossEdge = (into: StreamAnalysis, out: StreamAnalysis, end: number): number | null => {
      const last = into.arrivals.filter((p) => p.atS * 1000 < end).at(-1);
      const left = last && out.arrivals.find((p) => p.extSeq === last.extSeq);
      const late = left ? left.atS * 1000 - end : 0;
      return late > HELD_AT_EDGE_MS ? late : null;
    };
    const perReport = reports.map(({ path: d, points }) => {
      const [sb, sc] = [points.get("b")!.egress, points.get("c")!.ingress];
      const [tb, tc] = [sharkAfter(atB, sb.highestSeq, "b"), sharkAfter(atC, sc.highestSeq, "c")];
      const hop = hopNamed(d, "b -> c");
      // the jitter added is each end's estimate as the second both windows hold ended (where they
      // share one, as loss and delay are; else the estimates as reported): tshark's after the
      // last packet each end counted in it. b counts a packet in the second it arrived in there
      // and stamps its jitter when it sends it, which a stall may delay past the edge by any
      // amount (CI: a packet sent over 20 ms late moved b's estimate by 1.9 ms): the packets
      // that second ended with are found in the capture at b's ingress, their estimates in b's
      // egress. Of the candidates' differences, the one nearest msmctl's is its referee.
      const end = commonEnd(sb, sc);
      const [bAt, cAt] = end === null ? [[tb.jitterMs], [tc.jitterMs]]
        : [intoB.aroundEnd(end, 1, 1).flatMap(estimatesAfter(atB)), atC.aroundEnd(end, 1, 1).flatMap(estimatesAfter(atC))];
      const added = hop.jitterAddedMs;
      const sharkAdds = added === null ? null
        : bAt.flatMap((jb) => cAt.map((jc) => jc - jb)).reduce((x, y) => (Math.abs(y - added) < Math.abs(x - added) ? y : x), Infinity);
      const held = end === null ? null : heldAcrossEdge(intoB, atB, end) ?? heldAcrossEdge(atC, atSink, end);
      return { seq: sc.highestSeq, sb, sc, tb, tc, hop, end, sharkAdds, held };
    });
    console.log(`\n${table(["proxy c counted up to (ext. seq)", "lost at c: proxy / tshark", "jitter at b: proxy / tshark", "jitter at c: proxy / tshark", "hop b -> c lost: msmctl / tshark", "hop b -> c adds jitter: msmctl / tshark"],
      perReport.map((r) => [r.seq, `${r.sc.lost} / ${r.tc.lost}`, `${ms(r.sb.jitterMs)} / ${ms(r.tb.jitterMs)}`, `${ms(r.sc.jitterMs)} / ${ms(r.tc.jitterMs)}`,
        `${r.hop.lost ?? "-"} / ${r.tc.lost + cLater - r.tb.lost}`, r.hop.jitterAddedMs === null ? "-" : `${ms(r.hop.jitterAddedMs)} / ${ms(r.sharkAdds!)}`]))}\n`);
    assert.ok(reports.length >= 4, `descriptions with every proxy's figures during the stream: ${reports.length - 1}`);
    // a packet c's socket dropped is missing from the proxy's estimate, not from tshark's: the two
    // estimates part there, by an amount nothing bounds, so then only the loss is compared
    if (cSocket > 0) console.error(`!!! proxy c's socket dropped ${cSocket} packets (a busy machine): jitter at c NOT compared with tshark's this run`);
    for (const r of perReport) {
      assert.ok(Math.abs(r.sc.lost - r.tc.lost) <= cSocket, `at ${r.seq}: proxy c lost ${r.sc.lost}, tshark ${r.tc.lost}`);
      assert.ok(Math.abs(r.sb.jitterMs - r.tb.jitterMs) <= EGRESS_TOLERANCE_MS, `at ${r.seq}: jitter at b's egress ${r.sb.jitterMs} ms, tshark ${r.tb.jitterMs} ms`);
      // (a hop without figures says why in its note: reports of b and c too far apart in time)
      if (r.hop.lost !== null) assert.ok(Math.abs(r.hop.lost - (r.tc.lost + cLater - r.tb.lost)) <= cSocket, `at ${r.seq}: msmctl's b -> c lost ${r.hop.lost}, tshark ${r.tc.lost + cLater - r.tb.lost}`);
      if (cSocket > 0) continue;
      assert.ok(Math.abs(r.sc.jitterMs - r.tc.jitterMs) <= JITTER_TOLERANCE_MS, `at ${r.seq}: jitter at c ${r.sc.jitterMs} ms, tshark ${r.tc.jitterMs} ms`);
      if (r.hop.jitterAddedMs !== null && r.held !== null) {
        console.error(`!!! at ${r.seq}: a proxy was held ${r.held.toFixed(1)} ms across the edge of the second ending ${r.end}: msmctl's b -> c adds ${r.hop.jitterAddedMs} ms NOT compared with tshark's ${r.sharkAdds} ms`);
      } else if (r.hop.jitterAddedMs !== null) {
        assert.ok(Math.abs(r.hop.jitterAddedMs - r.sharkAdds!) <= JITTER_TOLERANCE_MS + EGRESS_TOLERANCE_MS,
          `at ${r.seq}: msmctl's b -> c adds ${r.hop.jitterAddedMs} ms, tshark ${r.sharkAdds} ms (second ending ${r.end})`);
      }
    }
    assert.ok(perReport.filter((r) => r.hop.lost !== null && r.hop.jitterAddedMs !== null).length >= 3, "msmctl gave the hop b -> c figures at 3 descriptions at least");
    if (cSocket === 0) assert.ok(perReport.filter((r) => r.hop.jitterAddedMs !== null && r.held === null).length >= 2, "the hop's jitter compared with tshark's at 2 descriptions at least");

    // the last link c -> sink loses nothing: the receiver's (GStreamer's) last report counts lost
    // what tshark saw lost before c, up to the same packet (and what the sink's socket dropped)
    const rr = stream.receivers[0];
    assert.ok(rr, "the receiver's RTCP reports reached proxy c");
    const beforeC = sharkAfter(atC, rr!.highestSeq, "c").lost;
    console.log(`receiver ${rr!.reporterSsrc.toString(16)}: ${rr!.cumulativeLost} lost up to ${rr!.highestSeq}, of which ${beforeC} before c (tshark); its socket dropped ${sinkDrops}; `
      + `jitter ${rr!.jitterMs.toFixed(3)} ms, tshark at its interface ${sinkJitterAfter(rr!.highestSeq).toFixed(3)} ms after the same packet\n`);
    assert.ok(rr!.cumulativeLost - beforeC <= sinkDrops, `the last link lost ${rr!.cumulativeLost - beforeC} packets, the sink's socket dropped ${sinkDrops}`);

    // the bad hop: every description while the stream flowed that judges b -> c (figures at both
    // ends over a window) marks it bad and worst, and no other hop bad
    const judged = described.filter((d) => hopNamed(d, "b -> c").lossFraction !== null);
    console.log(table(["description", "worst hop", "bad hops (why)"], judged.map((d, i) => [i + 1, d.worst >= 0 ? d.hops[d.worst]!.label : "-",
      d.hops.filter((h) => h.bad).map((h) => `${h.label} (${h.why})`).join("; ")])));
    for (const d of described) if (!judged.includes(d)) console.log(`a description that does not judge b -> c: ${hopNamed(d, "b -> c").note}`);
    assert.ok(judged.length >= 3, `descriptions that judge b -> c while the stream flowed: ${judged.length} of ${described.length}`);
    const said = (h: StreamHop): string => `${h.label} (${h.why}${h.receiver ? `: the receiver's report says ${(h.receiver.fractionLost * 100).toFixed(2)}% lost since its last, c's egress window ${((h.from?.stats?.window?.fractionLost ?? NaN) * 100).toFixed(2)}%` : ""})`;
    let receiverExcused = 0;
    let quietWindows = 0;
    const percent = (f: number): string => `${(f * 100).toFixed(2)}%`;
    for (const d of judged) {
      const bad = d.hops.filter((h) => h.bad);
      // the receiver's own socket dropping packets (a busy machine, counted above) is loss on the
      // last link, which msmctl then rightly names too; without such drops only b -> c is bad
      // a stall on the busy machine upstream of the impaired link is jitter a hop there really
      // added: named for jitter alone, it is excused when tshark at b's interface (the referee)
      // saw the stream's jitter pass the 5 ms threshold too (said below)
      const stalledUpstream = (h: StreamHop): boolean => atB.row.maxJitterMs > BAD_JITTER_MS && UPSTREAM_HOPS.includes(h.label) && /^jitter [^;]*$/.test(h.why ?? "");
      // the receiver stamps arrivals in user space (GStreamer), so a stall of the busy machine at
      // the sink is jitter in its reports that the link did not add: named for jitter alone, the
      // last link is excused when, by the kernel's arrival times at the receiver's interface
      // (tshark there, after the packet the report counted up to), it added at most the threshold
      const stalledReceiver = (h: StreamHop): boolean => {
        if (!h.label.startsWith("c -> receiver") || !h.receiver || !/^jitter [^;]*$/.test(h.why ?? "")) return false;
        const egress = h.receiver.egressJitterMs ?? h.from?.stats?.jitterMs;
        return egress !== undefined && egress !== null && sinkJitterAfter(h.receiver.highestSeq) - egress <= BAD_JITTER_MS;
      };
      const excused = (h: StreamHop): boolean => (sinkDrops > 0 && h.label.startsWith("c -> receiver")) || stalledUpstream(h) || stalledReceiver(h);
      for (const h of bad.filter(stalledUpstream)) console.log(`!!! ${h.label} named bad for ${h.why}: tshark at b's interface saw jitter up to ${atB.row.maxJitterMs} ms (a stall upstream of the impaired link), so it is excused`);
      if (bad.some(stalledReceiver)) receiverExcused++;
      for (const h of bad.filter(stalledReceiver)) {
        console.log(`!!! ${h.label} named bad for ${h.why}: the receiver reported ${h.receiver!.jitterMs.toFixed(3)} ms, tshark at its interface ${sinkJitterAfter(h.receiver!.highestSeq).toFixed(3)} ms after the same packet (the receiver's own stamps, a stall at the sink), so it is excused`);
      }
      // 3% random loss of about 280 packets a window is 8 +- 3 lost: a window of one lost packet
      // or none (under the 0.5% threshold) comes about once in a few hundred. Such a description
      // must then say so with its figures, and stay rare
      const bc = hopNamed(d, "b -> c");
      if (!bc.bad) {
        quietWindows++;
        console.log(`!!! b -> c not named bad in one description: its window lost ${percent(bc.lossFraction!)} (threshold ${percent(BAD_LOSS)}), jitter +${bc.jitterAddedMs?.toFixed(3)} ms`);
        assert.ok(bc.lossFraction! <= BAD_LOSS && (bc.jitterAddedMs ?? 0) <= BAD_JITTER_MS, `b -> c not bad, with figures over the thresholds: ${said(bc)}`);
      }
      assert.equal(bad.filter((h) => !excused(h)).map((h) => h.label), bc.bad ? ["b -> c"] : [],
        `msmctl describe stream marks b -> c bad, and no other hop (the receiver's socket dropped ${sinkDrops}): ${bad.map(said).join("; ")}`);
      if (bc.bad) assert.is(d.hops[d.worst]?.label, "b -> c");
    }
    assert.ok(quietWindows <= 1, `b -> c not named bad in ${quietWindows} of ${judged.length} descriptions`);
    // a stall is a moment: a last link the receiver calls jittery in most descriptions, while the
    // kernel's times at its interface say otherwise, is how the receiver's reports are read (a bug)
    assert.ok(receiverExcused <= judged.length / 2, `the last link excused for the receiver's own stamps in ${receiverExcused} of ${judged.length} descriptions`);

    // delays: on one host every stamp is the same clock's (the kernel's arrival times, the proxies'
    // wall clock), so no hop's mean delay is below zero, but for the packets in flight across a
    // second's edges; the proxies report the same second (agents report just after each), so most
    // descriptions give the link its delay, the bottleneck's queue in it
    const delays = described.flatMap((d) => d.hops.filter((h) => h.delayMs !== null).map((h) => ({ label: h.label, ms: h.delayMs! })));
    console.log(`delays msmctl gave: ${delays.map((x) => `${x.label} ${x.ms.toFixed(2)} ms`).join("; ")}`);
    // Those in flight across a second's edge are different packets at the two ends of a link: a
    // proxy counts a packet it sent in the second it arrived in (so that its dwell is exact), and a
    // stall in it at the edge puts packets late in its egress second that the next proxy counts in
    // the following one. The link's mean then reads low by as much as the proxy's dwell reads high:
    // measured a -> b -0.52 ms beside within a 0.99, and -2.98 beside 3.02 (two test files at
    // once). On one clock the two together (the next proxy's ingress minus this one's) are never
    // below zero, and a proxy's own dwell never is: a clock or sign error would break either.
    for (const d of described) {
      const hops = d.hops;
      hops.forEach((h, i) => {
        if (h.delayMs === null || h.delayMs >= -0.1) return;
        const before = hops[i - 1];
        const explained = !h.label.startsWith("within ") && before?.label.startsWith("within ") && before.delayMs !== null && before.delayMs + h.delayMs >= -0.1;
        console.log(`!!! ${h.label}: a mean delay of ${h.delayMs.toFixed(3)} ms, ${before?.label ?? "nothing"} before it ${before?.delayMs?.toFixed(3) ?? "-"} ms`);
        assert.ok(explained, `${h.label}: a mean delay of ${h.delayMs} ms that the dwell before it (${before?.label}: ${before?.delayMs} ms) does not make up`);
      });
    }
    const bcDelays = delays.filter((x) => x.label === "b -> c").length;
    assert.ok(bcDelays >= described.length / 2, `b -> c given a delay in ${bcDelays} of ${described.length} descriptions`);

    // every step of the path, attributed: only b -> c loses more than nothing, and what it loses the counters on its way dropped
    const drops = dropsPerStep(path);
    const finalSteps = steps(final);
    const meanJitter = (hop: string): number => reports.reduce((sum, r) => sum + steps(r.points).find((h) => h.hop === hop)!.jitterMs, 0) / reports.length;
    console.log(`${table(["step", "lost (one point counted, the next did not)", "dropped on the way (counters)", "jitter added, mean of the reports (ms)"],
      finalSteps.map((h) => [h.hop, h.lost, drops[h.hop]!, meanJitter(h.hop).toFixed(3)]))}\n`);
    console.log(JSON.stringify({ links: path.links, kernel: path.kernel, proxyDrops: path.proxyDrops, cross: { missing: cross.missing, kernelDrops: cross.kernelDrops }, receivers: stream.receivers }));
    for (const h of finalSteps) assert.ok(h.lost <= drops[h.hop]!, `${h.hop}: ${h.lost} lost, ${drops[h.hop]} dropped on the way`);
    // b -> c: what b sent and never reached c's interface was dropped on the link; the link's
    // counters hold that, and the SRs b forwarded and the cross traffic it dropped
    const onLink = be.packets - atC.row.packets;
    const linkDropped = drops["b -> c"]! - cSocket;
    const rtcpForwarded = path.stats.get("b")!.segments[0]!.rtcpIn;
    assert.ok(linkDropped >= onLink && linkDropped - onLink <= rtcpForwarded + cross.missing,
      `b -> c dropped ${linkDropped}: the stream's ${onLink}, the rest of ${rtcpForwarded} SRs and ${cross.missing} cross packets missing`);
    assert.is(atB.row.packets - atC.row.packets, onLink, "tshark at both ends of the link: what entered and did not come out");
    // the random loss: 3% of ~3500 packets, 105 +- 10; five standard deviations either side. The
    // bottleneck's queue drops come on top when a stall sends a backlog at once (a busy machine:
    // 72 of them once), attributed above
    const lossy = path.links[impairmentBackend() === "netem" ? "wan>c" : "b>wan"]!;
    const fraction = lossy.lost / lossy.offered;
    assert.ok(fraction > 0.015 && fraction < 0.045, `the link's random loss dropped ${(fraction * 100).toFixed(2)}% of what it carried (its bottleneck's queue ${path.links["wan>c"]!.queueDrops} more)`);
    // the jitter: tshark says the link adds it (measured: its mean rises 2.2 ms across the link),
    // and so do the proxies' reports (measured: 1.7 to 3 ms on average, any other step under 0.7 ms)
    assert.ok(atC.row.meanJitterMs - atB.row.meanJitterMs >= 1, `tshark: mean jitter ${atB.row.meanJitterMs} ms into the link, ${atC.row.meanJitterMs} ms out of it`);
    const others = Math.max(...finalSteps.filter((h) => h.hop !== "b -> c").map((h) => Math.abs(meanJitter(h.hop))));
    assert.ok(meanJitter("b -> c") >= 2 * others, `b -> c adds ${meanJitter("b -> c").toFixed(3)} ms of jitter on average, another step up to ${others.toFixed(3)} ms`);
  } finally {
    await Promise.allSettled(proxies.map((p) => p.stop()));
    await cp.stop();
    lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
