// An srtp stage in a segment without rtcpMux, whose sender sends its RTCP to the RTP port (as a
// sender that muxes does): over real sockets, the RTCP packets are dropped as rtcp_in_rtp_range
// (RTP payload types 72-76 with the marker bit are reserved for that, RFC 3551 section 6), take
// no source slot of protect, and do not count as failed authentication on unprotect.
import * as assert from "uvu/assert";
import { FilterHarness, PacketFlag, pseudoRandomBytes } from "../sdk/harness/index.js";
import { filterWasm } from "./lib/paths.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";

const test = suite("srtp: RTCP on the RTP port of a segment without rtcpMux", { timeoutMs: 30_000 });
const LO = "127.0.0.1";
const SSRC = 0x1234abcd, NEXT_SSRC = 0x77777777;
const KEY = `inline:${Buffer.from(pseudoRandomBytes(30, 21)).toString("base64")}`;
const u32 = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
/** An SR of the sender, its NTP seconds `ntp` (what an RTP reading takes for the SSRC). */
const senderReport = (ntp: number): Buffer => Buffer.from([0x80, 200, 0, 6, ...u32(SSRC), ...u32(ntp), ...new Array<number>(16).fill(1)]);

test("protect: SRs on the RTP port take no source slot; the sender's next SSRC still gets one", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open(0, { keep: true });
  const { proxy } = await startProxy({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{
      name: "p", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }],
      chain: [{ filter: "srtp", config: { direction: "protect", key: KEY, maxSources: 2 } }],
    }],
  });
  const tx = await bindUdp();
  try {
    for (let i = 0; i < 5; i++) tx.send(indexedRtp(i, 300, SSRC), listen, LO);
    await waitFor(() => sink.received === 5, 5000, "the first stream's 5 packets");
    for (let k = 0; k < 4; k++) tx.send(senderReport(3_900_000_000 + k), listen, LO);
    await waitFor(async () => ((await segmentStats(proxy, "p")).drops.rtcp_in_rtp_range ?? 0) === 4, 5000, "the 4 SRs dropped as rtcp_in_rtp_range");
    for (let i = 0; i < 5; i++) tx.send(indexedRtp(i, 300, NEXT_SSRC), listen, LO);
    await waitFor(() => sink.received === 10, 5000, "the second SSRC's 5 packets (a slot was left for it)");
    const st = await segmentStats(proxy, "p");
    assert.equal(st.drops, { rtcp_in_rtp_range: 4 }, "nothing refused as too_many_sources");
    assert.ok(sink.packets.every(({ bytes }) => bytes[1] === 96 && bytes.length === 310), "only the RTP left, protected");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("unprotect: SRTCP on the RTP port is rtcp_in_rtp_range, not srtp_auth_failed", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open(0, { keep: true });
  const { proxy } = await startProxy({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{
      name: "u", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }],
      chain: [{ filter: "srtp", config: { direction: "unprotect", key: KEY } }],
    }],
  });
  const h = await FilterHarness.load(filterWasm("srtp", true), { name: "srtp" });
  const sender = h.createContext({ direction: "protect", key: KEY });
  const tx = await bindUdp();
  try {
    for (let i = 0; i < 5; i++) tx.send(h.run({ ctx: sender, bytes: indexedRtp(i, 300, SSRC) }).bytes, listen, LO);
    await waitFor(() => sink.received === 5, 5000, "5 packets unprotected");
    for (let k = 0; k < 3; k++) tx.send(h.run({ ctx: sender, bytes: senderReport(3_900_000_000 + k), flags: PacketFlag.Rtcp }).bytes, listen, LO);
    await waitFor(async () => ((await segmentStats(proxy, "u")).drops.rtcp_in_rtp_range ?? 0) === 3, 5000, "the 3 SRTCP packets dropped as rtcp_in_rtp_range");
    assert.equal((await segmentStats(proxy, "u")).drops, { rtcp_in_rtp_range: 3 }, "none counted as a failed authentication");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
