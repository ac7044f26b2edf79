// The srtp filter through the harness: every suite round trips, the wire format matches an
// independent node:crypto implementation of RFC 3711 / RFC 7714, the index survives sequence
// wrap with reordering and a restart (state carried without keys), replays and forgeries are
// dropped by reason, forged SSRCs cost no state, and bad configs name the key without echoing it.
import * as assert from "uvu/assert";
import { createCipheriv, createHmac, randomBytes } from "node:crypto";
import { join } from "node:path";
import { FilterHarness, FilterConfigError, HostFeature, PacketFlag, StateOrigin, buildRtp, hostCryptoUnavailable, pseudoRandomBytes } from "../../../sdk/harness/index.js";
import { peer, peerTest } from "../../../test/lib/peers.js";
import { suite } from "../../../test/lib/suite.js";
import { ROOT } from "../../../test/lib/paths.js";

const test = suite("srtp filter");
const WASM = join(ROOT, "filters", "srtp", "build", "srtp.checked.wasm");

interface SuiteInfo { name: string; keyLength: number; saltLength: number; gcm: boolean; rtpTag: number; rtcpTag: number }
const SUITES: SuiteInfo[] = [
  { name: "AES_CM_128_HMAC_SHA1_80", keyLength: 16, saltLength: 14, gcm: false, rtpTag: 10, rtcpTag: 10 },
  { name: "AES_CM_128_HMAC_SHA1_32", keyLength: 16, saltLength: 14, gcm: false, rtpTag: 4, rtcpTag: 10 },
  { name: "AES_256_CM_HMAC_SHA1_80", keyLength: 32, saltLength: 14, gcm: false, rtpTag: 10, rtcpTag: 10 },
  { name: "AES_256_CM_HMAC_SHA1_32", keyLength: 32, saltLength: 14, gcm: false, rtpTag: 4, rtcpTag: 10 },
  { name: "AEAD_AES_128_GCM", keyLength: 16, saltLength: 12, gcm: true, rtpTag: 16, rtcpTag: 16 },
  { name: "AEAD_AES_256_GCM", keyLength: 32, saltLength: 12, gcm: true, rtpTag: 16, rtcpTag: 16 },
];
const CM80 = SUITES[0]!;

function masterFor(s: SuiteInfo, seed = 1): Buffer {
  return Buffer.from(pseudoRandomBytes(s.keyLength + s.saltLength, seed));
}
const inline = (b: Buffer): string => `inline:${b.toString("base64")}`;

/** `host`: each side computes its crypto in the host (true) or in WebAssembly (false). */
async function pair(s: SuiteInfo, master: Buffer, extra: Record<string, unknown> = {}, host: { tx: boolean; rx: boolean } = { tx: true, rx: true }) {
  const tx = await FilterHarness.load(WASM, { hostCrypto: host.tx });
  const rx = await FilterHarness.load(WASM, { hostCrypto: host.rx });
  const a = tx.createContext({ direction: "protect", suite: s.name, key: inline(master) });
  const b = rx.createContext({ direction: "unprotect", suite: s.name, key: inline(master), ...extra });
  return { tx, rx, a, b };
}

const rtcpRr = (ssrc = 0x11223344): Uint8Array => {
  const b = Buffer.alloc(8);
  b[0] = 0x80; b[1] = 201; b.writeUInt16BE(1, 2); b.writeUInt32BE(ssrc, 4);
  return b;
};

// ---- an independent reference: RFC 3711 section 4.3 KDF and the transforms, on node:crypto ----

function kdf(s: SuiteInfo, master: Buffer, label: number, length: number): Buffer {
  const key = master.subarray(0, s.keyLength);
  const salt = Buffer.alloc(14);
  master.copy(salt, 0, s.keyLength); // a 12-byte GCM salt is padded with zeros (libsrtp does the same)
  salt[7] = salt[7]! ^ label; // x = salt XOR (label << 48), key_id with kdr = 0
  const iv = Buffer.concat([salt, Buffer.alloc(2)]);
  const c = createCipheriv(s.keyLength === 16 ? "aes-128-ctr" : "aes-256-ctr", key, iv);
  return c.update(Buffer.alloc(length));
}

function referenceProtectRtp(s: SuiteInfo, master: Buffer, packet: Uint8Array, roc: number): Buffer {
  const p = Buffer.from(packet);
  const header = p.subarray(0, 12);
  const payload = p.subarray(12);
  const ssrc = p.readUInt32BE(8);
  const seq = p.readUInt16BE(2);
  const ek = kdf(s, master, 0, s.keyLength);
  const salt = kdf(s, master, 2, s.saltLength);
  if (s.gcm) {
    const iv = Buffer.alloc(12);
    iv.writeUInt32BE(ssrc, 2); iv.writeUInt32BE(roc, 6); iv.writeUInt16BE(seq, 10);
    for (let i = 0; i < 12; i++) iv[i] = iv[i]! ^ salt[i]!;
    const c = createCipheriv(s.keyLength === 16 ? "aes-128-gcm" : "aes-256-gcm", ek, iv);
    c.setAAD(header);
    return Buffer.concat([header, c.update(payload), c.final(), c.getAuthTag()]);
  }
  const iv = Buffer.alloc(16);
  salt.copy(iv, 0);
  iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
  const index = BigInt(roc) * 65536n + BigInt(seq);
  const idx = Buffer.alloc(8);
  idx.writeBigUInt64BE(index); // the 48-bit index lands in IV bytes 8..13 (i * 2^16)
  for (let i = 0; i < 8; i++) iv[6 + i] = (iv[6 + i] ?? 0) ^ idx[i]!;
  const c = createCipheriv(s.keyLength === 16 ? "aes-128-ctr" : "aes-256-ctr", ek, iv.subarray(0, 16));
  const body = Buffer.concat([header, c.update(payload)]);
  const ak = kdf(s, master, 1, 20);
  const rocBytes = Buffer.alloc(4);
  rocBytes.writeUInt32BE(roc);
  const tag = createHmac("sha1", ak).update(body).update(rocBytes).digest().subarray(0, s.rtpTag);
  return Buffer.concat([body, tag]);
}

for (const s of SUITES) {
  test(`${s.name}: SRTP and SRTCP round trip; protect output equals the node:crypto reference`, async () => {
    const master = masterFor(s);
    const { tx, rx, a, b } = await pair(s, master);
    for (const seq of [1, 2, 3, 500]) {
      const plain = buildRtp({ seq, ssrc: 0xcafe0001, payloadSize: 200 });
      const p = tx.run({ ctx: a, bytes: plain });
      assert.is(p.verdict, "pass");
      assert.is(p.bytes.length, plain.length + s.rtpTag);
      assert.is(Buffer.from(p.bytes).toString("hex"), referenceProtectRtp(s, master, plain, 0).toString("hex"), `seq ${seq} on the wire`);
      const u = rx.run({ ctx: b, bytes: p.bytes });
      assert.is(u.verdict, "pass", u.reasonName);
      assert.equal(Buffer.from(u.bytes), Buffer.from(plain));
    }
    const rr = rtcpRr();
    const pr = tx.run({ ctx: a, bytes: rr, flags: PacketFlag.Rtcp });
    assert.is(pr.bytes.length, rr.length + 4 + s.rtcpTag);
    const trailer = Buffer.from(pr.bytes).readUInt32BE(s.gcm ? pr.bytes.length - 4 : pr.bytes.length - s.rtcpTag - 4);
    assert.is(trailer, 0x80000000, "E flag set, SRTCP index 0");
    const ur = rx.run({ ctx: b, bytes: pr.bytes, flags: PacketFlag.Rtcp });
    assert.is(ur.verdict, "pass", ur.reasonName);
    assert.equal(Buffer.from(ur.bytes), Buffer.from(rr));
    assert.is(tx.metric("rtp_protected", a), 4);
    assert.is(rx.metric("rtcp_unprotected", b), 1);
  });
}

// The host's crypto (ABI 1.4) where this machine has it, the filter's WebAssembly crypto where it
// has not: the same bytes on the wire, each side reads the other's, and the host holds the keys.
const hostCrypto = peer("the host's native crypto (runtime/native msm_crypto)", "npm install (builds runtime/native), with libcrypto.so.3", () => hostCryptoUnavailable() === "");
for (const s of SUITES) {
  peerTest(test, hostCrypto, `${s.name}: host crypto and WebAssembly crypto give the same wire bytes and read each other's, SRTP and SRTCP, every length`, async () => {
    const master = masterFor(s, 7);
    for (const host of [{ tx: true, rx: false }, { tx: false, rx: true }]) {
      const { tx, rx, a, b } = await pair(s, master, {}, host);
      const side = host.tx ? "host -> wasm" : "wasm -> host";
      assert.is((tx.instance.features & HostFeature.Crypto) !== 0, host.tx, `${side}: features() of the sender`);
      // every key the session uses is in the host (4 for AES-CM: SRTP and SRTCP cipher and auth; 2 for GCM), per direction
      assert.is(tx.instance.cryptoKeyCount, host.tx ? (s.gcm ? 2 : 4) : 0, `${side}: keys the sender holds in the host`);
      for (let size = 0; size <= 1400; size += size < 40 ? 1 : 97) {
        const plain = buildRtp({ seq: 100 + size, ssrc: 0xcafe0002, payloadSize: size });
        const p = tx.run({ ctx: a, bytes: plain });
        assert.is(p.verdict, "pass", `${side}, ${size} B`);
        assert.is(Buffer.from(p.bytes).toString("hex"), referenceProtectRtp(s, master, plain, 0).toString("hex"), `${side}, ${size} B on the wire`);
        const u = rx.run({ ctx: b, bytes: p.bytes });
        assert.is(u.verdict, "pass", `${side}, ${size} B: ${u.reasonName}`);
        assert.equal(Buffer.from(u.bytes), Buffer.from(plain));
        const rr = Buffer.concat([rtcpRr(), Buffer.alloc(size % 200 & ~3)]);
        rr.writeUInt16BE(rr.length / 4 - 1, 2);
        const pr = tx.run({ ctx: a, bytes: rr, flags: PacketFlag.Rtcp });
        const ur = rx.run({ ctx: b, bytes: pr.bytes, flags: PacketFlag.Rtcp });
        assert.is(ur.verdict, "pass", `${side}, RTCP of ${rr.length} B: ${ur.reasonName}`);
        assert.equal(Buffer.from(ur.bytes), rr);
      }
      // a forged tag is refused by either side's check, and the packet is left alone
      const forged = Buffer.from(tx.run({ ctx: a, bytes: buildRtp({ seq: 9000, ssrc: 0xcafe0002, payloadSize: 300 }) }).bytes);
      forged[forged.length - 1]! ^= 1;
      assert.is(rx.run({ ctx: b, bytes: forged }).reasonName, "srtp_auth_failed", `${side}: a forged tag`);
      tx.destroyContext(a);
      assert.is(tx.instance.cryptoKeyCount, 0, `${side}: the segment's keys are dropped with it`);
    }
  });
}

test("sequence wrap at 65535 with reordering around it: every packet authenticates, ROC goes to 1", async () => {
  const master = masterFor(CM80);
  const { tx, rx, a, b } = await pair(CM80, master);
  const protectedBySeq = new Map<number, Uint8Array>();
  const plainBySeq = new Map<number, Uint8Array>();
  for (let i = 65500; i < 65536 + 60; i++) {
    const seq = i & 0xffff;
    const plain = buildRtp({ seq, ssrc: 7, payloadSize: 40 });
    plainBySeq.set(i, plain);
    protectedBySeq.set(i, tx.run({ ctx: a, bytes: plain }).bytes);
  }
  // the packet with seq 5 after the wrap was protected with ROC 1: check against the reference
  assert.is(Buffer.from(protectedBySeq.get(65536 + 5)!).toString("hex"), referenceProtectRtp(CM80, master, plainBySeq.get(65536 + 5)!, 1).toString("hex"));
  const order: number[] = [];
  for (let i = 65500; i < 65530; i++) order.push(i);
  order.push(65531, 65530, 65536, 65532, 65535, 65533, 65537, 65534); // reordered across the wrap
  for (let i = 65538; i < 65536 + 60; i++) order.push(i);
  order.push(65536 + 59 - 40); // late, but inside the window: not seen yet? it was: a replay
  const verdicts = order.map((i) => rx.run({ ctx: b, bytes: protectedBySeq.get(i)! }));
  const failed = verdicts.slice(0, -1).map((v, k) => [order[k], v.reasonName] as const).filter((_, k) => verdicts[k]!.verdict !== "pass");
  assert.equal(failed, [], "all fresh packets pass");
  assert.is(verdicts.at(-1)!.reasonName, "srtp_replay");
  for (let k = 0; k < order.length - 1; k++) assert.equal(Buffer.from(verdicts[k]!.bytes), Buffer.from(plainBySeq.get(order[k]!)!));
});

test("replayed, tampered, too old and truncated packets are dropped by reason", async () => {
  const { tx, rx, a, b } = await pair(CM80, masterFor(CM80), { replayWindow: 64 });
  const packets = Array.from({ length: 200 }, (_, i) => tx.run({ ctx: a, bytes: buildRtp({ seq: i, payloadSize: 50 }) }).bytes);
  for (let i = 100; i < 200; i++) assert.is(rx.run({ ctx: b, bytes: packets[i]! }).verdict, "pass");
  assert.is(rx.run({ ctx: b, bytes: packets[150]! }).reasonName, "srtp_replay");
  assert.is(rx.run({ ctx: b, bytes: packets[100]! }).reasonName, "srtp_replay", "older than the 64-packet window");
  const tampered = Uint8Array.from(packets[60]!);
  tampered[20] ^= 1;
  assert.is(rx.run({ ctx: b, bytes: tampered }).reasonName, "srtp_replay", "outside the window it is not even authenticated");
  const fresh = tx.run({ ctx: a, bytes: buildRtp({ seq: 200, payloadSize: 50 }) }).bytes;
  const bad = Uint8Array.from(fresh);
  bad[bad.length - 1] ^= 0x80; // the tag
  assert.is(rx.run({ ctx: b, bytes: bad }).reasonName, "srtp_auth_failed");
  assert.is(rx.run({ ctx: b, bytes: fresh.slice(0, 25) }).reasonName, "srtp_auth_failed", "a cut packet");
  assert.is(rx.run({ ctx: b, bytes: fresh.slice(0, 15) }).reasonName, "srtp_too_short");
  assert.is(rx.run({ ctx: b, bytes: fresh }).verdict, "pass", "the real one still passes after the forgeries");
  assert.is(rx.run({ ctx: b, bytes: rtcpRr(), flags: PacketFlag.Rtcp }).reasonName, "srtp_too_short");
});

test("hostile input: random bytes, every length, RTP and RTCP, never trap", async () => {
  const { rx, b } = await pair(CM80, masterFor(CM80));
  const reasons = new Set<string>();
  for (let n = 0; n < 3000; n++) {
    const junk = pseudoRandomBytes(n % 300, n + 7);
    if (junk.length > 0 && n % 2 === 0) junk[0] = (junk[0]! & 0x3f) | 0x80;
    const r = rx.run({ ctx: b, bytes: junk, flags: n % 3 === 0 ? PacketFlag.Rtcp : 0 });
    assert.is(r.verdict, "drop");
    reasons.add(r.reasonName);
  }
  for (const r of reasons) assert.ok(["srtp_auth_failed", "srtp_too_short", "bad_version", "csrc_overrun", "extension_overrun", "too_short", "rtcp_in_rtp_range"].includes(r), r);
});

