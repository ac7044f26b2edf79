// The end-to-end harness's generator and sink (bench/loadgen.ts) on real sockets, and the C
// ceiling relay (bench/hosts/c-relay.c) compiled and relaying: what the workers part and the
// SRTP chain rely on. Losses are attributed to the kernel's drop counters, never assumed zero.
import type { Socket } from "node:dgram";
import * as assert from "uvu/assert";
import { LoadProcess } from "../bench/load-process.js";
import type { LoadgenReply, LoadgenRequest } from "../bench/loadgen.js";
import { startCRelay } from "../bench/hosts/c-relay.js";
import { DropWatch, settled, unexplainedLoss } from "./lib/kernel-drops.js";
import { bindUdp } from "./lib/udp.js";
import { suite } from "./lib/suite.js";

const test = suite("bench loadgen", { timeoutMs: 30_000 });

type Load = LoadProcess<LoadgenRequest, LoadgenReply>;
const start = (role: "gen" | "sink"): Load => new LoadProcess<LoadgenRequest, LoadgenReply>(new URL("../bench/loadgen.js", import.meta.url), role);

let gen: Load;
let sink: Load;

test.before(async () => {
  gen = start("gen");
  sink = start("sink");
  await Promise.all([gen.ready, sink.ready]);
});

test.after(async () => {
  await Promise.all([gen.exit(), sink.exit()]);
});

interface Stream {
  ssrc: number;
  seqs: number[];
  indexes: number[];
}

/** A socket that keeps, per SSRC, the sequence numbers and stamp indexes of what it receives. */
function recorder(sock: Socket): Map<number, Stream> {
  const streams = new Map<number, Stream>();
  sock.on("message", (m: Buffer) => {
    const ssrc = m.readUInt32BE(8);
    const s = streams.get(ssrc) ?? { ssrc, seqs: [], indexes: [] };
    streams.set(ssrc, s);
    s.seqs.push(m.readUInt16BE(2));
    s.indexes.push(m.readUInt32BE(16));
  });
  return streams;
}

test("the generator spreads a trial evenly over several ports, one in-order stream per port", async () => {
  const socks = await Promise.all([bindUdp(), bindUdp(), bindUdp()]);
  const ports = socks.map((s) => s.address().port);
  const got = socks.map(recorder);
  const drops = new DropWatch(ports);
  try {
    for (const trial of [101, 102]) {
      const ran = await gen.request({ cmd: "run", trial, ports, rate: 3000, durationMs: 300, size: 200 }, "ran", 10_000);
      assert.is(ran.sent, 900);
      assert.is(ran.sendErrors, 0);
    }
    const total = () => got.reduce((n, m) => n + [...m.values()].reduce((k, s) => k + s.seqs.length, 0), 0);
    await settled(total);
    const loss = unexplainedLoss({ sent: 1800, received: total(), proxyDrops: 0, kernel: drops });
    assert.is(loss, null, loss ?? "");
    const ssrcs = new Set<number>();
    got.forEach((streams, i) => {
      assert.is(streams.size, 1, `port ${i}: one stream`);
      const s = [...streams.values()][0]!;
      ssrcs.add(s.ssrc);
      // round robin: port i gets stamp indexes i, i + 3, ... of each trial
      assert.ok(s.indexes.every((x) => x % 3 === i), `port ${i}: indexes ${s.indexes.slice(0, 6).join(",")}`);
      // sequence numbers go on across trials, one step per packet of this stream
      if (drops.since().total === 0) {
        assert.is(s.seqs.length, 600, `port ${i}`);
        assert.ok(s.seqs.every((q, k) => k === 0 || q === ((s.seqs[k - 1]! + 1) & 0xffff)), `port ${i}: sequence gaps`);
      }
    });
    assert.is(ssrcs.size, 3, "a distinct SSRC per port");
  } finally {
    for (const s of socks) s.close();
  }
});

test("the sink counts by sequence number across wraps, and stragglers of the trial before are stray", async () => {
  const drops = new DropWatch([sink.port]);
  await sink.request({ cmd: "arm", trial: 201, expect: 70_000, bySequence: true }, "armed", 5000);
  // packets of another trial arrive while this one is armed (late ones of the trial before)...
  const before = await gen.request({ cmd: "run", trial: 200, ports: [sink.port], rate: 20_000, durationMs: 100, size: 100 }, "ran", 10_000);
  // ...then 70,000 of this one: the 16-bit sequence number wraps at least once
  const ran = await gen.request({ cmd: "run", trial: 201, ports: [sink.port], rate: 50_000, durationMs: 1400, size: 100 }, "ran", 20_000);
  await new Promise((r) => setTimeout(r, 200));
  const got = await sink.request({ cmd: "collect", trial: 201, firstSeq: ran.firstSeq }, "collected", 5000);
  assert.is(got.latency, null, "no latency without the stamp");
  assert.is(got.duplicates, 0);
  assert.ok(got.received <= ran.sent && got.received > 0, `received ${got.received} of ${ran.sent}`);
  // everything that arrived is either this trial's (counted once) or the other's (stray)
  const kernel = drops.since().total;
  assert.is(got.received + got.stray + kernel, ran.sent + before.sent, `received ${got.received}, stray ${got.stray}, kernel drops ${kernel}`);
  assert.ok(got.stray <= before.sent, `stray ${got.stray} > ${before.sent} sent before`);
  // both on the addon's batched I/O here, the sink timing arrivals by the kernel's stamps
  assert.equal([ran.io, got.io, got.receiveClock], ["batched", "batched", "kernel"], `${ran.note ?? ""} ${got.note ?? ""}`);
});

