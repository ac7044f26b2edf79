// The namespace lab (test/lib/netns.ts, link-impairment.ts, loss-trial.ts, h264-quality.ts),
// proven with plain forwarding: sender -> proxy A -> impaired link -> proxy B -> sink, each in a
// namespace of its own, the proxies `msm proxy` processes with an empty chain. Every lost packet is
// attributed (link loss model, queues, veths, sockets, proxy drop counters), so a busy machine
// changes the numbers but not the verdict. Prints the loss table it measured.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { ffmpegX264Peer } from "./lib/h264-quality.js";
import { gilbertElliott, impair, impairmentPeer, linkCounters, netemArgs, type Impairment } from "./lib/link-impairment.js";
import { settled } from "./lib/kernel-drops.js";
import { lossTable, PathWatch, runH264LossTrial, runLossTrial, totalDrops, type LossTrialResult } from "./lib/loss-trial.js";
import { NetnsLab, NETNS_PREFIX, netnsPeer, removeStaleNamespaces, runSync } from "./lib/netns.js";
import { startNsProxy } from "./lib/ns-proxy.js";
import { runNsSender, startNsSink } from "./lib/ns-rtp.js";
import { DEFAULT_STREAM } from "./lib/ns-tools/rtp-stream.js";
import { ROOT } from "./lib/paths.js";
import { allOf, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";

const test = suite("netns lab", { timeoutMs: 40_000 });

const PROXY_PORT = 5004;
const SINK_PORT = 6000;
let lab: NetnsLab | undefined;
const results: LossTrialResult[] = [];

/** One lab for the file: sender - a - b - sink, made by the first test that needs it. */
function theLab(): NetnsLab {
  return (lab ??= NetnsLab.create(["sender", "a", "b", "sink"]));
}

/** Plain forwarding: A forwards to B across the link, B to the sink. */
function proxyConfigs(l: NetnsLab): { role: string; config: Record<string, unknown> }[] {
  const forward = (to: string, port: number): Record<string, unknown> => ({
    segments: [{ name: "media", listen: { address: "0.0.0.0", port: PROXY_PORT }, destinations: [{ address: to, port }], chain: [] }],
  });
  return [
    { role: "a", config: forward(l.address("b", "a"), PROXY_PORT) },
    { role: "b", config: forward(l.address("sink", "b"), SINK_PORT) },
  ];
}

async function trial(label: string, impairment: Impairment, count: number, rate: number): Promise<LossTrialResult> {
  const l = theLab();
  const r = await runLossTrial({
    label, lab: l, link: ["a", "b"], impairment, proxies: proxyConfigs(l),
    sender: { role: "sender", address: l.address("a", "sender"), port: PROXY_PORT },
    receiver: { role: "sink", port: SINK_PORT }, count, rate,
  });
  results.push(r);
  console.log(`${label}: ${JSON.stringify({ offered: r.offered, residual: r.residual, bursts: r.sink.bursts, path: r.path.links, kernel: r.path.kernel, proxies: r.path.proxyDrops, unexplained: r.unexplained })}`);
  return r;
}

/** Every loss explained; nothing duplicated or damaged; what A sent over the link is what B got, plus what the link and B's socket dropped. */
function assertAccounted(r: LossTrialResult): void {
  assert.is(r.unexplained, 0, `every lost packet is attributed: ${JSON.stringify(r.path)}`);
  assert.is(r.sink.duplicates, 0);
  assert.is(r.sink.corrupt, 0, "plain forwarding delivers every packet intact");
  const ab = r.path.links["a>b"]!;
  const [aOut, bIn] = [r.path.segments["a/media"]!.out, r.path.segments["b/media"]!.in];
  const bSocket = r.path.kernel[`b:${PROXY_PORT}`] ?? 0;
  assert.is(aOut, bIn + ab.lost + ab.queueDrops + ab.interfaceDrops + bSocket, "what crossed the link matches both proxies' counters");
}

peerTest(test, netnsPeer, "the lab's namespaces are named after this process and gone once closed", () => {
  const l = NetnsLab.create(["x", "y"]);
  const names = [l.ns("x"), l.ns("y")];
  assert.ok(names.every((n) => n.startsWith(`${NETNS_PREFIX}${process.pid}-`)), names.join(", "));
  assert.match(runSync("ip", ["netns", "list"]), names[0]!);
  assert.match(l.execSync("y", "ip", ["-4", "addr", "show", "dev", "ln0"]), /10\.77\.0\.2\/24/);
  l.close();
  l.close(); // twice is fine
  const left = runSync("ip", ["netns", "list"]);
  for (const n of names) assert.not.match(left, n);
});

peerTest(test, netnsPeer, "routes along the chain: the sender reaches the sink through both middle namespaces, over IPv4 and IPv6", async () => {
  const l = theLab();
  for (const family of [4, 6] as const) {
    const sink = await startNsSink(l, "sink", { port: SINK_PORT, count: 200, address: "::" });
    try {
      await runNsSender(l, "sender", { address: l.address("sink", "b", family), port: SINK_PORT, count: 200, rate: 1000 });
      await settled(() => sink.received(), 300, 5000);
    } finally {
      const report = await sink.stop();
      assert.is(report.missing + report.corrupt + report.duplicates, 0, `IPv${family}: ${JSON.stringify(report)}`);
    }
  }
});

peerTest(test, allOf(netnsPeer, impairmentPeer), "a second path between two neighbours: its own addresses and link, impaired on its own", async () => {
  const l = NetnsLab.create(["x", "y"], { parallel: [["x", "y"]] });
  try {
    assert.is(l.address("y", "x", 4, 1), "10.77.1.2");
    assert.is(l.link("x", "y", 1).from.dev, "ln1");
    impair(l, "x", "y", { loss: { kind: "random", p: 1 } }, 1); // path 1 loses everything, path 0 nothing
    for (const [path, expected] of [[0, 100], [1, 0]] as const) {
      const sink = await startNsSink(l, "y", { port: SINK_PORT, count: 100, address: "0.0.0.0" });
      let report;
      try {
        await runNsSender(l, "x", { address: l.address("y", "x", 4, path), port: SINK_PORT, count: 100, rate: 1000 });
        await settled(() => sink.received(), 300, 3000);
      } finally {
        report = await sink.stop();
      }
      assert.is(100 - report.missing, expected, `path ${path}: ${JSON.stringify(report)}`);
    }
    assert.is(linkCounters(l, "x", "y", 1).lost, 100);
    assert.is(linkCounters(l, "x", "y", 0).lost, 0);
  } finally {
    l.close();
  }
});

/** Runs `code` (an ES module importing the lab by absolute path) in a child node process; returns what it printed. */
function childLab(code: string, kill?: NodeJS.Signals): Promise<string> {
  const lib = join(ROOT, "dist", "test", "lib", "netns.js");
  const child = spawn(process.execPath, ["--input-type=module", "-e", `import { NetnsLab } from ${JSON.stringify(lib)};\n${code}`], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    if (kill && /^made /m.test(out)) child.kill(kill);
  });
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on("close", () => resolve(out)));
}

