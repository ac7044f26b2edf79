// SRTP interop with real peers, over UDP on 127.0.0.1, through a proxy running the srtp filter:
//
//  (a) libsrtp (GStreamer srtpenc) -> proxy(unprotect) -> plain RTP/RTCP sink, every suite: the
//      decrypted RTP is byte for byte what the same pipeline sends without srtpenc, the SRTCP
//      (rtpsession's sender reports) decrypts to well-formed RTCP, and the proxy drops nothing;
//  (b) our RTP/RTCP -> proxy(protect) -> libsrtp (srtpdec) -> sink, every suite: srtpdec, which
//      drops what does not authenticate, hands back every packet byte for byte;
//  (c) FFmpeg's own SRTP (AES_CM_128_HMAC_SHA1_80) both ways: an SRTP sender through the proxy's
//      unprotect to a plain SDP receiver, and a plain sender through protect to an SDP receiver
//      that reads the key from `a=crypto`; the receiver decodes every frame;
//  (d) the reverse key: receivers' RTCP going upstream gets the opposite transform, with libsrtp
//      on the other side;
// plus negative controls (a wrong key) showing that each kind of assertion can fail.
//
// The RTP streams cross a sequence-number wrap, so the ROC handling is exercised on both sides.
// A missing peer fails the test under CI (process.env.CI) and is skipped, loudly, elsewhere.
import * as assert from "uvu/assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Proxy } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { filterWasm } from "./lib/paths.js";
import { bindUdp, freePortPair, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";

const test = suite("srtp interop with libsrtp and FFmpeg", { timeoutMs: 45_000 });
const LO = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// Suites, keys, peers

interface SrtpSuite {
  readonly name: string;
  readonly keyLength: number;
  readonly saltLength: number;
  /** GStreamer srtpenc/srtpdec names (GstSrtpCipherType / GstSrtpAuthType nicks). */
  readonly gstCipher: string;
  readonly gstAuth: string;
  /** SRTCP keeps the 80-bit tag in the _32 suites (RFC 4568 section 6.2.2). */
  readonly gstRtcpAuth: string;
}

const SUITES: readonly SrtpSuite[] = [
  { name: "AES_CM_128_HMAC_SHA1_80", keyLength: 16, saltLength: 14, gstCipher: "aes-128-icm", gstAuth: "hmac-sha1-80", gstRtcpAuth: "hmac-sha1-80" },
  { name: "AES_CM_128_HMAC_SHA1_32", keyLength: 16, saltLength: 14, gstCipher: "aes-128-icm", gstAuth: "hmac-sha1-32", gstRtcpAuth: "hmac-sha1-80" },
  { name: "AES_256_CM_HMAC_SHA1_80", keyLength: 32, saltLength: 14, gstCipher: "aes-256-icm", gstAuth: "hmac-sha1-80", gstRtcpAuth: "hmac-sha1-80" },
  { name: "AES_256_CM_HMAC_SHA1_32", keyLength: 32, saltLength: 14, gstCipher: "aes-256-icm", gstAuth: "hmac-sha1-32", gstRtcpAuth: "hmac-sha1-80" },
  { name: "AEAD_AES_128_GCM", keyLength: 16, saltLength: 12, gstCipher: "aes-128-gcm", gstAuth: "null", gstRtcpAuth: "null" },
  { name: "AEAD_AES_256_GCM", keyLength: 32, saltLength: 12, gstCipher: "aes-256-gcm", gstAuth: "null", gstRtcpAuth: "null" },
];
const suiteNamed = (name: string): SrtpSuite => SUITES.find((s) => s.name === name)!;

/** A fresh master key || salt for `s`. */
const masterKey = (s: SrtpSuite): Buffer => randomBytes(s.keyLength + s.saltLength);
/** The same key as an SDES inline parameter (what the proxy config and an SDP a=crypto take). */
const inline = (key: Buffer): string => `inline:${key.toString("base64")}`;

function runsOk(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 15_000, encoding: "utf8" });
  return r.status === 0;
}

let gstChecked: boolean | undefined;
let ffmpegChecked: boolean | undefined;

function gstPresent(): boolean {
  gstChecked ??= runsOk("gst-launch-1.0", ["--version"]) &&
    ["srtpenc", "srtpdec", "rtpL16pay", "rtpsession", "audiotestsrc", "udpsrc", "udpsink"].every((e) => runsOk("gst-inspect-1.0", ["--exists", e]));
  return gstChecked;
}

function ffmpegPresent(): boolean {
  if (ffmpegChecked === undefined) {
    const r = spawnSync("ffmpeg", ["-hide_banner", "-protocols"], { stdio: ["ignore", "pipe", "pipe"], timeout: 15_000, encoding: "utf8" });
    const e = spawnSync("ffmpeg", ["-hide_banner", "-encoders"], { stdio: ["ignore", "pipe", "pipe"], timeout: 15_000, encoding: "utf8" });
    ffmpegChecked = r.status === 0 && /^\s*srtp\s*$/m.test(r.stdout) && e.status === 0 && /\smpeg4\s/.test(e.stdout);
  }
  return ffmpegChecked;
}

/**
 * True if the peer is there. Under CI a missing peer fails the test; elsewhere the test is
 * skipped with a message nobody can miss.
 */
