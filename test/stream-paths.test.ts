// buildStreamPaths (controlplane/server/stream-paths.ts) on constructed segments and reports: a
// chain of three proxies joined by listen addresses, a wildcard listen joined by the proxy's
// reported addresses (and not by another host's), loopback only on one host, multicast and
// destination fan-out (one path per end), a destination's SSRC rewrite, the bad hop named (loss
// on the middle link, jitter added in a proxy, all of it lost on a link), what a missing, old or
// per-stream-less report gives, and the names DescribeStream matches. Inputs are deep-frozen:
// the function must not change them.
import * as assert from "uvu/assert";
import type { Endpoint, Segment } from "../controlplane/api/proto.js";
import { DEFAULT_BAD_HOP, hopJudged, type StreamHop, type StreamPath } from "../controlplane/api/streams.js";
import { buildStreamPaths, closeNames, pathsNamed, percentAbove, type ProxyReport, type ReportedSegment } from "../controlplane/server/stream-paths.js";
import type { ReceiverReport, StreamDirection, StreamStats } from "../runtime/streams/types.js";
import { reportsFromPages } from "../controlplane/server/stream-reports.js";
import { suite } from "./lib/suite.js";
import { describeStreamPath } from "../cli/msmctl/streams.js";
import { renderMetrics } from "../controlplane/dashboard/metrics.js";
import { direction, receiverReport, streamStats, type DirectionFigures } from "./lib/stream-stats.js";

const test = suite("stream paths", { timeoutMs: 10_000 });

const NOW = 1_800_000_000_000;
const SSRC = 0x1234abcd;

function frozen<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) frozen(v);
  }
  return value;
}

function ep(address: string, port: number, extra: Partial<Endpoint> = {}): Endpoint {
  return { address, port, rtcpPort: 0, ...extra };
}

function segment(name: string, proxy: string, listen: Endpoint, destinations: Endpoint[]): Segment {
  return { name, proxy, listen, rtcpMux: false, egress: null, destinations, source: null, chain: [], failure: null, revision: 1, legs: [] };
}

const dir = (o: DirectionFigures = {}): StreamDirection => direction(NOW, o);
const stream = (ingress: StreamDirection | null, egress: StreamDirection | null, receivers: ReceiverReport[] = [], ssrc = SSRC): StreamStats => streamStats(ssrc, ingress, egress, receivers);
const receiver = (ssrc: number, o: { fraction?: number; link?: number | null; jitter?: number; egressJitter?: number | null; rtt?: number | null; atMs?: number } = {}): ReceiverReport => receiverReport(ssrc, o.atMs ?? NOW - 1000, o);

function report(segments: ReportedSegment[], o: { atMs?: number; addresses?: string[] } = {}): ProxyReport {
  // taken after the last windows ended (NOW - 500): what did not arrive by then is lost
  return { atMs: o.atMs ?? NOW - 200, snapshot: { ...(o.addresses ? { addresses: o.addresses } : {}), segments } };
}

function build(segments: Segment[], reports: Record<string, ProxyReport>, thresholds = DEFAULT_BAD_HOP): StreamPath[] {
  return buildStreamPaths(frozen(segments), frozen(new Map(Object.entries(reports))), thresholds, { nowMs: NOW });
}

const hop = (p: StreamPath, label: string): StreamHop => {
  const h = p.hops.find((x) => x.label === label);
  if (!h) throw new Error(`no hop '${label}' in ${p.hops.map((x) => x.label).join(", ")}`);
  return h;
};

/** cam (proxy-a) -> relay (proxy-b) -> edge (proxy-c) -> a receiver, each listening on its own address. */
const CHAIN = [
  segment("cam", "proxy-a", ep("10.0.0.1", 5000), [ep("10.0.0.2", 6000)]),
  segment("relay", "proxy-b", ep("10.0.0.2", 6000), [ep("10.0.0.3", 7000)]),
  segment("edge", "proxy-c", ep("10.0.0.3", 7000), [ep("10.0.0.9", 8000)]),
];

test("the last link's jitter added: the receiver's jitter against the proxy's egress jitter as of its report, not as of the read (a congested path moves both within seconds)", () => {
  const paths = (egressJitter: number | null) => build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ jitter: 1 }), dir({ jitter: 1 }))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ jitter: 1 }), dir({ jitter: 1 }))] }]),
    // now c's egress jitter is 1 ms; when the receiver's report came (9 ms) it was 8.5 ms
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ jitter: 1 }), dir({ jitter: 1 }), [receiver(0xbeef, { jitter: 9, egressJitter })])] }]),
  });
  const aligned = hop(paths(8.5)[0]!, "proxy-c -> receiver 0x0000beef");
  assert.ok(Math.abs(aligned.jitterAddedMs! - 0.5) < 1e-9);
  assert.not.ok(aligned.bad);
  const older = hop(paths(null)[0]!, "proxy-c -> receiver 0x0000beef"); // a proxy that does not say: compared with now
  assert.ok(Math.abs(older.jitterAddedMs! - 8) < 1e-9);
  assert.ok(older.bad);
});

