// SRTP interop with real peers, over UDP on 127.0.0.1, through a proxy running the srtp filter:
//
//  (a) libsrtp (GStreamer srtpenc) -> proxy(unprotect) -> plain RTP/RTCP sink, every suite: the
//      decrypted RTP is byte for byte what the same pipeline sends without srtpenc, the SRTCP
//      (rtpsession's sender reports) decrypts to well-formed RTCP, and the proxy drops nothing;
//  (b) our RTP/RTCP -> proxy(protect) -> libsrtp (srtpdec) -> sink, every suite: srtpdec, which
//      drops (and logs) what does not authenticate, hands back every packet byte for byte;
//  (c) FFmpeg's own SRTP (AES_CM_128_HMAC_SHA1_80) both ways: an SRTP sender through the proxy's
//      unprotect to a plain SDP receiver, and a plain sender through protect to an SDP receiver
//      that reads the key from `a=crypto`; the receiver decodes every frame;
//  (d) the reverse key: receivers' RTCP going upstream gets the opposite transform, with libsrtp
//      on the other side;
//  (e) keys changed by a hot swap of the segment (proxy.apply), A -> B -> A: a sender restarted
//      under B is taken, and SRTP and SRTCP captured under A and sent again after the return to A
//      are dropped as srtp_replay (our own protect as the sender: no peer needed);
// plus negative controls (a wrong key) showing that each kind of assertion can fail: each one
// sees the peer or the proxy reject every packet, it does not just see nothing arrive.
//
// The RTP streams cross a sequence-number wrap, so the ROC handling is exercised on both sides.
// A missing peer fails the test under CI (process.env.CI) and is skipped, loudly, elsewhere.
//
// On a busy machine (other processes on the CPUs) a peer or the proxy may read its socket too
// late and the kernel drops datagrams there. So no test asserts "nothing lost": each counts what
// was lost, and accepts it only when the kernel's drop counters on the sockets of that path
// explain it (test/lib/kernel-drops.ts). A packet the proxy or a peer drops for a reason (a
// failed authentication above all) is never explained away. Waits are bounded by the work they
// wait for (a peer's start, then the stream's own duration, with room for a busy machine); when a
// bound passes, the accounting still runs and says what is missing.
import * as assert from "uvu/assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateProxyConfig, type Proxy } from "../runtime/index.js";
import { FilterHarness, PacketFlag, buildRtp } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { filterWasm } from "./lib/paths.js";
import { DropWatch, unexplainedLoss } from "./lib/kernel-drops.js";
import { peer, peerTest, runsOk } from "./lib/peers.js";
import { bindUdp, freePortPair, sendPaced, Sink, sleep } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { startCliProxy } from "./lib/cli-proxy.js";

const LO = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// Time bounds

/**
 * What a peer may take to start on a busy machine: process start, plugin loading, negotiation
 * (15 s was once too little for srtpdec beside stress-ng --cpu 2 and the other test files).
 */
const START_MS = 30_000;
/** Real-time work (a stream of d ms) may take up to BUSY x d ms on a busy machine. */
const BUSY = 4;
/** After the last packet: time for the queues of the proxy and the peers to drain. */
const SETTLE_MS = 10_000;
/** A wait for packets gives up when nothing has moved for this long. */
const QUIET_MS = 2000;
/** Stopping the peers and the proxy at the end of a test. */
const CLEANUP_MS = 10_000;
/** The bound of a wait for a peer that starts and then handles `mediaMs` of media. */
const bound = (mediaMs: number): number => START_MS + BUSY * mediaMs;

const test = suite("srtp interop with libsrtp and FFmpeg", { timeoutMs: bound(1000) + SETTLE_MS + CLEANUP_MS });

/** Waits until `done()`, at most `ms`; says whether it happened (the accounting after it says what is missing). */
async function until(done: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > end) return false;
    await sleep(20);
  }
}

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

const GSTREAMER = peer("GStreamer with srtpenc/srtpdec", "Debian packages gstreamer1.0-tools, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad", () =>
  runsOk("gst-launch-1.0", ["--version"]) &&
  ["srtpenc", "srtpdec", "rtpL16pay", "rtpsession", "audiotestsrc", "udpsrc", "udpsink"].every((e) => runsOk("gst-inspect-1.0", ["--exists", e])));

const FFMPEG = peer("FFmpeg with srtp and the mpeg4 encoder", "Debian package ffmpeg", () => {
  const listed = (what: string, pattern: RegExp): boolean => {
    const r = spawnSyncText("ffmpeg", ["-hide_banner", what]);
    return r !== null && pattern.test(r);
  };
  return listed("-protocols", /^\s*srtp\s*$/m) && listed("-encoders", /\smpeg4\s/);
});

function spawnSyncText(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 15_000, encoding: "utf8" });
  return r.status === 0 ? r.stdout : null;
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

