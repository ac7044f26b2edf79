// Interop with a real transport-wide feedback peer: GStreamer 1.22's rtpbin, whose sessions record
// the transport-wide sequence number of every RTP packet when the receive caps name the extension
// (`extmap-N=<draft-holmer-01 URI>`) and send feedback (RTPFB FMT 15) back in their RTCP, one
// lone packet per RTP packet with the marker bit (RFC 5506 reduced-size, apart from the RR + SDES
// compounds), with the AVPF profile. On loopback:
//
//   origin --RTP--> proxy [congestion, mode sender, extensionId N] --RTP + extension--> rtpbin
//   origin <--TMMBR/REMB-- proxy <--(egress RTCP)-- relay (decodes and counts) <--RTCP-- rtpbin
//
// The relay reads every RTCP packet rtpbin sends with test/lib/rtcp-cc.ts before passing it on, so
// the filter's counts can be held against what GStreamer sent.
//
// And the other way round: rtpbin as the sender (its send caps naming the extension, it stamps
// every packet) to a proxy whose filter runs in receiver mode; rtpbin reads the filter's feedback
// and computes its TWCC statistics from it (logged at rtpsession DEBUG level).
import * as assert from "uvu/assert";
import type { Socket } from "node:dgram";
import { buildRtp } from "../sdk/harness/index.js";
import { GstPipeline } from "./lib/gst-fec.js";
import { filterWasm } from "./lib/paths.js";
import { peer, peerTest, runsOk } from "./lib/peers.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { senderReport } from "./lib/rtcp-build.js";
import { decodeCcCompound, TWCC_URI, type TwccFeedback } from "./lib/rtcp-cc.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, sleep, waitFor } from "./lib/udp.js";

const test = suite("congestion filter with GStreamer's transport-wide feedback", { timeoutMs: 90_000 });

const GST_TWCC = peer("GStreamer 1.22 rtpbin (transport-wide feedback)", "Debian packages gstreamer1.0-tools gstreamer1.0-plugins-good (1.22)", () =>
  runsOk("gst-launch-1.0", ["--version"]) && ["rtpbin", "udpsrc", "udpsink", "fakesink"].every((e) => runsOk("gst-inspect-1.0", ["--exists", e])));

const LO = "127.0.0.1";
const MEDIA = 0x5eed0001;
const EXTENSION_ID = 3;
const FRAMES = 125; // 5 s at 25 fps
const PACKETS_PER_FRAME = 3;
const PAYLOAD = 1000;

/** rtpbin receiving RTP on `port` (its caps naming the extension), its RTCP to `rtcpTo`. The RTCP link comes first: a bare `rb.` would take that pad. */
function receiverPipeline(port: number, rtcpTo: number): string[] {
  return [
    "rtpbin", "name=rb", "rtp-profile=avpf",
    "rb.send_rtcp_src_0", "!", "udpsink", `host=${LO}`, `port=${rtcpTo}`, "sync=false", "async=false",
    "udpsrc", `address=${LO}`, `port=${port}`,
    `caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96,extmap-${EXTENSION_ID}=${TWCC_URI}`,
    "!", "rb.recv_rtp_sink_0",
    "rb.", "!", "fakesink", "sync=false",
  ];
}

const metric = (stats: Awaited<ReturnType<typeof segmentStats>>, name: string): number => {
  const m = stats.stages[0]!.metrics.find((x) => x.name === name);
  if (!m || typeof m.value !== "number") throw new Error(`the stage reports no metric ${name}: ${JSON.stringify(stats.stages[0]!.metrics.map((x) => x.name))}`);
  return m.value;
};