test("a chain of three proxies: one path, every hop in order, the loss of the middle link named as the bad hop", () => {
  const paths = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ transit: 100, jitter: 1 }), dir({ transit: 101, jitter: 1.2 }))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ transit: 103, jitter: 1.5 }), dir({ transit: 104, jitter: 1.6 }))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ lost: 30, fraction: 0.04, transit: 110, jitter: 2.5 }), dir({ lost: 30, fraction: 0.04, transit: 111, jitter: 2.6 }), [receiver(0xbeef, { fraction: 0.045, link: 0.005, jitter: 3, rtt: 8 })])] }]),
  });
  assert.is(paths.length, 1);
  const p = paths[0]!;
  assert.is(p.name, "cam", "one SSRC: the first segment's name");
  assert.is(p.ssrc, SSRC);
  assert.equal(p.segments, [{ proxy: "proxy-a", segment: "cam" }, { proxy: "proxy-b", segment: "relay" }, { proxy: "proxy-c", segment: "edge" }]);
  assert.equal(p.hops.map((h) => [h.kind, h.label]), [
    ["first-link", "sender -> proxy-a"],
    ["proxy", "within proxy-a"],
    ["link", "proxy-a -> proxy-b"],
    ["proxy", "within proxy-b"],
    ["link", "proxy-b -> proxy-c"],
    ["proxy", "within proxy-c"],
    ["last-link", "proxy-c -> receiver 0x0000beef"],
  ]);
  const bc = hop(p, "proxy-b -> proxy-c");
  assert.ok(Math.abs(bc.lossFraction! - 0.04) < 1e-9);
  assert.is(bc.lost, 30, "both ends count from the same first sequence number");
  assert.ok(Math.abs(bc.jitterAddedMs! - 0.9) < 1e-9);
  assert.is(bc.delayMs, 6, "the mean transit at C's ingress minus B's egress");
  assert.ok(bc.bad);
  assert.match(bc.why!, /^loss 4\.00% > 0\.50%$/);
  assert.is(p.worst, p.hops.indexOf(bc), "the worst hop is the middle link");
  assert.not.ok(hop(p, "proxy-a -> proxy-b").bad);
  assert.is(hop(p, "proxy-a -> proxy-b").delayMs, 2);
  assert.is(hop(p, "within proxy-b").delayMs, 1, "the proxy's dwell");
  const last = hop(p, "proxy-c -> receiver 0x0000beef");
  assert.ok(Math.abs(last.lossFraction! - 0.005) < 1e-9, "the last link's loss as the proxy paired the receiver's reports with its egress");
  assert.is(last.delayMs, 4, "half the round trip");
  assert.is(last.receiver!.reporterSsrc, 0xbeef);
  assert.is(last.to, null);
  assert.not.ok(last.bad, "0.5% is not above 0.5%");
  assert.is(hop(p, "sender -> proxy-a").to!.stats!.packets, 1000);
  assert.ok(Math.abs(p.lossFraction! - 0.045) < 1e-9, "end to end: what the receiver reports (its fraction lost covers the whole path)");
  assert.is(p.jitterMs, 3);
  assert.is(p.bitrateBps, 480_000);
  assert.is(p.packetRate, 50);
  for (const h of p.hops) assert.is(h.note, null, `${h.label}: every figure known`);
});

test("end to end: the worst loss and the worst jitter of the receivers, never less loss than the last proxy saw", () => {
  const edge = (receivers: ReceiverReport[], fraction = 0.04) => ({
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ transit: 100, jitter: 1 }), dir({ transit: 101, jitter: 1.2 }))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ transit: 103, jitter: 1.5 }), dir({ transit: 104, jitter: 1.6 }))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ fraction, transit: 110, jitter: 2.5 }), dir({ fraction, transit: 111, jitter: 2.6 }), receivers)] }]),
  });
  const [p] = build(CHAIN, edge([receiver(0xbeef, { fraction: 0.01, jitter: 10 }), receiver(0xcafe, { fraction: 0.045, jitter: 3 })]));
  assert.equal([p!.lossFraction, p!.jitterMs], [0.045, 10]);
  const [hearsNothing] = build(CHAIN, edge([receiver(0xbeef, { fraction: 0, jitter: 1 })]));
  assert.ok(Math.abs(hearsNothing!.lossFraction! - 0.04) < 1e-9, "a receiver reporting no loss does not hide what proxy-c saw lost");
});

test("thresholds: jitter a proxy adds is bad beyond --bad-jitter-ms; the worst is the lossiest bad hop, then the most jitter; no bad hop: worst -1", () => {
  const reports = {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ jitter: 1 }), dir({ jitter: 9 }))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ jitter: 9.5, fraction: 0.01 }), dir({ jitter: 10, fraction: 0.01 }))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ jitter: 10, fraction: 0.03 }), dir({ jitter: 10, fraction: 0.03 }))] }]),
  };
  const [p] = build(CHAIN, reports);
  const within = hop(p!, "within proxy-a");
  assert.ok(within.bad);
  assert.is(within.why, "jitter +8.0 ms > 5 ms");
  assert.ok(hop(p!, "proxy-a -> proxy-b").bad);
  assert.ok(hop(p!, "proxy-b -> proxy-c").bad);
  assert.is(p!.hops[p!.worst]!.label, "proxy-b -> proxy-c", "2% beats 1%, and beats jitter alone");
  const [lenient] = build(CHAIN, reports, { loss: 0.5, jitterMs: 50 });
  assert.is(lenient!.worst, -1);
  assert.ok(lenient!.hops.every((h) => !h.bad && h.why === null));
});

test("a stream that stopped: its jitter estimates stand still at their last value and are not judged; the hops are fine, not bad, and say why", () => {
  const reports = {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ jitter: 8, rate: 0 }), dir({ jitter: 9, rate: 0 }))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ jitter: 9.5, rate: 0 }), dir({ jitter: 10, rate: 0 }))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ jitter: 10, rate: 0 }), dir({ jitter: 10, rate: 0 }), [receiver(0xbeef, { jitter: 30, egressJitter: 10 })])] }]),
  };
  const [p] = build(CHAIN, reports);
  assert.is(p!.worst, -1, "no bad hop");
  for (const label of ["sender -> proxy-a", "within proxy-a", "proxy-a -> proxy-b", "proxy-c -> receiver 0x0000beef"]) {
    const h = hop(p!, label);
    assert.equal([h.bad, h.jitterAddedMs, h.lossFraction], [false, null, 0], label);
    assert.match(h.note!, "no packets over the last two windows (the stream stopped?)", label);
  }
  // the same stream sending: the jitter proxy-a adds is bad; one quiet second (the window before sent) is no stop
  reports["proxy-a"] = report([{ name: "cam", streams: [stream(dir({ jitter: 1 }), dir({ jitter: 9 }))] }]);
  assert.ok(hop(build(CHAIN, reports)[0]!, "within proxy-a").bad);
  const quietSecond = (d: ReturnType<typeof dir>): ReturnType<typeof dir> => ({ ...d, previousWindow: dir().window });
  reports["proxy-a"] = report([{ name: "cam", streams: [stream(quietSecond(dir({ jitter: 1, rate: 0 })), quietSecond(dir({ jitter: 9, rate: 0 })))] }]);
  assert.ok(hop(build(CHAIN, reports)[0]!, "within proxy-a").bad, "a quiet second is judged as any");
});

