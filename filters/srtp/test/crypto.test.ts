// The SRTP cipher core (filters/srtp/assembly/crypto): standard vectors named after their
// section, and every primitive cross-checked against node:crypto (OpenSSL) on random inputs at
// the lengths that matter (empty, one byte, around the 16-byte block, 64-byte SHA-1 block edges,
// RTP-sized). The AssemblyScript is compiled here, in memory, from a test-only entry
// (crypto/test-exports.ts) with the SDK's build flags, and driven through its exports.
import * as assert from "uvu/assert";
import { createCipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "../../../test/lib/suite.js";
import { ROOT } from "../../../test/lib/paths.js";

/** The SDK's build flags, as every filter is built with them. */
const SDK_FLAGS = JSON.parse(readFileSync(join(ROOT, "sdk", "build-flags.json"), "utf8")) as string[];
const ENTRY = join(ROOT, "filters", "srtp", "assembly", "crypto", "test-exports.ts");

/** The exports of test-exports.ts (wasm bools are numbers; u64 is a BigInt). */
interface CryptoExports {
  _initialize(): void;
  buffer(): number;
  heapProbe(): number;
  aesExpandKey(schedule: number, key: number, keyLen: number): number;
  aesEncryptBlock(schedule: number, src: number, dst: number): void;
  aesRounds(schedule: number): number;
  aesCmXor(schedule: number, iv16: number, data: number, len: number): void;
  srtpCmIv(out16: number, salt14: number, ssrc: number, index: bigint): void;
  sha1(ptr: number, len: number, out: number): void;
  hmacSha1Init(state: number, key: number, keyLen: number): void;
  hmacSha1(state: number, msg: number, msgLen: number, suffix: number, suffixLen: number, out: number): void;
  gcmInit(state: number, key: number, keyLen: number): number;
  gcmEncrypt(state: number, iv12: number, aad: number, aadLen: number, data: number, len: number, tag: number): void;
  gcmDecrypt(state: number, iv12: number, aad: number, aadLen: number, data: number, len: number, tag: number): number;
  gcmSrtpIv(out12: number, salt12: number, ssrc: number, roc: number, seq: number): void;
  gcmSrtcpIv(out12: number, salt12: number, ssrc: number, index: number): void;
  srtpKdf(key: number, keyLen: number, salt: number, saltLen: number, label: number, out: number, outLen: number): number;
  ctEqual(a: number, b: number, len: number): number;
}

/** The module, with its memory and a layout over its static test buffer. */
class Core {
  readonly x: CryptoExports;
  // Offsets in the 64 KiB test buffer.
  readonly SCHEDULE: number;
  readonly GCM_KEY: number;
  readonly HMAC_KEY: number;
  readonly IV: number;
  readonly KEY: number;
  readonly SALT: number;
  readonly OUT: number;
  readonly TAG: number;
  readonly AAD: number;
  readonly SUFFIX: number;
  readonly DATA: number;
  static readonly MAX_DATA = 60 * 1024;

  constructor(private readonly memory: WebAssembly.Memory, exports: CryptoExports) {
    this.x = exports;
    const b = exports.buffer();
    this.SCHEDULE = b;
    this.GCM_KEY = b + 256;
    this.HMAC_KEY = b + 768;
    this.IV = b + 832;
    this.KEY = b + 848; // 128 bytes (HMAC keys up to that)
    this.SALT = b + 976;
    this.OUT = b + 1024;
    this.TAG = b + 1088;
    this.AAD = b + 1152; // up to 2 KiB
    this.SUFFIX = b + 3200; // up to 128 bytes
    this.DATA = b + 4096;
  }

  put(at: number, bytes: Uint8Array): void {
    new Uint8Array(this.memory.buffer).set(bytes, at);
  }

  get(at: number, len: number): Buffer {
    return Buffer.from(new Uint8Array(this.memory.buffer, at, len));
  }
}

async function compile(): Promise<Core> {
  const { default: asc } = await import("assemblyscript/asc");
  let binary: Uint8Array | undefined;
  const result = await asc.main([ENTRY, "--outFile", "crypto.wasm", ...SDK_FLAGS], {
    writeFile: (name: string, contents: Uint8Array | string) => {
      if (name.endsWith(".wasm") && typeof contents !== "string") binary = contents;
    },
  });
  if (result.error || !binary) {
    throw new Error(`cannot compile ${ENTRY}: ${result.error?.message ?? "no output"}\n${result.stderr.toString()}`);
  }
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 256 });
  const read = (ptr: number): string => {
    if (ptr === 0) return "";
    const len = new Uint32Array(memory.buffer, ptr - 4, 1)[0]!;
    return Buffer.from(new Uint8Array(memory.buffer, ptr, len)).toString("utf16le");
  };
  const module = await WebAssembly.compile(new Uint8Array(binary));
  const instance = await WebAssembly.instantiate(module, {
    env: {
      memory,
      abort: (msg: number, file: number, line: number, col: number) => {
        throw new Error(`abort: ${read(msg)} at ${read(file)}:${line}:${col}`);
      },
    },
  });
  const exports = instance.exports as unknown as CryptoExports;
  exports._initialize();
  return new Core(memory, exports);
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");
const LENGTHS = [0, 1, 15, 16, 17, 200, 1200, 1500];
/** SHA-1 block edges: padding fits (55), does not (56..63), exact blocks. */
const SHA1_EDGES = [55, 56, 63, 64, 65, 119, 120, 127, 128];

