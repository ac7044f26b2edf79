// A bounded, seeded fuzz of the host's own packet handling, the TypeScript every packet meets
// before and after the filters: the per-stream stats (RTP headers; RTCP SR/RR/XR/BYE, compound
// packets with lengths that lie) and the SSRC rewriting of destinations (docs/proxy.md), in
// process; then a real proxy over loopback (rtcpMux off and on, an empty chain and validate, fan-out
// with a translated destination), fed the same kind of datagrams from its sender, a stranger and
// its receivers. Each asserts no throw, no write outside the datagram, sane figures (finite, not
// negative, fractions in 0..1, /stats JSON that reads back the same, /metrics lines a Prometheus
// reader takes) and that every packet is accounted for: in = forwarded + dropped (by reason) +
// held. Seeded (FUZZ_SEED, FUZZ_ROUNDS): a failure names its seed. A few seconds in all.
import * as assert from "uvu/assert";
import { SegmentStreams } from "../runtime/streams/segment-streams.js";
import { StreamTable } from "../runtime/streams/stream-table.js";
import { rewriteRtcpSsrc, rewriteRtp, rtpSsrc } from "../runtime/dataplane/ssrc-rewrite.js";
import { renderPrometheus } from "../runtime/admin/prometheus.js";
import { suite } from "./lib/suite.js";
import { filterWasm } from "./lib/paths.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { freePortPair, Sink, sleep, waitFor } from "./lib/udp.js";

/** mulberry32: small, seeded, reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.FUZZ_SEED ?? 20261206);
const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 4000);
const T0 = 1_800_000_000_000;

/** Crafted RTCP: one packet of a type, with counts and lengths that may lie. */
function rtcpPacket(rnd: () => number, ssrcs: number[]): number[] {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const type = pick([200, 201, 202, 203, 204, 205, 206, 207, Math.floor(rnd() * 256)]);
  const count = rnd() < 0.3 ? 31 : Math.floor(rnd() * 4);
  const bodyWords = rnd() < 0.2 ? Math.floor(rnd() * 3) : Math.floor(rnd() * 24);
  const body: number[] = [];
  const u32 = (v: number): void => void body.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  const ssrc = (): number => (rnd() < 0.7 ? pick(ssrcs) : rnd() < 0.5 ? 0 : Math.floor(rnd() * 2 ** 32));
  for (let w = 0; w < bodyWords; w++) {
    const r = rnd();
    u32(r < 0.4 ? ssrc() : r < 0.6 ? 0xffffffff : r < 0.7 ? 0 : Math.floor(rnd() * 2 ** 32));
  }
  if (type === 207 && body.length >= 8 && rnd() < 0.7) {
    body[4] = 6; body[5] = Math.floor(rnd() * 256); body[6] = 0; body[7] = rnd() < 0.7 ? 9 : Math.floor(rnd() * 256);
  }
  const lengthWords = rnd() < 0.7 ? bodyWords : Math.floor(rnd() * 65536);
  const version = rnd() < 0.95 ? 2 : Math.floor(rnd() * 4);
  return [(version << 6) | (rnd() < 0.1 ? 0x20 : 0) | count, type, (lengthWords >> 8) & 255, lengthWords & 255, ...body];
}

function rtcpCompound(rnd: () => number, ssrcs: number[]): Uint8Array {
  const parts: number[] = [];
  const n = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < n; k++) parts.push(...rtcpPacket(rnd, ssrcs));
  if (rnd() < 0.2) parts.length = Math.floor(rnd() * parts.length); // cut short
  if (rnd() < 0.1) for (let k = 0; k < 1 + Math.floor(rnd() * 14); k++) parts.push(Math.floor(rnd() * 256)); // an SRTCP-like tail
  return Uint8Array.from(parts);
}

function rtpPacket(rnd: () => number, ssrcs: number[], seq: number, ts: number): Uint8Array {
  const r = rnd();
  const size = r < 0.02 ? 0 : r < 0.06 ? Math.floor(rnd() * 12) : r < 0.07 ? 65507 : 12 + Math.floor(rnd() * 300);
  const b = new Uint8Array(size);
  if (size >= 1) b[0] = (rnd() < 0.95 ? 0x80 : Math.floor(rnd() * 256)) | (rnd() < 0.1 ? 0x20 : 0) | (rnd() < 0.1 ? 0x10 : 0) | (rnd() < 0.1 ? 15 : 0);
  if (size >= 2) b[1] = rnd() < 0.8 ? 96 : Math.floor(rnd() * 256);
  if (size >= 4) { b[2] = (seq >> 8) & 255; b[3] = seq & 255; }
  if (size >= 8) { b[4] = ts >>> 24; b[5] = (ts >>> 16) & 255; b[6] = (ts >>> 8) & 255; b[7] = ts & 255; }
  const s = ssrcs[Math.floor(rnd() * ssrcs.length)]!;
  if (size >= 12) { b[8] = s >>> 24; b[9] = (s >>> 16) & 255; b[10] = (s >>> 8) & 255; b[11] = s & 255; }
  if (size > 12 && rnd() < 0.2) b[size - 1] = Math.floor(rnd() * 256); // a pad count, any
  return b;
}