test("a wildcard listen is joined by the addresses its proxy reports; not by another host's, nor without addresses", () => {
  const segments = [
    segment("cam", "proxy-a", ep("10.0.0.1", 5000), [ep("10.0.0.2", 6000)]),
    segment("relay", "proxy-b", ep("0.0.0.0", 6000), [ep("10.0.0.9", 8000)]),
    segment("other", "proxy-x", ep("0.0.0.0", 6000), [ep("10.0.0.9", 8000)]),
    segment("v6", "proxy-b6", ep("::", 6000), [ep("fd00::9", 8000)]),
  ];
  const streams = [stream(dir(), dir())];
  const paths = build(segments, {
    "proxy-a": report([{ name: "cam", streams }], { addresses: ["10.0.0.1", "127.0.0.1"] }),
    "proxy-b": report([{ name: "relay", streams }], { addresses: ["127.0.0.1", "10.0.0.2", "::1"] }),
    "proxy-x": report([{ name: "other", streams: [stream(dir(), dir(), [], 0x77)] }], { addresses: ["10.0.0.7"] }),
    // IPv6 sockets are v6-only: "::" is not joined by an IPv4 destination, even one of its host's
    "proxy-b6": report([{ name: "v6", streams: [stream(dir(), dir(), [], 0x66)] }], { addresses: ["10.0.0.2", "fd00::2"] }),
  });
  const cam = paths.find((p) => p.name === "cam")!;
  assert.equal(cam.segments.map((s) => s.segment), ["cam", "relay"]);
  assert.equal(paths.map((p) => p.name), ["cam", "other", "v6"], "the others are streams of their own");

  const unknown = build(segments.slice(0, 2), {
    "proxy-a": report([{ name: "cam", streams }]),
    "proxy-b": report([{ name: "relay", streams }]),
  });
  assert.equal(unknown.map((p) => p.segments.map((s) => s.segment)), [["cam"], ["relay"]], "no addresses reported: a wildcard listen cannot be joined");
});

test("a loopback destination joins only a segment on the same host (same addresses reported), an IPv6 one in any spelling", () => {
  const segments = [
    segment("cam", "proxy-a", ep("127.0.0.1", 5000), [ep("127.0.0.1", 6000), ep("0:0:0:0:0:0:0:1", 6002)]),
    segment("here", "proxy-b", ep("127.0.0.1", 6000), []),
    segment("here6", "proxy-b", ep("::1", 6002), []),
    segment("elsewhere", "proxy-c", ep("127.0.0.1", 6000), []),
  ];
  const host1 = ["127.0.0.1", "::1", "192.168.1.10"];
  const paths = build(segments, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir())] }], { addresses: host1 }),
    "proxy-b": report([{ name: "here", streams: [] }, { name: "here6", streams: [] }], { addresses: host1 }),
    "proxy-c": report([{ name: "elsewhere", streams: [] }], { addresses: ["127.0.0.1", "::1", "192.168.1.11"] }),
  });
  assert.equal(paths.map((p) => [p.name, p.segments.map((s) => s.segment)]), [["cam:here", ["cam", "here"]], ["cam:here6", ["cam", "here6"]]]);
});

test("fan-out: one path per end (a segment that sends to no further segment, or also where none listens); receivers are the end's own", () => {
  const segments = [
    segment("cam", "proxy-a", ep("10.0.0.1", 5000), [ep("10.0.0.2", 6000), ep("10.0.0.3", 7000), ep("10.0.0.50", 9000)]),
    segment("to-b", "proxy-b", ep("10.0.0.2", 6000), [ep("10.0.0.60", 9000)]),
    segment("to-c", "proxy-c", ep("10.0.0.3", 7000), [ep("10.0.0.70", 9000)]),
  ];
  const paths = build(segments, {
    // the receiver behind B reports to B, and B passes its RTCP back to A: at A it is B's, not A's
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir(), [receiver(0xb0b), receiver(0xa11ce)])] }]),
    "proxy-b": report([{ name: "to-b", streams: [stream(dir(), dir(), [receiver(0xb0b)])] }]),
    "proxy-c": report([{ name: "to-c", streams: [stream(dir({ fraction: 0.2 }), dir({ fraction: 0.2 }))] }]),
  });
  assert.equal(paths.map((p) => p.name), ["cam:cam", "cam:to-b", "cam:to-c"]);
  const direct = paths[0]!;
  assert.equal(direct.hops.filter((h) => h.kind === "last-link").map((h) => h.receiver!.reporterSsrc), [0xa11ce], "A's own receiver only");
  assert.equal(paths[1]!.hops.filter((h) => h.kind === "last-link").map((h) => h.receiver!.reporterSsrc), [0xb0b]);
  const toC = paths[2]!;
  assert.is(toC.hops[toC.worst]!.label, "proxy-a -> proxy-c");
  assert.is(paths[1]!.worst, -1, "the other branch is fine");
});

test("a multicast group: every segment listening on it is joined, on any proxy", () => {
  const segments = [
    segment("src", "proxy-a", ep("10.0.0.1", 5000), [ep("239.1.2.3", 5004)]),
    segment("sub-1", "proxy-b", ep("239.1.2.3", 5004, { interface: "10.0.0.2" }), []),
    segment("sub-2", "proxy-c", ep("239.1.2.3", 5004), []),
  ];
  const paths = build(segments, {
    "proxy-a": report([{ name: "src", streams: [stream(dir(), dir())] }], { addresses: ["10.0.0.1"] }),
    "proxy-b": report([{ name: "sub-1", streams: [stream(dir(), dir())] }], { addresses: ["10.0.0.2"] }),
    "proxy-c": report([{ name: "sub-2", streams: [stream(dir(), dir())] }], { addresses: ["10.0.0.3"] }),
  });
  assert.equal(paths.map((p) => p.name), ["src:sub-1", "src:sub-2"]);
});

test("several SSRCs in a segment: one stream each, named NAME/0xSSRC; a destination's SSRC rewrite is followed", () => {
  const segments = [
    segment("cam", "proxy-a", ep("10.0.0.1", 5000), [ep("10.0.0.2", 6000, { ssrc: 0x2222 })]),
    segment("relay", "proxy-b", ep("10.0.0.2", 6000), []),
  ];
  const one = build(segments, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir())] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ fraction: 0.1 }), null, [], 0x2222)] }]),
  });
  assert.equal(one.map((p) => [p.name, p.ssrc, p.segments.length]), [["cam", SSRC, 2]], "0x2222 at B is A's stream, not a new one");
  assert.ok(Math.abs(hop(one[0]!, "proxy-a -> proxy-b").lossFraction! - 0.1) < 1e-9);

  const two = build(segments.slice(0, 1), {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir(), [], 0xa), stream(dir(), dir(), [], 0xb)] }]),
  });
  assert.equal(two.map((p) => p.name), ["cam/0x0000000a", "cam/0x0000000b"]);
});