function launch(cmd: string, args: string[], limitMs: number, env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
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

/**
 * gst-launch-1.0 with a pipeline given as tokens (a token may hold spaces: caps strings).
 * --no-fault: a crash ends the process (gst-launch's own handler would print "Caught SIGSEGV"
 * and wait for a debugger). `verbose` prints every caps change on stdout (srtpdecReady needs it).
 * srtpdec's warnings (every packet it drops, and why) go to stderr.
 */
function gst(pipeline: string[], limitMs: number, verbose = false): Child {
  return launch("gst-launch-1.0", [verbose ? "-v" : "-q", "--no-fault", ...pipeline], limitMs, { GST_DEBUG: "srtpdec:2", GST_DEBUG_NO_COLOR: "1" });
}

/** Throws with its log if the child failed (a clean exit is fine: its last packets may still be on the way). */
function notFailed(c: Child): void {
  if ((c.proc.exitCode !== null && c.proc.exitCode !== 0) || c.proc.signalCode !== null) {
    throw new Error(`${c.name} failed (${c.proc.exitCode ?? c.proc.signalCode}):\n${c.stderr}`);
  }
}

/** Waits (bounded) for `ready` in a child's output; throws with its log if it fails or never gets there. */
async function waitOutput(c: Child, ready: (c: Child) => boolean, ms: number, what: string): Promise<void> {
  if (!(await until(() => (notFailed(c), ready(c)), ms))) {
    throw new Error(`${c.name}: ${what} did not happen within ${ms} ms\n--- stdout ---\n${c.stdout}\n--- stderr ---\n${c.stderr}`);
  }
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
// A proxy with one srtp segment, and what it counted

interface SrtpSegment {
  proxy: Proxy;
  name: string;
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
  return { proxy, name, listen, dest };
}

async function stageOf(seg: SrtpSegment) {
  const st = await segmentStats(seg.proxy, seg.name);
  const stage = st.stages[0]!;
  const metric = (m: string): number => stage.metrics.find((x) => x.name === m)?.value ?? 0;
  return { st, stage, metric };
}

type SegmentStats = Awaited<ReturnType<typeof stageOf>>["st"];

/**
 * Waits until the proxy has nothing in flight (what came in downstream is sent or dropped) and
 * `arrived()` (what reached the far end, plus what the kernel dropped on the way) covers what it
 * forwarded: `forwarded(stats)`, by default what it sent downstream. Gives up when nothing has
 * moved for QUIET_MS (what is missing then is lost: the accounting after says where), or after
 * SETTLE_MS.
 */
async function settled(seg: SrtpSegment, arrived: () => number, forwarded: (st: SegmentStats) => number = (st) => st.packetsOut): Promise<void> {
  let last = "";
  let since = Date.now();
  await until(async () => {
    const { st } = await stageOf(seg);
    const now = `${st.packetsIn} ${st.upstreamIn} ${st.packetsOut} ${st.dropsTotal} ${arrived()}`;
    if (now !== last) [last, since] = [now, Date.now()];
    const quiet = Date.now() - since;
    if (quiet >= 100 && st.packetsOut + st.dropsTotal >= st.packetsIn && arrived() >= forwarded(st)) return true;
    return quiet >= QUIET_MS;
  }, SETTLE_MS);
}

/** Kernel drops at some of a watch's ports since it began. */
const dropsAt = (watch: DropWatch, ...ports: number[]): number => {
  const { byPort } = watch.since();
  return ports.reduce((n, p) => n + (byPort[p] ?? 0), 0);
};

/** Asserts that every packet of `sent` (keys 0..sent-1) is at `sink` once, or dropped by the kernel on a watched socket. */
function assertAccounted(what: string, sink: Sink, sent: number, kernel: DropWatch): void {
  const { duplicates } = sink.tally(sent);
  const verdict = unexplainedLoss({ sent, received: sink.received, proxyDrops: 0, kernel, duplicates });
  assert.is(verdict, null, `${what}: ${verdict}`);
  const drops = kernel.since();
  if (drops.total > 0) console.error(`!!! note: ${what}: the kernel dropped ${drops.total} datagrams (busy machine): ${JSON.stringify(drops.byPort)}`);
}

// ---------------------------------------------------------------------------------------------
// (a) libsrtp -> proxy(unprotect)

const GST_SSRC = 0x1234abcd;
const GST_SEQ0 = 65500; // the stream crosses the wrap: ROC 0 -> 1
const GST_BUFFERS = 40; // 40 x 1024 samples at 44.1 kHz, two RTP packets each
const GST_MEDIA_MS = Math.ceil((GST_BUFFERS * 1024 * 1000) / 44_100);
/** A GStreamer test: (the reference and) the pipeline, then the settling, then the cleanup. */
const GST_TEST_MS = 2 * bound(GST_MEDIA_MS) + SETTLE_MS + CLEANUP_MS;

/** The index of an RTP packet of the sender's stream (its sequence number from GST_SEQ0, across the wrap). */
const gstIndex = (b: Buffer): number => (b.readUInt16BE(2) - GST_SEQ0) & 0xffff;

/** The sender's RTP: a sine (deterministic), payloaded with a fixed SSRC, sequence and timestamp. */
const GST_RTP = [
  "audiotestsrc", `num-buffers=${GST_BUFFERS}`, "!", "audioconvert", "!",
  "rtpL16pay", `ssrc=${GST_SSRC}`, `seqnum-offset=${GST_SEQ0}`, "timestamp-offset=1000",
];

let reference: Promise<Buffer[]> | undefined;

/**
 * What the sender pipeline emits without srtpenc, by index: the plain RTP every decrypted packet
 * must equal. Complete or not at all: indexes 0..n-1 each once, none dropped by the kernel (a
 * run that lost one is run again).
 */
function plainReference(): Promise<Buffer[]> {
  reference ??= (async () => {
    const failures: string[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const sink = await Sink.open(0, { keep: true, keyOf: gstIndex });
      const kernel = new DropWatch([sink.port]);
      try {
        // rtpsession passes RTP through untouched; it is left out here (the bytes are the same)
        const g = gst([...GST_RTP, "!", "udpsink", `host=${LO}`, `port=${sink.port}`], bound(GST_MEDIA_MS));
        const { code } = await g.exited;
        assert.is(code, 0, `reference pipeline failed:\n${g.stderr}`);
        await sleep(200); // a late datagram would show now
        const n = sink.received;
        const { missing, duplicates } = sink.tally(n);
        const drops = kernel.since().total;
        if (n > 40 && missing === 0 && duplicates === 0 && drops === 0) return sink.packets.map((p) => p.bytes).sort((a, b) => gstIndex(a) - gstIndex(b));
        failures.push(`attempt ${attempt}: ${n} packets, ${missing} missing, ${duplicates} duplicates, ${drops} dropped by the kernel`);
      } finally {
        sink.close();
      }
    }
    throw new Error(`no complete reference stream from GStreamer: ${failures.join("; ")}`);
  })();
  return reference;
}

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
  ], bound(GST_MEDIA_MS) + SETTLE_MS);
}

