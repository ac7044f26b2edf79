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

test.run();