test("a sender restarted with a new SSRC: the stream sending keeps the segment's name (alerts and dashboards on it carry on), the stopped one is named with its SSRC until forgotten", () => {
  const restarted = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ rate: 0 }), dir({ rate: 0 }), [], 0xa), stream(dir(), dir(), [], 0xb)] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ rate: 0 }), dir({ rate: 0 }), [], 0xa), stream(dir(), dir(), [], 0xb)] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ rate: 0 }), dir({ rate: 0 }), [], 0xa), stream(dir({ fraction: 0.04 }), dir({ fraction: 0.04 }), [], 0xb)] }]),
  });
  assert.equal(restarted.map((p) => [p.name, p.ssrc]), [["cam", 0xb], ["cam/0x0000000a", 0xa]]);
  assert.is(restarted[0]!.hops[restarted[0]!.worst]!.label, "proxy-b -> proxy-c", "the name's hops are the live stream's");
  // both stopped, or both sending: each named with its SSRC, as before
  const both = (rate: number) => build(CHAIN.slice(0, 1), {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ rate }), dir({ rate }), [], 0xa), stream(dir({ rate }), dir({ rate }), [], 0xb)] }]),
  }).map((p) => p.name);
  assert.equal(both(50), ["cam/0x0000000a", "cam/0x0000000b"]);
  assert.equal(both(0), ["cam/0x0000000a", "cam/0x0000000b"]);
});

test("end to end: a stream that enters sending and reaches its last measured point not at all is all lost, though a proxy between them is unknown (frozen, not reporting)", () => {
  const silent = (): StreamDirection => {
    const d = dir({ rate: 0 });
    return { ...d, lastMs: NOW - 15_000, previousWindow: { ...d.window!, endMs: d.window!.endMs - 1000 } };
  };
  const reports = {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir())] }]),
    // proxy-b stopped (SIGSTOP) 15 s ago: its last report is stale, and nothing passes it
    "proxy-b": report([{ name: "relay", streams: [stream(dir(), dir())] }], { atMs: NOW - 15_000 }),
    "proxy-c": report([{ name: "edge", streams: [stream(silent(), silent(), [receiver(0xbeef, { fraction: 0, atMs: NOW - 12_000 })])] }]),
  };
  const [p] = build(CHAIN, reports);
  assert.is(hop(p!, "proxy-a -> proxy-b").lossFraction, null, "the hops around proxy-b are unknown");
  assert.is(p!.lossFraction, 1, "all of it lost between proxy-a, which sends, and proxy-c, which hears nothing");
  // a stream that stopped at its sender: nothing enters, nothing lost
  reports["proxy-a"] = report([{ name: "cam", streams: [stream(silent(), silent())] }]);
  assert.is(build(CHAIN, reports)[0]!.lossFraction, 0);
});

test("the clock rate the jitter is counted in, and where it came from: describe stream says when it is assumed (an audio stream's jitter is then wrong)", () => {
  const opus = { ...stream(dir({ jitter: 9.3 }), dir({ jitter: 9.3 })), payloadType: 111, clockRate: 90000, clockRateFrom: "assumed" as const };
  const [p] = build(CHAIN.slice(0, 1), { "proxy-a": report([{ name: "cam", streams: [opus] }]) });
  assert.equal(p!.clock, { payloadType: 111, clockRate: 90000, from: "assumed" });
  assert.match(describeStreamPath(p!, DEFAULT_BAD_HOP, NOW), /^Clock:\s+payload type 111, 90000 Hz ASSUMED: no clockRates entry for it; a stream of another rate \(audio\) has its jitter off by the ratio of the rates$/m);
  const [v] = build(CHAIN.slice(0, 1), { "proxy-a": report([{ name: "cam", streams: [{ ...opus, payloadType: 33, clockRateFrom: "payload-type" }] }]) });
  assert.match(describeStreamPath(v!, DEFAULT_BAD_HOP, NOW), /^Clock:\s+payload type 33, 90000 Hz \(RFC 3551\)$/m);
  const [c] = build(CHAIN.slice(0, 1), { "proxy-a": report([{ name: "cam", streams: [{ ...opus, clockRate: 48000, clockRateFrom: "config" }] }]) });
  assert.match(describeStreamPath(c!, DEFAULT_BAD_HOP, NOW), /^Clock:\s+payload type 111, 48000 Hz \(the segment's clockRates\)$/m);
});

test("a verdict's two figures differ as printed: 0.504% > 0.500%, not 0.50% > 0.50%", () => {
  assert.is(percentAbove(0.04, 0.005), "4.00% > 0.50%");
  assert.is(percentAbove(0.00504, 0.005), "0.504% > 0.500%");
  assert.is(percentAbove(0.0000051, 0.000005), "0.00051% > 0.00050%");
});

test("no data: a proxy in the middle that never reported keeps its place, its hops without figures and saying why", () => {
  const paths = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir())] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ fraction: 0.5 }), dir({ fraction: 0.5 }))] }]),
  });
  assert.is(paths.length, 1);
  const p = paths[0]!;
  assert.equal(p.segments.map((s) => s.proxy), ["proxy-a", "proxy-b", "proxy-c"]);
  for (const label of ["proxy-a -> proxy-b", "within proxy-b", "proxy-b -> proxy-c"]) {
    const h = hop(p, label);
    assert.equal([h.lossFraction, h.jitterAddedMs, h.delayMs, h.bad], [null, null, null, false], label);
    assert.is(h.note, "proxy-b has not reported", label);
  }
  assert.is(hop(p, "proxy-b -> proxy-c").to!.reportedAtMs, NOW - 200);
  assert.is(hop(p, "within proxy-b").from!.reportedAtMs, 0);
  assert.is(p.worst, -1, "loss that cannot be placed is not pinned on a hop");
  assert.is(p.lossFraction, 0.5, "end to end still measured");
  // shown as unknown, not as fine: msmctl's STATE and bad-hop line, the dashboard's msm_hop_bad
  const text = describeStreamPath(p, DEFAULT_BAD_HOP, NOW);
  assert.match(text, /^\s+within proxy-b\s+proxy\s.*\sunknown$/m);
  assert.match(text, /^\s+sender -> proxy-a\s+first-link\s.*\sok$/m);
  assert.match(text, /Bad hop: +none found, but \d+ of \d+ hops have no figures \(see the notes\)/, text);
  const metrics = renderMetrics({ paths, proxies: [] }, 10, { clients: 0, dropped: 0, refused: 0 });
  assert.not.ok(metrics.includes('msm_hop_bad{stream="cam",hop="within proxy-b"'), "no sample where nothing was measured");
  assert.ok(metrics.includes('msm_hop_bad{stream="cam",hop="sender -> proxy-a",kind="first-link"} 0\n'));
});