function requirePeer(name: string, present: boolean): boolean {
  if (present) return true;
  const what = `${name} is not installed (see /work/shared/peers.md or .ci/run for the Debian packages)`;
  if (process.env.CI) assert.unreachable(`${what}: the SRTP interop tests need it under CI`);
  console.error(`\n${"!".repeat(100)}\n!!! SKIPPED: ${what}.\n!!! SRTP interop with this peer was NOT tested.\n${"!".repeat(100)}\n`);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is bounded in time and killed when its test ends

interface Child {
  readonly proc: ChildProcess;
  readonly name: string;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * SIGTERM, again after 200 ms, SIGKILL if it lingers. FFmpeg finishes its output and prints
   * its totals on a SIGTERM; reading UDP it takes ~9 s to notice the first one, the second one
   * makes it stop at once (still gracefully: only a fourth signal makes it exit hard).
   */
  stop(graceMs?: number): Promise<void>;
}

const children = new Set<Child>();

function launch(cmd: string, args: string[], limitMs: number): Child {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on("error", (err) => { // e.g. ENOENT; "close" may not follow
      child.stderr += `\n[spawn error] ${err.message}\n`;
      done = true;
      clearTimeout(limit);
      children.delete(child);
      resolve({ code: -1, signal: null });
    });
    proc.on("close", (code, signal) => {
      done = true;
      clearTimeout(limit);
      children.delete(child);
      resolve({ code, signal });
    });
  });
  const limit = setTimeout(() => {
    if (!done) {
      child.stderr += `\n[test] killed after ${limitMs} ms\n`;
      proc.kill("SIGKILL");
    }
  }, limitMs);
  const child: Child = {
    proc,
    name: `${cmd} ${args.slice(0, 3).join(" ")}`,
    stdout: "",
    stderr: "",
    exited,
    async stop(graceMs = 3000) {
      if (done) return;
      proc.kill("SIGTERM");
      const again = setTimeout(() => { if (!done) proc.kill("SIGTERM"); }, 200);
      const kill = setTimeout(() => { if (!done) proc.kill("SIGKILL"); }, graceMs);
      await exited;
      clearTimeout(again);
      clearTimeout(kill);
    },
  };
  proc.stdout!.on("data", (d: Buffer) => (child.stdout += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (child.stderr += d.toString()));
  children.add(child);
  return child;
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => c.stop(1000)));
}

/** gst-launch-1.0 with a pipeline given as tokens (a token may hold spaces: caps strings). */
const gst = (pipeline: string[], limitMs = 20_000): Child => launch("gst-launch-1.0", ["-q", ...pipeline], limitMs);

/** Waits until a UDP socket is bound to 127.0.0.1:port or 0.0.0.0:port (Linux: /proc/net/udp). */
async function udpBound(ports: number[], child: Child, timeoutMs = 10_000): Promise<void> {
  if (!existsSync("/proc/net/udp")) {
    await sleep(1500);
    return;
  }
  const wanted = ports.map((p) => p.toString(16).toUpperCase().padStart(4, "0"));
  await waitFor(() => {
    if (child.proc.exitCode !== null) throw new Error(`${child.name} exited early:\n${child.stderr}`);
    const text = readFileSync("/proc/net/udp", "utf8");
    return wanted.every((w) => new RegExp(`^\\s*\\d+: (0100007F|00000000):${w} `, "m").test(text));
  }, timeoutMs, `${child.name} to bind ${ports.join(", ")}`);
}

// ---------------------------------------------------------------------------------------------
// Packets

/** Header length of an RTP packet (fixed part, CSRCs, extension). */
function rtpHeaderLength(b: Buffer): number {
  let h = 12 + (b[0]! & 15) * 4;
  if (b[0]! & 0x10) h += 4 + b.readUInt16BE(h + 2) * 4;
  return h;
}

/**
 * RTP packet `i` of a test stream: sequence numbers from `seq0` (crossing 65535 -> 0 when the
 * stream is long enough), sizes from 40 to ~1300 bytes, every 3rd packet with a header
 * extension and every 5th with two CSRCs (their bytes are authenticated, not encrypted), every
 * 7th padded. The payload starts with the index.
 */
