// Host crypto (docs/host-crypto.md): the msm_crypto addon through its wrapper, as the msm.* crypto
// imports use it. Published vectors, then random lengths and offsets against node:crypto both
// ways, then a hostile filter's arguments: each gets its status, nothing is touched, nothing throws.
import * as assert from "uvu/assert";
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, randomInt } from "node:crypto";
import { spawnSync } from "node:child_process";
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { Status } from "../runtime/abi.js";
import { CryptoAlg, createCryptoKeyTable, hostCryptoDescription, hostCryptoUnavailable, type CryptoKeyTable } from "../runtime/filter-host/host-crypto.js";
import { peer, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";

const test = suite("host crypto", { timeoutMs: 120_000 });
const addon = peer("the host-crypto addon with OpenSSL 3", "built by `npm install` (python3, make, a C compiler; node scripts/build-native.mjs)", () => hostCryptoUnavailable() === "");
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");

/** A filter's memory (one 64 KiB wasm page) and a table; `put` writes bytes at an offset. */
function setup(maxKeys?: number): { memory: WebAssembly.Memory; mem: ArrayBuffer; u8: Uint8Array; table: CryptoKeyTable; put(at: number, bytes: Uint8Array): number } {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
  const mem = memory.buffer;
  const u8 = new Uint8Array(mem);
  const table = createCryptoKeyTable(maxKeys);
  assert.ok(table, `createCryptoKeyTable returned null: ${hostCryptoUnavailable()}`);
  return { memory, mem, u8, table, put: (at, bytes) => (u8.set(bytes, at), at) };
}

function key(table: CryptoKeyTable, mem: ArrayBuffer, u8: Uint8Array, alg: CryptoAlg, bytes: Uint8Array, at = 60000): number {
  u8.set(bytes, at);
  const handle = table.create(alg, mem, at, bytes.length);
  assert.ok(handle > 0, `create(${CryptoAlg[alg]}, ${bytes.length} bytes) = ${handle}`);
  return handle;
}

const bytesAt = (u8: Uint8Array, at: number, len: number): string => Buffer.from(u8.subarray(at, at + len)).toString("hex");

peerTest(test, addon, "describes itself: OpenSSL 3 and where it was found", () => {
  assert.is(hostCryptoUnavailable(), "");
  assert.match(hostCryptoDescription(), /via OpenSSL 3\.\d+\.\d+ \(.+\)$/);
});

peerTest(test, addon, "AES-CM keystream of RFC 3711 appendix B.2", () => {
  const { mem, u8, table, put } = setup();
  const k = key(table, mem, u8, CryptoAlg.AesCtr, hex("2B7E151628AED2A6ABF7158809CF4F3C"));
  // data of zeros yields the keystream: the appendix lists counters 0000-0002 and FEFF-FF01 of the salt F0F1...FD
  const iv = put(0, hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
  assert.is(table.ctrXor(k, mem, iv, 100, 48), Status.Ok);
  assert.is(bytesAt(u8, 100, 48), "e03ead0935c95e80e166b16dd92b4eb4d23513162b02d0f72a43a2fe4a5f97ab41e95b3bb0a2e8dd477901e4fca894c0");
  put(0, hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF"));
  u8.fill(0, 100, 148);
  assert.is(table.ctrXor(k, mem, iv, 100, 48), Status.Ok);
  assert.is(bytesAt(u8, 100, 48), "ec8cdf7398607cb0f2d21675ea9ea1e4362b7c3c6773516318a077d7fc5073ae6a2cc3787889374fbeb4c81b17ba6c44");
  table.close();
});

peerTest(test, addon, "HMAC-SHA1 test cases 1-7 of RFC 2202 section 3, with the message split anywhere into msg || suffix", () => {
  const { mem, u8, table, put } = setup();
  const cases: Array<[Buffer, Buffer, string]> = [
    [Buffer.alloc(20, 0x0b), Buffer.from("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00"],
    [Buffer.from("Jefe"), Buffer.from("what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"],
    [Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"],
    [hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), Buffer.alloc(50, 0xcd), "4c9007f4026250c6bc8414f9bf50c86c2d7235da"],
    [Buffer.alloc(20, 0x0c), Buffer.from("Test With Truncation"), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"],
    [Buffer.alloc(80, 0xaa), Buffer.from("Test Using Larger Than Block-Size Key - Hash Key First"), "aa4ae5e15272d00e95705637ce8a3b55ed402112"],
    [Buffer.alloc(80, 0xaa), Buffer.from("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"), "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"],
  ];
  for (const [rawKey, data, mac] of cases) {
    // keys longer than SHA-1's 64-byte block are hashed first (RFC 2104 section 2): the caller's job here
    const k = key(table, mem, u8, CryptoAlg.HmacSha1, rawKey.length > 64 ? createHash("sha1").update(rawKey).digest() : rawKey);
    for (const split of [0, 1, data.length >> 1, data.length]) {
      const msg = put(1000, data.subarray(0, split));
      const suffix = put(3000, data.subarray(split));
      u8.fill(0, 5000, 5020);
      assert.is(table.hmacSha1(k, mem, msg, split, suffix, data.length - split, 5000), Status.Ok);
      assert.is(bytesAt(u8, 5000, 20), mac, `key ${rawKey.length} bytes, split at ${split}`);
    }
    assert.is(table.drop(k), Status.Ok);
  }
  // the 80-byte key itself is refused, not silently hashed
  u8.fill(0xaa, 60000, 60080);
  assert.is(table.create(CryptoAlg.HmacSha1, mem, 60000, 80), -Status.BadArgument);
  table.close();
});

peerTest(test, addon, "AES-GCM test cases 4 and 16 of the GCM specification (McGrew and Viega; NIST's GCM submission)", () => {
  const { mem, u8, table, put } = setup();
  const iv = hex("cafebabefacedbaddecaf888");
  const aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const plain = hex(`d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
    1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39`);
  const vectors: Array<[string, string, string]> = [
    ["feffe9928665731c6d6a8f9467308308",
      "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
      "5bc94fbc3221a5db94fae95ae7121a47"],
    ["feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      "76fc6ece0f4e1768cddf8853bb2d551b"],
  ];
  for (const [k, cipher, tag] of vectors) {
    const h = key(table, mem, u8, CryptoAlg.AesGcm, hex(k));
    put(0, iv);
    put(100, aad);
    put(200, plain);
    assert.is(table.gcmSeal(h, mem, 0, 100, aad.length, 200, plain.length, 400), Status.Ok);
    assert.is(bytesAt(u8, 200, plain.length), cipher);
    assert.is(bytesAt(u8, 400, 16), tag);
    assert.is(table.gcmOpen(h, mem, 0, 100, aad.length, 200, plain.length, 400), Status.Ok);
    assert.is(bytesAt(u8, 200, plain.length), plain.toString("hex"));
  }
  table.close();
});

/** The CTR keystream built block by block with ECB from a BigInt counter: independent of any CTR mode's counting. */
function referenceKeystream(k: Buffer, iv: Buffer, len: number): Buffer {
  const blocks = Buffer.alloc(Math.ceil(len / 16) * 16);
  let counter = BigInt(`0x${iv.toString("hex")}`);
  for (let at = 0; at < blocks.length; at += 16) {
    blocks.write(counter.toString(16).padStart(32, "0"), at, "hex");
    counter = (counter + 1n) & ((1n << 128n) - 1n);
  }
  const ecb = createCipheriv(k.length === 16 ? "aes-128-ecb" : "aes-256-ecb", k, null).setAutoPadding(false);
  return Buffer.concat([ecb.update(blocks), ecb.final()]).subarray(0, len);
}

peerTest(test, addon, "the CTR counter is all 128 bits, big-endian: carries across the 32- and 64-bit words and wraps at 2^128", () => {
  const { mem, u8, table, put } = setup();
  for (const keyLen of [16, 32]) {
    const k = randomBytes(keyLen);
    const h = key(table, mem, u8, CryptoAlg.AesCtr, k);
    for (const ivHex of ["000102030405060708090a0bfffffffe", "0001020304050607fffffffffffffffd", "00000000000000ffffffffffffffffff", "ffffffffffffffffffffffffffffffff"]) {
      const iv = hex(ivHex);
      put(0, iv);
      u8.fill(0, 64, 64 + 100);
      assert.is(table.ctrXor(h, mem, 0, 64, 100), Status.Ok);
      assert.is(bytesAt(u8, 64, 100), referenceKeystream(k, iv, 100).toString("hex"), `AES-${keyLen * 8}, IV ${ivHex}`);
    }
  }
  table.close();
});

peerTest(test, addon, "random keys, lengths 0..1500 and offsets agree with node:crypto, both ways", () => {
  const { mem, u8, table, put } = setup();
  for (let round = 0; round < 400; round++) {
    const len = randomInt(0, 1501);
    const data = randomBytes(len);
    const at = randomInt(0, 20000);
    const aes = randomBytes(randomInt(0, 2) === 0 ? 16 : 32);
    const bits = aes.length * 8;

    // AES-CTR, then back again
    const ctr = key(table, mem, u8, CryptoAlg.AesCtr, aes);
    const iv = randomBytes(16);
    put(at, data);
    put(30000, iv);
    assert.is(table.ctrXor(ctr, mem, 30000, at, len), Status.Ok);
    const theirs = createCipheriv(`aes-${bits}-ctr`, aes, iv).update(data);
    assert.is(bytesAt(u8, at, len), theirs.toString("hex"), `ctr len ${len}`);
    assert.is(table.ctrXor(ctr, mem, 30000, at, len), Status.Ok);
    assert.is(bytesAt(u8, at, len), data.toString("hex"));

    // HMAC-SHA1 of msg || suffix against one createHmac over both
    const macKey = randomBytes(randomInt(1, 65));
    const mac = key(table, mem, u8, CryptoAlg.HmacSha1, macKey);
    const suffix = randomBytes(randomInt(0, 17));
    put(40000, suffix);
    assert.is(table.hmacSha1(mac, mem, at, len, 40000, suffix.length, 40100), Status.Ok);
    assert.is(bytesAt(u8, 40100, 20), createHmac("sha1", macKey).update(data).update(suffix).digest("hex"), `hmac len ${len}`);

    // AES-GCM: ours sealed, theirs opens; theirs sealed, ours opens
    const gcm = key(table, mem, u8, CryptoAlg.AesGcm, aes);
    const nonce = randomBytes(12);
    const aad = randomBytes(randomInt(0, 65));
    put(30000, nonce);
    put(30100, aad);
    assert.is(table.gcmSeal(gcm, mem, 30000, 30100, aad.length, at, len, 30200), Status.Ok);
    const sealed = Buffer.from(u8.subarray(at, at + len));
    const tag = Buffer.from(u8.subarray(30200, 30216));
    const opener = createDecipheriv(`aes-${bits}-gcm` as "aes-128-gcm", aes, nonce).setAAD(aad).setAuthTag(tag);
    assert.is(Buffer.concat([opener.update(sealed), opener.final()]).toString("hex"), data.toString("hex"), `gcm len ${len}`);
    const sealer = createCipheriv(`aes-${bits}-gcm` as "aes-128-gcm", aes, nonce).setAAD(aad);
    const theirSealed = Buffer.concat([sealer.update(data), sealer.final()]);
    assert.is(sealed.toString("hex"), theirSealed.toString("hex"));
    put(at, theirSealed);
    put(30200, sealer.getAuthTag());
    assert.is(table.gcmOpen(gcm, mem, 30000, 30100, aad.length, at, len, 30200), Status.Ok);
    assert.is(bytesAt(u8, at, len), data.toString("hex"));

    for (const h of [ctr, mac, gcm]) assert.is(table.drop(h), Status.Ok);
  }
  assert.is(table.size, 0);
  table.close();
});

peerTest(test, addon, "overlapping ranges: a MAC written over its own message, an IV inside the data it encrypts", () => {
  const { mem, u8, table, put } = setup();
  const macKey = randomBytes(20);
  const mac = key(table, mem, u8, CryptoAlg.HmacSha1, macKey);
  const msg = randomBytes(100);
  put(0, msg);
  assert.is(table.hmacSha1(mac, mem, 0, 100, 0, 100, 50), Status.Ok);
  assert.is(bytesAt(u8, 50, 20), createHmac("sha1", macKey).update(msg).update(msg).digest("hex"));

  const aes = randomBytes(16);
  const ctr = key(table, mem, u8, CryptoAlg.AesCtr, aes);
  const data = randomBytes(64);
  put(1000, data);
  const iv = data.subarray(8, 24);
  assert.is(table.ctrXor(ctr, mem, 1008, 1000, 64), Status.Ok);
  assert.is(bytesAt(u8, 1000, 64), createCipheriv("aes-128-ctr", aes, iv).update(data).toString("hex"));
  table.close();
});

peerTest(test, addon, "gcmOpen refuses a flipped bit of tag, ciphertext or AAD and leaves the data as it was", () => {
  const { mem, u8, table, put } = setup();
  const h = key(table, mem, u8, CryptoAlg.AesGcm, randomBytes(16));
  put(0, randomBytes(12));
  put(100, randomBytes(20));
  const plain = randomBytes(1200);
  put(1000, plain);
  assert.is(table.gcmSeal(h, mem, 0, 100, 20, 1000, 1200, 200), Status.Ok);
  const sealed = Buffer.from(u8.subarray(0, 3000));
  for (const [what, byte] of [["tag", 200 + 15], ["ciphertext", 1000 + 600], ["AAD", 100 + 3], ["IV", 11]] as const) {
    for (const bit of [0, 7]) {
      u8.set(sealed, 0);
      u8[byte] ^= 1 << bit;
      const before = Buffer.from(u8.subarray(0, 3000));
      assert.is(table.gcmOpen(h, mem, 0, 100, 20, 1000, 1200, 200), Status.Failed, `${what} bit ${bit}`);
      assert.ok(before.equals(u8.subarray(0, 3000)), `${what} bit ${bit} flipped: memory changed`);
    }
  }
  u8.set(sealed, 0);
  assert.is(table.gcmOpen(h, mem, 0, 100, 20, 1000, 1200, 200), Status.Ok);
  assert.ok(plain.equals(u8.subarray(1000, 2200)));
  table.close();
});

peerTest(test, addon, "hostile arguments get BadArgument, touch nothing and never throw", () => {
  const { memory, mem, u8, table } = setup();
  const ctr = key(table, mem, u8, CryptoAlg.AesCtr, randomBytes(16), 0);
  const mac = key(table, mem, u8, CryptoAlg.HmacSha1, randomBytes(20), 0);
  const gcm = key(table, mem, u8, CryptoAlg.AesGcm, randomBytes(32), 0);
  const end = mem.byteLength;
  const dropped = key(table, mem, u8, CryptoAlg.AesCtr, randomBytes(16), 0);
  assert.is(table.drop(dropped), Status.Ok);
  u8.set(randomBytes(end));
  const snapshot = Buffer.from(u8);
  const bad = [-1, -65536, end + 1, 2 ** 31, 2 ** 32 + 16, 1.5, NaN, Infinity, -Infinity] as number[];
  const nonNumbers = ["16", undefined, null, {}, 16n] as unknown as number[];
  const cases: Array<[string, () => number]> = [];
  for (const v of [...bad, ...nonNumbers]) {
    cases.push(
      [`ctrXor iv ${String(v)}`, () => table.ctrXor(ctr, mem, v, 0, 16)],
      [`ctrXor data ${String(v)}`, () => table.ctrXor(ctr, mem, 0, v, 16)],
      [`ctrXor len ${String(v)}`, () => table.ctrXor(ctr, mem, 0, 0, v)],
      [`hmac msg ${String(v)}`, () => table.hmacSha1(mac, mem, v, 1, 0, 0, 0)],
      [`hmac msgLen ${String(v)}`, () => table.hmacSha1(mac, mem, 0, v, 0, 0, 0)],
      [`hmac suffix ${String(v)}`, () => table.hmacSha1(mac, mem, 0, 1, v, 1, 0)],
      [`hmac suffixLen ${String(v)}`, () => table.hmacSha1(mac, mem, 0, 1, 0, v, 0)],
      [`hmac out ${String(v)}`, () => table.hmacSha1(mac, mem, 0, 1, 0, 0, v)],
      [`gcmSeal iv ${String(v)}`, () => table.gcmSeal(gcm, mem, v, 0, 0, 0, 16, 100)],
      [`gcmSeal aadLen ${String(v)}`, () => table.gcmSeal(gcm, mem, 0, 0, v, 0, 16, 100)],
      [`gcmSeal len ${String(v)}`, () => table.gcmSeal(gcm, mem, 0, 0, 0, 0, v, 100)],
      [`gcmOpen tag ${String(v)}`, () => table.gcmOpen(gcm, mem, 0, 0, 0, 0, 16, v)],
      [`create keyPtr ${String(v)}`, () => -table.create(CryptoAlg.AesCtr, mem, v, 16)],
      [`handle ${String(v)}`, () => table.ctrXor(v, mem, 0, 0, 16)],
    );
  }
  cases.push(
    ["ranges ending one past the end", () => table.ctrXor(ctr, mem, 0, end - 15, 16)],
    ["an IV one past the end", () => table.ctrXor(ctr, mem, end - 15, 0, 16)],
    ["a MAC out one past the end", () => table.hmacSha1(mac, mem, 0, 16, 0, 0, end - 19)],
    ["a GCM tag one past the end", () => table.gcmSeal(gcm, mem, 0, 0, 0, 0, 16, end - 15)],
    ["len 65537, inside a bigger memory", () => table.ctrXor(ctr, new ArrayBuffer(200_000), 0, 16, 65537)],
    ["a 65537-byte HMAC message", () => table.hmacSha1(mac, new ArrayBuffer(200_000), 0, 65537, 0, 0, 70000)],
    ["ctrXor on an HMAC key", () => table.ctrXor(mac, mem, 0, 0, 16)],
    ["hmacSha1 on an AES-CTR key", () => table.hmacSha1(ctr, mem, 0, 16, 0, 0, 100)],
    ["gcmSeal on an AES-CTR key", () => table.gcmSeal(ctr, mem, 0, 0, 0, 0, 16, 100)],
    ["gcmOpen on an HMAC key", () => table.gcmOpen(mac, mem, 0, 0, 0, 0, 16, 100)],
    ["ctrXor on a GCM key", () => table.ctrXor(gcm, mem, 0, 0, 16)],
    ["an unknown handle", () => table.ctrXor(4000, mem, 0, 0, 16)],
    ["handle 0", () => table.ctrXor(0, mem, 0, 0, 16)],
    ["a dropped handle", () => table.ctrXor(dropped, mem, 0, 0, 16)],
    ["dropping a dropped handle", () => table.drop(dropped)],
    ["dropping handle -1", () => table.drop(-1)],
    ["memory not an ArrayBuffer (a Uint8Array)", () => table.ctrXor(ctr, u8 as unknown as ArrayBuffer, 0, 0, 16)],
    ["memory null", () => table.ctrXor(ctr, null as unknown as ArrayBuffer, 0, 0, 16)],
    ["alg 0", () => -table.create(0, mem, 0, 16)],
    ["alg 4", () => -table.create(4, mem, 0, 16)],
    ["an AES key of 24 bytes", () => -table.create(CryptoAlg.AesCtr, mem, 0, 24)],
    ["a GCM key of 0 bytes", () => -table.create(CryptoAlg.AesGcm, mem, 0, 0)],
    ["an HMAC key of 0 bytes", () => -table.create(CryptoAlg.HmacSha1, mem, 0, 0)],
    ["an HMAC key of 65 bytes", () => -table.create(CryptoAlg.HmacSha1, mem, 0, 65)],
    ["a key past the end", () => -table.create(CryptoAlg.AesCtr, mem, end - 8, 16)],
  );
  for (const [what, call] of cases) {
    let status: number;
    try {
      status = call();
    } catch (err) {
      assert.unreachable(`${what} threw: ${(err as Error).message}`);
      return;
    }
    assert.is(status, Status.BadArgument, what);
    assert.ok(snapshot.equals(u8), `${what}: memory changed`);
  }
  assert.is(table.size, 3);
  // empty ranges at the very end are in bounds
  assert.is(table.hmacSha1(mac, mem, end, 0, end, 0, end - 20), Status.Ok);
  assert.is(table.ctrXor(ctr, mem, end - 16, end, 0), Status.Ok);
  // the memory grew: its old buffer is detached, nothing is in range any more; the new one works
  memory.grow(1);
  assert.is(mem.byteLength, 0);
  assert.is(table.ctrXor(ctr, mem, 0, 16, 16), Status.BadArgument);
  assert.is(table.hmacSha1(mac, mem, 0, 16, 0, 0, 100), Status.BadArgument);
  assert.is(table.ctrXor(ctr, memory.buffer, 0, end + 16, 16), Status.Ok);
  table.close();
});

peerTest(test, addon, "random arguments from the edges: a call refused touches nothing, none throws", () => {
  const { mem, u8, table } = setup();
  const end = mem.byteLength;
  const handles = [CryptoAlg.AesCtr, CryptoAlg.HmacSha1, CryptoAlg.AesGcm].map((alg) => key(table, mem, u8, alg, randomBytes(16), 0));
  const edges = [-1, 0, 1, 12, 15, 16, 19, 20, 1200, end - 20, end - 16, end - 12, end - 1, end, end + 1, 65536, 65537, 2 ** 31 - 1, -(2 ** 31), 0.5];
  const pick = (): number => (randomInt(0, 4) === 0 ? randomInt(-4, 70000) : edges[randomInt(0, edges.length)]!);
  const handle = (): number => (randomInt(0, 4) === 0 ? pick() : handles[randomInt(0, 3)]!);
  const calls = [
    () => table.ctrXor(handle(), mem, pick(), pick(), pick()),
    () => table.hmacSha1(handle(), mem, pick(), pick(), pick(), pick(), pick()),
    () => table.gcmSeal(handle(), mem, pick(), pick(), pick(), pick(), pick(), pick()),
    () => table.gcmOpen(handle(), mem, pick(), pick(), pick(), pick(), pick(), pick()),
  ];
  const statuses = new Map<number, number>();
  for (let i = 0; i < 20_000; i++) {
    u8.set(randomBytes(64), randomInt(0, end - 64));
    const before = Buffer.from(u8);
    const status = calls[randomInt(0, calls.length)]!();
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    assert.ok([Status.Ok, Status.BadArgument, Status.Failed].includes(status), `status ${status}`);
    if (status !== Status.Ok) assert.ok(before.equals(u8), `call ${i} returned ${status} but changed memory`);
  }
  // both outcomes were reached: the edges are not all out of range
  assert.ok((statuses.get(Status.Ok) ?? 0) > 100 && (statuses.get(Status.BadArgument) ?? 0) > 100, JSON.stringify([...statuses]));
  assert.is(table.size, 3);
  table.close();
});

peerTest(test, addon, "a table holds at most its keys (4096 by default), then NoSpace; a freed slot's old handle stays invalid", () => {
  const { mem, u8, table } = setup();
  u8.set(randomBytes(16), 0);
  const handles = new Set<number>();
  for (let i = 0; i < 4096; i++) {
    const h = table.create(CryptoAlg.HmacSha1, mem, 0, 16);
    assert.ok(h > 0 && !handles.has(h), `key ${i + 1}: ${h}`);
    handles.add(h);
  }
  assert.is(table.size, 4096);
  assert.is(table.create(CryptoAlg.HmacSha1, mem, 0, 16), -Status.NoSpace);
  const first = [...handles][0]!;
  assert.is(table.drop(first), Status.Ok);
  const again = table.create(CryptoAlg.AesCtr, mem, 0, 16);
  assert.ok(again > 0 && !handles.has(again), `the new handle ${again} is not one that was live`);
  assert.is(table.hmacSha1(first, mem, 0, 16, 0, 0, 100), Status.BadArgument);
  assert.is(table.drop(first), Status.BadArgument);
  assert.is(table.create(CryptoAlg.AesCtr, mem, 0, 16), -Status.NoSpace);
  table.close();

  const small = setup(2);
  small.u8.set(randomBytes(16), 0);
  assert.ok(small.table.create(CryptoAlg.AesCtr, small.mem, 0, 16) > 0);
  assert.ok(small.table.create(CryptoAlg.AesGcm, small.mem, 0, 16) > 0);
  assert.is(small.table.create(CryptoAlg.AesCtr, small.mem, 0, 16), -Status.NoSpace);
  small.table.close();
  for (const bad of [0, 4097, 1.5]) assert.throws(() => createCryptoKeyTable(bad), /maxKeys must be an integer from 1 to 4096/);
});

peerTest(test, addon, "a closed table dropped its keys; every call then fails, none throws", () => {
  const { mem, u8, table } = setup();
  const ctr = key(table, mem, u8, CryptoAlg.AesCtr, randomBytes(16), 0);
  const mac = key(table, mem, u8, CryptoAlg.HmacSha1, randomBytes(16), 0);
  const gcm = key(table, mem, u8, CryptoAlg.AesGcm, randomBytes(16), 0);
  table.close();
  assert.is(table.size, 0);
  const snapshot = Buffer.from(u8);
  assert.is(table.create(CryptoAlg.AesCtr, mem, 0, 16), -Status.Failed);
  assert.is(table.ctrXor(ctr, mem, 0, 0, 16), Status.Failed);
  assert.is(table.hmacSha1(mac, mem, 0, 16, 0, 0, 100), Status.Failed);
  assert.is(table.gcmSeal(gcm, mem, 0, 0, 0, 0, 16, 100), Status.Failed);
  assert.is(table.gcmOpen(gcm, mem, 0, 0, 0, 0, 16, 100), Status.Failed);
  assert.is(table.drop(ctr), Status.Failed);
  table.close();
  assert.ok(snapshot.equals(u8));
});

peerTest(test, addon, "worker threads each load the addon and keep their own tables", async () => {
  const module = fileURLToPath(new URL("../runtime/filter-host/host-crypto.js", import.meta.url));
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    import(workerData.module).then(({ createCryptoKeyTable }) => {
      const table = createCryptoKeyTable();
      const mem = new ArrayBuffer(1024);
      const u8 = new Uint8Array(mem);
      u8.set(workerData.key, 0);
      u8.set(workerData.iv, 16);
      const k = table.create(1, mem, 0, 16);
      const status = table.ctrXor(k, mem, 16, 100, 64);
      parentPort.postMessage({ k, status, out: Buffer.from(u8.subarray(100, 164)).toString("hex"), size: table.size });
      table.close();
    });`;
  const aes = randomBytes(16);
  const iv = randomBytes(16);
  const expected = createCipheriv("aes-128-ctr", aes, iv).update(Buffer.alloc(64)).toString("hex");
  const { table } = setup();
  const results = await Promise.all([0, 1, 2].map(() => new Promise<{ k: number; status: number; out: string; size: number }>((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { module, key: aes, iv } });
    worker.once("message", (m) => { resolve(m); void worker.terminate(); });
    worker.once("error", reject);
  })));
  for (const r of results) assert.equal(r, { k: 1, status: Status.Ok, out: expected, size: 1 });
  assert.is(table.size, 0, "the main thread's table is its own");
  table.close();
});

peerTest(test, addon, "tables JS forgets are freed by their finalizer (64 KiB GCM scratch each, written: 2.4 GB if they leaked)", () => {
  // a child with --expose-gc (Node only; under Bun the GC is asked through Bun.gc)
  const module = fileURLToPath(new URL("../runtime/filter-host/host-crypto.js", import.meta.url));
  const script = `
    const { createCryptoKeyTable } = await import(${JSON.stringify(module)});
    const mem = new ArrayBuffer(65536);
    const gc = globalThis.gc ?? (() => Bun.gc(true));
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 1000; i++) {
        const t = createCryptoKeyTable(1);
        if (t.create(3, mem, 0, 16) !== 1) throw new Error("create failed");
        // a wrong tag: 60,000 bytes decrypted into the scratch (now resident), then refused
        if (t.gcmOpen(1, mem, 0, 0, 0, 0, 60000, 60000) !== 6) throw new Error("gcmOpen did not refuse");
      }
      gc();
      await new Promise((r) => setImmediate(r));
    }
    gc();
    await new Promise((r) => setImmediate(r));
    console.log(process.memoryUsage().rss);`;
  const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  const args = isBun ? ["--eval", script] : ["--expose-gc", "--input-type=module", "--eval", script];
  const run = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 100_000 });
  assert.is(run.status, 0, run.stderr);
  const rss = Number(run.stdout.trim());
  assert.ok(rss > 0 && rss < 1_000_000_000, `rss ${rss} after 40,000 forgotten tables`);
});

test("without the addon: unavailable with the reason, no table, nothing thrown", () => {
  const module = fileURLToPath(new URL("../runtime/filter-host/host-crypto.js", import.meta.url));
  const script = `
    const m = await import(${JSON.stringify(module)});
    console.log(JSON.stringify([m.hostCryptoUnavailable(), m.hostCryptoDescription(), m.createCryptoKeyTable()]));`;
  const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  const args = isBun ? ["--eval", script] : ["--input-type=module", "--eval", script];
  const run = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 60_000, env: { ...process.env, MSM_CRYPTO_ADDON: "/nonexistent/msm_crypto.node" } });
  assert.is(run.status, 0, run.stderr);
  const [why, description, table] = JSON.parse(run.stdout) as [string, string, unknown];
  assert.match(why, /^the host-crypto addon did not load \(.*nonexistent.*\); build it with `node scripts\/build-native.mjs`$/);
  assert.is(description, why);
  assert.is(table, null);
});

test.run();