for (const s of SUITES) {
  peerTest(test, GSTREAMER, `(a) libsrtp srtpenc ${s.name} -> proxy(unprotect) -> plain: every RTP packet byte-identical, SRTCP decrypted, no drops`, async () => {
    const expected = await plainReference();
    const key = masterKey(s);
    const dest = await freePortPair();
    const rtp = await Sink.open(dest, { keep: true, keyOf: gstIndex });
    const rtcp = await Sink.open(dest + 1, { keep: true });
    // half the suites get the key as SDES inline base64, half as hex: both forms the filter takes
    const keyText = SUITES.indexOf(s) % 2 === 0 ? inline(key) : key.toString("hex");
    const seg = await srtpProxy("from-libsrtp", dest, { direction: "unprotect", suite: s.name, key: keyText });
    const rtpPath = new DropWatch([seg.listen, dest]);
    const rtcpPath = new DropWatch([dest + 1]);
    try {
      const g = gstSrtpSender(s, key, seg.listen, seg.listen + 1);
      // the proxy has taken in the whole stream (or the kernel dropped it before it)
      await until(async () => {
        notFailed(g);
        const { st } = await stageOf(seg);
        return st.packetsIn - st.rtcpIn + dropsAt(rtpPath, seg.listen) >= expected.length && st.rtcpIn >= 2;
      }, bound(GST_MEDIA_MS));
      await g.stop();
      await settled(seg, () => rtp.received + rtcp.received + dropsAt(rtpPath, dest) + rtcpPath.since().total);
      const { st, stage, metric } = await stageOf(seg);
      assert.equal(st.drops, {}, "the proxy dropped nothing (srtp_auth_failed above all)");
      assert.is(stage.drops.srtp_auth_failed ?? 0, 0);
      for (const p of rtp.packets) {
        const i = gstIndex(p.bytes);
        assert.ok(expected[i], `a packet outside the stream (seq ${p.bytes.readUInt16BE(2)})`);
        assert.ok(p.bytes.equals(expected[i]!), `RTP packet ${i} (seq ${p.bytes.readUInt16BE(2)}) differs from the plain stream`);
      }
      assertAccounted("RTP, as many as the plain pipeline sends", rtp, expected.length, rtpPath);
      assert.is(metric("rtp_unprotected"), st.packetsIn - st.rtcpIn, "every RTP packet in was unprotected");
      // SRTCP: rtpsession's sender reports, protected by libsrtp, arrive as plain RTCP
      assert.ok(st.rtcpIn >= 2, `SRTCP packets at the proxy: ${st.rtcpIn}`);
      assert.is(metric("rtcp_unprotected"), st.rtcpIn, "every SRTCP packet in was unprotected");
      assert.is(rtcp.received + rtcpPath.since().total, st.rtcpIn, "every SRTCP packet in came out (or the kernel dropped it at the sink)");
      assert.ok(rtcp.received >= 1, "no decrypted RTCP to check");
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
  }, { timeoutMs: GST_TEST_MS });
}

peerTest(test, GSTREAMER, "(a) negative control: a wrong key in the proxy drops every libsrtp packet as srtp_auth_failed", async () => {
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const key = masterKey(s);
  const wrong = Buffer.from(key);
  wrong[3]! ^= 1; // one bit of the master key
  const dest = await freePortPair();
  const rtp = await Sink.open(dest);
  const rtcp = await Sink.open(dest + 1);
  const seg = await srtpProxy("wrong-key", dest, { direction: "unprotect", suite: s.name, key: inline(wrong) });
  const atProxy = new DropWatch([seg.listen, seg.listen + 1]);
  try {
    const g = gstSrtpSender(s, key, seg.listen, seg.listen + 1);
    await until(async () => (notFailed(g), (await stageOf(seg)).st.packetsIn + atProxy.since().total >= 80), bound(GST_MEDIA_MS));
    await g.stop();
    await settled(seg, () => rtp.received + rtcp.received);
    const { st, stage } = await stageOf(seg);
    assert.is(rtp.received + rtcp.received, 0, "nothing decrypted");
    assert.ok(st.packetsIn >= 40, `the stream at the proxy: ${st.packetsIn} packets, ${atProxy.since().total} dropped by the kernel before it`);
    assert.is(stage.drops.srtp_auth_failed, st.packetsIn, "every packet failed authentication");
  } finally {
    rtp.close();
    rtcp.close();
    await stopAll();
    await seg.proxy.close();
  }
}, { timeoutMs: GST_TEST_MS });

// ---------------------------------------------------------------------------------------------
// (b) proxy(protect) -> libsrtp

const OUR_SSRC = 0x5eed1234;
const OUR_SEQ0 = 65300;
const OUR_PACKETS = 400;
const OUR_RTCP = 12;
const OUR_RATE = 2000;
const OUR_MEDIA_MS = (OUR_PACKETS * 1000) / OUR_RATE;
/** The index of a packet of our RTP stream (its sequence number from OUR_SEQ0, across the wrap). */
const ourIndex = (b: Buffer): number => (b.readUInt16BE(2) - OUR_SEQ0) & 0xffff;
/** The index of one of our RTCP packets (the sender report's packet count). */
const rtcpIndex = (b: Buffer): number => (b.length >= 24 ? b.readUInt32BE(20) : -1);

/**
 * srtpdec fed from two udpsrc (SRTP, SRTCP), decrypted to two udpsinks. The key is in the RTP
 * pad's caps only: GStreamer 1.22's srtpdec sets up a stream from each pad's caps without a lock,
 * and two pads doing it at once (both streaming threads start together) lose the first packets
 * ("unprotect failed code 13") or crash. SRTCP of the same SSRC uses the stream the RTP caps made.
 */
function gstSrtpReceiver(s: SrtpSuite, key: Buffer, inPort: number, outRtp: number, outRtcp: number): Child {
  const params = `ssrc=(uint)${OUR_SSRC}, srtp-key=(buffer)${key.toString("hex")}, srtp-cipher=(string)${s.gstCipher}, ` +
    `srtp-auth=(string)${s.gstAuth}, srtcp-cipher=(string)${s.gstCipher}, srtcp-auth=(string)${s.gstRtcpAuth}, roc=(uint)0`;
  const buffer = "buffer-size=4194304"; // room for a burst while the pipeline waits for a CPU
  return gst([
    "srtpdec", "name=d",
    "udpsrc", `address=${LO}`, `port=${inPort}`, buffer, `caps=application/x-srtp, payload=(int)96, ${params}`, "!", "d.rtp_sink",
    "udpsrc", `address=${LO}`, `port=${inPort + 1}`, buffer, "caps=application/x-srtcp", "!", "d.rtcp_sink",
    "d.rtp_src", "!", "udpsink", `host=${LO}`, `port=${outRtp}`, "sync=false", "async=false",
    "d.rtcp_src", "!", "udpsink", `host=${LO}`, `port=${outRtcp}`, "sync=false", "async=false",
  ], START_MS + SETTLE_MS + BUSY * OUR_MEDIA_MS + CLEANUP_MS, true);
}

/** Waits until srtpdec has its key (the RTP pad accepted its caps): packets sent before may find no stream. */
function srtpdecReady(g: Child): Promise<void> {
  return waitOutput(g, (c) => /GstSrtpDec:d\.GstPad:rtp_sink: caps = /.test(c.stdout), START_MS, "srtpdec taking its key");
}

/** What srtpdec dropped, as it logged it (a packet that failed authentication above all). */
const srtpdecDrops = (g: Child): string[] => g.stderr.split("\n").filter((l) => /\b(WARN|ERROR) +srtpdec /.test(l));
const authFailures = (g: Child): number => srtpdecDrops(g).filter((l) => /Error authentication packet, dropping/.test(l)).length;

/** Sends the test stream (RTP and, interleaved, RTCP from the sender's RTCP socket) into `listen`. */
async function sendTestStream(listen: number, packets = OUR_PACKETS, rtcpCount = OUR_RTCP): Promise<void> {
  const tx = await bindUdp();
  const txRtcp = await bindUdp();
  let rtcpSent = 0;
  try {
    const every = Math.floor(packets / rtcpCount);
    await sendPaced(tx, listen, LO, packets, OUR_RATE, (i) => testRtp(i, OUR_SEQ0, OUR_SSRC), (sent) => {
      while (Math.floor(sent / every) > rtcpSent && rtcpSent < rtcpCount) txRtcp.send(testRtcp(rtcpSent++, OUR_SSRC), listen + 1, LO);
    });
    while (rtcpSent < rtcpCount) txRtcp.send(testRtcp(rtcpSent++, OUR_SSRC), listen + 1, LO);
  } finally {
    await sleep(50);
    tx.close();
    txRtcp.close();
  }
}

const SRTPDEC_TEST_MS = START_MS + BUSY * OUR_MEDIA_MS + 2 * SETTLE_MS + CLEANUP_MS;

for (const s of SUITES) {
  peerTest(test, GSTREAMER, `(b) proxy(protect) ${s.name} -> libsrtp srtpdec: every RTP and RTCP packet authenticates and decrypts byte-identical`, async () => {
    const key = masterKey(s);
    const rtp = await Sink.open(0, { keep: true, keyOf: ourIndex });
    const rtcp = await Sink.open(0, { keep: true, keyOf: rtcpIndex });
    const srtpIn = await freePortPair();
    const keyText = SUITES.indexOf(s) % 2 === 1 ? inline(key) : key.toString("hex");
    const seg = await srtpProxy("to-libsrtp", srtpIn, { direction: "protect", suite: s.name, key: keyText });
    try {
      const g = gstSrtpReceiver(s, key, srtpIn, rtp.port, rtcp.port);
      await srtpdecReady(g);
      const rtpPath = new DropWatch([seg.listen, srtpIn, rtp.port]);
      const rtcpPath = new DropWatch([seg.listen + 1, srtpIn + 1, rtcp.port]);
      await sendTestStream(seg.listen);
      const pastProxy = (): number => dropsAt(rtpPath, srtpIn, rtp.port) + dropsAt(rtcpPath, srtpIn + 1, rtcp.port);
      await settled(seg, () => rtp.received + rtcp.received + srtpdecDrops(g).length + pastProxy());
      notFailed(g);
      const { st, metric } = await stageOf(seg);
      assert.equal(st.drops, {});
      assert.equal(srtpdecDrops(g), [], "srtpdec dropped packets (a failed authentication is a protect defect)");
      assert.is(metric("rtp_protected"), st.packetsIn - st.rtcpIn, "every RTP packet in was protected");
      assert.is(metric("rtcp_protected"), st.rtcpIn, "every RTCP packet in was protected");
      for (const p of rtp.packets) {
        const i = p.bytes.readUInt32BE(rtpHeaderLength(p.bytes));
        assert.is(ourIndex(p.bytes), i, "sequence number and payload index agree");
        assert.ok(p.bytes.equals(testRtp(i, OUR_SEQ0, OUR_SSRC)), `RTP packet ${i} differs after srtpdec`);
      }
      for (const p of rtcp.packets) {
        const i = rtcpIndex(p.bytes);
        assert.ok(p.bytes.equals(testRtcp(i, OUR_SSRC)), `RTCP packet ${i} differs after srtpdec`);
      }
      assertAccounted("RTP through protect and srtpdec", rtp, OUR_PACKETS, rtpPath);
      assertAccounted("RTCP through protect and srtpdec", rtcp, OUR_RTCP, rtcpPath);
    } finally {
      rtp.close();
      rtcp.close();
      await stopAll();
      await seg.proxy.close();
    }
  }, { timeoutMs: SRTPDEC_TEST_MS });
}

peerTest(test, GSTREAMER, "(b) negative control: srtpdec with a wrong key rejects every packet of the proxy as unauthentic", async () => {
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
    await srtpdecReady(g);
    const atSrtpdec = new DropWatch([srtpIn, srtpIn + 1]);
    await sendTestStream(seg.listen, 100, 4);
    await settled(seg, () => authFailures(g) + atSrtpdec.since().total);
    notFailed(g);
    const { st } = await stageOf(seg);
    assert.ok(st.packetsOut >= 50, `the proxy sent ${st.packetsOut} packets`);
    assert.is(authFailures(g) + atSrtpdec.since().total, st.packetsOut, `srtpdec's authentication failures (or kernel drops before it) vs packets sent:\n${g.stderr}`);
    assert.is(rtp.received, 0, "srtpdec passed RTP it could not authenticate");
    assert.is(rtcp.received, 0, "srtpdec passed RTCP it could not authenticate");
  } finally {
    rtp.close();
    rtcp.close();
    await stopAll();
    await seg.proxy.close();
  }
}, { timeoutMs: SRTPDEC_TEST_MS });