function testRtp(i: number, seq0: number, ssrc: number): Buffer {
  const csrcs = i % 5 === 0 ? 2 : 0;
  const extWords = i % 3 === 0 ? 2 : 0;
  const padding = i % 7 === 0 ? 4 : 0;
  const payload = 28 + ((i * 97) % 1250);
  const header = 12 + csrcs * 4 + (extWords > 0 ? 4 + extWords * 4 : 0);
  const b = Buffer.alloc(header + payload + padding);
  b[0] = 0x80 | (padding > 0 ? 0x20 : 0) | (extWords > 0 ? 0x10 : 0) | csrcs;
  b[1] = 96 | (i % 10 === 9 ? 0x80 : 0);
  b.writeUInt16BE((seq0 + i) & 0xffff, 2);
  b.writeUInt32BE((1000 + i * 3000) >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  let at = 12;
  for (let c = 0; c < csrcs; c++, at += 4) b.writeUInt32BE(0xc0000000 + c, at);
  if (extWords > 0) {
    b.writeUInt16BE(0xbede, at); // RFC 8285 one-byte header extensions
    b.writeUInt16BE(extWords, at + 2);
    b[at + 4] = 0x10; // id 1, one byte
    b[at + 5] = i & 0xff;
    at += 4 + extWords * 4;
  }
  b.writeUInt32BE(i, at);
  for (let k = at + 4; k < at + payload; k++) b[k] = (k * 31 + i) & 0xff;
  if (padding > 0) b[b.length - 1] = padding;
  return b;
}

/** An RTCP compound: a sender report (its packet count holds `index`) and an SDES CNAME. */
function testRtcp(index: number, ssrc: number): Buffer {
  const sr = Buffer.alloc(28);
  sr[0] = 0x80;
  sr[1] = 200;
  sr.writeUInt16BE(6, 2);
  sr.writeUInt32BE(ssrc >>> 0, 4);
  sr.writeUInt32BE(0xe1234567, 8); // NTP seconds
  sr.writeUInt32BE(index * 1000, 12);
  sr.writeUInt32BE(index * 3000, 16); // RTP timestamp
  sr.writeUInt32BE(index, 20); // sender's packet count: the index
  sr.writeUInt32BE(index * 100, 24);
  const cname = Buffer.from(`msm-interop-${index}@127.0.0.1`);
  const itemsLength = 4 + 2 + cname.length + 1;
  const sdesLength = 4 + Math.ceil(itemsLength / 4) * 4;
  const sdes = Buffer.alloc(sdesLength);
  sdes[0] = 0x81;
  sdes[1] = 202;
  sdes.writeUInt16BE(sdesLength / 4 - 1, 2);
  sdes.writeUInt32BE(ssrc >>> 0, 4);
  sdes[8] = 1; // CNAME
  sdes[9] = cname.length;
  cname.copy(sdes, 10);
  return Buffer.concat([sr, sdes]);
}

/**
 * Parses an RTCP compound (RFC 3550 6.1): every packet version 2 and of an RTCP type, lengths
 * adding up to the datagram. Returns the packet types, the first SSRC and the CNAMEs, or throws.
 */
function parseRtcp(b: Buffer): { types: number[]; ssrc: number; cnames: string[] } {
  const types: number[] = [];
  const cnames: string[] = [];
  let at = 0;
  while (at < b.length) {
    if (b.length - at < 4) throw new Error(`RTCP: ${b.length - at} stray bytes at ${at}`);
    if (b[at]! >> 6 !== 2) throw new Error(`RTCP: version ${b[at]! >> 6} at ${at}`);
    const pt = b[at + 1]!;
    if (pt < 192 || pt > 223) throw new Error(`RTCP: packet type ${pt} at ${at}`);
    const end = at + 4 + b.readUInt16BE(at + 2) * 4;
    if (end > b.length) throw new Error(`RTCP: length overruns the datagram at ${at}`);
    if (pt === 202) {
      let k = at + 4;
      for (let chunk = 0; chunk < (b[at]! & 31) && k + 4 <= end; chunk++) {
        k += 4;
        while (k < end && b[k] !== 0) {
          if (b[k] === 1) cnames.push(b.subarray(k + 2, k + 2 + b[k + 1]!).toString("latin1"));
          k += 2 + b[k + 1]!;
        }
        k = (Math.floor(k / 4) + 1) * 4;
      }
    }
    types.push(pt);
    at = end;
  }
  return { types, ssrc: b.readUInt32BE(4), cnames };
}

// ---------------------------------------------------------------------------------------------
// A proxy with one srtp segment

interface SrtpSegment {
  proxy: Proxy;
  listen: number;
  /** Destination RTP port (RTCP on +1). */
  dest: number;
}

async function srtpProxy(name: string, dest: number, config: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<SrtpSegment> {
  const listen = await freePortPair();
  const { proxy } = await startProxy({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{
      name, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: dest }],
      chain: [{ filter: "srtp", config }], ...extra,
    }],
  });
  return { proxy, listen, dest };
}

/**
 * Waits until the proxy has sent on all it took in (nothing in flight: in = out + drops, and
 * stable for 100 ms) and our sinks hold what it sent (`delivered`), or fails after 3 s.
 */
async function drained(proxy: Proxy, name: string, delivered: () => number): Promise<void> {
  let last = -1;
  await waitFor(async () => {
    const s = await segmentStats(proxy, name);
    const settled = s.packetsIn === last && s.packetsOut + s.dropsTotal === s.packetsIn && delivered() === s.packetsOut;
    last = s.packetsIn;
    if (!settled) await sleep(100);
    return settled;
  }, 3000, `${name}: the proxy to drain and its packets to arrive`);
}

/** Throws with its log if the child failed (a clean exit is fine: its last packets may still be on the way). */
function notFailed(c: Child): void {
  if ((c.proc.exitCode !== null && c.proc.exitCode !== 0) || c.proc.signalCode !== null) {
    throw new Error(`${c.name} failed (${c.proc.exitCode ?? c.proc.signalCode}):\n${c.stderr}`);
  }
}

async function stageOf(proxy: Proxy, name: string) {
  const seg = await segmentStats(proxy, name);
  const stage = seg.stages[0]!;
  const metric = (m: string): number => stage.metrics.find((x) => x.name === m)?.value ?? 0;
  return { seg, stage, metric };
}

// ---------------------------------------------------------------------------------------------
// (a) libsrtp -> proxy(unprotect)