test("forged packets with new SSRCs create no state: a known source's window survives 2000 of them", async () => {
  const { tx, rx, a, b } = await pair(CM80, masterFor(CM80), { maxSources: 2 });
  const first = tx.run({ ctx: a, bytes: buildRtp({ seq: 10, ssrc: 0x1111, payloadSize: 30 }) }).bytes;
  assert.is(rx.run({ ctx: b, bytes: first }).verdict, "pass");
  for (let i = 0; i < 2000; i++) {
    const forged = Buffer.from(buildRtp({ seq: i, ssrc: 0x9000 + i, payloadSize: 30 }));
    randomBytes(10).copy(forged, forged.length - 10);
    assert.is(rx.run({ ctx: b, bytes: Buffer.concat([forged, randomBytes(10)]) }).reasonName, "srtp_auth_failed");
  }
  assert.is(rx.run({ ctx: b, bytes: first }).reasonName, "srtp_replay", "the source's state was not evicted");
});

test("protect, source table full: a new SSRC is refused (too_many_sources), a live sender keeps its ROC", async () => {
  const master = masterFor(CM80);
  const tx = await FilterHarness.load(WASM);
  const rx = await FilterHarness.load(WASM);
  const a = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(master), maxSources: 4 });
  const b = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(master), maxSources: 64 });
  let now = 0; // each packet later than the one before: the sender L is the least recently seen
  const send = (seq: number, ssrc: number, fill = 0x41) => {
    const plain = buildRtp({ seq, ssrc, payloadSize: 40 });
    plain.fill(fill, 12);
    return { plain, out: tx.run({ ctx: a, bytes: plain, arrivalUs: (now += 1000) }) };
  };
  const L = 0x4c4c4c4c;
  const before: Uint8Array[] = [];
  for (let i = 65530; i < 65536 + 10; i++) {
    const r = send(i & 0xffff, L).out;
    assert.is(r.verdict, "pass");
    before.push(r.bytes);
  }
  for (let k = 1; k <= 3; k++) assert.is(send(100, 0x0e000000 + k).out.verdict, "pass", "room for 3 more sources");
  const newcomers: string[] = [];
  for (let k = 4; k < 24; k++) for (let q = 0; q < 3; q++) newcomers.push(send(100 + q, 0x0e000000 + k).out.reasonName);
  // L goes on after the wrap: ROC 1, as the receiver expects, not 0 (index 10 of ROC 0 under the same key)
  const next = send(10, L, 0x42);
  assert.is(next.out.verdict, "pass");
  assert.is(Buffer.from(next.out.bytes).toString("hex"), referenceProtectRtp(CM80, master, next.plain, 1).toString("hex"), "seq 10 after the wrap: ROC 1");
  for (const p of before) assert.is(rx.run({ ctx: b, bytes: p }).verdict, "pass");
  assert.is(rx.run({ ctx: b, bytes: next.out.bytes }).verdict, "pass", "the receiver reads it");
  assert.equal(newcomers, new Array<string>(60).fill("too_many_sources"), "20 sources more than the table of 4 holds: each refused");
  assert.is(tx.metric("rtp_protected", a), 16 + 3 + 1);
  // a malformed first packet of a new source takes no slot (nothing was protected)
  const c = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(master), maxSources: 1 });
  const bad = buildRtp({ seq: 1, ssrc: 0x0bad, payloadSize: 10 });
  bad[0] = 0x40; // version 1
  assert.is(tx.run({ ctx: c, bytes: bad }).reasonName, "bad_version");
  assert.is(tx.run({ ctx: c, bytes: buildRtp({ seq: 1, ssrc: 0x600d, payloadSize: 10 }) }).verdict, "pass", "the one slot is still free");
});

test("unprotect, source table full: a new SSRC is refused (too_many_sources), a tracked source's packets cannot be replayed", async () => {
  const master = masterFor(CM80);
  const tx = await FilterHarness.load(WASM);
  const rx = await FilterHarness.load(WASM);
  const a = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(master), maxSources: 64 });
  const b = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(master), maxSources: 4 });
  let now = 0;
  const protect = (seq: number, ssrc: number): Uint8Array => tx.run({ ctx: a, bytes: buildRtp({ seq, ssrc, payloadSize: 30 }) }).bytes;
  const receive = (bytes: Uint8Array) => rx.run({ ctx: b, bytes, arrivalUs: (now += 1000) });
  const A = 0x01010101;
  const captured = [1, 2, 3, 4].map((seq) => protect(seq, A));
  for (const p of captured) assert.is(receive(p).verdict, "pass");
  for (let k = 1; k <= 3; k++) assert.is(receive(protect(100, 0x02000000 + k)).verdict, "pass", "room for 3 more sources");
  const newcomers: string[] = [];
  for (let k = 4; k < 24; k++) for (let q = 0; q < 3; q++) newcomers.push(receive(protect(100 + q, 0x02000000 + k)).reasonName);
  for (const p of captured) assert.is(receive(p).reasonName, "srtp_replay", "A's window is still there: its old packets are replays");
  assert.equal(newcomers, new Array<string>(60).fill("too_many_sources"), "20 authentic sources more than the table of 4 holds: each refused");
  assert.is(receive(protect(5, A)).verdict, "pass", "A goes on");
  // a forgery with a new SSRC is still told apart: it does not authenticate
  const forged = Buffer.from(protect(7, 0x03000000));
  forged[forged.length - 1]! ^= 1;
  assert.is(receive(forged).reasonName, "srtp_auth_failed");
});

test("protect asks for a checkpoint at a new source's first packet (ABI 1.8 checkpoint_wanted), so that a restart knows the source before it can roll over; not for a known source, not to unprotect", async () => {
  const master = masterFor(CM80, 31);
  const tx = await FilterHarness.load(WASM);
  const rx = await FilterHarness.load(WASM);
  const a = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(master) });
  const b = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(master) });
  const send = (seq: number, ssrc: number) => tx.run({ ctx: a, bytes: buildRtp({ seq, ssrc, payloadSize: 20 }) });
  assert.not.ok(tx.takeCheckpointWish(), "nothing asked before a packet");
  const first = send(65530, 7);
  assert.is(first.verdict, "pass");
  assert.ok(tx.takeCheckpointWish(), "source 7's first packet asks");
  for (const seq of [65531, 65532, 65533]) assert.is(send(seq, 7).verdict, "pass");
  assert.not.ok(tx.takeCheckpointWish(), "its next packets do not");
  assert.is(rx.run({ ctx: b, bytes: first.bytes }).verdict, "pass");
  assert.not.ok(rx.takeCheckpointWish(), "unprotect does not: a receiver's lost state lets replays in for a window, it encrypts nothing");
  assert.is(send(100, 8).verdict, "pass");
  assert.ok(tx.takeCheckpointWish(), "source 8's first packet asks");
  // the checkpoint it asked for carries source 7: restored, it goes on across the wrap at ROC 1
  const checkpoint = tx.exportState(a)!;
  const restored = await FilterHarness.load(WASM);
  const r = restored.createContext({ direction: "protect", suite: CM80.name, key: inline(master) });
  assert.equal(restored.importState(r, checkpoint, StateOrigin.Checkpoint), { ok: true, reason: "" });
  const plain = buildRtp({ seq: 40, ssrc: 7, payloadSize: 20 });
  assert.is(Buffer.from(restored.run({ ctx: r, bytes: plain }).bytes).toString("hex"), referenceProtectRtp(CM80, master, plain, 1).toString("hex"), "seq 40 after the wrap at ROC 1");
  assert.not.ok(restored.takeCheckpointWish(), "a source the checkpoint had is not new");
});

test("protect: a new source's first packet that is refused (malformed: nothing protected, no slot taken) does not ask for a checkpoint; sprayed SSRCs would otherwise cost a round and a stateFile write each", async () => {
  const master = masterFor(CM80, 32);
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(master) });
  for (let ssrc = 100; ssrc < 110; ssrc++) {
    const bad = buildRtp({ seq: 1, ssrc, payloadSize: 20 }).slice(0, 12);
    bad[0] = 0x8f; // 15 CSRCs in a 12-byte packet
    assert.is(tx.run({ ctx: a, bytes: bad }).verdict, "drop");
  }
  assert.not.ok(tx.takeCheckpointWish(), "no refused first packet asked");
  assert.is(tx.run({ ctx: a, bytes: buildRtp({ seq: 1, ssrc: 100, payloadSize: 20 }) }).verdict, "pass");
  assert.ok(tx.takeCheckpointWish(), "the source's first protected packet asks");
});

test("protect refuses an index it used already (srtp_replay, rtp_repeats_refused): a repeated sequence number, a duplicate, one too old", async () => {
  const master = masterFor(CM80);
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(master), replayWindow: 64 });
  const S = 0x5eed0000;
  const send = (seq: number, fill: number, ssrc = S) => {
    const plain = buildRtp({ seq, ssrc, payloadSize: 64 });
    plain.fill(fill, 12);
    return tx.run({ ctx: a, bytes: plain });
  };
  const first = [100, 101, 102, 103].map((seq) => send(seq, 0x41));
  for (const r of first) assert.is(r.verdict, "pass");
  // the same sequence number with other content: protected again it would be C1 ^ C2 = P1 ^ P2
  const again = send(103, 0x42);
  assert.is(again.reasonName, "srtp_replay", "seq 103 again, other payload");
  assert.is(send(103, 0x41).reasonName, "srtp_replay", "a duplicate of seq 103 (the same payload)");
  assert.is(send(101, 0x43).reasonName, "srtp_replay", "an older index, used");
  // late but never used, inside the window: protected; then refused in turn
  for (let seq = 104; seq < 160; seq += 2) assert.is(send(seq, 0x44).verdict, "pass");
  assert.is(send(99, 0x45).verdict, "pass", "seq 99: 59 behind the highest (158), never used");
  assert.is(send(99, 0x46).reasonName, "srtp_replay");
  assert.is(send(105, 0x47).verdict, "pass", "seq 105, never used");
  assert.is(send(90, 0x48).reasonName, "srtp_replay", "seq 90: 68 behind, older than the window of 64: cannot tell, refused");
  assert.is(send(100, 0x41, 0x5eed0001).verdict, "pass", "another SSRC has its own window");
  assert.is(tx.metric("rtp_repeats_refused", a), 5);
  // across a sequence wrap: seq 65530 after the wrap is the late packet of ROC 0, which went out already
  const wrapped: number[] = [];
  for (let i = 65530; i < 65536 + 10; i++) wrapped.push(i & 0xffff);
  for (const seq of wrapped) assert.is(send(seq, 0x41, 0x4c4c4c4c).verdict, "pass");
  assert.is(send(65530, 0x42, 0x4c4c4c4c).reasonName, "srtp_replay", "seq 65530 again after the wrap");
  assert.is(send(10, 0x42, 0x4c4c4c4c).verdict, "pass", "the stream goes on");
});

test("a recycled context tracks exactly its own maxSources, and none of the sources of the segment before", async () => {
  const master = masterFor(CM80);
  const { tx, rx, a } = await pair(CM80, master);
  const config = { direction: "unprotect", suite: CM80.name, key: inline(master) };
  const protect = (seq: number, ssrc: number): Uint8Array => tx.run({ ctx: a, bytes: buildRtp({ seq, ssrc, payloadSize: 20 }) }).bytes;
  const firstOf = [1, 2, 3, 4].map((ssrc) => protect(1, ssrc));
  // a segment with a table of 4 sources comes and goes: its context goes back to the pool
  const before = rx.createContext({ ...config, maxSources: 4 });
  for (const p of firstOf) assert.is(rx.run({ ctx: before, bytes: p }).verdict, "pass");
  rx.destroyContext(before);
  // the next segment gets that context: the old sources are gone, and it tracks 3, not 4
  const b = rx.createContext({ ...config, maxSources: 3 });
  for (const p of firstOf.slice(0, 3)) assert.is(rx.run({ ctx: b, bytes: p }).verdict, "pass", "a new segment starts with no sources");
  assert.is(rx.run({ ctx: b, bytes: firstOf[3]! }).reasonName, "too_many_sources", "3 tracked, not 4");
  assert.is(rx.run({ ctx: b, bytes: firstOf[2]! }).reasonName, "srtp_replay", "the third source is tracked");
});

test("hot swap / restart: ROC, indexes and windows carry over through state export/import, keys do not", async () => {
  const master = masterFor(CM80, 42);
  const { tx, rx, a, b } = await pair(CM80, master);
  for (let i = 65000; i < 65536; i++) {
    const p = tx.run({ ctx: a, bytes: buildRtp({ seq: i & 0xffff, ssrc: 9, payloadSize: 20 }) });
    assert.is(rx.run({ ctx: b, bytes: p.bytes }).verdict, "pass");
  }
  tx.run({ ctx: a, bytes: rtcpRr(9), flags: PacketFlag.Rtcp });
  const txBlob = tx.exportState(a)!;
  const rxBlob = rx.exportState(b)!;
  for (const blob of [txBlob, rxBlob]) {
    const hexBlob = Buffer.from(blob).toString("hex");
    for (let k = 0; k + 8 <= master.length; k += 4) {
      assert.not.ok(hexBlob.includes(master.subarray(k, k + 8).toString("hex")), "no key material in the state blob");
    }
  }
  // both ends restart (a new instance each), then the stream wraps
  const tx2 = await FilterHarness.load(WASM);
  const rx2 = await FilterHarness.load(WASM);
  const a2 = tx2.createContext({ direction: "protect", suite: CM80.name, key: inline(master) });
  const b2 = rx2.createContext({ direction: "unprotect", suite: CM80.name, key: inline(master) });
  assert.equal(tx2.importState(a2, txBlob), { ok: true, reason: "" });
  assert.equal(rx2.importState(b2, rxBlob), { ok: true, reason: "" });
  for (let i = 65536; i < 65536 + 100; i++) {
    const plain = buildRtp({ seq: i & 0xffff, ssrc: 9, payloadSize: 20 });
    const p = tx2.run({ ctx: a2, bytes: plain });
    if (i === 65536 + 3) assert.is(Buffer.from(p.bytes).toString("hex"), referenceProtectRtp(CM80, master, plain, 1).toString("hex"), "ROC 1 after the wrap");
    const u = rx2.run({ ctx: b2, bytes: p.bytes });
    assert.is(u.verdict, "pass", `${i}: ${u.reasonName}`);
  }
  // the send window came along: seq 65535 (index 65535, protected before the swap) is not protected again
  assert.is(tx2.run({ ctx: a2, bytes: buildRtp({ seq: 65535, ssrc: 9, payloadSize: 20 }) }).reasonName, "srtp_replay", "an index protected before the restart");
  assert.is(tx.run({ ctx: a, bytes: buildRtp({ seq: 65535, ssrc: 9, payloadSize: 20 }) }).reasonName, "srtp_replay", "nor by the old instance");
  const rr = tx2.run({ ctx: a2, bytes: rtcpRr(9), flags: PacketFlag.Rtcp }).bytes;
  assert.is(Buffer.from(rr).readUInt32BE(rr.length - 14), 0x80000001, "the SRTCP index continues after the restart");
  assert.equal(rx2.importState(b2, new Uint8Array([9, 9, 9, 9])).ok, false);
});