peerTest(test, GST_TWCC, "rtpbin's transport-wide feedback reaches the sender-mode filter and is used: feedback counted, none refused, acked rate near the sent rate", async () => {
  const listen = await freePortPair();
  const gstPort = await freePortPair();
  const { proxy } = await startProxy({
    filters: { congestion: { path: filterWasm("congestion") } },
    segments: [{
      name: "hop", listen: { address: LO, port: listen },
      destinations: [{ address: LO, port: gstPort }],
      chain: [{ filter: "congestion", config: { mode: "sender", extensionId: EXTENSION_ID } }],
    }],
  });
  const sockets: Socket[] = [];
  let gst: GstPipeline | undefined;
  try {
    const origin = await bindUdp();
    const originRtcp = await bindUdp();
    const relay = await bindUdp();
    sockets.push(origin, originRtcp, relay);
    const toOrigin: { type: string; bps?: number }[] = [];
    originRtcp.on("message", (m: Buffer) => {
      for (const p of decodeCcCompound(new Uint8Array(m))) {
        toOrigin.push(p.type === "TMMBR" ? { type: p.type, bps: p.tmmb.entries[0]!.bps } : p.type === "REMB" ? { type: p.type, bps: p.remb.bps } : { type: p.type });
      }
    });
    // the origin is heard from first, so that the proxy knows where its RTCP goes
    origin.send(buildRtp({ seq: 0, timestamp: 0, ssrc: MEDIA, payloadSize: PAYLOAD, marker: true }), listen, LO);
    originRtcp.send(senderReport(MEDIA, 1, 0), listen + 1, LO);
    await waitFor(async () => (await segmentStats(proxy, "hop")).rtcpIn === 1, 5000, "the origin's report at the proxy");
    const egressRtcp = (await segmentStats(proxy, "hop")).ports.egressRtcp!;

    const feedback: TwccFeedback[] = [];
    const undecodable: string[] = [];
    relay.on("message", (m: Buffer) => {
      try {
        for (const p of decodeCcCompound(new Uint8Array(m))) if (p.type === "TWCC") feedback.push(p.twcc);
      } catch (err) {
        undecodable.push(`${(err as Error).message}: ${m.toString("hex")}`);
      }
      relay.send(m, egressRtcp, LO);
    });
    gst = await GstPipeline.start(receiverPipeline(gstPort, relay.address().port), [gstPort]);

    // 25 frames a second, 3 packets each (the last with the marker bit): about 640 kbit/s with headers
    const started = Date.now();
    let acked = 0;
    for (let f = 1; f <= FRAMES; f++) {
      for (let k = 0; k < PACKETS_PER_FRAME; k++) {
        const seq = f * PACKETS_PER_FRAME + k;
        origin.send(buildRtp({ seq, timestamp: f * 3600, ssrc: MEDIA, payloadSize: PAYLOAD, marker: k === PACKETS_PER_FRAME - 1 }), listen, LO);
      }
      if (f % 25 === 0) acked = metric(await segmentStats(proxy, "hop"), "acked_bps"); // while the stream flows
      const due = started + f * 40;
      if (Date.now() > started + FRAMES * 40 + 10_000) throw new Error("the sender overran its time bound");
      await sleep(Math.max(0, due - Date.now()));
    }
    await sleep(500);
    gst.assertRunning();
    const stats = await segmentStats(proxy, "hop");
    const [used, rejected] = [metric(stats, "feedback_packets"), metric(stats, "feedback_rejected")];
    const sentBps = (PACKETS_PER_FRAME * (12 + 8 + PAYLOAD) * 8 * 1000) / 40; // with the 8 bytes of extension the filter adds
    console.log(`GStreamer sent ${feedback.length} feedback packets; the filter used ${used}, refused ${rejected}; acked ${acked} bit/s of ${sentBps} sent; to the origin: ${JSON.stringify(toOrigin.slice(0, 6))}`);
    assert.equal(undecodable, [], "every RTCP packet GStreamer sent decodes");
    assert.ok(feedback.length >= FRAMES / 2, `GStreamer sent feedback (${feedback.length} packets for ${FRAMES} marker packets)`);
    assert.ok(feedback.every((f) => f.mediaSsrc === MEDIA), "GStreamer's feedback names the media SSRC");
    assert.ok(used > 0, "the filter used GStreamer's feedback");
    assert.is(rejected, 0, "and refused none of it");
    assert.ok(used <= feedback.length, `no more used (${used}) than GStreamer sent (${feedback.length})`);
    assert.not.ok(toOrigin.some((p) => p.type === "TWCC"), "the feedback is consumed: none reaches the origin");
    assert.ok(toOrigin.some((p) => p.type === "SDES"), "GStreamer's RR + SDES compounds do");
    assert.ok(acked > 0.5 * sentBps && acked < 1.5 * sentBps, `acked ${acked} bit/s, about the ${sentBps} bit/s sent`);
  } finally {
    await gst?.stop();
    for (const s of sockets) s.close();
    await proxy.close();
  }
});

