// Bad input for the replicate filter, seeded and bounded: two paths of a stream walked with
// chaos (loss, repeats, swaps, SSRC changes, jumps of the sequence anywhere, packets on every
// leg), random bytes as RTP and as RTCP both ways, and mutated state blobs. The filter must drop
// only with reasons it may give, never trap, never grow its memory, and merge a clean stream
// afterwards.
import * as assert from "uvu/assert";
import { PacketFlag, pseudoRandomBytes, type HarnessPacket } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { arrivals, loadReplicate, metric, packet, rng, run, seqOf, stream } from "./replicate-lib.js";

const test = suite("replicate bad input (fuzz)", { timeoutMs: 120_000 });

const PACKETS = 20_000;
const ALLOWED = new Set(["duplicate", "stale", "too_short", "bad_version", "bad_padding", "csrc_overrun", "extension_overrun"]);
const CONFIG = { merge: { legs: [0, 1, 2], bufferMs: 20, maxHeld: 64 }, copyToLegs: [3], rewrite: { ssrc: 7, payloadType: 100 } };

function chaos(next: () => number, ctx: number, seqShift: { value: number; ssrc: number }): HarnessPacket {
  const r = next();
  if (r < 0.003) seqShift.value = Math.floor(next() * 65536); // the sender restarts elsewhere
  if (r < 0.002) seqShift.ssrc = Math.floor(next() * 0xffffffff);
  const i = Math.floor(next() * 4000);
  if (r < 0.08) return { ctx, bytes: pseudoRandomBytes(Math.floor(next() * 1500), Math.floor(next() * 1e9)), leg: Math.floor(next() * 8), flags: next() < 0.5 ? PacketFlag.Rtcp : 0 };
  if (r < 0.12) {
    // RTCP-looking: a valid header then noise, either way
    const b = pseudoRandomBytes(8 + 4 * Math.floor(next() * 30), Math.floor(next() * 1e9));
    b[0] = 0x80 | (b[0]! & 0x1f);
    b[1] = 200 + Math.floor(next() * 8);
    new DataView(b.buffer).setUint16(2, b.length / 4 - 1);
    return { ctx, bytes: b, leg: 0, flags: PacketFlag.Rtcp | (next() < 0.5 ? PacketFlag.Upstream : 0) };
  }
  const b = packet(i, seqShift.value, seqShift.ssrc);
  if (r < 0.15) b[0] = Math.floor(next() * 256);
  const cut = r < 0.17 ? b.slice(0, Math.floor(next() * b.length)) : b;
  return { ctx, bytes: cut, leg: next() < 0.9 ? Math.floor(next() * 3) : Math.floor(next() * 8), flags: next() < 0.02 ? PacketFlag.Upstream : 0 };
}

test(`${PACKETS.toLocaleString("en")} packets of chaos on every leg, RTCP noise both ways: counted, never a trap, memory flat, then a clean stream merges`, async () => {
  const next = rng(2022_7);
  const h = await loadReplicate();
  const ctx = h.createContext(CONFIG);
  const memoryAtStart = h.instance.memory.buffer.byteLength;
  const counts = new Map<string, number>();
  const shift = { value: 0, ssrc: 0x2022_0007 };
  // A stream walked in order on two paths, with chaos mixed in.
  let seq = 0;
  let fed = 0;
  while (fed < PACKETS) {
    const size = 1 + Math.floor(next() * 64);
    const batch: HarnessPacket[] = [];
    while (batch.length < size) {
      if (next() < 0.6) {
        const b = packet(seq, shift.value, shift.ssrc);
        for (const leg of [0, 1]) if (next() > 0.1) batch.push({ ctx, bytes: b, leg });
        seq++;
      } else {
        batch.push(chaos(next, ctx, shift));
      }
    }
    const r = h.runBatch(batch.slice(0, 64));
    for (const p of r.packets) {
      const v = p.verdict === "drop" ? p.reasonName : p.verdict;
      counts.set(v, (counts.get(v) ?? 0) + 1);
      if (p.verdict === "drop") assert.ok(ALLOWED.has(p.reasonName), `unexpected drop reason ${p.reasonName}`);
    }
    for (const o of [...r.outputs, ...h.advanceTime(Math.floor(next() * 30_000))]) {
      assert.is(o.ctx, ctx);
      assert.ok(o.leg === 0 || o.leg === 3, `output on leg ${o.leg}`);
      assert.ok(o.bytes.length >= 12 && o.bytes[0]! >> 6 === 2, "RTP out");
    }
    fed += Math.min(64, batch.length);
    assert.is(h.instance.failure, undefined);
  }
  assert.is(h.instance.memory.buffer.byteLength, memoryAtStart, "no memory growth on the packet path");
  const seen = `${[...counts].join(" ")}; ${h.metricNames().map((n) => `${n}=${metric(h, n, ctx)}`).join(" ")}`;
  for (const name of ["merged_lost", "merged_late", "merged_held", "merged_resyncs", "merged_stale", "merged_stray", "path0_duplicates", "rewrite_switches", "copies_sent"]) {
    assert.ok(metric(h, name, ctx) > 0, `the fuzz reached ${name}: ${seen}`);
  }

  // Mutated state blobs: refused or taken, never a trap.
  const blob = h.exportState(ctx)!;
  for (let k = 0; k < 300; k++) {
    const x = blob.slice(0, next() < 0.2 ? Math.floor(next() * blob.length) : blob.length);
    for (let m = 0; m < 1 + Math.floor(next() * 4); m++) if (x.length > 0) x[Math.floor(next() * x.length)] = Math.floor(next() * 256);
    const c = h.createContext(CONFIG);
    h.importState(c, x);
    h.runBatch([{ ctx: c, bytes: packet(k), leg: 0 }, { ctx: c, bytes: packet(k + 1), leg: 1 }]);
    h.advanceTime(30_000);
    h.drainContext(c);
    h.destroyContext(c);
    assert.is(h.instance.failure, undefined);
  }

  // The fuzzed instance merges a clean stream in a new context.
  h.drainContext(ctx);
  h.destroyContext(ctx);
  const clean = h.createContext({ merge: { legs: [0, 1], bufferMs: 50 } });
  const packets = stream(1000, 33_000);
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: (i) => i % 10 === 3 }, { leg: 1, delayUs: 7000, lose: (i) => i % 10 === 6 }], h.nowUs);
  const m = run(h, clean, items, 1000, 100_000);
  assert.equal(m.out.map(seqOf), packets.map(seqOf));
  assert.is(h.instance.memory.buffer.byteLength, memoryAtStart);
});

test.run();