/** The datagram in the middle of a bigger buffer whose edges are poisoned: a read past `len` would take them. */
function embedded(p: Uint8Array, rnd: () => number): { buf: Uint8Array; at: number } {
  const at = Math.floor(rnd() * 8);
  const buf = new Uint8Array(at + p.length + 64).fill(0x81);
  buf.set(p, at);
  return { buf, at };
}

function finiteNonNegative(v: unknown, what: string): void {
  assert.ok(typeof v === "number" && Number.isFinite(v) && v >= 0, `${what}: ${String(v)}`);
}

function checkSnapshot(streams: SegmentStreams, seed: number): void {
  const snap = streams.snapshot();
  const text = JSON.stringify(snap);
  assert.equal(JSON.parse(text), snap, `seed ${seed}: /stats JSON reads back the same (no NaN, no Infinity)`);
  for (const st of snap.streams) {
    for (const dir of [st.ingress, st.egress]) {
      if (!dir) continue;
      for (const k of ["packets", "bytes", "expected", "lost", "duplicates", "reordered", "jitterMs", "highestSeq"] as const) finiteNonNegative(dir[k], `seed ${seed}: ${k}`);
      for (const w of [dir.window, dir.previousWindow]) {
        if (!w) continue;
        finiteNonNegative(w.lost, `seed ${seed}: window lost`);
        assert.ok(w.fractionLost >= 0 && w.fractionLost <= 1, `seed ${seed}: window fractionLost ${w.fractionLost}`);
      }
    }
    for (const r of st.receivers) {
      assert.ok(Number.isFinite(r.jitterMs), `seed ${seed}: receiver jitter ${r.jitterMs}`);
      assert.ok(r.rttMs === null || (Number.isFinite(r.rttMs) && r.rttMs >= 0), `seed ${seed}: rtt ${r.rttMs}`);
      assert.ok(r.linkFractionLost === null || (r.linkFractionLost >= 0 && r.linkFractionLost <= 1), `seed ${seed}: link loss ${r.linkFractionLost}`);
    }
  }
}

const fuzz = suite("host packet handling: seeded fuzz");

fuzz("per-stream stats: RTP, RTCP both ways and the clock, in any order: no throw, sane figures", () => {
  const started = Date.now();
  for (let round = 0; round < ROUNDS && Date.now() - started < 1500; round++) {
    const seed = SEED + round;
    const rnd = prng(seed);
    const table = new StreamTable(1 + Math.floor(rnd() * 8), 5000, 1 + Math.floor(rnd() * 6));
    const a = new SegmentStreams(table, rnd() < 0.5 ? undefined : { "96": 48000 });
    const b = new SegmentStreams(table, undefined);
    const ssrcs = Array.from({ length: 1 + Math.floor(rnd() * 10) }, () => (rnd() < 0.2 ? 0 : Math.floor(rnd() * 2 ** 32)));
    let now = T0 + rnd() * 1e6;
    let seq = Math.floor(rnd() * 65536);
    let ts = Math.floor(rnd() * 2 ** 32);
    for (let step = 0; step < 60; step++) {
      const s = rnd() < 0.5 ? a : b;
      const r = rnd();
      now += r < 0.05 ? -5000 * rnd() : r < 0.1 ? 40_000 * rnd() : 30 * rnd();
      const jump = rnd();
      seq = (seq + (jump < 0.8 ? 1 : jump < 0.9 ? Math.floor(rnd() * 65536) : -Math.floor(rnd() * 2000))) & 0xffff;
      ts = (ts + (rnd() < 0.9 ? 3000 : Math.floor(rnd() * 2 ** 32))) >>> 0;
      const kind = rnd();
      s.time[0] = now;
      if (kind < 0.5) {
        const { buf, at } = embedded(rtpPacket(rnd, ssrcs, seq, ts), rnd);
        const len = buf.length - at - 64;
        if (rnd() < 0.5) s.ingress(buf, at, len);
        else if (rnd() < 0.5) s.ingressCopy(buf, at, len);
        else { s.time[1] = now - rnd() * 50; s.egress(buf, at, len); }
      } else if (kind < 0.95) {
        const c = rtcpCompound(rnd, ssrcs);
        const { buf, at } = embedded(c, rnd);
        if (rnd() < 0.5) s.upstreamRtcp(buf, at, c.length, now);
        else s.downstreamRtcp(buf, at, c.length, now);
      } else {
        table.roll(now);
      }
    }
    table.roll(now + rnd() * 60_000);
    checkSnapshot(a, seed);
    checkSnapshot(b, seed);
    assert.ok(table.used <= table.limit, `seed ${seed}: slots ${table.used} of ${table.limit}`);
    a.close();
    b.close();
    assert.is(table.used, 0, `seed ${seed}: every slot back after close`);
  }
}, { timeoutMs: 20_000 });