const GST_SSRC = 0x1234abcd;
const GST_SEQ0 = 65500; // the stream crosses the wrap: ROC 0 -> 1
const GST_BUFFERS = 40; // 40 x 1024 samples at 44.1 kHz: ~0.93 s, two RTP packets each

/** The sender's RTP: a sine (deterministic), payloaded with a fixed SSRC, sequence and timestamp. */
const GST_RTP = [
  "audiotestsrc", `num-buffers=${GST_BUFFERS}`, "!", "audioconvert", "!",
  "rtpL16pay", `ssrc=${GST_SSRC}`, `seqnum-offset=${GST_SEQ0}`, "timestamp-offset=1000",
];

let reference: Promise<Buffer[]> | undefined;

/** What the sender pipeline emits without srtpenc: the plain RTP every decrypted packet must equal. */
function plainReference(): Promise<Buffer[]> {
  reference ??= (async () => {
    const sink = await Sink.open(0, { keep: true, keyOf: (b) => b.readUInt16BE(2) });
    try {
      // rtpsession passes RTP through untouched; it is left out here (the bytes are the same)
      const g = gst([...GST_RTP, "!", "udpsink", `host=${LO}`, `port=${sink.port}`]);
      const { code } = await g.exited;
      assert.is(code, 0, `reference pipeline failed:\n${g.stderr}`);
      await sleep(200);
      assert.ok(sink.received > 40, `reference pipeline sent only ${sink.received} packets`);
      return sink.packets.map((p) => p.bytes);
    } finally {
      sink.close();
    }
  })();
  return reference;
}

/** RTP sorted by extended sequence number (the stream starts at GST_SEQ0 and wraps). */
const inSendOrder = (packets: Buffer[]): Buffer[] =>
  [...packets].sort((a, b) => ((a.readUInt16BE(2) - GST_SEQ0) & 0xffff) - ((b.readUInt16BE(2) - GST_SEQ0) & 0xffff));

/**
 * Runs srtpenc (libsrtp) protecting RTP and rtpsession's RTCP (a sender report every ~100 ms)
 * with `key`. Do not wait for it to end: GStreamer 1.22's rtpsession sometimes never forwards
 * EOS on its RTCP pad (a few runs in ten under CPU load, with or without srtpenc), so the tests
 * wait for what they expect to arrive, then stop the pipeline.
 */
function gstSrtpSender(s: SrtpSuite, key: Buffer, rtpPort: number, rtcpPort: number): Child {
  return gst([
    "rtpsession", "name=s", "rtcp-min-interval=100000000", ...GST_RTP, "!", "s.send_rtp_sink",
    "srtpenc", "name=e", `key=${key.toString("hex")}`,
    `rtp-cipher=${s.gstCipher}`, `rtp-auth=${s.gstAuth}`, `rtcp-cipher=${s.gstCipher}`, `rtcp-auth=${s.gstRtcpAuth}`,
    "s.send_rtp_src", "!", "e.rtp_sink_0", "e.rtp_src_0", "!", "udpsink", `host=${LO}`, `port=${rtpPort}`,
    "s.send_rtcp_src", "!", "e.rtcp_sink_0", "e.rtcp_src_0", "!", "udpsink", `host=${LO}`, `port=${rtcpPort}`, "sync=false", "async=false",
  ]);
}

for (const s of SUITES) {
  test(`(a) libsrtp srtpenc ${s.name} -> proxy(unprotect) -> plain: every RTP packet byte-identical, SRTCP decrypted, no drops`, async () => {
    if (!requirePeer("GStreamer with srtpenc/srtpdec (gst-plugins-bad)", gstPresent())) return;
    const expected = inSendOrder(await plainReference());
    const key = masterKey(s);
    const dest = await freePortPair();
    const rtp = await Sink.open(dest, { keep: true, keyOf: (b) => b.readUInt16BE(2) });
    const rtcp = await Sink.open(dest + 1, { keep: true });
    // half the suites get the key as SDES inline base64, half as hex: both forms the filter takes
    const keyText = SUITES.indexOf(s) % 2 === 0 ? inline(key) : key.toString("hex");
    const seg = await srtpProxy("from-libsrtp", dest, { direction: "unprotect", suite: s.name, key: keyText });
    try {
      const g = gstSrtpSender(s, key, seg.listen, seg.listen + 1);
      await waitFor(() => (notFailed(g), rtp.received >= expected.length && rtcp.received >= 2), 10_000,
        `${expected.length} RTP packets (${rtp.received} so far) and 2 RTCP (${rtcp.received})`);
      await g.stop();
      await drained(seg.proxy, "from-libsrtp", () => rtp.received + rtcp.received);
      const { seg: st, stage, metric } = await stageOf(seg.proxy, "from-libsrtp");
      assert.equal(st.drops, {}, "the proxy dropped nothing");
      assert.is(stage.drops.srtp_auth_failed ?? 0, 0);
      assert.is(rtp.received, expected.length, "as many RTP packets as the plain pipeline sends");
      const got = inSendOrder(rtp.packets.map((p) => p.bytes));
      for (let i = 0; i < expected.length; i++) {
        assert.ok(got[i]!.equals(expected[i]!), `RTP packet ${i} (seq ${expected[i]!.readUInt16BE(2)}) differs from the plain stream`);
      }
      assert.is(metric("rtp_unprotected"), expected.length);
      // SRTCP: rtpsession's sender reports, protected by libsrtp, arrive as plain RTCP
      assert.ok(rtcp.received >= 2, `SRTCP packets decrypted: ${rtcp.received}`);
      assert.is(metric("rtcp_unprotected"), rtcp.received);
      assert.is(st.rtcpIn, rtcp.received, "every SRTCP packet in came out");
      for (const p of rtcp.packets) {
        const r = parseRtcp(p.bytes);
        assert.is(r.types[0], 200, "a sender report first");
        assert.is(r.ssrc, GST_SSRC);
        assert.is(r.cnames.length, 1, "one CNAME, readable");
        assert.match(r.cnames[0]!, /^[\x21-\x7e]+$/);
      }
    } finally {
      rtp.close();
      rtcp.close();
      await stopAll();
      await seg.proxy.close();
    }
  });
}