// ---------------------------------------------------------------------------------------------
// (f) a proxy process killed and restarted mid-stream, with its stateFile: libsrtp keeps taking
// every packet (the roll-over counter goes on across the wrap, SRTCP indexes only forward); without
// the file srtpdec refuses what the restarted proxy protects (ROC 0 after the wrap, SRTCP index 0
// again: the same keystream twice).

/** Sends packets [from, to) of the test stream and the RTCP of that part. */
async function sendTestStreamPart(listen: number, from: number, to: number): Promise<void> {
  const tx = await bindUdp();
  const txRtcp = await bindUdp();
  const every = Math.floor(OUR_PACKETS / OUR_RTCP);
  let rtcpSent = Math.floor(from / every);
  try {
    await sendPaced(tx, listen, LO, to - from, OUR_RATE, (k) => testRtp(from + k, OUR_SEQ0, OUR_SSRC), (sent) => {
      while (Math.floor((from + sent) / every) > rtcpSent && rtcpSent < OUR_RTCP) txRtcp.send(testRtcp(rtcpSent++, OUR_SSRC), listen + 1, LO);
    });
  } finally {
    await sleep(50);
    tx.close();
    txRtcp.close();
  }
}

/** What a test of a proxy killed mid-stream checks once the stream has gone through its restart. */
interface RestartRun {
  readonly g: Child;
  readonly rtp: Sink;
  readonly rtcp: Sink;
  readonly path: DropWatch;
  /** What srtpdec had passed before the kill. */
  readonly rtpBefore: number;
  readonly rtcpBefore: number;
  /** The restarted proxy's output. */
  output(): string;
}