fuzz("SSRC rewriting: any datagram, never a write outside it, and a second pass finds nothing of the old SSRC", () => {
  const started = Date.now();
  for (let round = 0; round < ROUNDS && Date.now() - started < 1500; round++) {
    const seed = SEED + 1_000_000 + round;
    const rnd = prng(seed);
    const from = rnd() < 0.3 ? 0 : Math.floor(rnd() * 2 ** 32);
    const to = Math.floor(rnd() * 2 ** 32);
    const c = rnd() < 0.8 ? rtcpCompound(rnd, [from, to]) : rtpPacket(rnd, [from], 1, 1);
    const { buf, at } = embedded(c, rnd);
    const before = buf.slice();
    const any = rnd() < 0.3 ? new Set([from, 7]) : undefined;
    rewriteRtcpSsrc(buf, at, c.length, from, to, any);
    if (rnd() < 0.5) rewriteRtp(buf, at, c.length, Math.floor(rnd() * 128) - 1, Math.floor(rnd() * 2 ** 32) - 1);
    rtpSsrc(buf, at, c.length);
    assert.equal(buf.subarray(0, at), before.subarray(0, at), `seed ${seed}: nothing written before the datagram`);
    assert.equal(buf.subarray(at + c.length), before.subarray(at + c.length), `seed ${seed}: nothing written past the datagram`);
  }
}, { timeoutMs: 20_000 });


