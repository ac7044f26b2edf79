// A segment's own counters (msm_segment_*) go on when a reload gives it new sockets (its listen
// port, rtcpMux: the segment is bound afresh after the commit), as they do across a hot swap, a
// move to another worker and a worker restart: a Prometheus counter that goes back reads as a
// reset, and `increase()` over it, or an alert on drops, is off by what the old sockets counted.
import * as assert from "uvu/assert";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { assertWentOn, sendRound, seriesOf } from "./lib/counter-series.js";
import { filterWasm } from "./lib/paths.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, Sink } from "./lib/udp.js";

const test = suite("segment counters across new sockets", { timeoutMs: 60_000 });

test("a reload that rebinds the segment (rtcpMux, then its listen port): every msm_segment_* series goes on from its count", async () => {
  const sink = await Sink.open();
  const LO = "127.0.0.1";
  let listen = await freePortPair();
  let rtcpMux = false;
  const config = (): ProxyConfigInput => ({
    workers: 1,
    filters: { validate: { path: filterWasm("validate") } },
    segments: [{ name: "cam", listen: { address: LO, port: listen }, rtcpMux, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "validate" }] }],
  });
  const { proxy } = await startProxy(config());
  const tx = await bindUdp();
  let seq = 0;
  /** 100 packets of the stream and one of RTP version 1 (a drop); waits until the segment counted them. */
  const round = async (): Promise<void> => {
    const bad = indexedRtp(seq, 200);
    bad[0] = 0x40;
    seq = await sendRound(proxy, "cam", tx, listen, seq, [bad]);
  };
  const scrape = (): Promise<Map<string, number>> => seriesOf(proxy, /^msm_segment_/);
  const wentOn = (before: Map<string, number>, after: Map<string, number>, step: string): void => assertWentOn(before, after, step, 6);
  try {
    await round();
    const first = await scrape();
    assert.ok((first.get('msm_segment_packets_in_total{segment="cam"}') ?? 0) >= 101, "the first round counted");
    assert.is(first.get('msm_segment_drops_total{segment="cam",reason="bad_version"}'), 1, "and its drop");

    rtcpMux = true;
    await proxy.apply(validateProxyConfig(config()));
    await round();
    const second = await scrape();
    wentOn(first, second, "rtcpMux on");
    assert.ok(second.get('msm_segment_packets_in_total{segment="cam"}')! >= first.get('msm_segment_packets_in_total{segment="cam"}')! + 101, "the second round added to the first");
    assert.is(second.get('msm_segment_drops_total{segment="cam",reason="bad_version"}'), 2, "the drops too");

    listen = await freePortPair();
    await proxy.apply(validateProxyConfig(config()));
    await round();
    const third = await scrape();
    wentOn(second, third, "listen port moved");
    assert.is(third.get('msm_segment_drops_total{segment="cam",reason="bad_version"}'), 3, "three rounds' drops");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test("the same reloads: the stream's counters (msm_stream_*_total) and its state go on too, in the same worker", async () => {
  const sink = await Sink.open();
  const LO = "127.0.0.1";
  let listen = await freePortPair();
  let rtcpMux = false;
  const config = (): ProxyConfigInput => ({
    workers: 1,
    segments: [{ name: "cam", listen: { address: LO, port: listen }, rtcpMux, destinations: [{ address: LO, port: sink.port }] }],
  });
  const { proxy } = await startProxy(config());
  const tx = await bindUdp();
  let seq = 0;
  const STREAM = 'segment="cam",ssrc="0x1234abcd",direction="ingress"';
  /** 100 packets of one stream; waits until the segment counted them. */
  const round = async (): Promise<void> => {
    seq = await sendRound(proxy, "cam", tx, listen, seq);
  };
  const counters = (): Promise<Map<string, number>> => seriesOf(proxy, /^msm_stream_[a-z_]+_total\{/);
  try {
    await round();
    const first = await counters();
    assert.is(first.get(`msm_stream_packets_total{${STREAM}}`), 100, "the first round, one stream");
    for (const step of ["rtcpMux on", "listen port moved"]) {
      if (step === "rtcpMux on") rtcpMux = true;
      else listen = await freePortPair();
      const before = await counters();
      await proxy.apply(validateProxyConfig(config()));
      await round();
      const after = await counters();
      assertWentOn(before, after, step, 1);
      assert.is(after.get(`msm_stream_packets_total{${STREAM}}`), before.get(`msm_stream_packets_total{${STREAM}}`)! + 100, `${step}: the round added to the stream's count`);
    }
    // one stream throughout: its sequence numbers ran on, so none is missing nor restarted
    const [st] = (await segmentStats(proxy, "cam")).streams;
    assert.is(st!.ingress!.expected, 300, "expected over the three rounds");
    assert.is(st!.ingress!.lost, 0);
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