for (const S of [CM80, SUITES[4]!]) {
  test(`${S.name}: hot swap to a new key: unprotect takes a sender that starts again (new numbers, SRTCP index 0) or goes on across it; protect keeps its send windows`, async () => {
    const oldKey = masterFor(S, 50);
    const newKey = masterFor(S, 51);
    const { tx, rx, a, b } = await pair(S, oldKey);
    const rtp = (seq: number) => buildRtp({ seq: seq & 0xffff, ssrc: 9, payloadSize: 20 });
    for (let i = 60000; i < 65536 + 200; i++) assert.is(rx.run({ ctx: b, bytes: tx.run({ ctx: a, bytes: rtp(i) }).bytes }).verdict, "pass");
    for (let i = 0; i < 50; i++) assert.is(rx.run({ ctx: b, bytes: tx.run({ ctx: a, bytes: rtcpRr(9), flags: PacketFlag.Rtcp }).bytes, flags: PacketFlag.Rtcp }).verdict, "pass");
    const rxBlob = rx.exportState(b)!;
    const txBlob = tx.exportState(a)!;
    const unprotectWith = async (key: Buffer) => {
      const h = await FilterHarness.load(WASM);
      const ctx = h.createContext({ direction: "unprotect", suite: S.name, key: inline(key) });
      assert.equal(h.importState(ctx, rxBlob), { ok: true, reason: "" });
      return { h, ctx };
    };
    // (1) the sender restarted with the new key: its numbering starts again below (ROC 0), its SRTCP at index 0
    const restarted = await FilterHarness.load(WASM);
    const r = restarted.createContext({ direction: "protect", suite: S.name, key: inline(newKey) });
    const p1 = await unprotectWith(newKey);
    for (let i = 100; i < 300; i++) {
      const u = p1.h.run({ ctx: p1.ctx, bytes: restarted.run({ ctx: r, bytes: rtp(i) }).bytes });
      assert.is(u.verdict, "pass", `restarted sender, seq ${i}: ${u.reasonName}`);
      assert.equal(Buffer.from(u.bytes), Buffer.from(rtp(i)));
    }
    const rr = restarted.run({ ctx: r, bytes: rtcpRr(9), flags: PacketFlag.Rtcp }).bytes;
    assert.is(p1.h.run({ ctx: p1.ctx, bytes: rr, flags: PacketFlag.Rtcp }).verdict, "pass", "its SRTCP index 0");
    assert.is(p1.h.run({ ctx: p1.ctx, bytes: rr, flags: PacketFlag.Rtcp }).reasonName, "srtp_replay", "and that one once only");
    assert.is(p1.h.run({ ctx: p1.ctx, bytes: restarted.run({ ctx: r, bytes: rtp(300) }).bytes }).verdict, "pass");
    // (2) the sender went on numbering (ROC 1) with the new key, as libsrtp's srtp_update does
    const goingOn = await FilterHarness.load(WASM);
    const g = goingOn.createContext({ direction: "protect", suite: S.name, key: inline(newKey) });
    assert.equal(goingOn.importState(g, txBlob), { ok: true, reason: "" });
    const p2 = await unprotectWith(newKey);
    const first = goingOn.run({ ctx: g, bytes: rtp(65536 + 200) }).bytes;
    for (let i = 65536 + 200; i < 65536 + 400; i++) {
      const bytes = i === 65536 + 200 ? first : goingOn.run({ ctx: g, bytes: rtp(i) }).bytes;
      assert.is(p2.h.run({ ctx: p2.ctx, bytes }).verdict, "pass", `sender going on, ${i}`);
    }
    assert.is(p2.h.run({ ctx: p2.ctx, bytes: first }).reasonName, "srtp_replay", "a packet under the new key is not taken twice");
    // (3) the same key after the swap: the replay lists carry on, an old packet is refused
    const oldPacket = tx.run({ ctx: a, bytes: rtp(65536 + 200) }).bytes;
    const p3 = await unprotectWith(oldKey);
    assert.is(p3.h.run({ ctx: p3.ctx, bytes: oldPacket }).verdict, "pass", "a new packet of the old key");
    assert.is(p3.h.run({ ctx: p3.ctx, bytes: oldPacket }).reasonName, "srtp_replay");
    const p3b = await unprotectWith(oldKey);
    assert.is(p3b.h.run({ ctx: p3b.ctx, bytes: tx.run({ ctx: a, bytes: rtcpRr(9), flags: PacketFlag.Rtcp }).bytes, flags: PacketFlag.Rtcp }).verdict, "pass");
    // (4) protect with a new key keeps its send window: an index protected under the old key is not protected again
    const tx2 = await FilterHarness.load(WASM);
    const a2 = tx2.createContext({ direction: "protect", suite: S.name, key: inline(newKey) });
    assert.equal(tx2.importState(a2, txBlob), { ok: true, reason: "" });
    assert.is(tx2.run({ ctx: a2, bytes: rtp(65536 + 150) }).reasonName, "srtp_replay", "protect forgets nothing at a key change (a rollback would reuse the keystream)");
    const srtcp = tx2.run({ ctx: a2, bytes: rtcpRr(9), flags: PacketFlag.Rtcp }).bytes;
    assert.is(Buffer.from(srtcp).readUInt32BE(S.gcm ? srtcp.length - 4 : srtcp.length - 4 - S.rtcpTag), 0x80000000 + 50, "its SRTCP index goes on");
  });
}

const RTCP = PacketFlag.Rtcp;

for (const S of [CM80, SUITES[4]!]) {
  test(`${S.name}: back to an earlier key (A -> B -> A): nothing A's stage took is taken again (SRTP, SRTCP), the sender goes on under A, a sender restarted under B was taken`, async () => {
    const keyA = masterFor(S, 70);
    const keyB = masterFor(S, 71);
    const rtp = (i: number) => buildRtp({ seq: i & 0xffff, ssrc: 9, payloadSize: 20 });
    const tx = await FilterHarness.load(WASM);
    const rx = await FilterHarness.load(WASM);
    const protect = (key: Buffer) => tx.createContext({ direction: "protect", suite: S.name, key: inline(key) });
    /** A new unprotect stage with `key`, given the state of `from` (a hot swap). */
    const swapTo = (key: Buffer, from: number) => {
      const ctx = rx.createContext({ direction: "unprotect", suite: S.name, key: inline(key) });
      assert.equal(rx.importState(ctx, rx.exportState(from)!), { ok: true, reason: "" });
      return ctx;
    };
    const pass = (ctx: number, bytes: Uint8Array, flags = 0, what = "") => assert.is(rx.run({ ctx, bytes, flags }).reasonName, "", what);
    const senderA = protect(keyA);
    const a1 = rx.createContext({ direction: "unprotect", suite: S.name, key: inline(keyA) });
    // under A the stream crosses a wrap (ROC 1); someone on the path keeps every packet
    const capturedRtp: Uint8Array[] = [];
    for (let i = 65000; i < 65536 + 300; i++) capturedRtp.push(tx.run({ ctx: senderA, bytes: rtp(i) }).bytes);
    const capturedRtcp = Array.from({ length: 20 }, () => tx.run({ ctx: senderA, bytes: rtcpRr(9), flags: RTCP }).bytes);
    for (const p of capturedRtp) pass(a1, p);
    for (const p of capturedRtcp) pass(a1, p, RTCP);
    // to B: the sender starts again under it (ROC 0, SRTCP index 0), taken as before
    const b1 = swapTo(keyB, a1);
    const senderB = protect(keyB);
    const underB = Array.from({ length: 190 }, (_, k) => tx.run({ ctx: senderB, bytes: rtp(10 + k) }).bytes);
    const underBRtcp = Array.from({ length: 5 }, () => tx.run({ ctx: senderB, bytes: rtcpRr(9), flags: RTCP }).bytes);
    for (const p of underB) pass(b1, p, 0, "a sender restarted under a new key");
    for (const p of underBRtcp) pass(b1, p, RTCP, "its SRTCP from index 0");
    // back to A: every packet captured under A is refused, none is delivered
    const a2 = swapTo(keyA, b1);
    const replays = [...capturedRtp.map((p) => rx.run({ ctx: a2, bytes: p })), ...capturedRtcp.map((p) => rx.run({ ctx: a2, bytes: p, flags: RTCP }))];
    assert.equal(replays.filter((r) => r.reasonName !== "srtp_replay").length, 0, "before 2026-12-06 each was taken again, once");
    assert.is(replays.length, 836 + 20);
    assert.is(rx.metric("rtp_unprotected", a2), 0);
    assert.is(rx.metric("rtcp_unprotected", a2), 0);
    // the sender goes on under A with new numbers: taken, each once
    const next = tx.run({ ctx: senderA, bytes: rtp(65536 + 300) }).bytes;
    pass(a2, next, 0, "the sender goes on under A");
    for (let i = 65536 + 301; i < 65536 + 400; i++) pass(a2, tx.run({ ctx: senderA, bytes: rtp(i) }).bytes);
    const nextRtcp = tx.run({ ctx: senderA, bytes: rtcpRr(9), flags: RTCP }).bytes;
    pass(a2, nextRtcp, RTCP, "its SRTCP goes on at index 20");
    assert.is(rx.run({ ctx: a2, bytes: next }).reasonName, "srtp_replay");
    assert.is(rx.run({ ctx: a2, bytes: nextRtcp, flags: RTCP }).reasonName, "srtp_replay");
    // A again by another swap (the same key): still refused; forth to B: B's packets are refused too
    const a3 = swapTo(keyA, a2);
    assert.is(rx.run({ ctx: a3, bytes: capturedRtp.at(-1)! }).reasonName, "srtp_replay");
    assert.is(rx.run({ ctx: a3, bytes: capturedRtcp.at(-1)!, flags: RTCP }).reasonName, "srtp_replay");
    const b2 = swapTo(keyB, a3);
    assert.equal([...underB.map((p) => rx.run({ ctx: b2, bytes: p })), ...underBRtcp.map((p) => rx.run({ ctx: b2, bytes: p, flags: RTCP }))].filter((r) => r.reasonName !== "srtp_replay").length, 0, "back to B");
    pass(b2, tx.run({ ctx: senderB, bytes: rtp(200) }).bytes, 0, "B's sender goes on");

    // a sender that goes on numbering across the keys (libsrtp's srtp_update) and back
    const rx2 = await FilterHarness.load(WASM);
    const c1 = rx2.createContext({ direction: "unprotect", suite: S.name, key: inline(keyA) });
    const onA = protect(keyA);
    const seen: Uint8Array[] = [];
    for (let i = 65400; i < 65536 + 100; i++) seen.push(tx.run({ ctx: onA, bytes: rtp(i) }).bytes);
    for (const p of seen) assert.is(rx2.run({ ctx: c1, bytes: p }).verdict, "pass");
    const onB = protect(keyB);
    assert.equal(tx.importState(onB, tx.exportState(onA)!), { ok: true, reason: "" });
    const c2 = rx2.createContext({ direction: "unprotect", suite: S.name, key: inline(keyB) });
    assert.equal(rx2.importState(c2, rx2.exportState(c1)!), { ok: true, reason: "" });
    for (let i = 65536 + 100; i < 65536 + 300; i++) assert.is(rx2.run({ ctx: c2, bytes: tx.run({ ctx: onB, bytes: rtp(i) }).bytes }).verdict, "pass");
    const onA2 = protect(keyA);
    assert.equal(tx.importState(onA2, tx.exportState(onB)!), { ok: true, reason: "" });
    const c3 = rx2.createContext({ direction: "unprotect", suite: S.name, key: inline(keyA) });
    assert.equal(rx2.importState(c3, rx2.exportState(c2)!), { ok: true, reason: "" });
    for (let i = 65536 + 300; i < 65536 + 400; i++) assert.is(rx2.run({ ctx: c3, bytes: tx.run({ ctx: onA2, bytes: rtp(i) }).bytes }).verdict, "pass", `going on under A again, ${i}`);
    assert.equal(seen.map((p) => rx2.run({ ctx: c3, bytes: p }).reasonName).filter((r) => r !== "srtp_replay"), []);

    // protect needs no floors: its send window and SRTCP index go on across A, B, A
    const srtcpIndex = (p: Uint8Array) => Buffer.from(p).readUInt32BE(S.gcm ? p.length - 4 : p.length - 4 - S.rtcpTag) & 0x7fffffff;
    const p1 = protect(keyA);
    for (let seq = 1; seq <= 10; seq++) tx.run({ ctx: p1, bytes: rtp(seq) });
    tx.run({ ctx: p1, bytes: rtcpRr(9), flags: RTCP });
    const p2 = protect(keyB);
    assert.equal(tx.importState(p2, tx.exportState(p1)!), { ok: true, reason: "" });
    assert.is(tx.run({ ctx: p2, bytes: rtp(11) }).verdict, "pass");
    assert.is(srtcpIndex(tx.run({ ctx: p2, bytes: rtcpRr(9), flags: RTCP }).bytes), 1);
    const p3 = protect(keyA);
    assert.equal(tx.importState(p3, tx.exportState(p2)!), { ok: true, reason: "" });
    assert.is(tx.run({ ctx: p3, bytes: rtp(5) }).reasonName, "srtp_replay", "seq 5 was protected under A: not a second time");
    assert.is(srtcpIndex(tx.run({ ctx: p3, bytes: rtcpRr(9), flags: RTCP }).bytes), 2, "A's SRTCP index 0 is not used again");
    assert.is(tx.run({ ctx: p3, bytes: rtp(12) }).verdict, "pass");
  });
}

test("back to an earlier reverseKey (protect stage): the receivers' SRTCP captured under it is not taken again", async () => {
  const key = inline(masterFor(CM80, 78));
  const [ra, rb] = [masterFor(CM80, 79), masterFor(CM80, 80)];
  const receivers = await FilterHarness.load(WASM);
  const onA = receivers.createContext({ direction: "protect", suite: CM80.name, key: inline(ra) });
  const onB = receivers.createContext({ direction: "protect", suite: CM80.name, key: inline(rb) });
  const proxy = await FilterHarness.load(WASM);
  const up = PacketFlag.Rtcp | PacketFlag.Upstream;
  const stage = (reverseKey: Buffer, from?: number) => {
    const ctx = proxy.createContext({ direction: "protect", suite: CM80.name, key, reverseKey: inline(reverseKey) });
    if (from !== undefined) assert.equal(proxy.importState(ctx, proxy.exportState(from)!), { ok: true, reason: "" });
    return ctx;
  };
  const s1 = stage(ra);
  const captured = Array.from({ length: 6 }, (_, k) => receivers.run({ ctx: onA, bytes: rtcpRr(0x100 + (k % 2)), flags: RTCP }).bytes);
  for (const p of captured) assert.is(proxy.run({ ctx: s1, bytes: p, flags: up }).verdict, "pass");
  const s2 = stage(rb, s1);
  assert.is(proxy.run({ ctx: s2, bytes: receivers.run({ ctx: onB, bytes: rtcpRr(0x100), flags: RTCP }).bytes, flags: up }).verdict, "pass", "a receiver restarted under the new reverseKey");
  const s3 = stage(ra, s2);
  assert.equal(captured.map((p) => proxy.run({ ctx: s3, bytes: p, flags: up }).reasonName), new Array<string>(6).fill("srtp_replay"));
  assert.is(proxy.run({ ctx: s3, bytes: receivers.run({ ctx: onA, bytes: rtcpRr(0x101), flags: RTCP }).bytes, flags: up }).verdict, "pass", "it goes on under A");
});

