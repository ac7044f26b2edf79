// Multicast and IPv4 <-> IPv6 translation across network namespaces, judged by FFmpeg's H.264
// decoder (test/lib/h264-quality.ts):
//   snd --ln0--> px (msm proxy) --ln1--> rx
// - unicast in, multicast out (IPv4 and IPv6): FFmpeg in rx joins the group and decodes;
// - multicast in (any-source, and source-specific with a second sender on the same group whose
//   packets reach px's link but never the proxy), unicast out;
// - IPv4 in, IPv6 out, and the reverse.
// A namespace has no default route, so an IPv4 group needs one (224.0.0.0/4 dev <veth>) where a
// process joins or sends without naming the interface; IPv6 has ff00::/8 on every interface. Every
// missing packet is attributed (the proxy's drops, kernel drops on its listen sockets and on the
// receiver's) instead of asserting none: the machine may be busy. The proxy sends with UDP GSO,
// as by default, across the namespaces (multicast out included).
import * as assert from "uvu/assert";
import { abi, dropReasonName } from "../runtime/index.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { DEFAULT_H264, ffmpegX264Peer, runH264Trial, type H264Quality } from "./lib/h264-quality.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { startNsProxy } from "./lib/ns-proxy.js";
import { runNsSender } from "./lib/ns-rtp.js";
import { allOf, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";

const test = suite("multicast and translation across namespaces", { timeoutMs: 90_000 });
const PEERS = allOf(netnsPeer, ffmpegX264Peer);
const LISTEN = 5000;
const OUT = 6000;
const FRAMES = DEFAULT_H264.seconds * DEFAULT_H264.fps;
/** The second address of snd on its link: the source-specific sender. */
const SSM_SENDER = "10.77.0.3";

let lab: NetnsLab;

test.before(() => {
  if (!netnsPeer.present()) return;
  lab = NetnsLab.create(["snd", "px", "rx"]);
  lab.execSync("snd", "ip", ["route", "add", "224.0.0.0/4", "dev", "ln0"]); // FFmpeg sends to a group without naming the interface
  lab.execSync("rx", "ip", ["route", "add", "224.0.0.0/4", "dev", "ln1"]); // and joins one the same way
  lab.execSync("snd", "ip", ["addr", "add", `${SSM_SENDER}/24`, "dev", "ln0"]);
});

test.after(() => lab?.close());

interface Trial {
  quality: H264Quality;
  packetsIn: number;
  drops: Record<string, number>;
  /** Kernel drops on the proxy's listen sockets. */
  proxyKernel: number;
}

/** Runs the H.264 stream snd -> px (one segment) -> rx and collects what every hop dropped. */
async function trial(segment: Record<string, unknown>, send: { address: string; port: number; query?: string }, receiverAddress: string, during?: () => Promise<void>): Promise<Trial> {
  // with UDP GSO (the default; no impairment here): the decoders see the datagrams it cuts
  const proxy = await startNsProxy(lab, "px", { gso: "auto", segments: [{ name: "m", ...segment }] });
  const kernel = new DropWatch([LISTEN, LISTEN + 1], lab.procNet("px"));
  try {
    const [quality] = await Promise.all([
      runH264Trial(lab, { from: "snd", to: send, receiver: "rx", port: OUT, receiverAddress }),
      during?.(),
    ]);
    const seg = (await proxy.stats()).segments[0]!;
    return { quality, packetsIn: seg.packetsIn, drops: seg.drops, proxyKernel: kernel.since().total };
  } finally {
    await proxy.stop();
  }
}

/** Every frame decoded whole, or every missing packet attributed to a drop on the way (said loudly). */
function judge(label: string, t: Trial): void {
  const q = t.quality;
  const dropped = Object.values(t.drops).reduce((a, b) => a + b, 0);
  const explained = dropped + t.proxyKernel + q.kernelDrops;
  const where = `${label}: ${JSON.stringify(q)}; proxy drops ${JSON.stringify(t.drops)}, kernel drops at the proxy ${t.proxyKernel}`;
  if (q.rtpMissed === 0) {
    assert.is(q.corruptFrames, 0, where);
    assert.is(q.decoderErrors, 0, where);
    // the last frame or two stay in the receiver when it stops
    assert.ok(q.framesDecoded >= FRAMES - 3, `${where}: ${q.framesDecoded} of ${FRAMES} frames decoded`);
    return;
  }
  console.error(`\n!!! ${label}: ${q.rtpMissed} packet(s) missed, ${explained} drops on the way: frames not counted (${where})\n`);
  assert.ok(q.rtpMissed <= explained, `${where}: ${q.rtpMissed} missed but only ${explained} drops on the way`);
}

const v4 = (role: string, neighbour: string): string => lab.address(role, neighbour, 4);
const v6 = (role: string, neighbour: string): string => lab.address(role, neighbour, 6);

peerTest(test, PEERS, "unicast in, IPv4 multicast out (TTL 1, interface given, loopback off): FFmpeg joined to the group decodes every frame", async () => {
  const t = await trial(
    { listen: { address: v4("px", "snd"), port: LISTEN }, destinations: [{ address: "239.2.2.2", port: OUT }], multicast: { ttl: 1, interface: v4("px", "rx") } },
    { address: v4("px", "snd"), port: LISTEN }, "239.2.2.2",
  );
  judge("IPv4 multicast out", t);
});

peerTest(test, PEERS, "unicast in, IPv6 multicast out (ff15::, interface by name): FFmpeg joined to the group decodes every frame", async () => {
  const t = await trial(
    { listen: { address: v6("px", "snd"), port: LISTEN }, destinations: [{ address: "ff15::6", port: OUT }], multicast: { interface: "ln1" } },
    { address: v6("px", "snd"), port: LISTEN }, "ff15::6",
  );
  judge("IPv6 multicast out", t);
});

peerTest(test, PEERS, "IPv4 multicast in (any-source join on the link's interface), unicast out: every frame decoded", async () => {
  const t = await trial(
    { listen: { address: "239.1.1.1", port: LISTEN, interface: v4("px", "snd") }, destinations: [{ address: v4("rx", "px"), port: OUT }] },
    { address: "239.1.1.1", port: LISTEN, query: "ttl=1" }, "127.0.0.1",
  );
  judge("IPv4 multicast in", t);
});

peerTest(test, PEERS, "source-specific multicast in: the named sender is decoded; a second sender on the same group reaches the proxy's link but never the proxy", async () => {
  const rogue = 300;
  const linkIn = (): number => Number(/RX:[^\n]*\n\s*\d+\s+(\d+)/.exec(lab.execSync("px", "ip", ["-s", "link", "show", "ln0"]))![1]);
  const before = linkIn();
  let rogueSent = 0;
  const t = await trial(
    { listen: { address: "239.1.1.1", port: LISTEN, interface: v4("px", "snd") }, source: { address: SSM_SENDER }, destinations: [{ address: v4("rx", "px"), port: OUT }] },
    { address: "239.1.1.1", port: LISTEN, query: `ttl=1&localaddr=${SSM_SENDER}` }, "127.0.0.1",
    async () => {
      // from snd's first address (10.77.0.1), to the same group and port, while the stream runs
      rogueSent = (await runNsSender(lab, "snd", { address: "239.1.1.1", port: LISTEN, count: rogue, rate: 100 })).sent;
    },
  );
  judge("source-specific multicast in", t);
  const arrived = linkIn() - before;
  assert.is(rogueSent, rogue);
  // the second sender's packets crossed the link (px's ln0 received them)...
  assert.ok(arrived >= t.packetsIn + rogue, `px's ln0 received ${arrived} packets: fewer than the proxy's ${t.packetsIn} plus the second sender's ${rogue}`);
  // ...and the kernel kept them from the proxy: its source gate never had one to refuse
  assert.is(t.drops[dropReasonName(abi.DropReason.HostSourceRefused)] ?? 0, 0, `the proxy saw the second sender: ${JSON.stringify(t.drops)}`);
});

peerTest(test, PEERS, "IPv4 in, IPv6 out (an egress address of the destinations' family): every frame decoded", async () => {
  const t = await trial(
    { listen: { address: v4("px", "snd"), port: LISTEN }, egress: { address: v6("px", "rx") }, destinations: [{ address: v6("rx", "px"), port: OUT }] },
    { address: v4("px", "snd"), port: LISTEN }, "::1",
  );
  judge("IPv4 in, IPv6 out", t);
});

peerTest(test, PEERS, "IPv6 in, IPv4 out: every frame decoded", async () => {
  const t = await trial(
    { listen: { address: v6("px", "snd"), port: LISTEN }, egress: { address: v4("px", "rx") }, destinations: [{ address: v4("rx", "px"), port: OUT }] },
    { address: v6("px", "snd"), port: LISTEN }, "127.0.0.1",
  );
  judge("IPv6 in, IPv4 out", t);
});

test.run();