const MAKE_AND_WAIT = `const lab = NetnsLab.create(["x", "y"]); lab.spawn("x", "sleep", ["30"]); console.log("made " + lab.ns("x")); setTimeout(() => {}, 30000);`;

peerTest(test, netnsPeer, "a test process stopped by SIGTERM or SIGINT, or failing, leaves no namespace; one killed outright leaves some that the next lab removes", async () => {
  const ours = (out: string): string => {
    const m = /^made (\S+)-x$/m.exec(out);
    if (!m) throw new Error(`the child made no lab:\n${out}`);
    return m[1]!;
  };
  const leftOf = (prefix: string): string[] => runSync("ip", ["netns", "list"]).split("\n").filter((l) => l.startsWith(`${prefix}-`));
  const [term, int, failed] = await Promise.all([
    childLab(MAKE_AND_WAIT, "SIGTERM"),
    childLab(MAKE_AND_WAIT, "SIGINT"),
    childLab(`const lab = NetnsLab.create(["x", "y"]); console.log("made " + lab.ns("x")); throw new Error("a failing test");`),
  ]);
  assert.equal(leftOf(ours(term)), [], "after SIGTERM");
  assert.equal(leftOf(ours(int)), [], "after SIGINT");
  assert.match(failed, /a failing test/);
  assert.equal(leftOf(ours(failed)), [], "after an uncaught error");
  // alone: a lab made meanwhile by a sibling would remove its namespaces before we look
  const killed = ours(await childLab(MAKE_AND_WAIT, "SIGKILL"));
  assert.is(leftOf(killed).length, 2, "SIGKILL leaves the namespaces behind");
  removeStaleNamespaces(); // (or a lab made meanwhile by another test process did)
  assert.equal(leftOf(killed), [], "removed as stale: their process is gone");
});