test("a key keeps its role: a swap or restart that would protect with a key that unprotected (or the reverse, or keys moved between key and reverseKey) holds the state and drops every packet (key_role_changed) until a new key; the held state outlives the next swap and a restart", async () => {
  const [k, k2, r] = [masterFor(CM80, 90), masterFor(CM80, 91), masterFor(CM80, 92)];
  const sender = await FilterHarness.load(WASM);
  const tx = sender.createContext({ direction: "protect", suite: CM80.name, key: inline(k) });
  const proxy = await FilterHarness.load(WASM);
  const stage = (direction: string, key: Buffer, from?: number, reverseKey?: Buffer) => {
    const ctx = proxy.createContext({ direction, suite: CM80.name, key: inline(key), ...(reverseKey ? { reverseKey: inline(reverseKey) } : {}) });
    const blob = from === undefined ? undefined : proxy.exportState(from)!;
    const result = blob === undefined ? { ok: true, reason: "" } : proxy.importState(ctx, blob);
    return { ctx, result, blob };
  };
  // the proxy unprotects a sender's stream under k
  const rx = stage("unprotect", k).ctx;
  for (let seq = 0; seq < 20; seq++) assert.is(proxy.run({ ctx: rx, bytes: sender.run({ ctx: tx, bytes: buildRtp({ seq, ssrc: 9, payloadSize: 20 }) }).bytes }).verdict, "pass");
  assert.is(proxy.run({ ctx: rx, bytes: sender.run({ ctx: tx, bytes: rtcpRr(9), flags: RTCP }).bytes, flags: RTCP }).verdict, "pass");

  // direction swapped under the same key: protect would encrypt SSRC 9 at SRTCP index 0 again, as the sender did
  const swapped = stage("protect", k, rx);
  assert.is(swapped.result.ok, false);
  assert.match(swapped.result.reason, /config key 'key' unprotected packets before this change and would now protect.*RFC 3711 section 9\.1.*every packet of the segment is dropped \(key_role_changed\) until the config gives a new key/);
  assert.is(proxy.run({ ctx: swapped.ctx, bytes: buildRtp({ seq: 20, ssrc: 9, payloadSize: 20 }) }).reasonName, "key_role_changed");
  assert.is(proxy.run({ ctx: swapped.ctx, bytes: rtcpRr(9), flags: RTCP }).reasonName, "key_role_changed");
  // the blob it took, not another export of rx: each export carries its own time
  assert.equal(proxy.exportState(swapped.ctx), swapped.blob, "the state is held as it came");
  // the next swap with the same key, and a restart from the held state, refuse it again
  assert.is(stage("protect", k, swapped.ctx).result.ok, false);
  const restarted = await FilterHarness.load(WASM);
  const again = restarted.createContext({ direction: "protect", suite: CM80.name, key: inline(k) });
  assert.is(restarted.importState(again, proxy.exportState(swapped.ctx)!, StateOrigin.Checkpoint).ok, false);
  assert.is(restarted.run({ ctx: again, bytes: buildRtp({ seq: 20, ssrc: 9, payloadSize: 20 }) }).reasonName, "key_role_changed");
  // a new key: protect goes on
  const fixed = stage("protect", k2, swapped.ctx);
  assert.equal(fixed.result, { ok: true, reason: "" });
  assert.is(proxy.run({ ctx: fixed.ctx, bytes: buildRtp({ seq: 21, ssrc: 9, payloadSize: 20 }) }).verdict, "pass");
  // unchanged direction and key: carried as ever
  assert.equal(stage("unprotect", k, rx).result, { ok: true, reason: "" });

  // the other way: a key that protected would unprotect
  const sent = stage("protect", k2);
  proxy.run({ ctx: sent.ctx, bytes: buildRtp({ seq: 1, ssrc: 5, payloadSize: 20 }) });
  const back = stage("unprotect", k2, sent.ctx);
  assert.match(back.result.reason, /config key 'key' protected packets before this change and would now unprotect/);
  // key and reverseKey exchanged: the media key would unprotect feedback, the feedback key protect media
  const both = stage("protect", k2, undefined, r);
  const exchanged = stage("protect", r, both.ctx, k2);
  assert.match(exchanged.result.reason, /config key 'key' unprotected packets before this change and would now protect/);
});

test("a key keeps its role through intermediate configs: a key that unprotected may not protect after a swap under another key, or after the held state took a new key, or after later re-keys", async () => {
  const [k, k2, k3, k4] = [masterFor(CM80, 93), masterFor(CM80, 94), masterFor(CM80, 95), masterFor(CM80, 96)];
  const sender = await FilterHarness.load(WASM);
  const tx = sender.createContext({ direction: "protect", suite: CM80.name, key: inline(k) });
  const proxy = await FilterHarness.load(WASM);
  const stage = (direction: string, key: Buffer, from: number | undefined) => {
    const ctx = proxy.createContext({ direction, suite: CM80.name, key: inline(key) });
    const result = from === undefined ? { ok: true, reason: "" } : proxy.importState(ctx, proxy.exportState(from)!);
    return { ctx, result };
  };
  // the proxy unprotects a sender's stream (SSRC 9) under k, its first SRTCP packet at index 0
  const rx = stage("unprotect", k, undefined).ctx;
  for (let seq = 0; seq < 5; seq++) assert.is(proxy.run({ ctx: rx, bytes: sender.run({ ctx: tx, bytes: buildRtp({ seq, ssrc: 9, payloadSize: 20 }) }).bytes }).verdict, "pass");
  const senderRtcp = sender.run({ ctx: tx, bytes: rtcpRr(9), flags: RTCP }).bytes;
  assert.is(proxy.run({ ctx: rx, bytes: senderRtcp, flags: RTCP }).verdict, "pass");

  // protect under a new key (allowed), then back to k: k would protect SSRC 9's SRTCP from index 0 again
  const other = stage("protect", k2, rx);
  assert.equal(other.result, { ok: true, reason: "" });
  const back = stage("protect", k, other.ctx);
  assert.is(back.result.ok, false, "k unprotected before the intermediate config: it may not protect now");
  const out = proxy.run({ ctx: back.ctx, bytes: rtcpRr(9), flags: RTCP });
  assert.ok(out.verdict !== "pass" || !Buffer.from(out.bytes).equals(Buffer.from(senderRtcp)), "the proxy sent the sender's own SRTCP packet: one keystream twice");

  // the swap refused (held), a new key given, then k again
  const held = stage("protect", k, rx);
  assert.is(held.result.ok, false);
  const fixed = stage("protect", k3, held.ctx);
  assert.equal(fixed.result, { ok: true, reason: "" });
  assert.is(stage("protect", k, fixed.ctx).result.ok, false, "k may not protect after the held state took a new key");

  // two re-keys of the receiver, then k protects
  const r2 = stage("unprotect", k2, rx);
  const r3 = stage("unprotect", k4, r2.ctx);
  assert.equal([r2.result.ok, r3.result.ok], [true, true]);
  assert.is(stage("protect", k, r3.ctx).result.ok, false, "k may not protect after two re-keys");

  // no false refusal: back to unprotect under k after a re-key and a protect stage under a third key
  // (k is the receiver's previous key, carried by the protect stage's table: it never protected)
  const p3 = stage("protect", k3, r2.ctx);
  assert.equal(p3.result, { ok: true, reason: "" });
  assert.equal(stage("unprotect", k, p3.ctx).result, { ok: true, reason: "" }, "k only ever unprotected");
  assert.is(stage("unprotect", k3, p3.ctx).result.ok, false, "k3 protected");

  // a reverseKey that unprotected feedback, dropped from the config, then given as the key to protect under
  const withReverse = proxy.createContext({ direction: "protect", suite: CM80.name, key: inline(k3), reverseKey: inline(k4) });
  const withoutReverse = stage("protect", k3, withReverse);
  assert.equal(withoutReverse.result, { ok: true, reason: "" });
  assert.is(stage("protect", k4, withoutReverse.ctx).result.ok, false, "k4 unprotected the feedback: it may not protect");
});

test("a held checkpoint keeps its checkpoint's treatment: taken on later under a new key, then back to the key that protected, no SRTCP index the failed stage used after the checkpoint is used again", async () => {
  const [x, k2] = [masterFor(CM80, 97), masterFor(CM80, 98)];
  const proxy = await FilterHarness.load(WASM);
  const p1 = proxy.createContext({ direction: "protect", suite: CM80.name, key: inline(x) });
  assert.is(proxy.run({ ctx: p1, bytes: rtcpRr(5), flags: RTCP }).verdict, "pass"); // SRTCP index 0
  const checkpoint = proxy.exportState(p1)!;
  const afterCheckpoint = proxy.run({ ctx: p1, bytes: rtcpRr(5), flags: RTCP }).bytes; // index 1, then the process fails
  // restarted from the checkpoint under a config that swapped direction: held
  const restarted = await FilterHarness.load(WASM);
  const held = restarted.createContext({ direction: "unprotect", suite: CM80.name, key: inline(x) });
  assert.is(restarted.importState(held, checkpoint, StateOrigin.Checkpoint).ok, false);
  // a new key takes the state on (a hot swap), then the config goes back to protect under x
  const other = restarted.createContext({ direction: "protect", suite: CM80.name, key: inline(k2) });
  assert.equal(restarted.importState(other, restarted.exportState(held)!), { ok: true, reason: "" });
  const back = restarted.createContext({ direction: "protect", suite: CM80.name, key: inline(x) });
  assert.equal(restarted.importState(back, restarted.exportState(other)!), { ok: true, reason: "" });
  const out = restarted.run({ ctx: back, bytes: rtcpRr(5), flags: RTCP });
  assert.ok(out.verdict !== "pass" || !Buffer.from(out.bytes).equals(Buffer.from(afterCheckpoint)), "the failed stage's SRTCP packet after its checkpoint, sent again: one keystream twice");
});

test("back to an earlier key whose stream went past ROC 1: an old packet of ROC 0 is not taken on the retry at ROC 0 that a re-keyed source gets", async () => {
  const keyA = masterFor(CM80, 76);
  const keyB = masterFor(CM80, 77);
  const tx = await FilterHarness.load(WASM);
  const rx = await FilterHarness.load(WASM);
  const senderA = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(keyA) });
  const send = (ctx: number, seq: number) => tx.run({ ctx, bytes: buildRtp({ seq: seq & 0xffff, ssrc: 4, payloadSize: 16 }) }).bytes;
  const a1 = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(keyA) });
  const early = Array.from({ length: 100 }, (_, k) => send(senderA, k + 1)); // ROC 0, seq 1..100
  for (const p of early) assert.is(rx.run({ ctx: a1, bytes: p }).verdict, "pass");
  for (const i of [30100, 60100, 90100, 120100, 2 * 65536 + 50]) assert.is(rx.run({ ctx: a1, bytes: send(senderA, i) }).verdict, "pass"); // on to ROC 2, seq 50
  const b = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(keyB) });
  assert.equal(rx.importState(b, rx.exportState(a1)!), { ok: true, reason: "" });
  const a2 = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(keyA) });
  assert.equal(rx.importState(a2, rx.exportState(b)!), { ok: true, reason: "" });
  // seq 60..100 of ROC 0 read as ROC 2 fail their tag; as ROC 0 (a restarted sender) they are below A's floor
  assert.equal(early.slice(59).map((p) => rx.run({ ctx: a2, bytes: p }).reasonName).filter((r) => r !== "srtp_replay"), []);
  assert.is(rx.run({ ctx: a2, bytes: send(senderA, 2 * 65536 + 51) }).verdict, "pass", "the sender goes on at ROC 2");
});

test("back to an earlier key after a restore from a checkpoint: what the failed stage took after the checkpoint is refused behind the sender's next packet, as after any restore", async () => {
  const keyA = masterFor(CM80, 72);
  const keyB = masterFor(CM80, 73);
  const tx = await FilterHarness.load(WASM);
  const senderA = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(keyA) });
  const p = Array.from({ length: 9 }, (_, k) => tx.run({ ctx: senderA, bytes: buildRtp({ seq: k + 1, ssrc: 5, payloadSize: 16 }) }).bytes);
  const rx = await FilterHarness.load(WASM);
  const unprotect = (key: Buffer) => rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(key) });
  const a1 = unprotect(keyA);
  for (const packet of p.slice(0, 5)) assert.is(rx.run({ ctx: a1, bytes: packet }).verdict, "pass");
  const checkpoint = rx.exportState(a1)!;
  for (const packet of p.slice(5, 7)) assert.is(rx.run({ ctx: a1, bytes: packet }).verdict, "pass");
  // the stage fails; its restore from the checkpoint comes up under key B, then the config goes back to A
  const b = unprotect(keyB);
  assert.equal(rx.importState(b, checkpoint, StateOrigin.Checkpoint), { ok: true, reason: "" });
  const a2 = unprotect(keyA);
  assert.equal(rx.importState(a2, rx.exportState(b)!), { ok: true, reason: "" });
  assert.is(rx.run({ ctx: a2, bytes: p[2]! }).reasonName, "srtp_replay", "below the checkpoint's floor");
  assert.is(rx.run({ ctx: a2, bytes: p[7]! }).verdict, "pass", "the sender's next packet");
  assert.is(rx.run({ ctx: a2, bytes: p[5]! }).reasonName, "srtp_replay", "taken after the checkpoint: the floor from it is short, so the next packet marks all below");
  assert.is(rx.run({ ctx: a2, bytes: p[6]! }).reasonName, "srtp_replay");
  assert.is(rx.run({ ctx: a2, bytes: p[8]! }).verdict, "pass");
});

test("a version 2 state blob (the build before) still imports, and its key is remembered for a return to it", async () => {
  const keyA = masterFor(CM80, 74);
  const keyB = masterFor(CM80, 75);
  // an unprotect stage of the build before, under A, having taken SRTP seq 1..100 and SRTCP 0..3 of SSRC 9
  const v2 = Buffer.alloc(4 + 2 + 4 + (31 + 4 * 8) + 4 + 1 + 16);
  let at = 0;
  const put = (bytes: number, v: number | bigint) => {
    if (bytes === 8) v2.writeBigUInt64LE(BigInt(v), at);
    else if (bytes === 4) v2.writeUInt32LE(Number(v), at);
    else if (bytes === 2) v2.writeUInt16LE(Number(v), at);
    else v2.writeUInt8(Number(v), at);
    at += bytes;
  };
  put(4, 2); put(2, 2); // version, words (replayWindow 128)
  put(4, 1); put(4, 9); put(4, 0); put(2, 100); put(1, 1 | 2 | 4); // one source: ssrc, roc, highestSeq, flags
  put(8, 100); put(8, 3); put(4, 0); // highest, rtcpHighest, rtcpNextIndex
  put(8, 0xffffffffffffffffn); put(8, 0xffffffffffffffffn); put(8, 0xfn); put(8, 0); // windows
  put(4, 0); put(1, 0); // no reverse sources; flags
  const fingerprint = kdf(CM80, keyA, 0xff, 8);
  fingerprint[0] = fingerprint[0]! | 1;
  fingerprint.copy(v2, at); at += 8;
  put(8, 0);
  assert.is(at, v2.length);
  const tx = await FilterHarness.load(WASM);
  const senderA = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(keyA) });
  const sent = Array.from({ length: 102 }, (_, k) => tx.run({ ctx: senderA, bytes: buildRtp({ seq: k + 1, ssrc: 9, payloadSize: 16 }) }).bytes);
  const rtcp = Array.from({ length: 5 }, () => tx.run({ ctx: senderA, bytes: rtcpRr(9), flags: RTCP }).bytes);
  const rx = await FilterHarness.load(WASM);
  const unprotect = (key: Buffer) => rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(key) });
  const sameKey = unprotect(keyA);
  assert.equal(rx.importState(sameKey, v2), { ok: true, reason: "" });
  assert.is(rx.run({ ctx: sameKey, bytes: sent[99]! }).reasonName, "srtp_replay", "seq 100, taken by the build before");
  assert.is(rx.run({ ctx: sameKey, bytes: rtcp[3]!, flags: RTCP }).reasonName, "srtp_replay");
  assert.is(rx.run({ ctx: sameKey, bytes: sent[100]! }).verdict, "pass");
  assert.is(rx.run({ ctx: sameKey, bytes: rtcp[4]!, flags: RTCP }).verdict, "pass");
  // the upgrade came with a new key B; then back to A
  const b = unprotect(keyB);
  assert.equal(rx.importState(b, v2), { ok: true, reason: "" });
  const senderB = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(keyB) });
  assert.is(rx.run({ ctx: b, bytes: tx.run({ ctx: senderB, bytes: buildRtp({ seq: 1, ssrc: 9, payloadSize: 16 }) }).bytes }).verdict, "pass");
  const a = unprotect(keyA);
  assert.equal(rx.importState(a, rx.exportState(b)!), { ok: true, reason: "" });
  assert.equal(sent.slice(0, 100).map((p) => rx.run({ ctx: a, bytes: p }).reasonName).filter((r) => r !== "srtp_replay"), []);
  assert.is(rx.run({ ctx: a, bytes: rtcp[3]!, flags: RTCP }).reasonName, "srtp_replay");
  assert.is(rx.run({ ctx: a, bytes: sent[100]! }).verdict, "pass");
  assert.is(rx.run({ ctx: a, bytes: rtcp[4]!, flags: RTCP }).verdict, "pass");
});