/**
 * The test stream through a proxy process protecting it toward srtpdec, killed (SIGKILL) after
 * packet `cut` (past the wrap) and started again with the same config. `beforeStream` and
 * `beforeKill` run at those moments (`saved()`: the time of the stateFile's last write, 0 before
 * one); `check` gets what came out once the second part has gone through (or `settleMs` passed).
 */
async function killedMidStream(name: string, options: {
  stateFile: boolean; stateCheckpointMs: number; settleMs: number;
  beforeStream?: (saved: () => number) => Promise<void>;
  beforeKill: (saved: () => number) => Promise<void>;
  check: (run: RestartRun) => void;
}): Promise<void> {
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const key = masterKey(s);
  const rtp = await Sink.open(0, { keep: true, keyOf: ourIndex });
  const rtcp = await Sink.open(0, { keep: true, keyOf: rtcpIndex });
  const srtpIn = await freePortPair();
  const listen = await freePortPair();
  const dir = mkdtempSync(join(tmpdir(), `msm-${name}-`));
  const stateFile = join(dir, "stage-state.json");
  const config = {
    ...(options.stateFile ? { stateFile } : {}),
    stateCheckpointMs: options.stateCheckpointMs,
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{ name, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: srtpIn }], chain: [{ filter: "srtp", config: { direction: "protect", suite: s.name, key: inline(key) } }] }],
  };
  const saved = (): number => (existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, "utf8")) as { savedAtMs: number }).savedAtMs : 0);
  const cut = 300; // past the wrap (OUR_SEQ0 + 236)
  let proxy = startCliProxy(config);
  try {
    const g = gstSrtpReceiver(s, key, srtpIn, rtp.port, rtcp.port);
    await srtpdecReady(g);
    const path = new DropWatch([listen, listen + 1, srtpIn, srtpIn + 1, rtp.port, rtcp.port]);
    assert.ok(await until(() => /proxy running/.test(proxy.output()), START_MS), `the proxy started\n${proxy.output()}`);
    await options.beforeStream?.(saved);
    await sendTestStreamPart(listen, 0, cut);
    await until(() => rtp.received + path.since().total >= cut, SETTLE_MS);
    await options.beforeKill(saved);
    await proxy.kill();
    const rtpBefore = rtp.received;
    const rtcpBefore = rtcp.received;
    proxy = startCliProxy(config);
    assert.ok(await until(() => /proxy running/.test(proxy.output()), START_MS), `the proxy started again\n${proxy.output()}`);
    await sendTestStreamPart(listen, cut, OUR_PACKETS);
    await until(() => rtp.received + path.since().total >= OUR_PACKETS && rtcp.received >= OUR_RTCP, options.settleMs);
    notFailed(g);
    console.log(`  after the restart: srtpdec passed ${rtp.received - rtpBefore} of ${OUR_PACKETS - cut} RTP and ${rtcp.received - rtcpBefore} RTCP packets; it dropped ${srtpdecDrops(g).length}`);
    const restarted = proxy;
    options.check({ g, rtp, rtcp, path, rtpBefore, rtcpBefore, output: () => restarted.output() });
  } finally {
    rtp.close();
    rtcp.close();
    await stopAll();
    await proxy.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const withStateFile of [true, false]) {
  peerTest(test, GSTREAMER, `(f) proxy(protect) killed (SIGKILL) after the wrap and restarted ${withStateFile ? "with its stateFile: libsrtp srtpdec takes every packet after the restart too" : "without a stateFile (the defect the file prevents): srtpdec refuses what the restarted proxy protects"}`, async () => {
    let sent = 0;
    await killedMidStream("srtp-restart", {
      stateFile: withStateFile, stateCheckpointMs: 200, settleMs: withStateFile ? SETTLE_MS : 2000,
      // killed once a checkpoint after the wrap is saved (with the file), or as long after without it
      beforeKill: async (saved) => {
        sent = Date.now();
        if (withStateFile) assert.ok(await until(() => saved() > sent, 5000), "a checkpoint saved after the first part");
        else await sleep(400);
      },
      check: ({ g, rtp, rtcp, path, rtpBefore, output }) => {
        if (withStateFile) {
          assert.equal(srtpdecDrops(g), [], `srtpdec dropped packets of the restarted proxy (a wrong ROC or a reused SRTCP index)\n${output()}`);
          assertAccounted("RTP through a restarted proxy and srtpdec", rtp, OUR_PACKETS, path);
          assert.is(rtcp.received, OUR_RTCP, "every RTCP packet, before and after the restart, decrypted");
        } else {
          const after = rtp.received - rtpBefore;
          assert.ok(authFailures(g) > 0, "without the state, the restarted proxy protects at ROC 0 after the wrap: srtpdec cannot authenticate it");
          assert.ok(after < (OUR_PACKETS - 300) / 2, `srtpdec passed ${after} packets of the restarted proxy`);
        }
      },
    });
  }, { timeoutMs: SRTPDEC_TEST_MS + START_MS });
}