peerTest(test, impairmentPeer, "netem's arguments are what tc parses (where the kernel lacks netem, tc still parses them before it asks)", () => {
  const l = theLab();
  const impairments: Impairment[] = [
    { loss: { kind: "random", p: 0.05 } },
    { loss: gilbertElliott(0.01, 3), delayMs: 20, jitterMs: 5 },
    { loss: { kind: "gilbert-elliott", p: 0.02, r: 0.3, lossInBad: 0.9, lossInGood: 0.001 } },
    { delayMs: 10 },
  ];
  for (const i of impairments) {
    const r = spawnSync("tc", ["-n", l.ns("a"), "qdisc", "replace", "dev", "lo", "root", "netem", ...netemArgs(i)], { encoding: "utf8" });
    assert.ok(r.status === 0 || /Specified qdisc kind is unknown/.test(r.stderr), `tc ... netem ${netemArgs(i).join(" ")}: ${r.stderr}`);
  }
  spawnSync("tc", ["-n", l.ns("a"), "qdisc", "del", "dev", "lo", "root"]);
  assert.throws(() => impair(l, "a", "b", { loss: { kind: "random", p: 1.5 } }), /loss\.p: a probability in \[0, 1\], got 1\.5/);
  assert.throws(() => impair(l, "a", "b", { jitterMs: 3 }), /jitterMs needs delayMs/);
  assert.throws(() => l.link("sender", "b"), /'sender' and 'b' are not neighbours/);
});

peerTest(test, impairmentPeer, "no impairment: every packet arrives or its loss is attributed", async () => {
  const r = await trial("no loss", {}, 2000, 2000);
  assertAccounted(r);
  assert.is(r.offered.lost, 0);
  assert.ok(r.offered.packets > 0, "the link counted what it carried");
});

peerTest(test, impairmentPeer, "random 5%: the link drops about 5% and plain forwarding loses exactly what it drops", async () => {
  const r = await trial("random 5%", { loss: { kind: "random", p: 0.05 } }, 6000, 3000);
  assertAccounted(r);
  // binomial: 6000 packets at 5% give 300 +- 17; allow five standard deviations
  assert.ok(r.offered.loss > 0.036 && r.offered.loss < 0.064, `measured offered loss ${r.offered.loss}`);
  assert.is(r.residual.lost, totalDrops(r.path), "residual loss = the link's loss + what else dropped (attributed)");
  assert.ok(r.sink.bursts.mean < 1.3, `random loss comes in bursts of about one packet, measured ${r.sink.bursts.mean}`);
});

peerTest(test, impairmentPeer, "Gilbert-Elliott: bursts at the sink average the configured length", async () => {
  const r = await trial("GE 5%, bursts of 4", { loss: gilbertElliott(0.05, 4) }, 8000, 4000);
  assertAccounted(r);
  // about 100 bursts, geometric with mean 4 (standard deviation 3.5): the mean is 4 +- 0.35
  assert.ok(r.sink.bursts.mean > 2.8 && r.sink.bursts.mean < 5.5, `mean burst ${r.sink.bursts.mean}: ${JSON.stringify(r.sink.bursts.lengths)}`);
  assert.ok(r.offered.loss > 0.02 && r.offered.loss < 0.09, `measured offered loss ${r.offered.loss}`);
});