test("state blob: every source maxSources allows fits it (1024 protect sources are carried), larger configs are refused, a grown window takes what it cannot know as used", async () => {
  const master = masterFor(CM80, 5);
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext({ ...config, maxSources: 1024 });
  // source 1 wraps (ROC 1), then 1023 more sources fill the table
  for (const seq of [65534, 65535, 0]) assert.is(tx.run({ ctx: a, bytes: buildRtp({ seq, ssrc: 1, payloadSize: 10 }) }).verdict, "pass");
  for (let ssrc = 2; ssrc <= 1024; ssrc++) assert.is(tx.run({ ctx: a, bytes: buildRtp({ seq: 7, ssrc, payloadSize: 10 }) }).verdict, "pass");
  const blob = tx.exportState(a);
  assert.ok(blob !== undefined, "the state of 1024 sources fits the blob (before: none past 228, and the stage started again with ROC 0)");
  const tx2 = await FilterHarness.load(WASM);
  const a2 = tx2.createContext({ ...config, maxSources: 1024 });
  assert.equal(tx2.importState(a2, blob!), { ok: true, reason: "" });
  const plain = buildRtp({ seq: 1, ssrc: 1, payloadSize: 10 });
  assert.is(Buffer.from(tx2.run({ ctx: a2, bytes: plain }).bytes).toString("hex"), referenceProtectRtp(CM80, master, plain, 1).toString("hex"), "source 1 goes on at ROC 1");
  assert.is(tx2.run({ ctx: a2, bytes: buildRtp({ seq: 7, ssrc: 1024, payloadSize: 10 }) }).reasonName, "srtp_replay", "the last source's window came along");
  assert.is(tx2.run({ ctx: a2, bytes: buildRtp({ seq: 7, ssrc: 1025, payloadSize: 10 }) }).reasonName, "too_many_sources");
  // configs whose full tables could not be carried are refused, naming the limit
  for (const [extra, most] of [[{ maxSources: 1024, reverseKey: inline(masterFor(CM80, 55)) }, 519], [{ maxSources: 229, replayWindow: 1024 }, 228], [{ maxSources: 115, replayWindow: 1024, reverseKey: inline(masterFor(CM80, 55)) }, 114]] as const) {
    const r = tx.refusal({ ...config, ...extra });
    assert.match(r.reason, new RegExp(`'maxSources' \\(${extra.maxSources}\\) must be at most ${most} with replayWindow`), JSON.stringify(r));
    assert.ok(tx.createContext({ ...config, ...extra, maxSources: most }) > 0, `${most} sources are fine`);
  }
  // a blob with windows of 64 imported where the window is 1024: older indexes are taken as used
  const small = tx.createContext({ ...config, replayWindow: 64 });
  for (let seq = 100; seq <= 300; seq++) tx.run({ ctx: small, bytes: buildRtp({ seq, ssrc: 3, payloadSize: 10 }) });
  const wide = tx2.createContext({ ...config, replayWindow: 1024 });
  assert.equal(tx2.importState(wide, tx.exportState(small)!), { ok: true, reason: "" });
  assert.is(tx2.run({ ctx: wide, bytes: buildRtp({ seq: 200, ssrc: 3, payloadSize: 10 }) }).reasonName, "srtp_replay", "seq 200 was protected: 100 behind, past the old window of 64");
  assert.is(tx2.run({ ctx: wide, bytes: buildRtp({ seq: 301, ssrc: 3, payloadSize: 10 }) }).verdict, "pass");
  // a version 1 blob (the build before: windows of 1024 bits, a sender without a send window) still imports
  const v1 = Buffer.alloc(4 + 4 + (31 + 256) + 4);
  v1.writeUInt32LE(1, 0); // version
  v1.writeUInt32LE(1, 4); // one source in the forward table
  v1.writeUInt32LE(9, 8); // ssrc
  v1.writeUInt32LE(1, 12); // roc
  v1.writeUInt16LE(5, 16); // highestSeq
  v1[18] = 2; // started
  const fromV1 = tx2.createContext(config);
  assert.equal(tx2.importState(fromV1, v1), { ok: true, reason: "" });
  const next = buildRtp({ seq: 6, ssrc: 9, payloadSize: 10 });
  assert.is(Buffer.from(tx2.run({ ctx: fromV1, bytes: next }).bytes).toString("hex"), referenceProtectRtp(CM80, master, next, 1).toString("hex"), "ROC 1 from a version 1 blob");
  assert.is(tx2.run({ ctx: fromV1, bytes: next }).reasonName, "srtp_replay");
});

test("state blob: both tables full at the most maxSources the config allows (with reverseKey) still fit it, so a hot swap carries every source", async () => {
  const forwardKey = inline(masterFor(CM80, 56));
  const h = await FilterHarness.load(WASM);
  // before 2026-12-06 the limit left out the blob's two key fingerprints: these tables were allowed and their blob did not fit
  for (const [replayWindow, most] of [[64, 696], [128, 519], [512, 205]] as const) {
    const config = { direction: "unprotect", suite: CM80.name, key: forwardKey, reverseKey: inline(masterFor(CM80, 57)), replayWindow };
    assert.match(h.refusal({ ...config, maxSources: most + 1 }).reason, new RegExp(`must be at most ${most} with replayWindow ${replayWindow} and a reverseKey`));
    const sender = h.createContext({ direction: "protect", suite: CM80.name, key: forwardKey, maxSources: 1024 });
    const c = h.createContext({ ...config, maxSources: most });
    for (let k = 0; k < most; k++) {
      const ssrc = 0x10000 * replayWindow + k;
      assert.is(h.run({ ctx: c, bytes: h.run({ ctx: sender, bytes: buildRtp({ seq: 1, ssrc, payloadSize: 10 }) }).bytes }).verdict, "pass");
      assert.is(h.run({ ctx: c, bytes: rtcpRr(ssrc + 0x8000), flags: PacketFlag.Rtcp | PacketFlag.Upstream }).verdict, "pass");
    }
    const blob = h.exportState(c);
    assert.ok(blob !== undefined, `replayWindow ${replayWindow}: ${most} sources each way fit the blob`);
    const next = h.createContext({ ...config, maxSources: most });
    assert.equal(h.importState(next, blob!), { ok: true, reason: "" });
    const again = h.run({ ctx: next, bytes: rtcpRr(0x10000 * replayWindow + 0x8000), flags: PacketFlag.Rtcp | PacketFlag.Upstream }).bytes;
    assert.is(Buffer.from(again).readUInt32BE(again.length - 14), 0x80000001, "the reverse table's SRTCP index went on (not 0 again)");
    for (const ctx of [sender, c, next]) h.destroyContext(ctx);
  }
});

test("a hot swap that lowers maxSources carries the sources it cannot keep: refused meanwhile, taken back with their state when maxSources grows again (protect reuses no index, unprotect takes no replay)", async () => {
  const master = masterFor(CM80, 58);
  const tx = await FilterHarness.load(WASM);
  const rx = await FilterHarness.load(WASM);
  const srtcpIndex = (p: Uint8Array) => Buffer.from(p).readUInt32BE(p.length - 14) & 0x7fffffff;
  for (const direction of ["protect", "unprotect"] as const) {
    const h = direction === "protect" ? tx : rx;
    const stage = (maxSources: number, from?: number) => {
      const ctx = h.createContext({ direction, suite: CM80.name, key: inline(master), maxSources });
      if (from !== undefined) assert.equal(h.importState(ctx, h.exportState(from)!), { ok: true, reason: "" });
      return ctx;
    };
    const sender = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(master), maxSources: 8 });
    const input = (ssrc: number, seq: number, rtcp = false) => {
      if (direction === "protect") return rtcp ? rtcpRr(ssrc) : buildRtp({ seq, ssrc, payloadSize: 12 });
      return tx.run({ ctx: sender, bytes: rtcp ? rtcpRr(ssrc) : buildRtp({ seq, ssrc, payloadSize: 12 }), flags: rtcp ? RTCP : 0 }).bytes;
    };
    const s1 = stage(3);
    const sent = new Map<string, Uint8Array>();
    for (const ssrc of [1, 2, 3]) {
      for (let seq = 100; seq < 105; seq++) {
        const bytes = input(ssrc, seq);
        sent.set(`${ssrc}/${seq}`, bytes);
        assert.is(h.run({ ctx: s1, bytes }).verdict, "pass");
      }
      const rtcp = input(ssrc, 0, true);
      sent.set(`${ssrc}/rtcp`, rtcp);
      assert.is(h.run({ ctx: s1, bytes: rtcp, flags: RTCP }).verdict, "pass");
    }
    const s2 = stage(1, s1);
    assert.is(h.run({ ctx: s2, bytes: input(3, 105) }).reasonName, "too_many_sources", `${direction}: source 3 past the smaller table`);
    const s3 = stage(1, s2); // and through one more swap at that size
    const s4 = stage(3, s3);
    if (direction === "protect") {
      assert.is(h.run({ ctx: s4, bytes: input(3, 102) }).reasonName, "srtp_replay", "seq 102 of source 3 was protected before: not again (before: protected again at ROC 0)");
      assert.is(srtcpIndex(h.run({ ctx: s4, bytes: input(3, 0, true), flags: RTCP }).bytes), 1, "its SRTCP index goes on (before: 0 again)");
    } else {
      assert.is(h.run({ ctx: s4, bytes: sent.get("3/102")! }).reasonName, "srtp_replay", "a replay of source 3 (before: taken again)");
      assert.is(h.run({ ctx: s4, bytes: sent.get("3/rtcp")!, flags: RTCP }).reasonName, "srtp_replay");
    }
    assert.is(h.run({ ctx: s4, bytes: input(3, 106) }).verdict, "pass", `${direction}: source 3 goes on`);
    assert.is(h.run({ ctx: s4, bytes: input(2, 105) }).verdict, "pass", `${direction}: source 2 too`);
  }
  // a replayWindow grown in the same swap may leave the blob no room for them: those are lost (as before), the blob still fits
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const narrow = tx.createContext({ ...config, maxSources: 1024, replayWindow: 64 });
  for (let ssrc = 1; ssrc <= 1024; ssrc++) tx.run({ ctx: narrow, bytes: buildRtp({ seq: 1, ssrc, payloadSize: 4 }) });
  const wide = tx.createContext({ ...config, maxSources: 200, replayWindow: 1024 });
  assert.equal(tx.importState(wide, tx.exportState(narrow)!), { ok: true, reason: "" });
  const blob = tx.exportState(wide);
  assert.ok(blob !== undefined && blob.length <= 65536, "the 200 sources and the 28 retired that fit");
  const back = tx.createContext({ ...config, maxSources: 1024, replayWindow: 64 });
  assert.equal(tx.importState(back, blob!), { ok: true, reason: "" });
  assert.is(tx.run({ ctx: back, bytes: buildRtp({ seq: 1, ssrc: 228, payloadSize: 4 }) }).reasonName, "srtp_replay", "the 228th source came back with its state");
});

test("SRTCP indexes are never used twice: refused once all 2^31 are used, skipped ahead after a restore from a checkpoint", async () => {
  const master = masterFor(CM80, 6);
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const tx = await FilterHarness.load(WASM);
  const rx = await FilterHarness.load(WASM);
  const b = rx.createContext({ ...config, direction: "unprotect" });
  const indexOf = (p: Uint8Array): number => Buffer.from(p).readUInt32BE(p.length - 14) & 0x7fffffff;
  const sendRr = (ctx: number, h = tx) => h.run({ ctx, bytes: rtcpRr(0x2222), flags: PacketFlag.Rtcp });
  // a sender near the end of the index space (its state as a hot swap carries it)
  const a = tx.createContext(config);
  sendRr(a);
  const blob = Buffer.from(tx.exportState(a)!);
  // version, words, receiver tables, the forward count, then the source: its SRTCP word after ssrc, roc, seq, flags, highest (u48), rtcpHighest (u32)
  const at = 4 + 2 + 1 + 4 + 4 + 4 + 2 + 1 + 6 + 4;
  assert.is(blob.readUInt32LE(at), 1, "the blob layout this test assumes");
  blob.writeUInt32LE(0x7ffffffe, at);
  const late = tx.createContext(config);
  assert.equal(tx.importState(late, blob), { ok: true, reason: "" });
  const last = [sendRr(late), sendRr(late)];
  assert.equal(last.map((r) => indexOf(r.bytes)), [0x7ffffffe, 0x7fffffff]);
  for (const r of last) assert.is(rx.run({ ctx: b, bytes: r.bytes, flags: PacketFlag.Rtcp }).verdict, "pass");
  assert.is(sendRr(late).reasonName, "srtp_replay", "index 0 again would reuse the keystream of the first SRTCP packet");
  assert.is(sendRr(late).reasonName, "srtp_replay");
  assert.is(tx.metric("rtp_repeats_refused", late), 0, "not an RTP repeat");
  // a checkpoint taken after 3 SRTCP packets; 2 more go out before the stage fails
  const c = tx.createContext(config);
  for (let k = 0; k < 3; k++) sendRr(c);
  const checkpoint = tx.exportState(c)!;
  const gone = [sendRr(c), sendRr(c)].map((r) => indexOf(r.bytes));
  assert.equal(gone, [3, 4]);
  const tx2 = await FilterHarness.load(WASM);
  const restored = tx2.createContext(config);
  assert.equal(tx2.importState(restored, checkpoint, StateOrigin.Checkpoint), { ok: true, reason: "" });
  assert.is(indexOf(sendRr(restored, tx2).bytes), 3 + (1 << 22), "after a checkpoint: past what the old stage may have sent since");
  const swapped = tx2.createContext(config);
  assert.equal(tx2.importState(swapped, tx.exportState(c)!, StateOrigin.Swap), { ok: true, reason: "" });
  assert.is(indexOf(sendRr(swapped, tx2).bytes), 5, "after a hot swap: the very next one");
});