test("no data: a first proxy without a report still starts the path; no reports at all, no paths; an older proxy without per-stream stats says so", () => {
  const headless = build(CHAIN, {
    "proxy-b": report([{ name: "relay", streams: [stream(dir(), dir())] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir(), dir())] }]),
  });
  assert.equal(headless.map((p) => [p.name, p.segments.length]), [["cam", 3]]);
  assert.is(headless[0]!.hops[0]!.note, "proxy-a has not reported");
  assert.equal(build(CHAIN, {}), []);
  const old = build(CHAIN, {
    "proxy-a": report([{ name: "cam" }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir(), dir())] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir(), dir())] }]),
  });
  assert.equal(old.map((p) => p.name), ["cam"]);
  assert.is(hop(old[0]!, "proxy-a -> proxy-b").note, "proxy-a reports no per-stream stats (an older proxy)");
});

test("a hop's lost: a far end that counted from a later packet (the first ones lost on the way) has the packets it never counted lost on the hop; one that began afresh later is not compared", () => {
  const paths = (far: DirectionFigures & { firstMs?: number }, within = far) => build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir())] }]),
    // b's egress counted 1000 from 100, 2 of them lost before it
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ lost: 2 }), dir({ lost: 2 }))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream({ ...dir(far), firstMs: far.firstMs ?? NOW - 20_000 }, dir(within))] }]),
  })[0]!;
  const lostOnLink = (far: DirectionFigures & { firstMs?: number }): number | null => hop(paths(far), "proxy-b -> proxy-c").lost;
  assert.is(lostOnLink({ base: 100, expected: 1000, lost: 9 }), 7, "the same first packet: c's lost less b's");
  // c's first packet was 105 (up to the same 1099): 100..104 never reached it
  assert.is(lostOnLink({ base: 105, expected: 995, lost: 9 }), 12);
  // across the wrap: b counted from 65530, c from 3 (9 packets later)
  const wrapped = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir())] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ base: 65530 }), dir({ base: 65530 }))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ base: 65539, expected: 991, lost: 1 }), dir({ base: 65539, expected: 991, lost: 1 }))] }]),
  });
  assert.is(hop(wrapped[0]!, "proxy-b -> proxy-c").lost, 10);
  // c counted from before b (b restarted its count): not compared
  assert.is(lostOnLink({ base: 90, expected: 1010, lost: 0 }), null);
  // c's first packet beyond all b counted: not the same run of the stream
  assert.is(lostOnLink({ base: 1200, expected: 1000, lost: 0 }), null);
  // c began counting 10 s after b (added mid-stream, or its worker restarted): its count starts afresh, nothing was lost
  assert.is(lostOnLink({ base: 600, expected: 500, lost: 0, firstMs: NOW - 10_000 }), null);
  // more than RFC 3550's MAX_DROPOUT later: not loss
  assert.is(lostOnLink({ base: 3200, expected: 0x10000, lost: 0 }), null);
  // within a proxy the chain may renumber the stream (a translator): egress from another first
  // sequence number than ingress is not loss there
  assert.is(hop(paths({ base: 100 }, { base: 140, expected: 960 }), "within proxy-c").lost, null);
});

test("loss and delay over the same second at both ends, the latest two windows each report holds; apart, not compared and said why", () => {
  const at = (endMs: number, o: { transit?: number; fraction?: number; ms?: number } = {}) => ({
    ms: o.ms ?? 1000, endMs, expected: 50, lost: Math.round(50 * (o.fraction ?? 0)), fractionLost: o.fraction ?? 0, packetRate: 50, bitrateBps: 480_000, transitMs: o.transit ?? 0,
  });
  const S = Math.floor(NOW / 1000) * 1000 - 1000; // a whole second before NOW
  const cWith = (window: ReturnType<typeof at>, previousWindow: ReturnType<typeof at> | null) => build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ transit: 100 }), dir({ transit: 101 }))] }]),
    // b's last window ended at S (4% lost there), the one before at S - 1000
    "proxy-b": report([{ name: "relay", streams: [stream(dir(), { ...dir(), window: at(S, { transit: 104 }), previousWindow: at(S - 1000, { transit: 90, fraction: 0.04 }) })] }]),
    "proxy-c": report([{ name: "edge", streams: [stream({ ...dir(), window, previousWindow }, { ...dir(), window, previousWindow })] }]),
  })[0]!;
  // c's report is a second later: its window before the last is b's last
  let bc = hop(cWith(at(S + 1000, { transit: 130, fraction: 0.5 }), at(S, { transit: 110, fraction: 0.02 })), "proxy-b -> proxy-c");
  assert.equal([bc.delayMs, bc.lossFraction, bc.note], [6, 0.02, null], "second S at both: 110 - 104 ms, 2% - 0%");
  // both last windows the same second: that one, the latest
  bc = hop(cWith(at(S, { transit: 111 }), at(S - 1000, { transit: 95, fraction: 0.06 })), "proxy-b -> proxy-c");
  assert.ok(Math.abs(bc.delayMs! - 7) < 1e-9 && bc.lossFraction === 0, JSON.stringify(bc));
  // no second in common: no loss or delay compared, and the note says why
  bc = hop(cWith(at(S + 2000, { transit: 130, fraction: 0.5 }), at(S + 1000)), "proxy-b -> proxy-c");
  assert.equal([bc.delayMs, bc.lossFraction, bc.bad], [null, null, false]);
  assert.match(bc.note!, /^loss and delay not compared: the two ends' last windows are different seconds/);
  // a stream's first window, longer than a second at one end: not the same span
  bc = hop(cWith(at(S, { transit: 111, ms: 1195 }), null), "proxy-b -> proxy-c");
  assert.is(bc.delayMs, null);
});