test("(a) negative control: a wrong key in the proxy drops every libsrtp packet as srtp_auth_failed", async () => {
  if (!requirePeer("GStreamer with srtpenc/srtpdec (gst-plugins-bad)", gstPresent())) return;
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const key = masterKey(s);
  const wrong = Buffer.from(key);
  wrong[3]! ^= 1; // one bit of the master key
  const dest = await freePortPair();
  const rtp = await Sink.open(dest);
  const rtcp = await Sink.open(dest + 1);
  const seg = await srtpProxy("wrong-key", dest, { direction: "unprotect", suite: s.name, key: inline(wrong) });
  try {
    const g = gstSrtpSender(s, key, seg.listen, seg.listen + 1);
    await waitFor(async () => (notFailed(g), (await segmentStats(seg.proxy, "wrong-key")).packetsIn >= 80), 10_000, "the stream at the proxy");
    await g.stop();
    await drained(seg.proxy, "wrong-key", () => rtp.received + rtcp.received);
    const { seg: st, stage } = await stageOf(seg.proxy, "wrong-key");
    assert.is(rtp.received + rtcp.received, 0, "nothing decrypted");
    assert.ok(st.packetsIn >= 80);
    assert.is(stage.drops.srtp_auth_failed, st.packetsIn, "every packet failed authentication");
  } finally {
    rtp.close();
    rtcp.close();
    await stopAll();
    await seg.proxy.close();
  }
});

// ---------------------------------------------------------------------------------------------
// (b) proxy(protect) -> libsrtp

const OUR_SSRC = 0x5eed1234;
const OUR_SEQ0 = 65300;
const OUR_PACKETS = 400;
const OUR_RTCP = 12;

/** srtpdec fed from two udpsrc (SRTP, SRTCP) with the key in caps, decrypted to two udpsinks. */
function gstSrtpReceiver(s: SrtpSuite, key: Buffer, inPort: number, outRtp: number, outRtcp: number): Child {
  const params = `ssrc=(uint)${OUR_SSRC}, srtp-key=(buffer)${key.toString("hex")}, srtp-cipher=(string)${s.gstCipher}, ` +
    `srtp-auth=(string)${s.gstAuth}, srtcp-cipher=(string)${s.gstCipher}, srtcp-auth=(string)${s.gstRtcpAuth}, roc=(uint)0`;
  return gst([
    "srtpdec", "name=d",
    "udpsrc", `address=${LO}`, `port=${inPort}`, `caps=application/x-srtp, payload=(int)96, ${params}`, "!", "d.rtp_sink",
    "udpsrc", `address=${LO}`, `port=${inPort + 1}`, `caps=application/x-srtcp, ${params}`, "!", "d.rtcp_sink",
    "d.rtp_src", "!", "udpsink", `host=${LO}`, `port=${outRtp}`, "sync=false", "async=false",
    "d.rtcp_src", "!", "udpsink", `host=${LO}`, `port=${outRtcp}`, "sync=false", "async=false",
  ], 30_000);
}