test("a source the checkpoint does not know starts SRTCP past what it may have sent before the failure, at every restore", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 7)) };
  const indexOf = (p: Uint8Array): number => Buffer.from(p).readUInt32BE(p.length - 14) & 0x7fffffff;
  const sendRr = (h: FilterHarness, ctx: number, ssrc: number) => indexOf(h.run({ ctx, bytes: rtcpRr(ssrc), flags: PacketFlag.Rtcp }).bytes);
  // a checkpoint of a stage with no source yet (as a stateFile holds a new stage's); a source
  // starts after it and sends SRTCP 0 and 1 before the stage fails
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext(config);
  const checkpoint = tx.exportState(a)!;
  assert.equal([sendRr(tx, a, 0x3333), sendRr(tx, a, 0x3333)], [0, 1]);
  // restored: the same source, unknown to the checkpoint, must not send index 0 again
  const tx2 = await FilterHarness.load(WASM);
  const r = tx2.createContext(config);
  assert.equal(tx2.importState(r, checkpoint, StateOrigin.Checkpoint), { ok: true, reason: "" });
  const second = tx2.exportState(r)!; // what a stateFile saves right after the restore
  assert.equal([sendRr(tx2, r, 0x3333), sendRr(tx2, r, 0x3333)], [1 << 22, (1 << 22) + 1], "before the fix: 0, 1 again");
  // the process fails again before the next checkpoint: restored from `second`, the source is
  // still unknown, and its indexes from the second run must not come again either
  const tx3 = await FilterHarness.load(WASM);
  const r3 = tx3.createContext(config);
  assert.equal(tx3.importState(r3, second, StateOrigin.Checkpoint), { ok: true, reason: "" });
  assert.is(sendRr(tx3, r3, 0x3333), 1 << 23);
  // a hot swap's state is current: no skip
  const tx4 = await FilterHarness.load(WASM);
  const w = tx4.createContext(config);
  assert.equal(tx4.importState(w, tx3.exportState(r3)!, StateOrigin.Swap), { ok: true, reason: "" });
  assert.is(sendRr(tx4, w, 0x3333), (1 << 23) + 1);
  assert.is(sendRr(tx4, w, 0x4444), 1 << 23, "a source new after the swap starts where new sources start since the last restore");
});

/** A new stage on the test's wall clock that took `blob` on (the import asserted to succeed). */
async function restoredAt(wallClockUs: () => number, config: object, blob: Uint8Array, origin: StateOrigin.Swap | StateOrigin.Checkpoint) {
  const h = await FilterHarness.load(WASM, { wallClockUs });
  const ctx = h.createContext(config);
  assert.equal(h.importState(ctx, blob, origin), { ok: true, reason: "" });
  return { h, ctx };
}

/** A wall clock (us) the test moves by hand: `read` is the harness's `wallClockUs`. */
function handClock() {
  const clock = { us: 1_700_000_000_000_000, read: () => clock.us };
  return clock;
}

/**
 * A protect stage on SSRC 7 under a hand-moved clock, fed every `step`th sequence number from
 * `from` to `from + 9,999` over two seconds (5,000 numbers a second), with the checkpoints a proxy
 * takes at the end of each second: the clock, the harness, its context and the last checkpoint.
 */
async function protectedForTwoSeconds(config: object, from: number, step = 1) {
  const clock = handClock();
  const tx = await FilterHarness.load(WASM, { wallClockUs: clock.read });
  const ctx = tx.createContext(config);
  for (let second = 0; second < 2; second++) {
    const start = from + second * 5_000;
    for (let seq = start; seq < start + 5_000; seq += step) tx.run({ ctx, bytes: buildRtp({ seq, ssrc: 7, payloadSize: 32 }) });
    clock.us += 1_000_000;
    if (second === 0) tx.exportState(ctx);
  }
  return { clock, tx, ctx, checkpoint: tx.exportState(ctx)! };
}

test("a fast stream asks for a checkpoint every 4,096 sequence numbers: restored after a watchdog restart (0.5 s stuck, 0.2 s to restart), 12,000 packets a second go on; from the periodic checkpoint a second older they would be held (roc_unknown)", async () => {
  const master = masterFor(CM80, 24);
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const rate = 12_000;
  /** 2 s of the stream, a periodic checkpoint at 1 s, and one at once when asked if `honoured`; the last restored 0.7 s after the last packet. */
  const restoredAfterStream = async (honoured: boolean) => {
    let wall = 1_700_000_000_000_000; // us
    const wallClockUs = () => wall;
    const tx = await FilterHarness.load(WASM, { wallClockUs });
    const a = tx.createContext(config);
    let checkpoint: Uint8Array | undefined;
    let asked = 0;
    for (let k = 1; k <= 2 * rate; k++) {
      wall += 1e6 / rate;
      assert.is(tx.run({ ctx: a, bytes: buildRtp({ seq: (1000 + k) & 0xffff, ssrc: 3, payloadSize: 16 }) }).verdict, "pass");
      const wish = tx.takeCheckpointWish();
      if (wish) asked++;
      // the periodic one at 1 s; the stage fails just before the one at 2 s
      if ((wish && honoured) || k === rate) checkpoint = tx.exportState(a);
    }
    wall += 700_000;
    const restored = await FilterHarness.load(WASM, { wallClockUs });
    const r = restored.createContext(config);
    assert.equal(restored.importState(r, checkpoint!, StateOrigin.Checkpoint), { ok: true, reason: "" });
    const next = (1000 + 2 * rate + 0.7 * rate) & 0xffff;
    return { asked, after: restored.run({ ctx: r, bytes: buildRtp({ seq: next, ssrc: 3, payloadSize: 16 }) }) };
  };
  const honoured = await restoredAfterStream(true);
  // the first packet (a new source), then every 4,096 of the 24,000
  assert.ok(honoured.asked >= 1 + Math.floor(2 * rate / 4096) - 1 && honoured.asked <= 1 + Math.ceil(2 * rate / 4096), `asked ${honoured.asked} times`);
  assert.is(honoured.after.verdict, "pass", "the checkpoint it asked for is at most 4,096 packets old: the stream goes on");
  const periodic = await restoredAfterStream(false);
  assert.is(periodic.after.reasonName, "roc_unknown", "a second older, at 12,000 packets a second: more than 2^14 since, held");
});

test("a stream above 41,000 packets a second (4,096 in under 100 ms, the least interval a rate is measured over) goes on asking every 4,096 sequence numbers: restored 0.2 s after its last packet (a crash and a restart), 50,000 packets a second go on", async () => {
  const master = masterFor(CM80, 25);
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const rate = 50_000;
  let wall = 1_700_000_000_000_000; // us
  const wallClockUs = () => wall;
  const tx = await FilterHarness.load(WASM, { wallClockUs });
  const a = tx.createContext(config);
  let checkpoint: Uint8Array | undefined;
  let asked = 0;
  let lastRound = -Infinity;
  let pending = false;
  for (let k = 1; k <= rate; k++) {
    wall += 1e6 / rate;
    assert.is(tx.run({ ctx: a, bytes: buildRtp({ seq: (1000 + k) & 0xffff, ssrc: 3, payloadSize: 16 }) }).verdict, "pass");
    if (tx.takeCheckpointWish()) {
      asked++;
      pending = true;
    }
    // as the proxy takes them: at once, at most one round every 50 ms
    if (pending && wall - lastRound >= 50_000) {
      checkpoint = tx.exportState(a);
      lastRound = wall;
      pending = false;
    }
  }
  // the first packet (a new source), then every 4,096 of the 50,000 (asks stopped after the first
  // within 100 ms of the export before: the second's checkpoint was the one at 82 ms)
  assert.ok(asked >= Math.floor(rate / 4096), `asked ${asked} times`);
  wall += 200_000;
  const restored = await FilterHarness.load(WASM, { wallClockUs });
  const r = restored.createContext(config);
  assert.equal(restored.importState(r, checkpoint!, StateOrigin.Checkpoint), { ok: true, reason: "" });
  const next = (1000 + rate + 0.2 * rate) & 0xffff;
  assert.is(restored.run({ ctx: r, bytes: buildRtp({ seq: next, ssrc: 3, payloadSize: 16 }) }).verdict, "pass", "the checkpoint is at most 4,096 packets old: the stream goes on");
  // its rate is measured all the same (over intervals of 100 ms or more): restored 0.5 s after, held
  wall += 300_000;
  const late = await FilterHarness.load(WASM, { wallClockUs });
  const l = late.createContext(config);
  assert.equal(late.importState(l, checkpoint!, StateOrigin.Checkpoint), { ok: true, reason: "" });
  assert.is(late.run({ ctx: l, bytes: buildRtp({ seq: (1000 + rate + 0.5 * rate) & 0xffff, ssrc: 3, payloadSize: 16 }) }).reasonName, "roc_unknown", "25,000 packets since at 50,000 a second: held");
});

test("a checkpoint restored so late that the sender may have moved 2^15 sequence numbers: protect holds its RTP (roc_unknown) rather than guess the roll-over counter and encrypt an index twice; a new key releases it", async () => {
  const master = masterFor(CM80, 21);
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const rtp = (seq: number, payloadByte: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32, payloadByte });
  // 5,000 packets a second for 2 s: seq 30,001 to 40,000, checkpoints each second
  const { clock, tx, ctx: a, checkpoint } = await protectedForTwoSeconds(config, 30_001);
  const wallClockUs = clock.read;
  // the stage goes on after its checkpoint, then fails: seq 40,001 went out under index (ROC 0, 40,001)
  const sentBefore = tx.run({ ctx: a, bytes: rtp(40_001, 0xaa) });
  assert.is(sentBefore.verdict, "pass");
  const restartAfter = async (us: number, cfg: Record<string, unknown> = config) => {
    clock.us += us;
    const { h, ctx } = await restoredAt(wallClockUs, cfg, checkpoint, StateOrigin.Checkpoint);
    clock.us -= us;
    return { h, ctx };
  };

  // 10 s later the sender is 50,000 packets on, at (ROC 1, 24,465): RFC 3711's estimate from
  // (ROC 0, 40,000) says ROC 0, so 24,465 looked old and 40,001 new again; before the hold,
  // 40,001 went out a second time under the same index
  const late = await restartAfter(10_000_000);
  assert.match(late.h.logs.map((l) => l.message).join("\n"), /restored from a checkpoint: it was taken 10000 ms ago, and at the 5000 packets a second .*roc_unknown/);
  assert.is(late.h.run({ ctx: late.ctx, bytes: rtp(24_465, 0xbb) }).reasonName, "roc_unknown");
  const again = late.h.run({ ctx: late.ctx, bytes: rtp(40_001, 0xbb) });
  assert.is(again.reasonName, "roc_unknown", "the index (ROC 0, 40,001) the failed stage used: never encrypted again");
  assert.is(late.h.run({ ctx: late.ctx, bytes: rtcpRr(7), flags: PacketFlag.Rtcp }).verdict, "pass", "SRTCP counts its own indexes (skipped ahead at a restore): it goes on");
  // held across a hot swap under the same key, and across the next checkpoint's restore
  const { h: swapped, ctx: sw } = await restoredAt(wallClockUs, config, late.h.exportState(late.ctx)!, StateOrigin.Swap);
  assert.is(swapped.run({ ctx: sw, bytes: rtp(24_500, 0xbb) }).reasonName, "roc_unknown");
  const { h: restored, ctx: rs } = await restoredAt(wallClockUs, config, swapped.exportState(sw)!, StateOrigin.Checkpoint);
  assert.is(restored.run({ ctx: rs, bytes: rtp(24_501, 0xbb) }).reasonName, "roc_unknown");
  // a new key: any index is a new keystream
  const rekeyed = await FilterHarness.load(WASM, { wallClockUs });
  const rk = rekeyed.createContext({ ...config, key: inline(masterFor(CM80, 22)) });
  assert.equal(rekeyed.importState(rk, swapped.exportState(sw)!, StateOrigin.Swap), { ok: true, reason: "" });
  assert.is(rekeyed.run({ ctx: rk, bytes: rtp(24_502, 0xbb) }).reasonName, "srtp_replay", "not held; behind the send window, which goes on across keys (a config back to the old key encrypts nothing twice)");
  assert.is(rekeyed.run({ ctx: rk, bytes: rtp(40_002, 0xbb) }).verdict, "pass", "ahead of it: under the new key");

  // half a second later the sender moved 2,500: the estimate is right, nothing is held, and the
  // failed stage's index is still refused behind the first new packet
  const soon = await restartAfter(500_000);
  assert.is(soon.h.run({ ctx: soon.ctx, bytes: rtp(42_500, 0xcc) }).verdict, "pass");
  assert.is(soon.h.run({ ctx: soon.ctx, bytes: rtp(40_001, 0xcc) }).reasonName, "srtp_replay");
  // a wall clock stepped back by more than a second: the time since is unknown
  const back = await restartAfter(-5_000_000);
  assert.is(back.h.run({ ctx: back.ctx, bytes: rtp(40_100, 0xcc) }).reasonName, "roc_unknown");
});

test("the rate a late restore judges is the sequence numbers' (helper V): a sender three quarters of whose packets are lost before the proxy moves its numbers four times as fast as protect sees packets, and is held all the same", async () => {
  const master = masterFor(CM80, 23);
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const rtp = (seq: number, payloadByte: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32, payloadByte });
  // the sender at 5,000 packets a second, one in four reaching the stage: 1,250 protected a second
  const { clock, tx, ctx: a, checkpoint } = await protectedForTwoSeconds(config, 30_004, 4);
  assert.is(tx.run({ ctx: a, bytes: rtp(40_001, 0xaa) }).verdict, "pass");
  // 10 s later the sender is 50,000 numbers on: 1,250 x 10 s = 12,500 packets looked safe
  clock.us += 10_000_000;
  const { h, ctx } = await restoredAt(clock.read, config, checkpoint, StateOrigin.Checkpoint);
  assert.match(h.logs.map((l) => l.message).join("\n"), /at the 5000 packets a second/);
  assert.is(h.run({ ctx, bytes: rtp(24_465, 0xbb) }).reasonName, "roc_unknown");
  assert.is(h.run({ ctx, bytes: rtp(40_001, 0xbb) }).reasonName, "roc_unknown", "the index (ROC 0, 40,001) the failed stage used: never encrypted again");
});

test("the first packet after a restore moves its source's numbers by the time the stage was down: that counts as one, not as a rate (helper V)", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 24)) };
  const rtp = (seq: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32 });
  let wall = 1_700_000_000_000_000;
  const wallClockUs = () => wall;
  const tx = await FilterHarness.load(WASM, { wallClockUs });
  const a = tx.createContext(config);
  for (let seq = 1; seq <= 1_000; seq++) tx.run({ ctx: a, bytes: rtp(seq) });
  wall += 1_000_000;
  tx.exportState(a);
  for (let seq = 1_001; seq <= 2_000; seq++) tx.run({ ctx: a, bytes: rtp(seq) });
  wall += 1_000_000;
  const checkpoint = tx.exportState(a)!;
  // restored 12 s later (1,000 a second: 12,000 numbers on, not held), its first packet 12,000 ahead
  wall += 12_000_000;
  const { h, ctx } = await restoredAt(wallClockUs, config, checkpoint, StateOrigin.Checkpoint);
  for (let seq = 14_001; seq <= 15_000; seq++) assert.is(h.run({ ctx, bytes: rtp(seq) }).verdict, "pass");
  wall += 1_000_000;
  const next = h.exportState(ctx)!;
  // restored again 9 s after that checkpoint: 1,000 a second is 9,000 numbers, not held
  wall += 9_000_000;
  const { h: h2, ctx: ctx2 } = await restoredAt(wallClockUs, config, next, StateOrigin.Checkpoint);
  assert.is(h2.run({ ctx: ctx2, bytes: rtp(24_001) }).verdict, "pass");
});