test("the stream's first window at both ends of a hop: compared, though the far end's began a link's delay later (the same packets from the same first sequence number)", () => {
  const S = Math.floor(NOW / 1000) * 1000 - 1000;
  const first = (ms: number, transit: number, fraction = 0) => ({
    ms, endMs: S, expected: 60, lost: Math.round(60 * fraction), fractionLost: fraction, packetRate: 50, bitrateBps: 480_000, transitMs: transit,
  });
  const paths = (c: StreamDirection) => build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ transit: 100 }), dir({ transit: 101 }))] }]),
    // b's first packet 1,195.25 ms before S (less than 200 ms before a second's end: its first window runs on to S)
    "proxy-b": report([{ name: "relay", streams: [stream(dir(), { ...dir(), window: first(1195.25, 104), previousWindow: null })] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(c, c)] }]),
  })[0]!;
  // c's first packet 6.5 ms later
  let bc = hop(paths({ ...dir(), window: first(1188.75, 110.5, 0.05), previousWindow: null }), "proxy-b -> proxy-c");
  assert.equal([bc.delayMs, bc.lossFraction, bc.note], [6.5, 0.05, null], "the first windows compared");
  // c began counting later in the stream (its first packets lost, or c restarted): not the same packets
  bc = hop(paths({ ...dir({ base: 140, expected: 960 }), window: first(1188.75, 110.5, 0.05), previousWindow: null }), "proxy-b -> proxy-c");
  assert.equal([bc.delayMs, bc.lossFraction], [null, null], "from another first sequence number: not compared");
});

test("jitter added over the same second at both ends: each window's jitter as it ended, not the estimates of two reports taken up to a second apart", () => {
  const S = Math.floor(NOW / 1000) * 1000 - 1000;
  const at = (endMs: number, jitterMs?: number) => ({
    ms: 1000, endMs, expected: 150, lost: 0, fractionLost: 0, packetRate: 150, bitrateBps: 1_000_000, transitMs: 100, ...(jitterMs === undefined ? {} : { jitterMs }),
  });
  // a clean link b -> c behind a jittery one: the estimate moves by milliseconds within a second,
  // and b reported its egress at 2 ms while c, later, read 9 ms at its ingress; at the end of the
  // second S both stood at 6.5 ms (c 6.6)
  const paths = (bWindow: ReturnType<typeof at>, cWindow: ReturnType<typeof at>) => build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ jitter: 0.5 }), dir({ jitter: 0.5 }))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream({ ...dir({ jitter: 2 }), window: bWindow, previousWindow: null }, { ...dir({ jitter: 2 }), window: bWindow, previousWindow: null })] }]),
    "proxy-c": report([{ name: "edge", streams: [stream({ ...dir({ jitter: 9 }), window: cWindow, previousWindow: null }, { ...dir({ jitter: 9 }), window: cWindow, previousWindow: null })] }]),
  })[0]!;
  const bc = hop(paths(at(S, 6.5), at(S, 6.6)), "proxy-b -> proxy-c");
  assert.ok(Math.abs(bc.jitterAddedMs! - 0.1) < 1e-9, `b -> c adds ${bc.jitterAddedMs} ms`);
  assert.not.ok(bc.bad, `b -> c is fine: ${bc.why}`);
  assert.is(bc.jitterMs, 6.6, "the far end's jitter as the second ended");
  // windows without their jitter (an older proxy): the estimates as reported, as before
  const older = hop(paths(at(S), at(S)), "proxy-b -> proxy-c");
  assert.ok(Math.abs(older.jitterAddedMs! - 7) < 1e-9);
});

test("the first link's jitter and the end-to-end jitter are the windows' too: the hops' jitters add up to the end-to-end one, and the sender's link is judged on the second the next hop compares", () => {
  const S = Math.floor(NOW / 1000) * 1000 - 1000;
  const at = (jitterMs: number) => ({ ms: 1000, endMs: S, expected: 150, lost: 0, fractionLost: 0, packetRate: 150, bitrateBps: 1_000_000, transitMs: 100, jitterMs });
  // a camera that sends each frame in a burst: the estimate stood at 6 ms as the second ended, and
  // at 2 ms when the reports were taken a few hundred ms later
  const point = (windowJitter: number) => ({ ...dir({ jitter: 2 }), window: at(windowJitter), previousWindow: null });
  const [p] = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(point(6), point(6.1))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(point(6.1), point(6.2))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(point(6.2), point(6.3))] }]),
  });
  const first = hop(p!, "sender -> proxy-a");
  assert.is(first.jitterMs, 6, "the sender's link: proxy-a's ingress jitter as its window ended");
  assert.is(first.jitterAddedMs, 6);
  assert.ok(first.bad, "6 ms of jitter added on the first link is over the 5 ms threshold");
  assert.ok(Math.abs(hop(p!, "within proxy-a").jitterAddedMs! - 0.1) < 1e-9);
  const added = p!.hops.reduce((sum, h) => sum + (h.jitterAddedMs ?? 0), 0);
  assert.ok(Math.abs(added - 6.3) < 1e-9, `the hops add ${added} ms`);
  assert.is(p!.jitterMs, 6.3, "end to end (no receiver reports): the last point's jitter as its window ended");
});

test("delay across an RTP timestamp wrap: two points whose first packets fell either side of it differ by whole wraps beside the delay", () => {
  const wrapMs = (2 ** 32 * 1000) / 90_000;
  const paths = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: [stream(dir({ transit: 100 }), dir({ transit: 101 }))] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir({ transit: 103 - wrapMs }), dir({ transit: 104 - wrapMs }))] }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir({ transit: 110 + 2 * wrapMs }), dir({ transit: 111 + 2 * wrapMs }))] }]),
  });
  const p = paths[0]!;
  assert.ok(Math.abs(hop(p, "proxy-a -> proxy-b").delayMs! - 2) < 1e-6, `a -> b ${hop(p, "proxy-a -> proxy-b").delayMs}`);
  assert.ok(Math.abs(hop(p, "within proxy-b").delayMs! - 1) < 1e-6);
  assert.ok(Math.abs(hop(p, "proxy-b -> proxy-c").delayMs! - 6) < 1e-6, `b -> c ${hop(p, "proxy-b -> proxy-c").delayMs}`);
});