/** Sends the test stream (RTP and, interleaved, RTCP from the sender's RTCP socket) into `listen`. */
async function sendTestStream(listen: number, packets = OUR_PACKETS, rtcpCount = OUR_RTCP): Promise<void> {
  const tx = await bindUdp();
  const txRtcp = await bindUdp();
  let rtcpSent = 0;
  try {
    const every = Math.floor(packets / rtcpCount);
    await sendPaced(tx, listen, LO, packets, 2000, (i) => testRtp(i, OUR_SEQ0, OUR_SSRC), (sent) => {
      while (Math.floor(sent / every) > rtcpSent && rtcpSent < rtcpCount) txRtcp.send(testRtcp(rtcpSent++, OUR_SSRC), listen + 1, LO);
    });
    while (rtcpSent < rtcpCount) txRtcp.send(testRtcp(rtcpSent++, OUR_SSRC), listen + 1, LO);
  } finally {
    await sleep(50);
    tx.close();
    txRtcp.close();
  }
}
for (const s of SUITES) {
  test(`(b) proxy(protect) ${s.name} -> libsrtp srtpdec: every RTP and RTCP packet authenticates and decrypts byte-identical`, async () => {
    if (!requirePeer("GStreamer with srtpenc/srtpdec (gst-plugins-bad)", gstPresent())) return;
    const key = masterKey(s);
    const rtp = await Sink.open(0, { keep: true, keyOf: (b) => b.readUInt16BE(2) });
    const rtcp = await Sink.open(0, { keep: true, keyOf: (b) => b.readUInt32BE(20) });
    const srtpIn = await freePortPair();
    const keyText = SUITES.indexOf(s) % 2 === 1 ? inline(key) : key.toString("hex");
    const seg = await srtpProxy("to-libsrtp", srtpIn, { direction: "protect", suite: s.name, key: keyText });
    try {
      const g = gstSrtpReceiver(s, key, srtpIn, rtp.port, rtcp.port);
      await udpBound([srtpIn, srtpIn + 1], g);
      await sendTestStream(seg.listen);
      await waitFor(() => rtp.received >= OUR_PACKETS && rtcp.received >= OUR_RTCP, 5000,
        `srtpdec output: ${rtp.received}/${OUR_PACKETS} RTP, ${rtcp.received}/${OUR_RTCP} RTCP\n${g.stderr}`);
      await sleep(150);
      const { seg: st, metric } = await stageOf(seg.proxy, "to-libsrtp");
      assert.equal(st.drops, {});
      assert.is(metric("rtp_protected"), OUR_PACKETS);
      assert.is(metric("rtcp_protected"), OUR_RTCP);
      assert.is(rtp.received, OUR_PACKETS);
      for (const p of rtp.packets) {
        const i = p.bytes.readUInt32BE(rtpHeaderLength(p.bytes));
        assert.ok(p.bytes.equals(testRtp(i, OUR_SEQ0, OUR_SSRC)), `RTP packet ${i} differs after srtpdec`);
      }
      assert.is(new Set(rtp.packets.map((p) => p.bytes.readUInt16BE(2))).size, OUR_PACKETS, "each sequence number once");
      assert.is(rtcp.received, OUR_RTCP);
      assert.equal(rtcp.tally(OUR_RTCP), { missing: 0, duplicates: 0 });
      for (const p of rtcp.packets) {
        const i = p.bytes.readUInt32BE(20);
        assert.ok(p.bytes.equals(testRtcp(i, OUR_SSRC)), `RTCP packet ${i} differs after srtpdec`);
      }
    } finally {
      rtp.close();
      rtcp.close();
      await stopAll();
      await seg.proxy.close();
    }
  });
}

test("(b) negative control: srtpdec with a wrong key passes none of the proxy's packets", async () => {
  if (!requirePeer("GStreamer with srtpenc/srtpdec (gst-plugins-bad)", gstPresent())) return;
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const key = masterKey(s);
  const wrong = Buffer.from(key);
  wrong[20]! ^= 0x80; // one bit of the master salt
  const rtp = await Sink.open();
  const rtcp = await Sink.open();
  const srtpIn = await freePortPair();
  const seg = await srtpProxy("to-libsrtp-wrong", srtpIn, { direction: "protect", suite: s.name, key: inline(key) });
  try {
    const g = gstSrtpReceiver(s, wrong, srtpIn, rtp.port, rtcp.port);
    await udpBound([srtpIn, srtpIn + 1], g);
    await sendTestStream(seg.listen, 100, 4);
    await waitFor(async () => (await segmentStats(seg.proxy, "to-libsrtp-wrong")).packetsOut >= 104, 3000, "the proxy to send everything");
    await sleep(300);
    assert.is(rtp.received, 0, "srtpdec passed RTP it could not authenticate");
    assert.is(rtcp.received, 0, "srtpdec passed RTCP it could not authenticate");
  } finally {
    rtp.close();
    rtcp.close();
    await stopAll();
    await seg.proxy.close();
  }
});

// ---------------------------------------------------------------------------------------------
// (d) the reverse key: RTCP feedback going upstream gets the opposite transform

test("(d) proxy(unprotect, reverseKey): a receiver's plain RTCP goes upstream protected, and libsrtp srtpdec decrypts it", async () => {
  if (!requirePeer("GStreamer with srtpenc/srtpdec (gst-plugins-bad)", gstPresent())) return;
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const forward = masterKey(s);
  const reverse = masterKey(s);
  const rtcpOut = await Sink.open(0, { keep: true, keyOf: (b) => b.readUInt32BE(20) });
  const unused = await Sink.open();
  // the sender is srtpdec: its RTP input (unused here) on `sender`, its SRTCP input on sender + 1
  const sender = await freePortPair();
  const dest = await freePortPair();
  const seg = await srtpProxy("feedback-protect", dest,
    { direction: "unprotect", suite: s.name, key: inline(forward), reverseKey: inline(reverse) },
    { source: { address: LO, port: sender, rtcpPort: sender + 1 } });
  const receiver = await bindUdp();
  try {
    const g = gstSrtpReceiver(s, reverse, sender, unused.port, rtcpOut.port);
    await udpBound([sender, sender + 1], g);
    const ports = (await segmentStats(seg.proxy, "feedback-protect")).ports;
    for (let i = 0; i < 10; i++) {
      receiver.send(testRtcp(i, OUR_SSRC), ports.egressRtcp!, LO);
      await sleep(5);
    }
    await waitFor(() => rtcpOut.received >= 10, 3000, `feedback through srtpdec (${rtcpOut.received}/10)\n${g.stderr}`);
    const { seg: st, metric } = await stageOf(seg.proxy, "feedback-protect");
    assert.equal(st.drops, {});
    assert.is(st.upstreamIn, 10);
    assert.is(metric("rtcp_protected"), 10);
    assert.equal(rtcpOut.tally(10), { missing: 0, duplicates: 0 });
    for (const p of rtcpOut.packets) assert.ok(p.bytes.equals(testRtcp(p.bytes.readUInt32BE(20), OUR_SSRC)));
  } finally {
    receiver.close();
    rtcpOut.close();
    unused.close();
    await stopAll();
    await seg.proxy.close();
  }
});