// (g) a source new since the last periodic checkpoint that rolls over before the next, then the
// proxy is killed: the checkpoint its first packet asked for (ABI 1.8's checkpoint_wanted) is in
// the stateFile, so the restarted proxy knows the source and goes on at ROC 1. Before it, the file
// held the stage's state from before the source, the restart started it at ROC 0 again, srtpdec
// refused every packet and the indexes of ROC 0 were encrypted a second time.
peerTest(test, GSTREAMER, "(g) proxy(protect) killed after a new source rolled over, long before the next periodic checkpoint: the checkpoint its first packet asked for carries it, libsrtp srtpdec takes every packet after the restart", async () => {
  let started = 0;
  await killedMidStream("srtp-new-source", {
    stateFile: true, stateCheckpointMs: 600_000, settleMs: SETTLE_MS, // no periodic checkpoint during the test: only the one the source asks for
    beforeStream: async (saved) => {
      // the proxy's first periodic checkpoint comes at its first tick: the stream begins after it
      const firstRound = Date.now();
      assert.ok(await until(() => saved() > firstRound, 5000), "the first periodic checkpoint saved");
      await sleep(100);
      started = Date.now();
    },
    beforeKill: async (saved) => {
      assert.ok(saved() > started, `a checkpoint saved after the source's first packet, with the period at 10 minutes (saved at ${saved()}, the stream began at ${started})`);
      console.log(`  the checkpoint the new source asked for was in the stateFile ${saved() - started} ms after the stream began`);
    },
    check: ({ g, rtp, path, output }) => {
      assert.equal(srtpdecDrops(g), [], `srtpdec dropped packets of the restarted proxy (ROC 0 after the wrap: the source was not in the stateFile)\n${output()}`);
      assertAccounted("RTP through a restarted proxy and srtpdec", rtp, OUR_PACKETS, path);
    },
  });
}, { timeoutMs: SRTPDEC_TEST_MS + START_MS });

// ---------------------------------------------------------------------------------------------
// (d) the reverse key: RTCP feedback going upstream gets the opposite transform

peerTest(test, GSTREAMER, "(d) proxy(unprotect, reverseKey): a receiver's plain RTCP goes upstream protected, and libsrtp srtpdec decrypts it", async () => {
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const forward = masterKey(s);
  const reverse = masterKey(s);
  const rtcpOut = await Sink.open(0, { keep: true, keyOf: rtcpIndex });
  const unused = await Sink.open();
  // the sender is srtpdec: its RTP input (unused here) on `sender`, its SRTCP input on sender + 1
  const sender = await freePortPair();
  const dest = await freePortPair();
  const seg = await srtpProxy("feedback-protect", dest,
    { direction: "unprotect", suite: s.name, key: inline(forward), reverseKey: inline(reverse) },
    { source: { address: LO, port: sender, rtcpPort: sender + 1 } });
  const receiver = await bindUdp();
  const FEEDBACK = 10;
  try {
    const g = gstSrtpReceiver(s, reverse, sender, unused.port, rtcpOut.port);
    await srtpdecReady(g);
    const egressRtcp = (await stageOf(seg)).st.ports.egressRtcp!;
    const path = new DropWatch([egressRtcp, sender + 1, rtcpOut.port]);
    for (let i = 0; i < FEEDBACK; i++) {
      receiver.send(testRtcp(i, OUR_SSRC), egressRtcp, LO);
      await sleep(5);
    }
    await settled(seg, () => rtcpOut.received + srtpdecDrops(g).length + dropsAt(path, sender + 1, rtcpOut.port), (st) => st.upstreamIn);
    notFailed(g);
    const { st, metric } = await stageOf(seg);
    assert.equal(st.drops, {});
    assert.is(st.upstreamIn + dropsAt(path, egressRtcp), FEEDBACK, "the feedback at the proxy (or dropped by the kernel before it)");
    assert.is(metric("rtcp_protected"), st.upstreamIn, "every feedback packet was protected");
    assert.equal(srtpdecDrops(g), [], "srtpdec dropped feedback (a failed authentication is a protect defect)");
    for (const p of rtcpOut.packets) assert.ok(p.bytes.equals(testRtcp(rtcpIndex(p.bytes), OUR_SSRC)), `feedback ${rtcpIndex(p.bytes)} differs after srtpdec`);
    assertAccounted("feedback through protect and srtpdec", rtcpOut, FEEDBACK, path);
  } finally {
    receiver.close();
    rtcpOut.close();
    unused.close();
    await stopAll();
    await seg.proxy.close();
  }
}, { timeoutMs: START_MS + 2 * SETTLE_MS + CLEANUP_MS });

peerTest(test, GSTREAMER, "(d) proxy(protect, reverseKey): a receiver's libsrtp SRTCP goes upstream decrypted", async () => {
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
    const egressRtcp = (await stageOf(seg)).st.ports.egressRtcp!;
    const toProxy = new DropWatch([egressRtcp]);
    const toSender = new DropWatch([senderRtcp.port]);
    // the "receiver" is a libsrtp pipeline whose SRTCP goes to the proxy's egress RTCP port
    const g = gstSrtpSender(s, reverse, unused.port, egressRtcp);
    await until(async () => (notFailed(g), (await stageOf(seg)).st.upstreamIn + toProxy.since().total >= 3), bound(GST_MEDIA_MS));
    await g.stop();
    await settled(seg, () => senderRtcp.received + toSender.since().total, (st) => st.upstreamIn);
    const { st, metric } = await stageOf(seg);
    assert.equal(st.drops, {});
    assert.ok(st.upstreamIn >= 2, `SRTCP feedback at the proxy: ${st.upstreamIn} (${toProxy.since().total} dropped by the kernel before it)`);
    assert.is(metric("rtcp_unprotected"), st.upstreamIn, "every SRTCP feedback packet was unprotected");
    assert.is(senderRtcp.received + toSender.since().total, st.upstreamIn, "every one reached the sender (or the kernel dropped it there)");
    assert.ok(senderRtcp.received >= 1, "no decrypted feedback to check");
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
}, { timeoutMs: GST_TEST_MS });

// ---------------------------------------------------------------------------------------------
// (c) FFmpeg both ways, AES_CM_128_HMAC_SHA1_80

const FF_SECONDS = 3;
const FF_RATE = 25;
const FF_FRAMES = FF_SECONDS * FF_RATE;
/** The receiver's start, the sender's run, the receiver's end, the cleanup. */
const FF_TEST_MS = START_MS + bound(FF_SECONDS * 1000) + SETTLE_MS + CLEANUP_MS;

function sdp(port: number, key: Buffer | undefined): string {
  return [
    "v=0", `o=- 0 0 IN IP4 ${LO}`, "s=msm srtp interop", `c=IN IP4 ${LO}`, "t=0 0",
    `m=video ${port} ${key ? "RTP/SAVP" : "RTP/AVP"} 96`,
    "a=rtpmap:96 MP4V-ES/90000",
    ...(key ? [`a=crypto:1 AES_CM_128_HMAC_SHA1_80 ${inline(key)}`] : []),
    "",
  ].join("\r\n");
}

