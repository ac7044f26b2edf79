// Bad input for the fec filter, seeded and bounded: FEC packets with their headers mutated
// (SNBase far from the media, mask, offset, NA, length recovery, E and N bits, type, index),
// truncated, sent for packets never seen or on the wrong leg; random bytes; media that jumps,
// wraps, repeats and reorders. The filter must count and drop or pass every packet with a reason
// it may give, never trap, never grow its memory, and decode a clean stream afterwards.
import * as assert from "uvu/assert";
import { pseudoRandomBytes } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import {
  decode, drain, encode, equalBytes, indexOf, loadFec, mediaOut, mediaStream, metric, rng, seqOf, unrecoverable, wire,
  type WireItem,
} from "./fec-lib.js";

const test = suite("fec bad input (fuzz)", { timeoutMs: 120_000 });

const PACKETS = 12_000;
/** Reasons the decoder may drop with: its own 256-259 and the RTP structure checks. */
const ALLOWED = new Set(["duplicate", "fec_malformed", "fec_shape", "fec_out_of_window", "too_short", "bad_version", "bad_padding", "csrc_overrun", "extension_overrun"]);

function mutate(bytes: Uint8Array, next: () => number): Uint8Array {
  const b = bytes.slice();
  const v = new DataView(b.buffer);
  const pick = Math.floor(next() * 13);
  const f = 12;
  switch (pick) {
    case 0: v.setUint16(f, Math.floor(next() * 65536)); break; // SNBase anywhere
    case 1: b[f + 5 + Math.floor(next() * 3)] = 1 + Math.floor(next() * 255); break; // mask
    case 2: b[f + 13] = Math.floor(next() * 256); break; // offset
    case 3: b[f + 14] = Math.floor(next() * 256); break; // NA
    case 4: v.setUint16(f + 2, Math.floor(next() * 65536)); break; // length recovery
    case 5: b[f + 4] = b[f + 4]! ^ 0x80; break; // E
    case 6: b[f + 12] = b[f + 12]! | 0x80; break; // N
    case 7: b[f + 12] = (b[f + 12]! & 0xc0) | Math.floor(next() * 64); break; // type, index
    case 8: return b.slice(0, Math.floor(next() * Math.min(b.length, 40))); // truncated
    case 9: b[f + 12] = b[f + 12]! ^ 0x40; break; // row <-> column
    case 10: b[0] = Math.floor(next() * 256); break; // RTP header (version, padding, CSRC count, extension)
    case 11: b[Math.floor(next() * b.length)] = Math.floor(next() * 256); break; // anywhere
    default: v.setUint16(f, v.getUint16(f) + 30000); break; // SNBase far from the media
  }
  return b;
}