/** rtpbin sending raw video (about 0.9 Mbit/s) to `to` with the extension on every packet, reading RTCP on `rtcpPort`. */
function senderPipeline(to: number, rtcpPort: number): string[] {
  return [
    "rtpbin", "name=rb", "rtp-profile=avpf",
    "videotestsrc", "is-live=true", "!", "video/x-raw,format=I420,width=64,height=48,framerate=25/1", "!", "rtpvrawpay", "!",
    `application/x-rtp,extmap-${EXTENSION_ID}=(string)${TWCC_URI}`, "!", "rb.send_rtp_sink_0",
    "rb.send_rtp_src_0", "!", "udpsink", `host=${LO}`, `port=${to}`, "sync=false", "async=false",
    "udpsrc", `address=${LO}`, `port=${rtcpPort}`, "!", "rb.recv_rtcp_sink_0",
  ];
}

peerTest(test, GST_TWCC, "the receiver-mode filter's feedback is read by rtpbin as a transport-wide sender: every packet parsed, its stats show what was sent arrived; the media leaves without the extension", async () => {
  const listen = await freePortPair();
  const gstRtcp = await freePortPair();
  const sink = await bindUdp();
  const { proxy } = await startProxy({
    filters: { congestion: { path: filterWasm("congestion") } },
    segments: [{
      name: "hop", listen: { address: LO, port: listen },
      // rtpbin sends no RTCP here, so its feedback address is given
      source: { address: LO, rtcpPort: gstRtcp },
      destinations: [{ address: LO, port: sink.address().port }],
      chain: [{ filter: "congestion", config: { mode: "receiver", extensionId: EXTENSION_ID } }],
    }],
  });
  let gst: GstPipeline | undefined;
  try {
    const arrived: Buffer[] = [];
    sink.on("message", (m: Buffer) => arrived.push(m));
    // DEBUG for rtpsession: "Parsed TWCC feedback" per packet read, and its TWCC stats
    gst = await GstPipeline.start(senderPipeline(listen, gstRtcp), [gstRtcp], "*:1,rtpsession:5");
    await sleep(4000);
    gst.assertRunning();
    await gst.stop();
    const stats = await segmentStats(proxy, "hop");
    const sent = metric(stats, "feedback_sent");
    const log = gst.child.stderr;
    const parsed = (log.match(/Parsed TWCC feedback/g) ?? []).length;
    const last = [...log.matchAll(/Current TWCC stats.*bitrate-sent=\(uint\)(\d+), bitrate-recv=\(uint\)(\d+).*packet-loss-pct=\(double\)([\d.e+-]+)/g)].at(-1);
    console.log(`the filter sent ${sent} feedback packets, rtpbin parsed ${parsed}; its last stats: ${last?.[0].replace(/^.*Current/, "")}; ${arrived.length} packets at the sink`);
    assert.ok(sent > 10, `feedback went out (${sent})`);
    assert.ok(parsed >= 0.8 * sent && parsed <= sent, `rtpbin parsed ${parsed} of the ${sent} feedback packets`);
    assert.ok(last, "rtpbin computed TWCC stats from it");
    const [bitrateSent, bitrateRecv, lossPct] = [Number(last![1]), Number(last![2]), Number(last![3])];
    assert.ok(bitrateRecv > 0.75 * bitrateSent && bitrateRecv < 1.25 * bitrateSent, `received ${bitrateRecv} bit/s of ${bitrateSent} sent, by its stats`);
    assert.ok(lossPct < 5, `loss ${lossPct}% by its stats (loopback)`);
    assert.ok(arrived.length > 100, `the media reached the sink (${arrived.length} packets)`);
    assert.ok(arrived.every((b) => (b[0]! & 0x10) === 0), "without the extension (rtpbin added no other)");
  } finally {
    await gst?.stop();
    sink.close();
    await proxy.close();
  }
});

test.run();