test("a stage restored and exported again before it protected anything passes on the old checkpoint's time, through a hot swap: three restarts of 3 s at 5,000 packets a second are one of 10 s, and held (helper V)", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 26)) };
  const rtp = (seq: number, payloadByte: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32, payloadByte });
  const { clock, tx, ctx: a, checkpoint } = await protectedForTwoSeconds(config, 30_001);
  let blob = checkpoint;
  assert.is(tx.run({ ctx: a, bytes: rtp(40_001, 0xaa) }).verdict, "pass");
  // each restart restores 3 s after the last checkpoint (15,000 packets: not held), is hot swapped
  // at once, and fails again after its next checkpoint, before the first packet reached it
  for (let restart = 0; restart < 3; restart++) {
    clock.us += 3_000_000;
    const { h, ctx } = await restoredAt(clock.read, config, blob, StateOrigin.Checkpoint);
    const { h: swapped, ctx: sw } = await restoredAt(clock.read, config, h.exportState(ctx)!, StateOrigin.Swap);
    clock.us += 500_000;
    blob = swapped.exportState(sw)!;
    clock.us -= 500_000;
  }
  // 9 s on, restored: the sender is 45,000 packets past the checkpoint, at (ROC 1, 19,465)
  const { h, ctx } = await restoredAt(clock.read, config, blob, StateOrigin.Checkpoint);
  assert.is(h.run({ ctx, bytes: rtp(19_465, 0xbb) }).reasonName, "roc_unknown");
  assert.is(h.run({ ctx, bytes: rtp(40_001, 0xbb) }).reasonName, "roc_unknown", "the index (ROC 0, 40,001) the failed stage used: never encrypted again");
});

test("what a restore judged the sender sent while the stage was down is carried until a packet comes, not the rate: a sender that pauses after a restore is not held at the next one (helper V)", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 28)) };
  const rtp = (seq: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32 });
  const { clock, checkpoint } = await protectedForTwoSeconds(config, 30_001);
  // restored 3 s later (15,000 packets: not held); the sender then pauses, and the stage takes
  // its checkpoints each second with nothing to protect
  clock.us += 3_000_000;
  const { h, ctx } = await restoredAt(clock.read, config, checkpoint, StateOrigin.Checkpoint);
  let blob = h.exportState(ctx)!;
  for (let s = 0; s < 60; s++) {
    clock.us += 1_000_000;
    blob = h.exportState(ctx)!;
  }
  // a restart 3 s after the last of them: the sender, back, is 15,000 on from the first checkpoint
  clock.us += 3_000_000;
  const { h: h2, ctx: ctx2 } = await restoredAt(clock.read, config, blob, StateOrigin.Checkpoint);
  assert.is(h2.run({ ctx: ctx2, bytes: rtp(55_001) }).verdict, "pass");
  assert.is(h2.run({ ctx: ctx2, bytes: rtp(40_001) }).reasonName, "srtp_replay");
});

test("a version-4 blob (2026-12-06, before the unseen count) is read: its time and rate judge a late restore as they did (helper V)", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 29)) };
  const rtp = (seq: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32 });
  let wall = 1_700_000_000_000_000;
  const wallClockUs = () => wall;
  const tx = await FilterHarness.load(WASM, { wallClockUs });
  const a = tx.createContext(config);
  for (let seq = 1; seq <= 5_000; seq++) tx.run({ ctx: a, bytes: rtp(seq) });
  wall += 1_000_000;
  const v5 = tx.exportState(a)!;
  // version 5 ends: ... rate (u32), unseen (u32), then the key roles (a count and 9 bytes a key: one here)
  assert.is(new DataView(v5.buffer, v5.byteOffset).getUint32(0, true), 5);
  const v4 = new Uint8Array([...v5.subarray(0, v5.length - 14), ...v5.subarray(v5.length - 10)]);
  new DataView(v4.buffer).setUint32(0, 4, true);
  const restoreAfter = async (us: number) => {
    wall += us;
    const { h, ctx } = await restoredAt(wallClockUs, config, v4, StateOrigin.Checkpoint);
    wall -= us;
    return { h, ctx };
  };
  const late = await restoreAfter(4_000_000);
  assert.is(late.h.run({ ctx: late.ctx, bytes: rtp(5_100) }).reasonName, "roc_unknown", "5,000 a second for 4 s");
  const soon = await restoreAfter(1_000_000);
  assert.is(soon.h.run({ ctx: soon.ctx, bytes: rtp(10_100) }).verdict, "pass");
  const cut = v4.subarray(0, v4.length - 11);
  const h = await FilterHarness.load(WASM, { wallClockUs });
  assert.is(h.importState(h.createContext(config), cut, StateOrigin.Checkpoint).ok, false, "cut in its time and rate: refused");
});

test("a version-4-or-later blob cut anywhere in its key roles is refused, not read as fewer roles (helper V)", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 30)) };
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext(config);
  tx.run({ ctx: a, bytes: buildRtp({ seq: 1, ssrc: 7, payloadSize: 32 }) });
  const blob = tx.exportState(a)!;
  const h = await FilterHarness.load(WASM);
  assert.equal(h.importState(h.createContext(config), blob, StateOrigin.Swap), { ok: true, reason: "" });
  for (const cut of [1, 5, 9]) {
    const r = h.importState(h.createContext(config), blob.subarray(0, blob.length - cut), StateOrigin.Swap);
    assert.is(r.ok, false, `cut by ${cut}`);
    assert.match(r.reason, /truncated/);
  }
});

test("a blob of a newer build (a rollback: state version 6 here) is held as it came, not started afresh: protect encrypts no index a second time, every packet is dropped (state_too_new) and the blob goes on to the newer build rolled forward", async () => {
  const k = masterFor(CM80, 33);
  const config = { direction: "protect", suite: CM80.name, key: inline(k) };
  const rtp = (seq: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32, payloadByte: 0x5a });
  const newer = await FilterHarness.load(WASM);
  const a = newer.createContext(config);
  const sent = [1, 2, 3].map((seq) => newer.run({ ctx: a, bytes: rtp(seq) }).bytes!);
  const srtcp = newer.run({ ctx: a, bytes: rtcpRr(7), flags: RTCP }).bytes!;
  const v5 = newer.exportState(a)!;
  // what a newer build may write: its version, then whatever it added
  const v6 = new Uint8Array([...v5, 1, 2, 3, 4]);
  new DataView(v6.buffer).setUint32(0, 6, true);
  for (const origin of [StateOrigin.Swap, StateOrigin.Checkpoint] as const) {
    const h = await FilterHarness.load(WASM);
    const c = h.createContext(config);
    const r = h.importState(c, v6, origin);
    assert.is(r.ok, false);
    assert.match(r.reason, /version 6, written by a newer build \(this one reads up to 5\).*dropped \(state_too_new\)/);
    const again = h.run({ ctx: c, bytes: rtp(1) });
    assert.is(again.reasonName, "state_too_new", "started afresh, (ROC 0, 1) would be encrypted again under the same key");
    assert.ok(again.bytes === undefined || Buffer.compare(Buffer.from(again.bytes), Buffer.from(sent[0]!)) !== 0);
    const rtcpAgain = h.run({ ctx: c, bytes: rtcpRr(7), flags: RTCP });
    assert.is(rtcpAgain.reasonName, "state_too_new", "SRTCP index 0 again");
    assert.ok(rtcpAgain.bytes === undefined || Buffer.compare(Buffer.from(rtcpAgain.bytes), Buffer.from(srtcp)) !== 0);
    assert.equal(h.exportState(c), v6, "exported as it came, for the newer build");
  }
  // unprotect holds it too: its replay windows are in the blob
  const rx = await FilterHarness.load(WASM);
  const b = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(k) });
  assert.is(rx.importState(b, v6, StateOrigin.Swap).ok, false);
  assert.is(rx.run({ ctx: b, bytes: sent[0]! }).reasonName, "state_too_new", "a replay of what was taken before");
  // rolled forward: the newer build reads its blob and goes on where it was (here: this build, given its own version back)
  const forward = await FilterHarness.load(WASM);
  const f = forward.createContext(config);
  assert.equal(forward.importState(f, v5, StateOrigin.Swap), { ok: true, reason: "" });
  assert.is(forward.run({ ctx: f, bytes: rtp(3) }).reasonName, "srtp_replay");
  assert.is(forward.run({ ctx: f, bytes: rtp(4) }).verdict, "pass");
  // a blob of no known version at all (0) is still refused as such, and not held
  const zero = new Uint8Array(v5);
  new DataView(zero.buffer).setUint32(0, 0, true);
  const z = await FilterHarness.load(WASM);
  const zc = z.createContext(config);
  assert.match(z.importState(zc, zero, StateOrigin.Swap).reason, /unknown version/);
});

test("a key that protected downstream, given as reverseKey to protect upstream (direction swapped, key and reverseKey exchanged), is held: its indexes are in the other direction's state (helper V)", async () => {
  const k = inline(masterFor(CM80, 31));
  const other = inline(masterFor(CM80, 32));
  const rtp = (seq: number, payloadByte: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32, payloadByte });
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext({ direction: "protect", suite: CM80.name, key: k });
  const first = tx.run({ ctx: a, bytes: rtp(5, 0xaa) }).bytes!;
  const blob = tx.exportState(a)!;
  const h = await FilterHarness.load(WASM);
  const c = h.createContext({ direction: "unprotect", suite: CM80.name, key: other, reverseKey: k });
  const r = h.importState(c, blob, StateOrigin.Swap);
  assert.is(r.ok, false);
  assert.match(r.reason, /'reverseKey' protected packets in the other direction/);
  const again = h.run({ ctx: c, bytes: rtp(5, 0xbb), flags: PacketFlag.Upstream });
  assert.is(again.reasonName, "key_role_changed", "before: (ROC 0, 5) under the same key, the same keystream");
  assert.ok(again.bytes === undefined || Buffer.compare(Buffer.from(again.bytes), Buffer.from(first)) !== 0);
  // and back: the reverse direction's sending key now protecting downstream
  const up = await FilterHarness.load(WASM);
  const u = up.createContext({ direction: "unprotect", suite: CM80.name, key: other, reverseKey: k });
  assert.is(up.run({ ctx: u, bytes: rtp(9, 0xaa), flags: PacketFlag.Upstream }).verdict, "pass");
  const down = await FilterHarness.load(WASM);
  const d = down.createContext({ direction: "protect", suite: CM80.name, key: k, reverseKey: other });
  assert.match(down.importState(d, up.exportState(u)!, StateOrigin.Swap).reason, /'key' protected packets in the other direction/);
});

test("a fast stream that paused and came back just after a checkpoint is judged at the rate it had, fallen by half each 10 s, not at 0 (helper V)", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 33)) };
  const rtp = (seq: number, payloadByte = 0) => buildRtp({ seq, ssrc: 7, payloadSize: 32, payloadByte });
  let wall = 1_700_000_000_000_000;
  const wallClockUs = () => wall;
  const tx = await FilterHarness.load(WASM, { wallClockUs });
  const a = tx.createContext(config);
  // 100,000 packets a second for 200 ms, then a pause of 3 s (a checkpoint each second)
  for (let seq = 1; seq <= 20_000; seq++) tx.run({ ctx: a, bytes: rtp(seq) });
  wall += 200_000;
  tx.exportState(a);
  for (let s = 0; s < 3; s++) {
    wall += 1_000_000;
    tx.exportState(a);
  }
  const checkpoint = tx.exportState(a)!;
  // back at once after the checkpoint: 40,000 packets, through the wrap, then the stage fails
  for (let seq = 20_001; seq <= 60_000; seq++) tx.run({ ctx: a, bytes: rtp(seq) });
  // restored 0.5 s after the checkpoint: the sender is 50,000 on, at (ROC 1, 4,464)
  wall += 500_000;
  const { h, ctx } = await restoredAt(wallClockUs, config, checkpoint, StateOrigin.Checkpoint);
  assert.is(h.run({ ctx, bytes: rtp(4_464, 0xbb) }).reasonName, "roc_unknown");
  assert.is(h.run({ ctx, bytes: rtp(20_001, 0xbb) }).reasonName, "roc_unknown", "(ROC 0, 20,001), which the failed stage used: never encrypted again");
});

test("a wall clock stepped back at all between a checkpoint and its restore holds the sends: at 50,000 packets a second, half a second back may hide one of 1.5 s (helper V)", async () => {
  const config = { direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 27)) };
  const rtp = (seq: number) => buildRtp({ seq, ssrc: 7, payloadSize: 32 });
  let wall = 1_700_000_000_000_000;
  const wallClockUs = () => wall;
  const tx = await FilterHarness.load(WASM, { wallClockUs });
  const a = tx.createContext(config);
  for (let seq = 1; seq <= 5_000; seq++) tx.run({ ctx: a, bytes: rtp(seq) });
  wall += 100_000;
  const checkpoint = tx.exportState(a)!;
  const restoreAt = async (offsetUs: number) => {
    const saved = wall;
    wall += offsetUs;
    const { h, ctx } = await restoredAt(wallClockUs, config, checkpoint, StateOrigin.Checkpoint);
    wall = saved;
    return { h, ctx };
  };
  const back = await restoreAt(-500_000);
  assert.match(back.h.logs.map((l) => l.message).join("\n"), /the wall clock went back 500 ms/);
  assert.is(back.h.run({ ctx: back.ctx, bytes: rtp(5_100) }).reasonName, "roc_unknown");
  // the same clock, a few milliseconds on: 250 packets, not held
  const soon = await restoreAt(5_000);
  assert.is(soon.h.run({ ctx: soon.ctx, bytes: rtp(5_300) }).verdict, "pass");
});