test("latencyFrom: the sink counts every packet but times only those from that index on", async () => {
  // 1,000 packets; the first 900 are left out of the latency, so its percentiles rest on the last 100
  const time = async (trial: number, latencyFrom: number | undefined) => {
    await sink.request({ cmd: "arm", trial, expect: 1000, ...(latencyFrom !== undefined && { latencyFrom }) }, "armed", 5000);
    const ran = await gen.request({ cmd: "run", trial, ports: [sink.port], rate: 10_000, durationMs: 100, size: 200 }, "ran", 10_000);
    await new Promise((r) => setTimeout(r, 100));
    return { ran, got: await sink.request({ cmd: "collect", trial }, "collected", 5000) };
  };
  const all = await time(401, 1000);
  assert.ok(all.got.received > 0, "nothing arrived");
  assert.is(all.got.timed, 0);
  assert.is(all.got.latency, null, "every packet left out of the latency: none timed");
  const tail = await time(402, 900);
  assert.ok(tail.got.timed > 0 && tail.got.timed <= 100, `timed ${tail.got.timed}: only packets 900-999`);
  // chosen by index, not by arrival order: every packet that arrived from 900 on, and no other
  if (tail.got.received === 1000) assert.is(tail.got.timed, 100);
  assert.ok(tail.got.received > tail.got.timed, `received ${tail.got.received}: the packets before 900 are counted as received too`);
  assert.ok(tail.got.latency !== null && tail.got.latency.over1ms !== undefined && tail.got.latency.over1ms <= tail.got.timed);
  const whole = await time(403, undefined);
  assert.is(whole.got.timed, whole.got.received, "without latencyFrom every packet is timed");
});

test("MSM_LOADGEN_IO=dgram: the generator and the sink fall back to node:dgram, say why, and count the same", async () => {
  process.env.MSM_LOADGEN_IO = "dgram";
  const g = start("gen");
  const k = start("sink");
  delete process.env.MSM_LOADGEN_IO;
  try {
    await Promise.all([g.ready, k.ready]);
    const drops = new DropWatch([k.port]);
    await k.request({ cmd: "arm", trial: 301, expect: 2000 }, "armed", 5000);
    const ran = await g.request({ cmd: "run", trial: 301, ports: [k.port], rate: 10_000, durationMs: 200, size: 200 }, "ran", 10_000);
    await new Promise((r) => setTimeout(r, 200));
    const got = await k.request({ cmd: "collect", trial: 301 }, "collected", 5000);
    assert.equal([ran.io, got.io, got.receiveClock], ["dgram", "dgram", "loop"]);
    assert.match(ran.note ?? "", /MSM_LOADGEN_IO=dgram/);
    assert.is(got.received + drops.since().total, ran.sent, `received ${got.received} of ${ran.sent}`);
    assert.ok(got.latency !== null, "latency from the stamps");
  } finally {
    await Promise.all([g.exit(), k.exit()]);
  }
});

test("the C relay compiles and relays datagrams unchanged", async () => {
  const out = await bindUdp();
  const received: Buffer[] = [];
  out.on("message", (m: Buffer) => received.push(m));
  const relay = await startCRelay(out.address().port);
  const input = await bindUdp();
  const drops = new DropWatch([relay.port, out.address().port]);
  try {
    const sent = Array.from({ length: 200 }, (_, i) => Buffer.alloc(60 + i, i));
    for (const b of sent) {
      input.send(b, relay.port, "127.0.0.1");
      await new Promise((r) => setImmediate(r));
    }
    await settled(() => received.length);
    const loss = unexplainedLoss({ sent: sent.length, received: received.length, proxyDrops: 0, kernel: drops });
    assert.is(loss, null, loss ?? "");
    // what arrived is what was sent, in order (a lost datagram is skipped, never altered)
    let k = 0;
    for (const r of received) {
      while (k < sent.length && !sent[k]!.equals(r)) k++;
      assert.ok(k < sent.length, `a datagram of ${r.length} bytes was not one sent, or came out of order`);
    }
    assert.ok(relay.pids().length === 1);
  } finally {
    input.close();
    await relay.close();
    out.close();
  }
});

test.run();