/**
 * An SDP receiver decoding to nowhere; FFmpeg's RTP demuxer reads the key from a=crypto. It ends
 * by itself, with its totals, when the sender's RTCP BYE arrives.
 */
function ffmpegReceiver(dir: string, port: number, key: Buffer | undefined): Child {
  const file = join(dir, `in-${port}.sdp`);
  writeFileSync(file, sdp(port, key));
  return launch("ffmpeg", [
    "-hide_banner", "-nostdin", "-loglevel", "level+debug", "-protocol_whitelist", "file,udp,rtp,srtp",
    "-buffer_size", "4194304", // room for a burst while the receiver waits for a CPU
    "-i", file, "-f", "null", "-",
  ], FF_TEST_MS);
}

/** The encoder: testsrc as MPEG-4 part 2, to rtp:// or (with a key) srtp://, with an RTCP BYE at the end. */
function ffmpegSender(port: number, key: Buffer | undefined): Child {
  return launch("ffmpeg", [
    "-hide_banner", "-nostdin", "-loglevel", "level+verbose", "-re", "-f", "lavfi", "-i", `testsrc=size=320x240:rate=${FF_RATE}`,
    "-t", String(FF_SECONDS), "-c:v", "mpeg4", "-g", "25", "-payload_type", "96", "-rtpflags", "send_bye", "-f", "rtp",
    ...(key ? ["-srtp_out_suite", "AES_CM_128_HMAC_SHA1_80", "-srtp_out_params", key.toString("base64"), `srtp://${LO}:${port}`] : [`rtp://${LO}:${port}`]),
  ], bound(FF_SECONDS * 1000));
}

