// Feedback from many receivers, end to end over real sockets: a proxy fans a stream out to 20
// receivers with the replicate filter's feedback part on; every receiver reports and asks for a
// keyframe and a retransmission at once (what a loss upstream of them all looks like). The sender
// must see one participant: receiver reports aggregated to the worst, one keyframe request per
// interval, each NACKed packet once. Without the filter it would see 20 of each.
import * as assert from "uvu/assert";
import type { Socket } from "node:dgram";
import { compound, nack, nackSeqs, parseCompound, pli, reportBlocks, rr, sr, type Rtcp } from "../filters/replicate/test/feedback-lib.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { filterWasm } from "./lib/paths.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, sleep, waitFor } from "./lib/udp.js";

const test = suite("feedback from many receivers", { timeoutMs: 30_000 });
const LO = "127.0.0.1";
const MEDIA = 0x1234abcd;
const RECEIVERS = 20;

async function run(withFeedback: boolean): Promise<{ compounds: Rtcp[][]; proxyStats: Awaited<ReturnType<typeof segmentStats>> }> {
  const listen = await freePortPair();
  const receivers: Socket[] = await Promise.all(Array.from({ length: RECEIVERS }, () => bindUdp()));
  const { proxy } = await startProxy({
    filters: { replicate: { path: filterWasm("replicate") } },
    segments: [{
      name: "fan", listen: { address: LO, port: listen },
      // receivers send RTCP from the socket they receive on, so rtcpPort is their RTP port
      destinations: receivers.map((r) => ({ address: LO, port: r.address().port, rtcpPort: r.address().port })),
      chain: withFeedback ? [{ filter: "replicate", config: { feedback: { keyframeIntervalMs: 500, nackIntervalMs: 100, reportIntervalMs: 1000 } } }] : [],
    }],
  });
  const rtp = await bindUdp();
  const rtcp = await bindUdp();
  const compounds: Rtcp[][] = [];
  rtcp.on("message", (m: Buffer) => compounds.push(parseCompound(new Uint8Array(m)))); // a copy: its DataViews read from 0
  try {
    for (let i = 0; i < 10; i++) rtp.send(indexedRtp(i, 200, MEDIA), listen, LO);
    await waitFor(async () => (await segmentStats(proxy, "fan")).ports.sender !== null, 5000, "the sender latched");
    rtcp.send(sr(MEDIA), listen + 1, LO); // the proxy learns where the sender's feedback goes
    await waitFor(async () => (await segmentStats(proxy, "fan")).rtcpIn === 1, 5000, "the sender's report at the proxy");
    const egressRtcp = (await segmentStats(proxy, "fan")).ports.egressRtcp!;
    // every receiver at once: a report (receiver k lost k%), a keyframe request, a NACK for 5 and 7
    receivers.forEach((r, k) => r.send(compound(
      rr(0x7e000000 + k, [{ ssrc: MEDIA, fractionLost: Math.round((k * 256) / 100), cumulativeLost: k, extendedHighest: 9, jitter: 10 * k }]),
      pli(0x7e000000 + k, MEDIA),
      nack(0x7e000000 + k, MEDIA, [5, 7]),
    ), egressRtcp, LO));
    await waitFor(async () => (await segmentStats(proxy, "fan")).upstreamIn === RECEIVERS, 5000, "every receiver's RTCP at the proxy");
    await sleep(1300); // one report interval
    return { compounds, proxyStats: await segmentStats(proxy, "fan") };
  } finally {
    for (const s of [rtp, rtcp, ...receivers]) s.close();
    await proxy.close();
  }
}

const plis = (compounds: Rtcp[][]): number => compounds.flat().filter((p) => p.type === 206 && p.count === 1).length;
const nacked = (compounds: Rtcp[][]): number[] => compounds.flat().filter((p) => p.type === 205 && p.count === 1).flatMap(nackSeqs);

test("20 receivers' reports, keyframe requests and NACKs reach the sender as one participant's: one PLI, each NACKed packet once, one worst-case report", async () => {
  const { compounds, proxyStats } = await run(true);
  const reporters = new Set(compounds.map((c) => c[0]!.view.getUint32(4)));
  assert.is(reporters.size, 1, `every compound comes from the filter's one reporter SSRC: ${[...reporters]}`);
  assert.ok(compounds.length <= 4, `${compounds.length} compounds where 20 receivers sent 20`);
  assert.is(plis(compounds), 1, "one keyframe request");
  assert.equal(nacked(compounds).sort((a, b) => a - b), [5, 7], "each NACKed packet once");
  const blocks = compounds.flat().filter((p) => p.type === 201).flatMap(reportBlocks).filter((b) => b.ssrc === MEDIA);
  assert.ok(blocks.length >= 1, "an aggregated receiver report");
  const worst = blocks.at(-1)!;
  assert.is(worst.fractionLost, Math.round((19 * 256) / 100), "the worst receiver's fraction lost");
  assert.is(worst.jitter, 190, "the worst jitter");
  const stage = proxyStats.stages[0]!;
  assert.is(stage.metrics.find((m) => m.name === "feedback_keyframe_requests_in")?.value, RECEIVERS);
  assert.is(stage.metrics.find((m) => m.name === "feedback_keyframe_requests_forwarded")?.value, 1);
});

test("without the filter the sender sees every receiver: 20 compounds, 20 PLIs (the flood the filter prevents)", async () => {
  const { compounds } = await run(false);
  assert.is(compounds.length, RECEIVERS);
  assert.is(plis(compounds), RECEIVERS);
  assert.is(nacked(compounds).length, 2 * RECEIVERS);
});

test.run();