peerTest(test, impairmentPeer, "a tbf rate limit drops what exceeds it, counted as the link's queue drops", async () => {
  // 1500 packets of 700 bytes on average at 1500/s: 8.4 Mbit/s into 3 Mbit/s
  const r = await trial("rate 3 Mbit/s", { rateKbit: 3000 }, 1500, 1500);
  assertAccounted(r);
  const ab = r.path.links["a>b"]!;
  assert.ok(ab.queueDrops > 300, `queue drops ${ab.queueDrops}`);
  assert.is(r.offered.lost, 0, "no loss model: the queue alone dropped");
  console.log(`\n${lossTable(results)}\n`);
});

peerTest(test, impairmentPeer, "a proxy that stops reading: its listen socket's drops, read inside its namespace, explain the loss", async () => {
  const l = theLab();
  const count = 12_000;
  const format = { ...DEFAULT_STREAM, minSize: 1000, maxSize: 1400 }; // fills B's socket buffer in fewer packets
  const sink = await startNsSink(l, "sink", { port: SINK_PORT, count, format });
  const proxies = await Promise.all(proxyConfigs(l).map((p) => startNsProxy(l, p.role, p.config)));
  try {
    const b = proxies.find((p) => p.role === "b")!;
    const watch = await PathWatch.start(l, "sender", "sink", proxies);
    b.process.signalGroup("SIGSTOP");
    try {
      await runNsSender(l, "sender", { address: l.address("a", "sender"), port: PROXY_PORT, count, rate: 6000, format });
    } finally {
      b.process.signalGroup("SIGCONT");
    }
    await settled(() => sink.received(), 500, 20_000);
    const path = await watch.since();
    const report = await sink.stop();
    console.log(`B stopped: ${JSON.stringify({ missing: report.missing, kernel: path.kernel, sinkKernel: report.kernelDrops, links: path.links, proxies: path.proxyDrops })}`);
    assert.ok((path.kernel[`b:${PROXY_PORT}`] ?? 0) > 0, `B's listen socket overflowed: ${JSON.stringify(path.kernel)}`);
    assert.is(report.missing, totalDrops(path) + report.kernelDrops, "every loss attributed");
    assert.is(report.corrupt + report.duplicates, 0);
  } finally {
    await sink.stop().catch(() => undefined);
    await Promise.allSettled(proxies.map((p) => p.stop()));
  }
});

peerTest(test, allOf(impairmentPeer, ffmpegX264Peer), "H.264 from FFmpeg: more corrupt frames with 2% loss than without", async () => {
  const l = theLab();
  const run = async (label: string, impairment: Impairment) => {
    const r = await runH264LossTrial({
      label, lab: l, link: ["a", "b"], impairment, proxies: proxyConfigs(l),
      sender: { role: "sender", address: l.address("a", "sender"), port: PROXY_PORT },
      receiver: { role: "sink", port: SINK_PORT },
    });
    const dropped = totalDrops(r.path);
    console.log(`${label}: ${JSON.stringify(r.quality)}; dropped on the way ${dropped}: ${JSON.stringify(r.path.links)} ${JSON.stringify(r.path.kernel)} ${JSON.stringify(r.path.proxyDrops)}`);
    // the decoder sees missing no more than the path dropped (RTCP dropped on the link counts there too)
    assert.ok(r.quality.rtpMissed <= dropped, `the receiver missed ${r.quality.rtpMissed} packets, the path dropped ${dropped}`);
    assert.ok(r.quality.framesDecoded > 0);
    return { ...r, dropped };
  };
  const clean = await run("H.264, no loss", {});
  const lossy = await run("H.264, random 2%", { loss: { kind: "random", p: 0.02 } });
  // ~470 packets at 2%: ~9 lost; none lost has odds of 1 in 10^4
  assert.ok(lossy.offered.lost > 0, "the link dropped packets");
  assert.ok(clean.dropped > 0 || clean.quality.corruptFrames === 0, "without loss on the way, no corrupt frame");
  assert.ok(lossy.quality.corruptFrames > clean.quality.corruptFrames, `corrupt frames: ${clean.quality.corruptFrames} without loss, ${lossy.quality.corruptFrames} with 2%`);
});

test.after(() => {
  lab?.close();
});

test.run();