test("after a restore from a checkpoint no index is encrypted or accepted twice: each source goes on only ahead of its first packet", async () => {
  const master = masterFor(CM80, 8);
  const config = { direction: "protect", suite: CM80.name, key: inline(master) };
  const rtp = (ssrc: number, seq: number, payloadByte = 0) => buildRtp({ seq, ssrc, payloadSize: 16, payloadByte });
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext(config);
  for (let seq = 1; seq <= 5; seq++) tx.run({ ctx: a, bytes: rtp(1, seq) });
  for (const seq of [10, 12]) tx.run({ ctx: a, bytes: rtp(2, seq) });
  const checkpoint = tx.exportState(a)!;
  // protected after the checkpoint, before the stage fails: none of it is in the checkpoint
  for (const [ssrc, seq] of [[1, 6], [1, 7], [2, 11], [3, 100], [3, 101], [4, 50], [4, 51]] as const) assert.is(tx.run({ ctx: a, bytes: rtp(ssrc, seq, 0xaa) }).verdict, "pass");
  const tx2 = await FilterHarness.load(WASM);
  const r = tx2.createContext(config);
  assert.equal(tx2.importState(r, checkpoint, StateOrigin.Checkpoint), { ok: true, reason: "" });
  const reason = (ssrc: number, seq: number) => tx2.run({ ctx: r, bytes: rtp(ssrc, seq, 0xbb) }).reasonName;
  assert.is(reason(2, 11), "srtp_replay", "a late packet the checkpoint's window had not marked yet");
  assert.is(reason(1, 8), "", "ahead of the checkpoint: goes on");
  assert.is(reason(1, 6), "srtp_replay", "seq 6 went out under this index after the checkpoint: the same keystream again");
  assert.is(reason(1, 7), "srtp_replay", "below the first packet after the restore");
  assert.is(reason(3, 102), "", "a source the checkpoint does not know starts where its first packet is");
  assert.is(reason(3, 101), "srtp_replay");
  // a hot swap before source 2's first packet since the restore keeps it resumed
  const tx3 = await FilterHarness.load(WASM);
  const s = tx3.createContext(config);
  assert.equal(tx3.importState(s, tx2.exportState(r)!, StateOrigin.Swap), { ok: true, reason: "" });
  assert.is(tx3.run({ ctx: s, bytes: rtp(2, 14) }).verdict, "pass");
  assert.is(tx3.run({ ctx: s, bytes: rtp(2, 13) }).reasonName, "srtp_replay", "13 may have gone out before the failure");
  assert.is(tx3.run({ ctx: s, bytes: rtp(4, 52) }).verdict, "pass");
  assert.is(tx3.run({ ctx: s, bytes: rtp(4, 51) }).reasonName, "srtp_replay", "a source new since the restore, first seen after a swap, starts resumed too");
  // a hot swap's state is current: a late packet not yet protected still is
  const tx4 = await FilterHarness.load(WASM);
  const w = tx4.createContext(config);
  assert.equal(tx4.importState(w, tx3.exportState(s)!, StateOrigin.Swap), { ok: true, reason: "" });
  assert.is(tx4.run({ ctx: w, bytes: rtp(2, 16) }).verdict, "pass");
  assert.is(tx4.run({ ctx: w, bytes: rtp(2, 15) }).verdict, "pass", "after a swap, reordering within the window is fine");

  // unprotect: SRTP and SRTCP accepted after the checkpoint are not accepted again after the restore
  const sender = tx.createContext({ ...config, key: inline(masterFor(CM80, 9)) });
  const srtp = Array.from({ length: 9 }, (_, k) => tx.run({ ctx: sender, bytes: rtp(5, k + 1) }).bytes);
  const srtcp = Array.from({ length: 4 }, () => tx.run({ ctx: sender, bytes: rtcpRr(5), flags: PacketFlag.Rtcp }).bytes);
  const rx = await FilterHarness.load(WASM);
  const unprotect = { ...config, direction: "unprotect", key: inline(masterFor(CM80, 9)) };
  const b = rx.createContext(unprotect);
  for (const p of srtp.slice(0, 5)) assert.is(rx.run({ ctx: b, bytes: p }).verdict, "pass");
  for (const p of srtcp.slice(0, 2)) assert.is(rx.run({ ctx: b, bytes: p, flags: PacketFlag.Rtcp }).verdict, "pass");
  const rxCheckpoint = rx.exportState(b)!;
  for (const p of srtp.slice(5, 7)) assert.is(rx.run({ ctx: b, bytes: p }).verdict, "pass");
  assert.is(rx.run({ ctx: b, bytes: srtcp[2]!, flags: PacketFlag.Rtcp }).verdict, "pass");
  const rx2 = await FilterHarness.load(WASM);
  const b2 = rx2.createContext(unprotect);
  assert.equal(rx2.importState(b2, rxCheckpoint, StateOrigin.Checkpoint), { ok: true, reason: "" });
  assert.is(rx2.run({ ctx: b2, bytes: srtp[7]! }).verdict, "pass");
  assert.is(rx2.run({ ctx: b2, bytes: srtp[5]! }).reasonName, "srtp_replay", "a replay of a packet accepted after the checkpoint");
  assert.is(rx2.run({ ctx: b2, bytes: srtp[6]! }).reasonName, "srtp_replay");
  assert.is(rx2.run({ ctx: b2, bytes: srtp[8]! }).verdict, "pass");
  assert.is(rx2.run({ ctx: b2, bytes: srtcp[3]!, flags: PacketFlag.Rtcp }).verdict, "pass");
  assert.is(rx2.run({ ctx: b2, bytes: srtcp[2]!, flags: PacketFlag.Rtcp }).reasonName, "srtp_replay", "SRTCP too");
});

test("reverseKey: upstream RTCP feedback is protected with it, downstream unprotected with key", async () => {
  const down = masterFor(CM80, 3);
  const up = masterFor(CM80, 4);
  const proxy = await FilterHarness.load(WASM);
  const ctx = proxy.createContext({ direction: "unprotect", suite: CM80.name, key: inline(down), reverseKey: inline(up) });
  const sender = await FilterHarness.load(WASM);
  const senderRx = sender.createContext({ direction: "unprotect", suite: CM80.name, key: inline(up) });
  const feedback = rtcpRr(0x7777);
  const out = proxy.run({ ctx, bytes: feedback, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  assert.is(out.verdict, "pass");
  assert.is(out.bytes.length, feedback.length + 14);
  const back = sender.run({ ctx: senderRx, bytes: out.bytes, flags: PacketFlag.Rtcp });
  assert.is(back.verdict, "pass", back.reasonName);
  assert.equal(Buffer.from(back.bytes), Buffer.from(feedback));
});

test("unprotect without a reverseKey drops feedback going upstream (plain_feedback, code 256) rather than leak it in plaintext, unless plainFeedback; protect passes it", async () => {
  const proxy = await FilterHarness.load(WASM);
  const feedback = rtcpRr(0x7777);
  const up = PacketFlag.Rtcp | PacketFlag.Upstream;
  const edge = proxy.createContext({ direction: "unprotect", suite: CM80.name, key: inline(masterFor(CM80, 3)) });
  const dropped = proxy.run({ ctx: edge, bytes: feedback, flags: up });
  assert.is(dropped.verdict, "drop", "receivers' RTCP would leave toward the SRTP sender in plaintext");
  assert.is(dropped.reason, 256);
  assert.equal(proxy.instance.ownReasons[0], { label: "plain_feedback", discard: false }, "the proxy counts it as plain_feedback");
  const optedIn = proxy.createContext({ direction: "unprotect", suite: CM80.name, key: inline(masterFor(CM80, 3)), plainFeedback: true });
  const passed = proxy.run({ ctx: optedIn, bytes: feedback, flags: up });
  assert.is(passed.verdict, "pass");
  assert.equal(Buffer.from(passed.bytes), Buffer.from(feedback), "plainFeedback: true passes it untouched, as before");
  // protect: feedback from the SRTP side is SRTCP and stays so on its way to the plain sender
  const toPlain = proxy.createContext({ direction: "protect", suite: CM80.name, key: inline(masterFor(CM80, 3)) });
  const srtcp = Buffer.concat([feedback, Buffer.alloc(14, 0x55)]);
  assert.equal(Buffer.from(proxy.run({ ctx: toPlain, bytes: srtcp, flags: up }).bytes), srtcp);
  assert.match(proxy.refusal({ direction: "unprotect", key: inline(masterFor(CM80, 3)), plainFeedback: "yes" }).reason, /plainFeedback/);
  // set where it does nothing: refused, naming it
  const nowhere = "config key 'plainFeedback' applies only to direction 'unprotect' without a 'reverseKey'";
  assert.match(proxy.refusal({ direction: "protect", key: inline(masterFor(CM80, 3)), plainFeedback: true }).reason, nowhere);
  assert.match(proxy.refusal({ direction: "unprotect", key: inline(masterFor(CM80, 3)), reverseKey: inline(masterFor(CM80, 4)), plainFeedback: false }).reason, nowhere);
});

test("a wrong key or suite is said in the log (what fails, the suite, the SSRC; never the key), at most every 10 s per segment", async () => {
  const right = masterFor(CM80, 60);
  const wrong = masterFor(CM80, 61);
  const tx = await FilterHarness.load(WASM);
  const a = tx.createContext({ direction: "protect", suite: CM80.name, key: inline(wrong) });
  const rx = await FilterHarness.load(WASM);
  const b = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(right) });
  const warnings = () => rx.logs.filter((l) => /failed authentication/.test(l.message));
  for (let i = 0; i < 20; i++) assert.is(rx.run({ ctx: b, bytes: tx.run({ ctx: a, bytes: buildRtp({ seq: i, ssrc: 0xabc, payloadSize: 30 }) }).bytes }).reasonName, "srtp_auth_failed");
  assert.is(warnings().length, 1, JSON.stringify(rx.logs));
  const line = warnings()[0]!.message;
  assert.match(line, /^1 SRTP\/SRTCP packets failed authentication .* none passed; the last: SSRC 0xabc, RTP\. .*AES_CM_128_HMAC_SHA1_80/);
  for (const k of [right, wrong]) for (let j = 0; j + 8 <= k.length; j += 4) {
    assert.not.ok(line.includes(k.subarray(j, j + 8).toString("hex")) || line.includes(k.toString("base64").slice(j, j + 8)), "no key material in the log");
  }
  rx.advanceTime(5_000_000);
  rx.run({ ctx: b, bytes: tx.run({ ctx: a, bytes: buildRtp({ seq: 100, ssrc: 0xabc, payloadSize: 30 }) }).bytes });
  assert.is(warnings().length, 1, "not again within 10 s");
  rx.advanceTime(5_000_000);
  rx.run({ ctx: b, bytes: tx.run({ ctx: a, bytes: buildRtp({ seq: 101, ssrc: 0xabc, payloadSize: 30 }) }).bytes });
  assert.is(warnings().length, 2);
  assert.match(warnings()[1]!.message, /^21 SRTP\/SRTCP packets failed authentication \(srtp_auth_failed\) since the last report, none passed/);
  // good packets and one forgery: the line says how many passed
  const good = await FilterHarness.load(WASM);
  const g = good.createContext({ direction: "protect", suite: CM80.name, key: inline(right) });
  rx.advanceTime(10_000_000);
  for (let i = 0; i < 5; i++) assert.is(rx.run({ ctx: b, bytes: good.run({ ctx: g, bytes: buildRtp({ seq: 200 + i, ssrc: 0xdef, payloadSize: 30 }) }).bytes }).verdict, "pass");
  const forged = Uint8Array.from(good.run({ ctx: g, bytes: buildRtp({ seq: 205, ssrc: 0xdef, payloadSize: 30 }) }).bytes);
  forged[forged.length - 1] ^= 1;
  rx.run({ ctx: b, bytes: forged });
  assert.match(warnings()[2]!.message, /^1 SRTP\/SRTCP packets failed authentication \(srtp_auth_failed\) since the last report, 5 passed; the last: SSRC 0xdef, RTP/);
});

test("ssrcs: packets of other sources are dropped as srtp_unknown_ssrc", async () => {
  const master = masterFor(CM80);
  const { tx, rx, a } = await pair(CM80, master);
  const only = rx.createContext({ direction: "unprotect", suite: CM80.name, key: inline(master), ssrcs: [5] });
  const p = tx.run({ ctx: a, bytes: buildRtp({ seq: 1, ssrc: 6 }) }).bytes;
  assert.is(rx.run({ ctx: only, bytes: p }).reasonName, "srtp_unknown_ssrc");
});

test("bad configs name the key and never echo key material", async () => {
  const h = await FilterHarness.load(WASM);
  const secret = masterFor(CM80, 99);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ direction: "protect" }, /'key' is required/],
    [{ direction: "sideways", key: inline(secret) }, /'direction' must be 'protect' or 'unprotect'/],
    [{ direction: "protect", suite: "ROT13", key: inline(secret) }, /'suite' must be one of AES_CM_128_HMAC_SHA1_80/],
    [{ direction: "protect", key: inline(secret.subarray(0, 29)) }, /'key' must hold 30 bytes \(master key and salt\) for AES_CM_128_HMAC_SHA1_80, it holds 29/],
    [{ direction: "protect", key: `${inline(secret)}|2^31|1:4` }, /an MKI is not supported/],
    // after '|' only a lifetime (RFC 4568 6.1: 2^N or decimal, at most 2^48 packets, RFC 3711 9.2)
    [{ direction: "protect", key: `${inline(secret)}|2^31x` }, /'key': the lifetime after '\|' must be 2\^N or a decimal number of packets/],
    [{ direction: "protect", key: `${inline(secret)}|` }, /'key': the lifetime after '\|' must be 2\^N/],
    [{ direction: "protect", key: `${inline(secret)}|2^49` }, /'key': the lifetime .* at most 2\^48/],
    [{ direction: "protect", key: `${inline(secret)}|2^20|2^31` }, /'key': the lifetime after '\|' must be/],
    [{ direction: "protect", key: `${inline(secret)}|not-a-lifetime-at-all` }, /'key': the lifetime after '\|' must be 2\^N or a decimal number of packets/],
    [{ direction: "protect", key: `${inline(secret)}|0` }, /'key': the lifetime after '\|' must be 2\^N or a decimal number of packets/],
    [{ direction: "protect", key: `${inline(secret)}|281474976710657` }, /'key': the lifetime .* at most 2\^48/],
    [{ direction: "protect", key: "inline:@@@" }, /'key' must be 'inline:' \+ base64, or hex/],
    [{ direction: "protect", key: secret.toString("hex").slice(0, 59) }, /'key' must be 'inline:' \+ base64, or hex/],
    [{ direction: "protect", key: inline(secret), replayWindow: 128, nackHistory: 512 }, /'replayWindow' \(128\) must be at least 'nackHistory' \(512\)/],
    [{ direction: "protect", key: inline(secret), replayWindow: 16 }, /replayWindow/],
    [{ direction: "protect", key: inline(secret), colour: "red" }, /unknown config key 'colour'/],
    [{ direction: "protect", key: inline(Buffer.concat([Buffer.alloc(16), secret.subarray(16)])) }, /'key' has a master key of zeros only/],
    [{ direction: "unprotect", key: inline(secret), reverseKey: secret.toString("hex") }, /'reverseKey' is the same as 'key': each direction needs a key of its own/],
  ];
  for (const [config, pattern] of cases) {
    let refused: unknown;
    try {
      h.createContext(config);
    } catch (err) {
      refused = err;
    }
    // outside the try: an assertion failing here must not be caught as the refusal
    assert.ok(refused, `accepted ${JSON.stringify(config).slice(0, 40)}`);
    assert.instance(refused, FilterConfigError);
    const message = (refused as Error).message;
    assert.match(message, pattern);
    assert.not.ok(message.includes(secret.toString("base64").slice(0, 12)) || message.includes(secret.toString("hex").slice(0, 12)), "no key material in the message");
  }
  assert.ok(h.createContext({ direction: "protect", key: secret.toString("hex") }) > 0, "hex keys work");
  // 2^0 is one packet, a lifetime (RFC 4568 6.1), however short: not the "0" refused above
  for (const lifetime of ["2^31", "2^48", "1048576", "281474976710656", "0001048576", "2^0", "1"]) {
    assert.ok(h.createContext({ direction: "protect", key: `${inline(secret)}|${lifetime}` }) > 0, `a lifetime of ${lifetime} is taken`);
  }
});

test.run();