function nodeCtr(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const c = createCipheriv(key.length === 16 ? "aes-128-ctr" : "aes-256-ctr", key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

function nodeGcm(key: Buffer, iv: Buffer, aad: Buffer, data: Buffer): { ct: Buffer; tag: Buffer } {
  const c = createCipheriv(key.length === 16 ? "aes-128-gcm" : "aes-256-gcm", key, iv);
  if (aad.length > 0) c.setAAD(aad);
  const ct = Buffer.concat([c.update(data), c.final()]);
  return { ct, tag: c.getAuthTag() };
}

const test = suite("srtp crypto core", { timeoutMs: 60_000 });
let core: Core;

test.before(async () => {
  core = await compile();
});

// ---- AES (FIPS-197) ----

function aesBlock(key: Buffer, block: Buffer): Buffer {
  const c = core;
  c.put(c.KEY, key);
  assert.is(c.x.aesExpandKey(c.SCHEDULE, c.KEY, key.length), 1, "aesExpandKey accepts the key");
  c.put(c.DATA, block);
  c.x.aesEncryptBlock(c.SCHEDULE, c.DATA, c.OUT);
  return c.get(c.OUT, 16);
}

test("FIPS-197 Appendix B: AES-128 cipher example", () => {
  const out = aesBlock(hex("2b7e151628aed2a6abf7158809cf4f3c"), hex("3243f6a8885a308d313198a2e0370734"));
  assert.is(out.toString("hex"), "3925841d02dc09fbdc118597196a0b32");
  assert.is(core.x.aesRounds(core.SCHEDULE), 10);
});

test("FIPS-197 Appendix C.1: AES-128 example vector", () => {
  const out = aesBlock(hex("000102030405060708090a0b0c0d0e0f"), hex("00112233445566778899aabbccddeeff"));
  assert.is(out.toString("hex"), "69c4e0d86a7b0430d8cdb78070b4c55a");
});

test("FIPS-197 Appendix C.3: AES-256 example vector", () => {
  const key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  const out = aesBlock(key, hex("00112233445566778899aabbccddeeff"));
  assert.is(out.toString("hex"), "8ea2b7ca516745bfeafc49904b496089");
  assert.is(core.x.aesRounds(core.SCHEDULE), 14);
});

test("AES: only 16- and 32-byte keys are accepted", () => {
  for (const len of [0, 15, 17, 24, 31, 33]) {
    assert.is(core.x.aesExpandKey(core.SCHEDULE, core.KEY, len), 0, `key length ${len}`);
    assert.is(core.x.gcmInit(core.GCM_KEY, core.KEY, len), 0, `gcm key length ${len}`);
  }
});

test("AES-128/256 block = node aes-*-ecb on 200 random keys and blocks", () => {
  for (let i = 0; i < 200; i++) {
    const key = randomBytes(i % 2 === 0 ? 16 : 32);
    const block = randomBytes(16);
    const c = createCipheriv(key.length === 16 ? "aes-128-ecb" : "aes-256-ecb", key, null);
    c.setAutoPadding(false);
    assert.is(aesBlock(key, block).toString("hex"), c.update(block).toString("hex"), `case ${i}`);
  }
});

test("AES: encrypting in place (src == dst) works", () => {
  const c = core;
  const key = randomBytes(16);
  const block = randomBytes(16);
  const want = aesBlock(key, block);
  c.put(c.DATA, block);
  c.x.aesEncryptBlock(c.SCHEDULE, c.DATA, c.DATA);
  assert.is(c.get(c.DATA, 16).toString("hex"), want.toString("hex"));
});

// ---- AES-CM (RFC 3711 4.1.1, SP 800-38A) ----

function cmXor(key: Buffer, iv: Buffer, data: Buffer, offset = 0): Buffer {
  const c = core;
  c.put(c.KEY, key);
  assert.is(c.x.aesExpandKey(c.SCHEDULE, c.KEY, key.length), 1);
  c.put(c.IV, iv);
  c.put(c.DATA + offset, data);
  c.x.aesCmXor(c.SCHEDULE, c.IV, c.DATA + offset, data.length);
  assert.is(c.get(c.IV, 16).toString("hex"), iv.toString("hex"), "the IV is not modified");
  return c.get(c.DATA + offset, data.length);
}

test("RFC 3711 B.2: AES-CM keystream segments", () => {
  const key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
  // The IV from the B.2 parameters: salt F0F1..FD, SSRC 0, index 0.
  const c = core;
  c.put(c.SALT, hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
  c.x.srtpCmIv(c.IV, c.SALT, 0, 0n);
  assert.is(c.get(c.IV, 16).toString("hex"), "f0f1f2f3f4f5f6f7f8f9fafbfcfd0000");
  const first = cmXor(key, hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), Buffer.alloc(48));
  assert.is(first.toString("hex"),
    "e03ead0935c95e80e166b16dd92b4eb4" + "d23513162b02d0f72a43a2fe4a5f97ab" + "41e95b3bb0a2e8dd477901e4fca894c0");
  // The last three segments of the B.2 table, counters ...FEFF, ...FF00, ...FF01 (carry across bytes).
  const last = cmXor(key, hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF"), Buffer.alloc(48));
  assert.is(last.toString("hex"),
    "ec8cdf7398607cb0f2d21675ea9ea1e4" + "362b7c3c6773516318a077d7fc5073ae" + "6a2cc3787889374fbeb4c81b17ba6c44");
});

test("SP 800-38A F.5.1 / F.5.5: CTR-AES128 and CTR-AES256 encrypt", () => {
  const pt = hex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
    + "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710");
  const iv = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  assert.is(cmXor(hex("2b7e151628aed2a6abf7158809cf4f3c"), iv, pt).toString("hex"),
    "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
    + "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
  const key256 = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
  assert.is(cmXor(key256, iv, pt).toString("hex"),
    "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
    + "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6");
});

test("AES-CM = node aes-128-ctr / aes-256-ctr at every length, any alignment", () => {
  for (const keyLen of [16, 32]) {
    for (const len of LENGTHS) {
      for (const offset of [0, 1, 3]) {
        const key = randomBytes(keyLen);
        const iv = randomBytes(16);
        const data = randomBytes(len);
        const got = cmXor(key, iv, data, offset);
        assert.ok(got.equals(nodeCtr(key, iv, data)), `AES-${keyLen * 8} len ${len} offset ${offset}`);
        assert.ok(cmXor(key, iv, got, offset).equals(data), `round trip len ${len}`);
      }
    }
  }
});

test("AES-CM: the 128-bit counter carries through all 16 bytes and wraps (RFC 3711 4.1.1: IV + i mod 2^128)", () => {
  for (const iv of [hex("ffffffffffffffffffffffffffffffff"), hex("00000000ffffffffffffffffffffffff"), hex("0102030405060708090a0b0cfffffffe")]) {
    const key = randomBytes(16);
    const data = randomBytes(100);
    assert.ok(cmXor(key, iv, data).equals(nodeCtr(key, iv, data)), iv.toString("hex"));
  }
});

test("RFC 3711 4.1.1: srtpCmIv = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)", () => {
  const c = core;
  for (let n = 0; n < 50; n++) {
    const salt = randomBytes(14);
    const ssrc = randomBytes(4).readUInt32BE(0);
    const index = randomBytes(8).readBigUInt64BE(0) & 0xffffffffffffn; // 48 bits
    const ks = BigInt("0x" + salt.toString("hex"));
    const want = ((ks << 16n) ^ (BigInt(ssrc) << 64n) ^ (index << 16n)).toString(16).padStart(32, "0");
    c.put(c.SALT, salt);
    c.x.srtpCmIv(c.IV, c.SALT, ssrc, index);
    assert.is(c.get(c.IV, 16).toString("hex"), want);
  }
});

// ---- SHA-1 / HMAC-SHA1 (RFC 2104, RFC 2202) ----

function sha1(data: Buffer): Buffer {
  const c = core;
  c.put(c.DATA, data);
  c.x.sha1(c.DATA, data.length, c.OUT);
  return c.get(c.OUT, 20);
}

function hmacInit(key: Buffer): void {
  const c = core;
  c.put(c.KEY, key);
  c.x.hmacSha1Init(c.HMAC_KEY, c.KEY, key.length);
}

/** HMAC-SHA1(msg || suffix) with the key set by hmacInit. */
function hmac(msg: Buffer, suffix: Buffer = Buffer.alloc(0)): Buffer {
  const c = core;
  c.put(c.DATA, msg);
  c.put(c.SUFFIX, suffix);
  c.x.hmacSha1(c.HMAC_KEY, c.DATA, msg.length, c.SUFFIX, suffix.length, c.OUT);
  return c.get(c.OUT, 20);
}

test("SHA-1 = node sha1 at every length and block edge", () => {
  for (const len of [...LENGTHS, ...SHA1_EDGES, 4096]) {
    const data = randomBytes(len);
    assert.is(sha1(data).toString("hex"), createHash("sha1").update(data).digest("hex"), `len ${len}`);
  }
  // FIPS 180 "abc" (a fact both implementations must agree on).
  assert.is(sha1(Buffer.from("abc")).toString("hex"), "a9993e364706816aba3e25717850c26c9cd0d89d");
});

const RFC2202 = [
  { key: Buffer.alloc(20, 0x0b), data: Buffer.from("Hi There"), mac: "b617318655057264e28bc0b6fb378c8ef146be00" },
  { key: Buffer.from("Jefe"), data: Buffer.from("what do ya want for nothing?"), mac: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
  { key: Buffer.alloc(20, 0xaa), data: Buffer.alloc(50, 0xdd), mac: "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
  { key: hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), data: Buffer.alloc(50, 0xcd), mac: "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
  { key: Buffer.alloc(20, 0x0c), data: Buffer.from("Test With Truncation"), mac: "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
  { key: Buffer.alloc(80, 0xaa), data: Buffer.from("Test Using Larger Than Block-Size Key - Hash Key First"), mac: "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
  {
    key: Buffer.alloc(80, 0xaa),
    data: Buffer.from("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
    mac: "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
  },
];

RFC2202.forEach((v, i) => {
  test(`RFC 2202 section 3: HMAC-SHA1 test case ${i + 1}`, () => {
    hmacInit(v.key);
    assert.is(hmac(v.data).toString("hex"), v.mac);
    // The same message split into message + suffix (the SRTP ROC path) gives the same MAC.
    const cut = Math.floor(v.data.length / 2);
    assert.is(hmac(v.data.subarray(0, cut), v.data.subarray(cut)).toString("hex"), v.mac, "split");
  });
});

test("HMAC-SHA1 = node createHmac('sha1') over key lengths, message lengths and suffix splits", () => {
  for (const keyLen of [0, 1, 20, 63, 64, 65, 100]) {
    const key = randomBytes(keyLen);
    hmacInit(key);
    for (const len of [...LENGTHS, ...SHA1_EDGES]) {
      for (const suffixLen of [0, 4, 63, 64, 65]) {
        const msg = randomBytes(len);
        const suffix = randomBytes(suffixLen);
        const want = createHmac("sha1", key).update(msg).update(suffix).digest("hex");
        assert.is(hmac(msg, suffix).toString("hex"), want, `key ${keyLen} msg ${len} suffix ${suffixLen}`);
      }
    }
  }
});

// ---- Key derivation (RFC 3711 4.3, B.3) ----

function kdf(masterKey: Buffer, masterSalt: Buffer, label: number, outLen: number): Buffer {
  const c = core;
  c.put(c.KEY, masterKey);
  c.put(c.SALT, masterSalt);
  assert.is(c.x.srtpKdf(c.KEY, masterKey.length, c.SALT, masterSalt.length, label, c.DATA, outLen), 1);
  return c.get(c.DATA, outLen);
}

test("RFC 3711 B.3: key derivation (session encryption key, salt, authentication key)", () => {
  const mk = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
  const ms = hex("0EC675AD498AFEEBB6960B3AABE6");
  assert.is(kdf(mk, ms, 0x00, 16).toString("hex"), "c61e7a93744f39ee10734afe3ff7a087");
  assert.is(kdf(mk, ms, 0x02, 14).toString("hex"), "30cbbc08863d8c85d49db34a9ae1");
  // B.3 lists 94 bytes of the label-1 keystream; HMAC-SHA1 uses the first 20.
  assert.is(kdf(mk, ms, 0x01, 94).toString("hex"),
    "cebe321f6ff7716b6fd4ab49af256a156d38baa48f0a0acf3c34e2359e6cdbce"
    + "e049646c43d9327ad175578ef72270986371c10c9a369ac2f94a8c5fbcdddc25"
    + "6d6e919a48b610ef17c2041e474035766b68642c59bbfc2f34db60dbdfb2");
  assert.is(kdf(mk, ms, 0x01, 20).toString("hex"), "cebe321f6ff7716b6fd4ab49af256a156d38baa4");
});

test("RFC 3711 4.3.1/4.3.3: KDF = AES-CM(master key, ((label || r) XOR salt) * 2^16) for labels 0..5, AES-128/256, 14- and 12-byte salts", () => {
  for (const keyLen of [16, 32]) {
    for (const saltLen of [14, 12]) {
      for (let label = 0; label <= 5; label++) {
        const mk = randomBytes(keyLen);
        const ms = randomBytes(saltLen);
        // x = key_id XOR master_salt in the 112-bit field; a 12-byte salt is zero-appended (libsrtp).
        const salt112 = BigInt("0x" + Buffer.concat([ms, Buffer.alloc(14 - saltLen)]).toString("hex"));
        const x = (BigInt(label) << 48n) ^ salt112;
        const iv = hex((x << 16n).toString(16).padStart(32, "0"));
        for (const outLen of [12, 14, 16, 20, 32]) {
          assert.ok(kdf(mk, ms, label, outLen).equals(nodeCtr(mk, iv, Buffer.alloc(outLen))),
            `key ${keyLen} salt ${saltLen} label ${label} out ${outLen}`);
        }
      }
    }
  }
});

test("KDF: bad key and salt lengths are refused", () => {
  const c = core;
  assert.is(c.x.srtpKdf(c.KEY, 24, c.SALT, 14, 0, c.DATA, 16), 0, "key 24");
  assert.is(c.x.srtpKdf(c.KEY, 16, c.SALT, 13, 0, c.DATA, 16), 0, "salt 13");
  assert.is(c.x.srtpKdf(c.KEY, 16, c.SALT, 16, 0, c.DATA, 16), 0, "salt 16");
  assert.is(c.x.srtpKdf(c.KEY, 16, c.SALT, 14, 0, c.DATA, -1), 0, "negative length");
});

// ---- AES-GCM (SP 800-38D, RFC 7714) ----

function gcmSetKey(key: Buffer): void {
  const c = core;
  c.put(c.KEY, key);
  assert.is(c.x.gcmInit(c.GCM_KEY, c.KEY, key.length), 1);
}

/** Encrypts in place with the tag right after the data (as in an SRTP packet). */
function gcmEncrypt(iv: Buffer, aad: Buffer, data: Buffer): { ct: Buffer; tag: Buffer } {
  const c = core;
  c.put(c.IV, iv);
  c.put(c.AAD, aad);
  c.put(c.DATA, data);
  c.x.gcmEncrypt(c.GCM_KEY, c.IV, c.AAD, aad.length, c.DATA, data.length, c.DATA + data.length);
  return { ct: c.get(c.DATA, data.length), tag: c.get(c.DATA + data.length, 16) };
}

function gcmDecrypt(iv: Buffer, aad: Buffer, ct: Buffer, tag: Buffer): { ok: boolean; data: Buffer } {
  const c = core;
  c.put(c.IV, iv);
  c.put(c.AAD, aad);
  c.put(c.DATA, ct);
  c.put(c.TAG, tag);
  const ok = c.x.gcmDecrypt(c.GCM_KEY, c.IV, c.AAD, aad.length, c.DATA, ct.length, c.TAG) === 1;
  return { ok, data: c.get(c.DATA, ct.length) };
}

// RFC 7714 section 16.1.1 (SRTP, AEAD_AES_128_GCM) and 17.2 (SRTCP, AEAD_AES_256_GCM): session
// key and salt given directly, ROC 0, SEQ 0xf17b; SRTCP index 0x5d4 with the E flag.
const RFC7714_SALT = "517569642070726f2071756f";

test("RFC 7714 section 16.1.1: SRTP AEAD_AES_128_GCM IV, ciphertext and tag", () => {
  const c = core;
  c.put(c.SALT, hex(RFC7714_SALT));
  c.x.gcmSrtpIv(c.IV, c.SALT, 0x5501a0b2, 0, 0xf17b);
  assert.is(c.get(c.IV, 12).toString("hex"), "51753c6580c2726f20718414");
  const header = hex("8040f17b8041f8d35501a0b2");
  const payload = hex("47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573");
  gcmSetKey(hex("000102030405060708090a0b0c0d0e0f"));
  const { ct, tag } = gcmEncrypt(hex("51753c6580c2726f20718414"), header, payload);
  assert.is(ct.toString("hex"), "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833");
  assert.is(tag.toString("hex"), "899d7f27beb16a9152cf765ee4390cce");
  assert.ok(gcmDecrypt(hex("51753c6580c2726f20718414"), header, ct, tag).ok);
});

test("RFC 7714 section 17.2: SRTCP AEAD_AES_256_GCM IV, AAD, ciphertext and tag", () => {
  const c = core;
  c.put(c.SALT, hex(RFC7714_SALT));
  c.x.gcmSrtcpIv(c.IV, c.SALT, 0x4d617273, 0x5d4);
  assert.is(c.get(c.IV, 12).toString("hex"), "517524055203726f207170bb");
  const aad = hex("81c8000d4d617273800005d4"); // header || E || index
  const body = hex("4e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef");
  gcmSetKey(hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
  const { ct, tag } = gcmEncrypt(hex("517524055203726f207170bb"), aad, body);
  assert.is(Buffer.concat([ct, tag]).toString("hex"),
    "d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be");
});

// The test cases of the GCM specification (McGrew and Viega, "The Galois/Counter Mode of
// Operation", also in the NIST GCM validation vectors); cases 3, 4 use a 96-bit IV as RFC 7714 does.
const GCM_CASES = [
  { n: 1, key: "00000000000000000000000000000000", iv: "000000000000000000000000", aad: "", pt: "", ct: "", tag: "58e2fccefa7e3061367f1d57a4e7455a" },
  {
    n: 2, key: "00000000000000000000000000000000", iv: "000000000000000000000000", aad: "",
    pt: "00000000000000000000000000000000", ct: "0388dace60b6a392f328c2b971b2fe78", tag: "ab6e47d42cec13bdf53a67b21257bddf",
  },
  {
    n: 3, key: "feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888", aad: "",
    pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
    ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
    tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
  },
  {
    n: 4, key: "feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888", aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
    pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
    tag: "5bc94fbc3221a5db94fae95ae7121a47",
  },
  { n: 13, key: "00".repeat(32), iv: "000000000000000000000000", aad: "", pt: "", ct: "", tag: "530f8afbc74536b9a963b4f1c4cb738b" },
  {
    n: 14, key: "00".repeat(32), iv: "000000000000000000000000", aad: "",
    pt: "00000000000000000000000000000000", ct: "cea7403d4d606b6e074ec5d3baf39d18", tag: "d0d1c8a799996bf0265b98b5d48ab919",
  },
];

GCM_CASES.forEach((v) => {
  test(`GCM specification test case ${v.n} (AES-${v.key.length * 4}-GCM)`, () => {
    gcmSetKey(hex(v.key));
    const { ct, tag } = gcmEncrypt(hex(v.iv), hex(v.aad), hex(v.pt));
    assert.is(ct.toString("hex"), v.ct);
    assert.is(tag.toString("hex"), v.tag);
    const back = gcmDecrypt(hex(v.iv), hex(v.aad), ct, tag);
    assert.ok(back.ok);
    assert.is(back.data.toString("hex"), v.pt);
  });
});

test("AES-GCM = node aes-128-gcm / aes-256-gcm at every length and AAD length (RFC 7714 AAD sizes)", () => {
  // AAD: none, RTP header (12), header + CSRC/extension (20, 72), SRTCP header + index (12), odd sizes.
  for (const keyLen of [16, 32]) {
    for (const len of LENGTHS) {
      for (const aadLen of [0, 1, 12, 16, 17, 20, 72]) {
        const key = randomBytes(keyLen);
        const iv = randomBytes(12);
        const aad = randomBytes(aadLen);
        const data = randomBytes(len);
        gcmSetKey(key);
        const want = nodeGcm(key, iv, aad, data);
        const got = gcmEncrypt(iv, aad, data);
        const what = `AES-${keyLen * 8} len ${len} aad ${aadLen}`;
        assert.ok(got.ct.equals(want.ct), `${what}: ciphertext`);
        assert.ok(got.tag.equals(want.tag), `${what}: tag`);
        const back = gcmDecrypt(iv, aad, want.ct, want.tag);
        assert.ok(back.ok, `${what}: node's output verifies`);
        assert.ok(back.data.equals(data), `${what}: decrypts`);
      }
    }
  }
});

test("AES-GCM decrypt: any change to ciphertext, AAD, tag or IV fails and leaves the data untouched", () => {
  const key = randomBytes(16);
  gcmSetKey(key);
  const iv = randomBytes(12);
  const aad = randomBytes(12);
  const data = randomBytes(200);
  const { ct, tag } = nodeGcm(key, iv, aad, data);
  const flip = (b: Buffer, at: number): Buffer => {
    const copy = Buffer.from(b);
    copy[at]! ^= 0x01;
    return copy;
  };
  const cases: Array<[string, Buffer, Buffer, Buffer, Buffer]> = [
    ["ciphertext first byte", iv, aad, flip(ct, 0), tag],
    ["ciphertext last byte", iv, aad, flip(ct, ct.length - 1), tag],
    ["aad", iv, flip(aad, 5), ct, tag],
    ["tag first byte", iv, aad, ct, flip(tag, 0)],
    ["tag last byte", iv, aad, ct, flip(tag, 15)],
    ["iv", flip(iv, 11), aad, ct, tag],
    ["ciphertext truncated", iv, aad, ct.subarray(0, 199), tag],
  ];
  for (const [what, i, a, c, t] of cases) {
    const r = gcmDecrypt(i, a, c, t);
    assert.not.ok(r.ok, what);
    assert.ok(r.data.equals(c), `${what}: data left as it was`);
  }
});

test("RFC 7714 8.1 / 9.1: SRTP and SRTCP GCM IVs", () => {
  const c = core;
  const salt = hex("000102030405060708090a0b");
  c.put(c.SALT, salt);
  c.x.gcmSrtpIv(c.IV, c.SALT, 0xcafebabe, 0x12345678, 0x9abc);
  // (00 00 || SSRC || ROC || SEQ) XOR salt
  const want = Buffer.from(hex("0000cafebabe123456789abc").map((b, i) => b ^ salt[i]!));
  assert.is(c.get(c.IV, 12).toString("hex"), want.toString("hex"));
  // (00 00 || SSRC || 00 00 || 0 || 31-bit index) XOR salt; the top bit (E flag) is masked.
  c.x.gcmSrtcpIv(c.IV, c.SALT, 0xcafebabe, 0x80000005 | 0);
  const want2 = Buffer.from(hex("0000cafebabe000000000005").map((b, i) => b ^ salt[i]!));
  assert.is(c.get(c.IV, 12).toString("hex"), want2.toString("hex"));
});

// ---- Constant-time compare ----

test("ctEqual: equal, differing at the first / last byte, empty", () => {
  const c = core;
  const a = randomBytes(16);
  c.put(c.OUT, a);
  for (const len of [4, 10, 16]) {
    c.put(c.TAG, a);
    assert.is(c.x.ctEqual(c.OUT, c.TAG, len), 1, `equal ${len}`);
    for (const at of [0, len - 1]) {
      const b = Buffer.from(a);
      b[at]! ^= 0x80;
      c.put(c.TAG, b);
      assert.is(c.x.ctEqual(c.OUT, c.TAG, len), 0, `len ${len} differs at ${at}`);
    }
  }
  assert.is(c.x.ctEqual(c.OUT, c.TAG, 0), 1, "empty");
});

// ---- Composite: SRTP protect with AES-CM-128 + HMAC-SHA1-80 (RFC 3711 3.3, 4.1.1, 4.2) ----

test("RFC 3711 3.3: AES_CM_128_HMAC_SHA1_80 protect from the primitives = node reference", () => {
  const c = core;
  const mk = randomBytes(16);
  const ms = randomBytes(14);
  const encKey = kdf(mk, ms, 0x00, 16);
  const authKey = kdf(mk, ms, 0x01, 20);
  const salt = kdf(mk, ms, 0x02, 14);
  for (const [seq, roc] of [[0, 0], [0xffff, 0], [0, 1], [0x1234, 0xfedcba98]] as const) {
    const header = hex("80e0000000000000deadbeef");
    header.writeUInt16BE(seq, 2);
    const payload = randomBytes(1188);
    const ssrc = 0xdeadbeef;
    const index = (BigInt(roc) << 16n) | BigInt(seq);
    // Reference with node:crypto.
    const iv = hex((((BigInt("0x" + salt.toString("hex")) << 16n) ^ (BigInt(ssrc) << 64n) ^ (index << 16n))).toString(16).padStart(32, "0"));
    const refCt = nodeCtr(encKey, iv, payload);
    const rocBytes = Buffer.alloc(4);
    rocBytes.writeUInt32BE(roc);
    const refTag = createHmac("sha1", authKey).update(header).update(refCt).update(rocBytes).digest().subarray(0, 10);
    // The same with the core: keys at config time, then in place on the packet.
    c.put(c.KEY, encKey);
    c.x.aesExpandKey(c.SCHEDULE, c.KEY, 16);
    c.put(c.KEY, authKey);
    c.x.hmacSha1Init(c.HMAC_KEY, c.KEY, 20);
    c.put(c.SALT, salt);
    c.put(c.DATA, Buffer.concat([header, payload]));
    c.x.srtpCmIv(c.IV, c.SALT, ssrc, index);
    c.x.aesCmXor(c.SCHEDULE, c.IV, c.DATA + 12, payload.length);
    c.put(c.SUFFIX, rocBytes);
    c.x.hmacSha1(c.HMAC_KEY, c.DATA, 12 + payload.length, c.SUFFIX, 4, c.OUT);
    assert.ok(c.get(c.DATA + 12, payload.length).equals(refCt), `ciphertext seq ${seq} roc ${roc}`);
    assert.ok(c.get(c.OUT, 10).equals(refTag), `tag seq ${seq} roc ${roc}`);
  }
});

// ---- Memory: nothing is allocated per packet ----

test("no heap allocation in the per-packet functions (stub runtime bump pointer does not move)", () => {
  const c = core;
  const x = c.x;
  const first = x.heapProbe();
  const step = x.heapProbe() - first;
  const before = x.heapProbe();
  c.put(c.KEY, randomBytes(32));
  x.aesExpandKey(c.SCHEDULE, c.KEY, 16);
  x.hmacSha1Init(c.HMAC_KEY, c.KEY, 20);
  x.gcmInit(c.GCM_KEY, c.KEY, 32);
  for (const len of LENGTHS) {
    x.srtpCmIv(c.IV, c.SALT, 1, 2n);
    x.aesCmXor(c.SCHEDULE, c.IV, c.DATA, len);
    x.hmacSha1(c.HMAC_KEY, c.DATA, len, c.SUFFIX, 4, c.OUT);
    x.gcmSrtpIv(c.IV, c.SALT, 1, 2, 3);
    x.gcmEncrypt(c.GCM_KEY, c.IV, c.AAD, 12, c.DATA, len, c.TAG);
    x.gcmDecrypt(c.GCM_KEY, c.IV, c.AAD, 12, c.DATA, len, c.TAG);
    x.ctEqual(c.OUT, c.TAG, 10);
    x.srtpKdf(c.KEY, 16, c.SALT, 14, 1, c.OUT, 20);
  }
  const after = x.heapProbe();
  assert.ok(step > 0, "the probe moves the bump pointer");
  assert.is(after - before, step, "only the probe itself allocated");
});

test.run();