test("(d) proxy(protect, reverseKey): a receiver's libsrtp SRTCP goes upstream decrypted", async () => {
  if (!requirePeer("GStreamer with srtpenc/srtpdec (gst-plugins-bad)", gstPresent())) return;
  const s = suiteNamed("AEAD_AES_128_GCM");
  const forward = masterKey(s);
  const reverse = masterKey(s);
  const senderRtcp = await Sink.open(0, { keep: true });
  const unused = await Sink.open();
  const dest = await freePortPair();
  const seg = await srtpProxy("feedback-unprotect", dest,
    { direction: "protect", suite: s.name, key: inline(forward), reverseKey: inline(reverse) },
    { source: { address: LO, port: senderRtcp.port - 1, rtcpPort: senderRtcp.port } });
  try {
    const ports = (await segmentStats(seg.proxy, "feedback-unprotect")).ports;
    // the "receiver" is a libsrtp pipeline whose SRTCP goes to the proxy's egress RTCP port
    const g = gstSrtpSender(s, reverse, unused.port, ports.egressRtcp!);
    await waitFor(async () => (notFailed(g), (await segmentStats(seg.proxy, "feedback-unprotect")).upstreamIn >= 3), 10_000, "feedback at the proxy");
    await g.stop();
    await drained(seg.proxy, "feedback-unprotect", () => senderRtcp.received);
    const { seg: st, metric } = await stageOf(seg.proxy, "feedback-unprotect");
    assert.equal(st.drops, {});
    assert.ok(senderRtcp.received >= 2);
    assert.is(senderRtcp.received, st.upstreamIn);
    assert.is(metric("rtcp_unprotected"), st.upstreamIn);
    for (const p of senderRtcp.packets) {
      const r = parseRtcp(p.bytes);
      assert.is(r.types[0], 200);
      assert.is(r.ssrc, GST_SSRC);
      assert.is(r.cnames.length, 1);
    }
  } finally {
    senderRtcp.close();
    unused.close();
    await stopAll();
    await seg.proxy.close();
  }
});

// ---------------------------------------------------------------------------------------------
// (c) FFmpeg both ways, AES_CM_128_HMAC_SHA1_80

const FF_SECONDS = 3;
const FF_RATE = 25;

function sdp(port: number, key: Buffer | undefined): string {
  return [
    "v=0", `o=- 0 0 IN IP4 ${LO}`, "s=msm srtp interop", `c=IN IP4 ${LO}`, "t=0 0",
    `m=video ${port} ${key ? "RTP/SAVP" : "RTP/AVP"} 96`,
    "a=rtpmap:96 MP4V-ES/90000",
    ...(key ? [`a=crypto:1 AES_CM_128_HMAC_SHA1_80 ${inline(key)}`] : []),
    "",
  ].join("\r\n");
}