test("all of it lost: a link whose far proxy reports no packet of the stream, or does not run the segment, is the bad hop", () => {
  const reports = {
    "proxy-a": report([{ name: "cam", streams: [stream(dir(), dir())] }]),
    "proxy-b": report([{ name: "relay", streams: [stream(dir(), dir({ fraction: 0.01 }))] }]),
    "proxy-c": report([{ name: "edge", streams: [] }]),
  };
  const [p] = build(CHAIN, reports);
  const bc = hop(p!, "proxy-b -> proxy-c");
  assert.ok(Math.abs(bc.lossFraction! - 0.99) < 1e-9, "all that left B");
  assert.ok(bc.bad);
  assert.is(bc.note, "none of it arrived: proxy-c reported nothing of SSRC 0x1234abcd, while proxy-b sent 50 packets/s");
  assert.is(p!.hops[p!.worst], bc);
  assert.is(p!.lossFraction, 1, "end to end: nothing gets through");
  assert.is(hop(p!, "within proxy-c").note, "proxy-c reported nothing of SSRC 0x1234abcd there");

  const [q] = build(CHAIN, { ...reports, "proxy-c": report([]) });
  const gone = hop(q!, "proxy-b -> proxy-c");
  assert.ok(gone.bad);
  assert.is(gone.note, "proxy-c does not run segment edge (it is not in its report): none of it arrives");

  // ...but not when its report is incomplete (a page not read, segments left out), nor when the segment's counters were left out
  const [partial] = build(CHAIN, { ...reports, "proxy-c": { atMs: NOW - 200, snapshot: { segments: [], incomplete: true } } });
  assert.equal([hop(partial!, "proxy-b -> proxy-c").lossFraction, hop(partial!, "proxy-b -> proxy-c").bad], [null, false]);
  assert.is(hop(partial!, "proxy-b -> proxy-c").note, "proxy-c left segment edge out of its report (the report is incomplete)");
  const [stub] = build(CHAIN, { ...reports, "proxy-c": report([{ name: "edge", truncated: "its counters are 300000 bytes" }]) });
  assert.is(hop(stub!, "proxy-b -> proxy-c").note, "proxy-c left segment edge out of its report (its counters do not fit a stats page)");

  // the proxy that drops all of it itself: ingress measured, nothing out
  const [r] = build(CHAIN, { ...reports, "proxy-b": report([{ name: "relay", streams: [stream(dir(), null)] }]) });
  assert.is(r!.hops[r!.worst]!.label, "within proxy-b");
  // C still knows the stream, but heard nothing of it during B's last window (nor since)
  const silent = { ...dir(), lastMs: NOW - 5000 };
  const [quiet] = build(CHAIN, { ...reports, "proxy-c": report([{ name: "edge", streams: [stream({ ...silent, window: { ...silent.window!, expected: 0, lost: 0, packetRate: 0, bitrateBps: 0 } }, null)] }]) });
  const dead = hop(quiet!, "proxy-b -> proxy-c");
  assert.ok(dead.bad);
  assert.ok(Math.abs(dead.lossFraction! - 0.99) < 1e-9);
  assert.match(dead.note!, /^none of it arrived: proxy-c heard nothing of SSRC 0x1234abcd since \S+Z, while proxy-b sent 50 packets\/s$/);
  // ...in a report taken before B's last window ended: not compared (the stream may be just starting)
  const early = build(CHAIN, { ...reports, "proxy-c": report([{ name: "edge", streams: [] }], { atMs: NOW - 450 }) });
  const notYet = hop(early[0]!, "proxy-b -> proxy-c");
  assert.equal([notYet.lossFraction, notYet.bad], [null, false]);
  assert.match(notYet.note!, /^not compared: proxy-c reported nothing of SSRC 0x1234abcd, in a report taken before proxy-b's last window could reach it$/);
  // the proxy's own time of the report counts, where it gives one
  const taken = build(CHAIN, { ...reports, "proxy-c": { atMs: NOW - 100, snapshot: { atMs: NOW - 450, segments: [{ name: "edge", streams: [] }] } } });
  assert.is(hop(taken[0]!, "proxy-b -> proxy-c").lossFraction, null);
  // per-stream stats off at C (packets, yet no stream and no overflow): not known, not blamed
  const [off] = build(CHAIN, { ...reports, "proxy-c": report([{ name: "edge", packetsIn: 5000, streams: [] }]) });
  assert.equal([hop(off!, "proxy-b -> proxy-c").lossFraction, hop(off!, "proxy-b -> proxy-c").bad], [null, false]);
  assert.is(hop(off!, "proxy-b -> proxy-c").note, "proxy-c lists no stream of segment edge though it received packets (per-stream stats off, or its streams idle)");
  // a stream the far proxy may count among its overflow: not known, not blamed
  const [s] = build(CHAIN, { ...reports, "proxy-c": report([{ name: "edge", streams: [], streamsOverflow: { ingressPackets: 500, egressPackets: 500 } }]) });
  assert.is(hop(s!, "proxy-b -> proxy-c").lossFraction, null);
  assert.match(hop(s!, "proxy-b -> proxy-c").note!, /beyond its streams\.max/);
});

test("stale: an old report is shown as stale, its figures not joined with fresh ones; a stream only stale reports show is still listed", () => {
  const fresh = (fraction: number) => [stream(dir({ fraction }), dir({ fraction }))];
  const [p] = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: fresh(0) }]),
    "proxy-b": report([{ name: "relay", streams: fresh(0.3) }], { atMs: NOW - 30_000 }),
    "proxy-c": report([{ name: "edge", streams: fresh(0.3) }]),
  });
  const ab = hop(p!, "proxy-a -> proxy-b");
  assert.ok(ab.to!.stale);
  assert.is(ab.to!.stats!.window!.fractionLost, 0.3, "its stats are shown");
  assert.is(ab.lossFraction, null, "not joined as fresh");
  assert.not.ok(ab.bad);
  assert.is(ab.note, "proxy-b's last report is 30 s old (stale)");
  assert.not.ok(hop(p!, "within proxy-a").to!.stale);

  const old = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: fresh(0) }], { atMs: NOW - 60_000 }),
    "proxy-b": report([{ name: "relay", streams: fresh(0) }], { atMs: NOW - 60_000 }),
    "proxy-c": report([{ name: "edge", streams: fresh(0) }], { atMs: NOW - 60_000 }),
  });
  assert.equal(old.map((x) => x.name), ["cam"]);
  assert.ok(old[0]!.hops.every((h) => h.lossFraction === null && /stale/.test(h.note ?? "")));
  assert.is(old[0]!.lossFraction, null);

  // a receiver's own report, old while the proxy's is fresh
  const [r] = build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: fresh(0) }]),
    "proxy-b": report([{ name: "relay", streams: fresh(0) }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir(), dir(), [receiver(0xbeef, { fraction: 0.5, atMs: NOW - 20_000 })])] }]),
  });
  const last = r!.hops.at(-1)!;
  assert.is(last.kind, "last-link");
  assert.equal([last.lossFraction, last.bad, last.note], [null, false, "the receiver's last report is 20 s old (stale)"]);
});