/** A Prometheus text line: a comment, or a sample (name, labels, a value). */
const PROM_LINE = /^(# (HELP|TYPE) .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.]+(e[+-]?[0-9]+)?|NaN|\+Inf|-Inf))$/;
const LO = "127.0.0.1";

for (const [mux, chain] of [[false, "validate"], [true, "empty"]] as const) {
  fuzz(`a real proxy (rtcpMux ${mux}, ${chain} chain, two destinations, one translated): every datagram accounted for, /stats and /metrics sane`, async () => {
    const seed = SEED + (mux ? 7 : 3);
    const rnd = prng(seed);
    const listen = await freePortPair();
    const sinks = await Promise.all([0, 1, 2, 3].map(() => Sink.open(0, { keep: false })));
    const [rtpA, rtcpA, rtpB, rtcpB] = sinks as [Sink, Sink, Sink, Sink];
    // each sender with its port + 1 heard too: where a sender's feedback goes while its RTCP address is not learned
    const senderPort = await freePortPair();
    const senderRtp = await Sink.open(senderPort, { keep: false });
    const senderNext = await Sink.open(senderPort + 1, { keep: false });
    const senderRtcp = await Sink.open(0, { keep: false });
    const strangerPort = await freePortPair();
    const stranger = await Sink.open(strangerPort, { keep: false }); // another sender: latched too while the source is not strict
    const strangerNext = await Sink.open(strangerPort + 1, { keep: false });
    const senders = [senderRtp, senderNext, senderRtcp, stranger, strangerNext];
    const { proxy } = await startProxy({
      streams: { max: 16, maxPerSegment: 6 },
      filters: chain === "validate" ? { validate: { path: filterWasm("validate") } } : {},
      segments: [{
        name: "f", listen: { address: LO, port: listen }, rtcpMux: mux, egress: { address: LO, port: 0 },
        destinations: [
          { address: LO, port: rtpA.port, rtcpPort: rtcpA.port, ssrc: 0xb0b0b0b0, payloadType: 100 },
          { address: LO, port: rtpB.port, rtcpPort: rtcpB.port },
        ],
        chain: chain === "validate" ? [{ filter: "validate" }] : [],
      }],
    });
    const watch = new DropWatch([listen, listen + 1, ...sinks.map((k) => k.port), ...senders.map((k) => k.port)]);
    try {
      const ports = (await segmentStats(proxy, "f")).ports;
      const ssrcs = [0x1234abcd, 0, 0xb0b0b0b0, ...Array.from({ length: 12 }, () => Math.floor(rnd() * 2 ** 32))];
      let seq = 100;
      let ts = 1000;
      const COUNT = 800;
      for (let i = 0; i < COUNT; i++) {
        const r = rnd();
        let d: Uint8Array;
        if (r < 0.01) d = new Uint8Array(0);
        else if (r < 0.015) d = new Uint8Array(65507).fill(0x80);
        else if (r < 0.5) d = rtcpCompound(rnd, ssrcs);
        else {
          seq = (seq + (rnd() < 0.9 ? 1 : Math.floor(rnd() * 65536))) & 0xffff;
          ts = (ts + (rnd() < 0.9 ? 3000 : Math.floor(rnd() * 2 ** 32))) >>> 0;
          d = rtpPacket(rnd, ssrcs, seq, ts);
          if (d.length === 65507) d = d.subarray(0, 1200);
        }
        const w = rnd();
        if (w < 0.5) senderRtp.socket.send(d, listen, LO);
        else if (w < 0.6) senderRtcp.socket.send(d, mux ? listen : listen + 1, LO);
        else if (w < 0.65) stranger.socket.send(d, listen, LO);
        else (w < 0.8 ? rtpA : w < 0.85 ? rtcpA : w < 0.95 ? rtpB : rtcpB).socket.send(d, mux || w < 0.8 || (w >= 0.85 && w < 0.95) ? ports.egress : ports.egressRtcp!, LO);
        if (i % 20 === 19) await sleep(2);
      }
      await waitFor(async () => (await segmentStats(proxy, "f")).packetsIn + watch.since().total >= COUNT, 10_000, "the proxy to read every datagram");
      const delivered = (): number => sinks.reduce((n, k) => n + k.received, 0) + senders.reduce((n, k) => n + k.received, 0);
      await waitFor(async () => delivered() + watch.since().total >= (await segmentStats(proxy, "f")).packetsOut, 10_000, "what the proxy sent").catch(async (e) => {
        const seg = await segmentStats(proxy, "f");
        console.log(JSON.stringify({ out: seg.packetsOut, delivered: delivered(), sinks: sinks.map((k) => k.received), s: senders.map((k) => k.received), drops: seg.drops, kd: watch.since().total }));
        throw e;
      });
      const snap = await proxy.stats();
      const seg = snap.segments[0]!;
      assert.equal(JSON.parse(JSON.stringify(snap)), snap, `seed ${seed}: /stats JSON reads back the same`);
      for (const line of renderPrometheus(snap).split("\n")) if (line !== "") assert.ok(PROM_LINE.test(line), `seed ${seed}: /metrics line ${line}`);
      for (const st of seg.streams) for (const dir of [st.ingress, st.egress]) {
        if (dir) for (const v of [dir.packets, dir.expected, dir.lost, dir.jitterMs]) finiteNonNegative(v, `seed ${seed}: stream ${st.ssrc}`);
      }
      assert.ok(seg.streams.length <= 6, `seed ${seed}: ${seg.streams.length} streams, at most maxPerSegment`);
      // every datagram in: dropped by a reason, still held by validate (probation), or forwarded: downstream once to each of the two destinations, upstream once
      const stage = seg.stages[0];
      const stillHeld = stage ? stage.held - stage.generated : 0;
      const down = rtpA.received + rtcpA.received; // each downstream packet once to A ...
      assert.is(rtpB.received + rtcpB.received, down, `seed ${seed}: ... and once to B`);
      const up = senders.reduce((n, k) => n + k.received, 0);
      if (watch.since().total === 0) {
        assert.is(seg.packetsOut, 2 * down + up, `seed ${seed}: packetsOut is what arrived`);
        assert.is(seg.packetsIn, seg.dropsTotal + seg.discardsTotal + stillHeld + down + up,
          `seed ${seed}: in ${seg.packetsIn} = drops ${JSON.stringify(seg.drops)} + held ${stillHeld} + forwarded ${down} down, ${up} up`);
      }
    } finally {
      for (const k of [...sinks, ...senders]) k.close();
      await proxy.close();
    }
  }, { timeoutMs: 40_000 });
}

fuzz.run();