/** An SDP receiver decoding to nowhere; FFmpeg's RTP demuxer reads the key from a=crypto. */
function ffmpegReceiver(dir: string, port: number, key: Buffer | undefined): Child {
  const file = join(dir, `in-${port}.sdp`);
  writeFileSync(file, sdp(port, key));
  return launch("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "level+debug", "-protocol_whitelist", "file,udp,rtp,srtp", "-i", file, "-f", "null", "-"], 30_000);
}

/** The encoder: testsrc as MPEG-4 part 2, to rtp:// or (with a key) srtp://. */
function ffmpegSender(port: number, key: Buffer | undefined): Child {
  return launch("ffmpeg", [
    "-hide_banner", "-nostdin", "-loglevel", "level+verbose", "-re", "-f", "lavfi", "-i", `testsrc=size=320x240:rate=${FF_RATE}`,
    "-t", String(FF_SECONDS), "-c:v", "mpeg4", "-g", "25", "-payload_type", "96", "-f", "rtp",
    ...(key ? ["-srtp_out_suite", "AES_CM_128_HMAC_SHA1_80", "-srtp_out_params", key.toString("base64"), `srtp://${LO}:${port}`] : [`rtp://${LO}:${port}`]),
  ], 30_000);
}

/**
 * The receiver's account, from its level-tagged log: packets (frames) the demuxer read, frames
 * decoded, decoding errors, and every line logged at warning level or worse ("HMAC mismatch" is
 * how FFmpeg's SRTP says a packet did not authenticate).
 */
function receiverReport(stderr: string): { packetsRead: number; decoded: number; decodeErrors: number; problems: string[] } {
  const lines = stderr.split(/[\r\n]+/);
  const read = /Input stream #0:0 \(video\): (\d+) packets read/.exec(stderr);
  const decoded = /(\d+) frames successfully decoded, (\d+) decoding errors/.exec(stderr);
  return {
    packetsRead: Number(read?.[1] ?? 0),
    decoded: Number(decoded?.[1] ?? 0),
    decodeErrors: Number(decoded?.[2] ?? 0),
    problems: lines.filter((l) => /^\[(warning|error|fatal|panic)\]/.test(l)),
  };
}

/** Frames the sender encoded and sent (its verbose totals). */
function framesSent(stderr: string): number {
  return Number(/Output stream #0:0 \(video\): \d+ frames encoded; (\d+) packets muxed/.exec(stderr)?.[1] ?? 0);
}

async function ffmpegThroughProxy(direction: "protect" | "unprotect", keyForProxy: Buffer, keyForPeer: Buffer) {
  const dir = mkdtempSync(join(tmpdir(), "msm-srtp-"));
  const dest = await freePortPair();
  const name = `ffmpeg-${direction}`;
  const seg = await srtpProxy(name, dest, { direction, suite: "AES_CM_128_HMAC_SHA1_80", key: inline(keyForProxy) });
  try {
    const receiver = ffmpegReceiver(dir, dest, direction === "protect" ? keyForPeer : undefined);
    await udpBound([dest, dest + 1], receiver);
    const sender = ffmpegSender(seg.listen, direction === "unprotect" ? keyForPeer : undefined);
    const sent = await sender.exited;
    assert.is(sent.code, 0, `ffmpeg sender failed:\n${sender.stderr}`);
    let last = -1;
    await waitFor(async () => { // until the proxy has sent everything it got
      const s = await segmentStats(seg.proxy, name);
      const settled = s.packetsIn === last && s.packetsOut + s.dropsTotal >= s.packetsIn;
      last = s.packetsIn;
      await sleep(100);
      return settled;
    }, 5000, "the proxy to drain");
    await sleep(500); // let the receiver decode the last frames
    await receiver.stop();
    const stats = await stageOf(seg.proxy, name);
    return { report: receiverReport(receiver.stderr), sent: framesSent(sender.stderr), receiverLog: receiver.stderr, ...stats };
  } finally {
    await stopAll();
    await seg.proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const FF_FRAMES = FF_SECONDS * FF_RATE;

/** Every frame the sender sent was read and decoded, with no error or warning on the way. */
function assertDecodedAll(r: Awaited<ReturnType<typeof ffmpegThroughProxy>>): void {
  const log = `\n--- receiver log ---\n${r.receiverLog}`;
  assert.ok(r.sent >= FF_FRAMES - 1, `the sender sent ${r.sent} frames`);
  assert.equal(r.report.problems, [], `the receiver logged warnings or errors (FFmpeg's SRTP says "HMAC mismatch" for a packet that did not authenticate):${log}`);
  assert.is(r.report.packetsRead, r.sent, `frames read by the receiver's demuxer vs sent${log}`);
  // the last frame read may still sit in the decoder when the receiver is stopped
  assert.ok(r.report.decoded >= r.sent - 1, `decoded ${r.report.decoded} of ${r.sent} frames${log}`);
  assert.is(r.report.decodeErrors, 0);
}

test("(c) FFmpeg srtp:// sender -> proxy(unprotect) -> FFmpeg plain RTP receiver decodes every frame", async () => {
  if (!requirePeer("FFmpeg with srtp and the mpeg4 encoder", ffmpegPresent())) return;
  const key = masterKey(suiteNamed("AES_CM_128_HMAC_SHA1_80"));
  const r = await ffmpegThroughProxy("unprotect", key, key);
  assert.equal(r.seg.drops, {}, "no drops (srtp_auth_failed in particular)");
  assert.ok(r.metric("rtp_unprotected") >= FF_FRAMES, `RTP unprotected: ${r.metric("rtp_unprotected")}`);
  assert.ok(r.metric("rtcp_unprotected") >= 1, "FFmpeg's SRTCP sender reports were unprotected");
  assert.is(r.metric("rtcp_unprotected"), r.seg.rtcpIn);
  assertDecodedAll(r);
}, { timeoutMs: 30_000 });

test("(c) FFmpeg plain RTP sender -> proxy(protect) -> FFmpeg receiver with a=crypto decodes every frame", async () => {
  if (!requirePeer("FFmpeg with srtp and the mpeg4 encoder", ffmpegPresent())) return;
  const key = masterKey(suiteNamed("AES_CM_128_HMAC_SHA1_80"));
  const r = await ffmpegThroughProxy("protect", key, key);
  assert.equal(r.seg.drops, {});
  assert.ok(r.metric("rtp_protected") >= FF_FRAMES);
  assert.ok(r.metric("rtcp_protected") >= 1, "FFmpeg's RTCP sender reports were protected (the receiver checks them too)");
  assertDecodedAll(r);
}, { timeoutMs: 30_000 });

test("(c) negative control: an FFmpeg receiver with another key decodes nothing and logs HMAC mismatch", async () => {
  if (!requirePeer("FFmpeg with srtp and the mpeg4 encoder", ffmpegPresent())) return;
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const r = await ffmpegThroughProxy("protect", masterKey(s), masterKey(s));
  assert.is(r.report.packetsRead, 0);
  assert.is(r.report.decoded, 0);
  assert.ok(r.report.problems.some((l) => /HMAC mismatch/.test(l)), r.receiverLog);
}, { timeoutMs: 30_000 });

test.after(async () => {
  await stopAll();
});

test.run();