test("a receiver that left (its last report 25 s before its proxy's report, as an older proxy keeps it) has no last link: the path is judged without one, not unknown for as long as the stream runs", () => {
  const fresh = [stream(dir(), dir())];
  const withReceivers = (receivers: ReceiverReport[]): StreamPath => build(CHAIN, {
    "proxy-a": report([{ name: "cam", streams: fresh }]),
    "proxy-b": report([{ name: "relay", streams: fresh }]),
    "proxy-c": report([{ name: "edge", streams: [stream(dir(), dir(), receivers)] }]),
  })[0]!;
  // report taken at NOW - 200: one receiver heard 24.8 s before it (stale, still there), one 25.3 s
  const p = withReceivers([receiver(0xbeef, { atMs: NOW - 25_000 }), receiver(0xcafe, { atMs: NOW - 25_500 }), receiver(0xf00d)]);
  assert.equal(p.hops.filter((h) => h.kind === "last-link").map((h) => [h.receiver!.reporterSsrc, h.lossFraction === null]), [[0xbeef, true], [0xf00d, false]]);
  const gone = withReceivers([receiver(0xcafe, { atMs: NOW - 60_000 })]);
  assert.equal(gone.hops.map((h) => h.kind), ["first-link", "proxy", "link", "proxy", "link", "proxy"], "no last link");
  assert.ok(gone.hops.every(hopJudged), "every hop has figures");
  assert.match(describeStreamPath(gone, DEFAULT_BAD_HOP, NOW), /Bad hop:\s+none\n/);
});

test("a loop of segments ends; a segment on the path twice on one proxy is labelled proxy/segment", () => {
  const segments = [
    segment("a", "p1", ep("10.0.0.1", 5000), [ep("10.0.0.1", 5002)]),
    segment("b", "p1", ep("10.0.0.1", 5002), [ep("10.0.0.1", 5000)]),
  ];
  const paths = build(segments, { p1: report([{ name: "a", streams: [stream(dir(), dir())] }, { name: "b", streams: [stream(dir(), dir())] }]) });
  assert.ok(paths.length >= 1);
  for (const p of paths) assert.is(p.segments.length, 2);
  assert.ok(paths[0]!.hops.some((h) => h.label === "p1/a -> p1/b" || h.label === "p1/b -> p1/a"));
});

test("DescribeStream's names: the path itself, or every path of a stream or segment; close names for a typo", () => {
  const paths = ["cam:to-b", "cam:to-c", "door/0x0000000a", "door/0x0000000b", "lobby"].map((name) => ({ name }) as StreamPath);
  assert.equal(pathsNamed(paths, "cam").map((p) => p.name), ["cam:to-b", "cam:to-c"]);
  assert.equal(pathsNamed(paths, "cam:to-c").map((p) => p.name), ["cam:to-c"]);
  assert.equal(pathsNamed(paths, "door").map((p) => p.name), ["door/0x0000000a", "door/0x0000000b"]);
  assert.equal(pathsNamed(paths, "ca"), []);
  assert.equal(closeNames("lobyb", paths.map((p) => p.name)), ["lobby"]);
  assert.equal(closeNames("to-c", paths.map((p) => p.name)), ["cam:to-c"]);
  assert.equal(closeNames("zzzzzzz", paths.map((p) => p.name)), []);
});

test("reports from stored pages: each proxy's segments from all its pages (the newest of a name), its addresses, the oldest page's times; unreadable pages left out", () => {
  const page = (nodeId: string, atMs: number, page: number, pages: number, body: object | string) => ({ nodeId, atMs, page, pages, statsJson: typeof body === "string" ? body : JSON.stringify(body) });
  const reports = reportsFromPages(frozen([
    page("p1", NOW - 300, 0, 2, { atMs: NOW - 320, addresses: ["10.0.0.1"], segments: [{ name: "a", streams: [stream(dir(), dir())] }] }),
    page("p1", NOW - 200, 1, 2, { atMs: NOW - 220, addresses: ["10.0.0.1"], segments: [{ name: "b", streams: [] }] }),
    // left over from an older, longer report: its "a" is older than page 0's
    page("p1", NOW - 9000, 2, 3, { atMs: NOW - 9020, segments: [{ name: "a", streams: [] }, { name: "c", streams: [] }] }),
    page("p2", NOW - 100, 0, 1, "{not json"),
    page("p3", NOW - 100, 0, 1, { segments: [{ name: "z" }, { nameless: true }] }),
  ]));
  assert.equal([...reports.keys()], ["p1", "p3"]);
  const p1 = reports.get("p1")!;
  assert.equal(p1.snapshot.segments.map((s) => [s.name, s.streams?.length]), [["a", 1], ["b", 0], ["c", 0]]);
  assert.equal(p1.snapshot.addresses, ["10.0.0.1"]);
  assert.equal([p1.atMs, p1.snapshot.atMs], [NOW - 9000, NOW - 9020], "c came from the old page: the report is as old as it");
  assert.equal(reports.get("p3")!.snapshot.segments.map((s) => s.name), ["z"]);
  assert.is(reports.get("p3")!.snapshot.addresses, undefined);
  assert.is(p1.snapshot.incomplete, undefined, "pages 0 to 2 of 3: all there");
  const missing = reportsFromPages([page("p1", NOW, 0, 3, { segments: [] }), page("p1", NOW, 2, 3, { segments: [] })]);
  assert.is(missing.get("p1")!.snapshot.incomplete, true, "page 1 of 3 not read");
  const cut = reportsFromPages([page("p1", NOW, 0, 1, { truncated: { segmentsReported: 10, segmentsTotal: 20 }, segments: [] })]);
  assert.is(cut.get("p1")!.snapshot.incomplete, true, "the proxy left segments out");
});

test.run();