/** Waits until a UDP socket is bound to 127.0.0.1:port or 0.0.0.0:port (Linux: /proc/net/udp). */
async function udpBound(ports: number[], child: Child): Promise<void> {
  const wanted = ports.map((p) => p.toString(16).toUpperCase().padStart(4, "0"));
  await waitOutput(child, () => {
    const text = readFileSync("/proc/net/udp", "utf8");
    return wanted.every((w) => new RegExp(`^\\s*\\d+: (0100007F|00000000):${w} `, "m").test(text));
  }, START_MS, `binding ${ports.join(", ")}`);
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

const HMAC_MISMATCH = /HMAC mismatch/;

async function ffmpegThroughProxy(direction: "protect" | "unprotect", keyForProxy: Buffer, keyForPeer: Buffer) {
  const dir = mkdtempSync(join(tmpdir(), "msm-srtp-"));
  const dest = await freePortPair();
  const seg = await srtpProxy(`ffmpeg-${direction}`, dest, { direction, suite: "AES_CM_128_HMAC_SHA1_80", key: inline(keyForProxy) });
  try {
    const receiver = ffmpegReceiver(dir, dest, direction === "protect" ? keyForPeer : undefined);
    await udpBound([dest, dest + 1], receiver);
    const path = new DropWatch([seg.listen, seg.listen + 1, dest, dest + 1]);
    const sender = ffmpegSender(seg.listen, direction === "unprotect" ? keyForPeer : undefined);
    const sent = await sender.exited;
    assert.is(sent.code, 0, `ffmpeg sender failed:\n${sender.stderr}`);
    // the receiver ends at the BYE; one that cannot authenticate (or lost the BYE) is stopped
    const ended = await until(() => receiver.proc.exitCode !== null || HMAC_MISMATCH.test(receiver.stderr), SETTLE_MS);
    await settled(seg, () => Infinity);
    if (receiver.proc.exitCode === null) {
      await sleep(200); // the mismatches of the last packets
      await receiver.stop();
    }
    const stats = await stageOf(seg);
    const drops = path.since(); // before the sockets close
    const atProxy = dropsAt(path, seg.listen, seg.listen + 1);
    return { report: receiverReport(receiver.stderr), sent: framesSent(sender.stderr), receiverLog: receiver.stderr, ended, drops, atProxy, ...stats };
  } finally {
    await stopAll();
    await seg.proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Every frame the sender sent was read and decoded, with no error or warning on the way. Where
 * the kernel dropped datagrams on the way (a busy machine), each may cost the receiver a frame
 * and some decoding errors: then every frame not explained by a drop must be there, and still no
 * SRTP warning.
 */
function assertDecodedAll(r: Awaited<ReturnType<typeof ffmpegThroughProxy>>): void {
  const log = `\n--- receiver log ---\n${r.receiverLog}`;
  const lost = r.drops.total;
  assert.ok(r.sent >= FF_FRAMES - 1, `the sender sent ${r.sent} frames`);
  assert.equal(r.report.problems.filter((l) => HMAC_MISMATCH.test(l) || /srtp/i.test(l)), [], `the receiver's SRTP complained (a packet did not authenticate):${log}`);
  if (lost > 0) {
    console.error(`!!! note: the kernel dropped ${lost} datagrams on the way (busy machine: ${JSON.stringify(r.drops.byPort)}); frames lost to them are not counted against the proxy`);
    assert.ok(r.report.packetsRead >= r.sent - lost, `frames read by the receiver's demuxer ${r.report.packetsRead} of ${r.sent}, ${lost} datagrams dropped by the kernel${log}`);
    return;
  }
  assert.ok(r.ended, `the receiver did not end at the sender's RTCP BYE${log}`);
  assert.equal(r.report.problems, [], `the receiver logged warnings or errors:${log}`);
  assert.is(r.report.packetsRead, r.sent, `frames read by the receiver's demuxer vs sent${log}`);
  assert.is(r.report.decoded, r.sent, `frames decoded vs sent${log}`);
  assert.is(r.report.decodeErrors, 0);
}

peerTest(test, FFMPEG, "(c) FFmpeg srtp:// sender -> proxy(unprotect) -> FFmpeg plain RTP receiver decodes every frame", async () => {
  const key = masterKey(suiteNamed("AES_CM_128_HMAC_SHA1_80"));
  const r = await ffmpegThroughProxy("unprotect", key, key);
  const atProxy = r.atProxy;
  assert.equal(r.st.drops, {}, "no drops (srtp_auth_failed in particular)");
  assert.is(r.metric("rtp_unprotected"), r.st.packetsIn - r.st.rtcpIn, "every RTP packet in was unprotected");
  assert.ok(r.metric("rtp_unprotected") + atProxy >= FF_FRAMES, `RTP unprotected: ${r.metric("rtp_unprotected")}`);
  assert.ok(r.st.rtcpIn + atProxy >= 1, "FFmpeg's SRTCP sender reports reached the proxy");
  assert.is(r.metric("rtcp_unprotected"), r.st.rtcpIn, "every SRTCP packet in was unprotected");
  assertDecodedAll(r);
}, { timeoutMs: FF_TEST_MS });

peerTest(test, FFMPEG, "(c) FFmpeg plain RTP sender -> proxy(protect) -> FFmpeg receiver with a=crypto decodes every frame", async () => {
  const key = masterKey(suiteNamed("AES_CM_128_HMAC_SHA1_80"));
  const r = await ffmpegThroughProxy("protect", key, key);
  const atProxy = r.atProxy;
  assert.equal(r.st.drops, {});
  assert.is(r.metric("rtp_protected"), r.st.packetsIn - r.st.rtcpIn, "every RTP packet in was protected");
  assert.ok(r.metric("rtp_protected") + atProxy >= FF_FRAMES);
  assert.ok(r.st.rtcpIn + atProxy >= 1, "FFmpeg's RTCP sender reports reached the proxy");
  assert.is(r.metric("rtcp_protected"), r.st.rtcpIn, "every RTCP packet in was protected (the receiver checks them too)");
  assertDecodedAll(r);
}, { timeoutMs: FF_TEST_MS });

peerTest(test, FFMPEG, "(c) negative control: an FFmpeg receiver with another key decodes nothing and logs HMAC mismatch", async () => {
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const r = await ffmpegThroughProxy("protect", masterKey(s), masterKey(s));
  assert.ok(r.metric("rtp_protected") >= FF_FRAMES / 2, `the proxy protected ${r.metric("rtp_protected")} RTP packets`);
  assert.is(r.report.packetsRead, 0);
  assert.is(r.report.decoded, 0);
  assert.ok(r.report.problems.some((l) => HMAC_MISMATCH.test(l)), r.receiverLog);
}, { timeoutMs: FF_TEST_MS });

// ---------------------------------------------------------------------------------------------
// (e) keys changed by hot swap, and back

test("(e) proxy(unprotect) swapped from key A to B and back to A: a sender restarted under B is taken, SRTP and SRTCP captured under A are not taken again", async () => {
  const s = suiteNamed("AES_CM_128_HMAC_SHA1_80");
  const [keyA, keyB] = [masterKey(s), masterKey(s)];
  const dest = await freePortPair();
  const rtpOut = await Sink.open(dest);
  const rtcpOut = await Sink.open(dest + 1);
  const stageConfig = (key: Buffer) => ({ direction: "unprotect", suite: s.name, key: inline(key) });
  const seg = await srtpProxy("rekey", dest, stageConfig(keyA));
  const swapTo = (key: Buffer) => seg.proxy.apply(validateProxyConfig({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{ name: seg.name, listen: { address: LO, port: seg.listen }, destinations: [{ address: LO, port: dest }], chain: [{ filter: "srtp", config: stageConfig(key) }] }],
  }));
  const sender = await bindUdp();
  const h = await FilterHarness.load(filterWasm("srtp"));
  const onA = h.createContext({ direction: "protect", suite: s.name, key: inline(keyA) });
  const onB = h.createContext({ direction: "protect", suite: s.name, key: inline(keyB) });
  const rtp = (ctx: number, seq: number) => ({ bytes: h.run({ ctx, bytes: buildRtp({ seq: seq & 0xffff, ssrc: OUR_SSRC, payloadSize: 100 }) }).bytes, rtcp: false });
  const rtcp = (ctx: number) => ({ bytes: h.run({ ctx, bytes: testRtcp(0, OUR_SSRC), flags: PacketFlag.Rtcp }).bytes, rtcp: true });
  /** Sends `packets` and waits until the proxy has handled what reached it; returns what it did with them. */
  const phase = async (packets: { bytes: Uint8Array; rtcp: boolean }[]) => {
    const before = (await stageOf(seg)).st;
    for (const p of packets) {
      sender.send(p.bytes, p.rtcp ? seg.listen + 1 : seg.listen, LO);
      await sleep(2);
    }
    await settled(seg, () => rtpOut.received + rtcpOut.received);
    const { st } = await stageOf(seg);
    return { in: st.packetsIn - before.packetsIn, out: st.packetsOut - before.packetsOut, replays: (st.drops.srtp_replay ?? 0) - (before.drops.srtp_replay ?? 0), drops: st.drops };
  };
  try {
    const captured = [...Array.from({ length: 60 }, (_, i) => rtp(onA, 65500 + i)), ...Array.from({ length: 5 }, () => rtcp(onA))];
    const underA = await phase(captured);
    assert.equal(underA.drops, {}, "under A");
    assert.ok(underA.in > 0 && underA.out === underA.in, JSON.stringify(underA));
    await swapTo(keyB);
    const underB = await phase([...Array.from({ length: 20 }, (_, i) => rtp(onB, 1 + i)), rtcp(onB)]);
    assert.equal(underB.drops, {}, "under B: the sender started again at ROC 0, SRTCP index 0");
    assert.ok(underB.in > 0 && underB.out === underB.in, JSON.stringify(underB));
    await swapTo(keyA);
    const replayed = await phase(captured);
    assert.ok(replayed.in > 0, "the replays reached the proxy");
    assert.is(replayed.out, 0, "none delivered (before 2026-12-06 each was, once)");
    assert.is(replayed.replays, replayed.in, "each dropped as srtp_replay");
    const goingOn = await phase([...Array.from({ length: 20 }, (_, i) => rtp(onA, 65560 + i)), rtcp(onA)]);
    assert.ok(goingOn.in > 0 && goingOn.out === goingOn.in && goingOn.replays === 0, `the sender goes on under A: ${JSON.stringify(goingOn)}`);
  } finally {
    sender.close();
    rtpOut.close();
    rtcpOut.close();
    await seg.proxy.close();
  }
}, { timeoutMs: 4 * SETTLE_MS + CLEANUP_MS });

test.after(async () => {
  await stopAll();
});

test.run();