for (const shape of [
  { columns: 4, rows: 4, rowFec: true },
  { columns: 10, rows: 10, rowFec: true },
  { columns: 1, rows: 20, rowFec: false },
]) {
  test(`decoder ${shape.columns} x ${shape.rows}: ${PACKETS.toLocaleString("en")} mutated FEC, random bytes and chaotic media: counted, never a trap, memory flat, then a clean stream decodes`, async () => {
    const seed = 4242 + shape.columns * 100 + shape.rows;
    const next = rng(seed);
    const enc = await loadFec();
    const ectx = enc.createContext({ mode: "encode", ...shape });
    const seq0 = 65000;
    const media = mediaStream(1500, seq0);
    const fec = encode(enc, ectx, media, seq0, 16);
    const h = await loadFec();
    const ctx = h.createContext({ mode: "decode", ...shape, maxDelayMs: 40 });
    const memoryAtStart = h.instance.memory.buffer.byteLength;
    const counts = new Map<string, number>();
    // The clean wire (media and FEC as the encoder sent them), walked with chaos: loss, repeats,
    // swaps, mutated FEC, random bytes and legs, and now and then a jump of the whole stream.
    const sent = wire(media, fec, () => false);
    let fed = 0;
    let at = 0;
    let seqShift = 0;
    let previous: WireItem | null = null;
    while (fed < PACKETS) {
      const batch: WireItem[] = [];
      const size = 1 + Math.floor(next() * 64);
      while (batch.length < size) {
        if (at >= sent.length || next() < 0.002) at = Math.floor(next() * sent.length); // back (or on) in the stream
        if (next() < 0.002) seqShift = Math.floor(next() * 65536); // the sender restarts elsewhere
        const item = sent[at++]!;
        const r = next();
        let out: WireItem;
        if (r < 0.05) continue; // lost
        if (r < 0.07 && previous) out = previous; // repeated
        else if (r < 0.12) out = { bytes: pseudoRandomBytes(Math.floor(next() * 1500), Math.floor(next() * 1e9)), leg: Math.floor(next() * 3) };
        else if (item.leg === 0) {
          const b = item.bytes.slice();
          new DataView(b.buffer).setUint16(2, (seqOf(b) + seqShift) & 0xffff);
          out = { bytes: b, leg: 0 };
        } else {
          const b = next() < 0.3 ? mutate(item.bytes, next) : item.bytes.slice();
          if (b.length >= 14) new DataView(b.buffer).setUint16(12, (new DataView(b.buffer).getUint16(12) + seqShift) & 0xffff);
          out = { bytes: b, leg: next() < 0.95 ? item.leg : Math.floor(next() * 8) };
        }
        if (next() < 0.05 && batch.length > 0) batch.splice(batch.length - 1, 0, out); // swapped with the one before
        else batch.push(out);
        previous = out;
      }
      const res = h.runBatch(batch.map((it) => ({ ctx, bytes: it.bytes, leg: it.leg, flags: next() < 0.02 ? 1 : 0 })));
      for (const p of res.packets) {
        const v = p.verdict === "drop" ? p.reasonName : p.verdict;
        counts.set(v, (counts.get(v) ?? 0) + 1);
        if (p.verdict === "drop") assert.ok(ALLOWED.has(p.reasonName), `unexpected drop reason ${p.reasonName}`);
      }
      for (const o of [...res.outputs, ...h.advanceTime(Math.floor(next() * 30_000))]) {
        assert.is(o.ctx, ctx);
        assert.is(o.leg, 0, "the decoder only sends media");
        assert.ok(o.bytes.length >= 12 && o.bytes.length <= 1984 && o.bytes[0]! >> 6 === 2, "RTP out");
      }
      fed += batch.length;
      assert.is(h.instance.failure, undefined);
    }
    assert.is(h.instance.memory.buffer.byteLength, memoryAtStart, "no memory growth on the packet path");
    const seen = `${[...counts].join(" ")}; ${h.metricNames().map((n) => `${n}=${metric(h, n, ctx)}`).join(" ")}`;
    for (const name of ["fec_malformed", "fec_shape", "fec_out_of_window", "duplicates", "late", "resyncs", "recovered", "unrecoverable", "fec_expired"]) {
      assert.ok(metric(h, name, ctx) > 0, `the fuzz reached ${name}: ${seen}`);
    }
    const dropped = [...counts].filter(([v]) => v !== "pass" && v !== "hold").reduce((n, [, c]) => n + c, 0);
    assert.ok(dropped > PACKETS / 20, `bad input was dropped, counted: ${seen}`);

    // The fuzzed instance (a new context in it: the old one is drained, which ends a context)
    // decodes a clean stream with loss afterwards, as the model says.
    drain(h, ctx);
    const seqB = (seqShift + 20000) & 0xffff;
    const clean = mediaStream(4 * shape.columns * shape.rows + 5, seqB);
    const cleanFec = encode(enc, enc.createContext({ mode: "encode", ...shape }), clean, seqB, 16);
    const lost = new Set([5, 2 * shape.columns + 1, 3 * shape.columns * shape.rows - 2]);
    const ctx2 = h.createContext({ mode: "decode", ...shape, maxDelayMs: 10_000 });
    const d = decode(h, ctx2, wire(clean, cleanFec, (x) => x.media !== undefined && lost.has(x.media)), 16);
    const out = [...d.out, ...mediaOut(drain(h, ctx2))];
    const gone = unrecoverable(shape, lost, cleanFec.map((s) => s.group));
    assert.equal(out.map((b) => indexOf(seqOf(b), seqB)), clean.map((_, i) => i).filter((i) => !gone.has(i)));
    out.forEach((b) => assert.ok(equalBytes(b, clean[indexOf(seqOf(b), seqB)]!)));
  });
}

test(`encoder: ${PACKETS.toLocaleString("en")} packets of chaos (random bytes, jumps, repeats, sizes up to the slot): never a trap, every FEC packet well-formed, memory flat`, async () => {
  const next = rng(99);
  const h = await loadFec();
  const ctx = h.createContext({ mode: "encode", columns: 5, rows: 4 });
  const memoryAtStart = h.instance.memory.buffer.byteLength;
  let seq = 100;
  let fed = 0;
  let fecOut = 0;
  while (fed < PACKETS) {
    const size = 1 + Math.floor(next() * 64);
    const batch = Array.from({ length: size }, () => {
      const r = next();
      if (r < 0.1) return { ctx, bytes: pseudoRandomBytes(Math.floor(next() * 1984), Math.floor(next() * 1e9)) };
      if (r < 0.12) seq = Math.floor(next() * 65536);
      else if (r < 0.15) seq -= Math.floor(next() * 50);
      else if (r < 0.2) seq += Math.floor(next() * 30);
      const b = mediaStream(1, seq++ & 0xffff)[0]!;
      if (next() < 0.05) {
        const big = new Uint8Array(1900 + Math.floor(next() * 84)); // payloads too long to protect
        big.set(b.subarray(0, 12));
        return { ctx, bytes: big };
      }
      return { ctx, bytes: b };
    });
    const r = h.runBatch(batch);
    r.packets.forEach((p, k) => assert.ok(p.verdict === "pass" && equalBytes(p.bytes, batch[k]!.bytes), "the encoder passes everything untouched"));
    for (const o of r.outputs) {
      assert.ok(o.leg === 1 || o.leg === 2);
      assert.ok(o.bytes.length >= 28 && o.bytes.length <= 1984);
      fecOut++;
    }
    fed += size;
    assert.is(h.instance.failure, undefined);
  }
  assert.ok(fecOut > 100, `FEC still goes out between the jumps (${fecOut})`);
  assert.is(h.instance.memory.buffer.byteLength, memoryAtStart);
  assert.ok(metric(h, "media_unprotected", ctx) > 0);
});

test.run();
