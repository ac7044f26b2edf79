// stateFile: a restarted proxy process carries its stages' state, as a restarted worker does. The
// proxy runs as `msm proxy --config` in a process of its own (under the runtime running the test)
// and is killed with SIGKILL, as a crash or an OOM kill ends it. Without the file an srtp protect
// stage starts again at SRTCP index 0 and protects a sequence number a second time under the same
// key (the same keystream over two payloads, RFC 3711 section 9.1), and an unprotect stage accepts
// a replay of every packet it took before the restart (section 3.3.2).
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { FilterHarness, pseudoRandomBytes } from "../sdk/harness/index.js";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { processTree, startCliProxy, type CliProxy } from "./lib/cli-proxy.js";
import { startProxy } from "./lib/proxy.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { senderReport } from "./lib/rtcp-build.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, sleep, Sink, waitFor } from "./lib/udp.js";

const test = suite("stateFile: stage state across a restart of the proxy process", { timeoutMs: 60_000 });
const LO = "127.0.0.1";
const SUITE = "AES_CM_128_HMAC_SHA1_80";
const TAG = 10; // HMAC_SHA1_80
const SSRC = 0x1234abcd;
const KEY = `inline:${Buffer.from(pseudoRandomBytes(30, 21)).toString("base64")}`;

/** The SRTCP index of a packet protect made (RFC 3711 section 3.4: E flag and 31 bits before the tag). */
const srtcpIndex = (b: Buffer): number => b.readUInt32BE(b.length - TAG - 4) & 0x7fffffff;
const sr = (): Buffer => senderReport(SSRC, 1000, 0);

interface Rig {
  readonly dir: string;
  readonly stateFile: string;
  readonly encListen: number;
  readonly decListen: number;
  /** Protected packets out of the "enc" segment (RTP and RTCP). */
  readonly protectedOut: Sink;
  /** Plain RTP out of the "dec" segment. */
  readonly plainOut: Sink;
  config(withStateFile: boolean): object;
  close(): void;
}

/** Two segments: "enc" protects under KEY; "dec" unprotects under KEY. */
async function rig(): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), "msm-state-file-"));
  const stateFile = join(dir, "state", "stage-state.json"); // its directory made at the first write
  const encListen = await freePortPair();
  const decListen = await freePortPair();
  const protectedOut = await Sink.open(await freePortPair(), { keep: true });
  const rtcpOut = await bindUdp(protectedOut.port + 1);
  rtcpOut.on("message", (m: Buffer, from) => protectedOut.packets.push({ bytes: m, from }));
  const plainOut = await Sink.open(await freePortPair());
  return {
    dir, stateFile, encListen, decListen, protectedOut, plainOut,
    config: (withStateFile) => ({
      ...(withStateFile ? { stateFile } : {}),
      stateCheckpointMs: 200,
      filters: { srtp: { path: filterWasm("srtp") } },
      segments: [
        {
          name: "enc", listen: { address: LO, port: encListen }, destinations: [{ address: LO, port: protectedOut.port }],
          chain: [{ filter: "srtp", config: { direction: "protect", suite: SUITE, key: KEY } }],
        },
        {
          name: "dec", listen: { address: LO, port: decListen }, destinations: [{ address: LO, port: plainOut.port }],
          chain: [{ filter: "srtp", config: { direction: "unprotect", suite: SUITE, key: KEY } }],
        },
      ],
    }),
    close: () => {
      protectedOut.close();
      rtcpOut.close();
      plainOut.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** SRTP seq 1..20 made under KEY by a sender of our own (the filter in the SDK harness), for the "dec" segment; the same bytes each time a seq is asked for (a replay). */
async function srtpSender(): Promise<(seq: number) => Buffer> {
  const h = await FilterHarness.load(filterWasm("srtp", true), { name: "srtp" });
  const ctx = h.createContext({ direction: "protect", suite: SUITE, key: KEY });
  const made = new Map<number, Buffer>();
  for (let seq = 1; seq <= 20; seq++) {
    const r = h.run({ ctx, bytes: indexedRtp(seq, 200, 0x5eed0001), flags: 0 });
    assert.is(r.verdict, "pass");
    made.set(seq, Buffer.from(r.bytes));
  }
  return (seq) => made.get(seq)!;
}

const rtpOut = (r: Rig): Buffer[] => r.protectedOut.packets.map((p) => p.bytes).filter((b) => b[1] !== 200);
const rtcpOutOf = (r: Rig): Buffer[] => r.protectedOut.packets.map((p) => p.bytes).filter((b) => b[1] === 200);

/** Starts the proxy and waits until both segments pass packets (an RTP packet of seq `probe` each way). */
async function started(r: Rig, withStateFile: boolean, probe: { enc: number; dec: Buffer }): Promise<CliProxy> {
  const proxy = startCliProxy(r.config(withStateFile));
  const tx = await bindUdp();
  try {
    const encBefore = rtpOut(r).length;
    const decBefore = r.plainOut.received;
    await waitFor(async () => {
      if (rtpOut(r).length === encBefore) tx.send(indexedRtp(probe.enc), r.encListen, LO);
      if (r.plainOut.received === decBefore) tx.send(probe.dec, r.decListen, LO);
      await sleep(100);
      return rtpOut(r).length > encBefore && r.plainOut.received > decBefore;
    }, 20_000, `the proxy to start and pass a packet on each segment\n${proxy.output()}`);
  } finally {
    tx.close();
  }
  return proxy;
}

/** A first run: RTP 1..10 and three SRs through "enc", SRTP 1..10 through "dec"; then the proxy is killed once a checkpoint after them is saved (or after two checkpoint periods without a file). */
async function firstRun(r: Rig, withStateFile: boolean, srtpOf: (seq: number) => Buffer): Promise<string> {
  const proxy = await started(r, withStateFile, { enc: 1, dec: srtpOf(1) });
  const tx = await bindUdp();
  try {
    for (let seq = 2; seq <= 10; seq++) {
      tx.send(indexedRtp(seq), r.encListen, LO);
      tx.send(srtpOf(seq), r.decListen, LO);
    }
    for (let k = 0; k < 3; k++) tx.send(sr(), r.encListen + 1, LO);
    await waitFor(() => rtpOut(r).length >= 10 && rtcpOutOf(r).length >= 3 && r.plainOut.received >= 10, 5000, `the first run's packets\n${proxy.output()}`);
    const sent = Date.now();
    if (withStateFile) {
      await waitFor(() => existsSync(r.stateFile) && (JSON.parse(readFileSync(r.stateFile, "utf8")) as { savedAtMs: number }).savedAtMs > sent + 250, 5000, "a checkpoint saved after the packets");
    } else await waitFor(() => /warning: stateFile is not set/.test(proxy.output()), 5000, "the warning that a restart loses the state");
    return proxy.output();
  } finally {
    tx.close();
    await proxy.kill();
  }
}

/**
 * After the restart (each segment's first packet seq 11): three more SRs, a repeat of RTP seq 5
 * and a new seq 12 through "enc"; a replay of SRTP seq 5 and a new seq 12 through "dec".
 */
async function secondRun(r: Rig, withStateFile: boolean, srtpOf: (seq: number) => Buffer): Promise<{ indexes: number[]; repeatProtected: number; replayAccepted: number; output: string }> {
  const beforeRtcp = rtcpOutOf(r).length;
  const proxy = await started(r, withStateFile, { enc: 11, dec: srtpOf(11) });
  const tx = await bindUdp();
  try {
    const plainBefore = r.plainOut.keys.get(5) ?? 0;
    const repeatsBefore = rtpOut(r).filter((b) => b.readUInt16BE(2) === 5).length;
    for (let k = 0; k < 3; k++) tx.send(sr(), r.encListen + 1, LO);
    tx.send(indexedRtp(5), r.encListen, LO);
    tx.send(indexedRtp(12), r.encListen, LO);
    tx.send(srtpOf(5), r.decListen, LO);
    tx.send(srtpOf(12), r.decListen, LO);
    await waitFor(() => rtcpOutOf(r).length >= beforeRtcp + 3 && rtpOut(r).some((b) => b.readUInt16BE(2) === 12) && (r.plainOut.keys.get(12) ?? 0) > 0, 5000, `the second run's packets\n${proxy.output()}`);
    await sleep(200); // a repeat, if protected, arrives in the same time
    return {
      indexes: rtcpOutOf(r).slice(beforeRtcp).map(srtcpIndex),
      repeatProtected: rtpOut(r).filter((b) => b.readUInt16BE(2) === 5).length - repeatsBefore,
      replayAccepted: (r.plainOut.keys.get(5) ?? 0) - plainBefore,
      output: proxy.output(),
    };
  } finally {
    tx.close();
    await proxy.stop();
  }
}

test("SIGKILL and restart with a stateFile: SRTCP indexes go on past the ones used, a protected sequence number is not protected again, a replay is refused", async () => {
  const r = await rig();
  try {
    const srtpOf = await srtpSender();
    await firstRun(r, true, srtpOf);
    const before = rtcpOutOf(r).map(srtcpIndex);
    assert.equal(before, [0, 1, 2], "the first run's SRTCP indexes");
    assert.is(statSync(r.stateFile).mode & 0o777, 0o600, "the state file is this user's only");
    // what a write killed midway leaves (writeFileDurably's temporary): removed by the next start
    const leftover = `${r.stateFile}.99999.tmp`;
    writeFileSync(leftover, "{ half written");
    const after = await secondRun(r, true, srtpOf);
    assert.not.ok(existsSync(leftover), "a killed write's temporary file is removed at the start");
    console.log(`  SRTCP indexes after the restart: ${after.indexes.join(", ")}`);
    assert.ok(after.indexes.every((i) => i >= 2 ** 22), `SRTCP indexes after the restart skip past any the killed process may have used: ${after.indexes.join(", ")}\n${after.output}`);
    assert.is(after.repeatProtected, 0, "RTP seq 5, protected before the kill, is not protected again under the same key");
    assert.is(after.replayAccepted, 0, "SRTP seq 5, accepted before the kill, is refused when replayed after it");
    assert.match(after.output, /stage state: saved to .*stage-state\.json every 200 ms; 2 stage\(s\) restored from it/);
  } finally {
    r.close();
  }
});

test("without a stateFile the restarted process starts afresh (what the file prevents), and says so", async () => {
  const r = await rig();
  try {
    const srtpOf = await srtpSender();
    const output = await firstRun(r, false, srtpOf);
    assert.match(output, /warning: stateFile is not set: the state of 2 stage\(s\) \(filters srtp\) lives in this process only/);
    const after = await secondRun(r, false, srtpOf);
    assert.ok(after.indexes.includes(0), `without the file SRTCP starts at index 0 again: ${after.indexes.join(", ")}`);
    assert.ok(after.replayAccepted > 0, "without the file a replay is accepted");
  } finally {
    r.close();
  }
});

test("a worker restart's restored states are saved before its first packet: a process killed right after does not restore the same blob again", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-state-file-"));
  const stateFile = join(dir, "stage-state.json");
  const listen = await freePortPair();
  const out = await Sink.open(await freePortPair(), { keep: true });
  const rtcpOut = await bindUdp(out.port + 1);
  const indexes: number[] = [];
  rtcpOut.on("message", (m: Buffer) => indexes.push(srtcpIndex(m)));
  const tx = await bindUdp();
  // no periodic checkpoint but the first (at the first tick after the start, with or without the
  // source): what the file holds after the worker's restart is what the restart itself saved
  const config = {
    stateFile, stateCheckpointMs: 3_600_000, watchdog: { stuckMs: 200 },
    filters: { srtp: { path: filterWasm("srtp") }, misbehave: { path: fixture("misbehave") } },
    segments: [{
      name: "enc", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: out.port }],
      chain: [{ filter: "misbehave" }, { filter: "srtp", config: { direction: "protect", suite: SUITE, key: KEY } }],
    }],
  };
  const rtcpUntil = async (n: number, proxy: CliProxy) => {
    await waitFor(async () => {
      tx.send(sr(), listen + 1, LO);
      await sleep(100);
      return indexes.length >= n;
    }, 15_000, `SRTCP packet ${n}\n${proxy.output()}`);
  };
  let proxy = startCliProxy(config);
  try {
    await rtcpUntil(3, proxy);
    const loop = Buffer.from(indexedRtp(1));
    loop[12] = 0xad; // misbehave never returns from this packet: the watchdog restarts the worker
    tx.send(loop, listen, LO);
    await waitFor(() => /worker 0 restarted/.test(proxy.output()), 15_000, `the worker restarted\n${proxy.output()}`);
    const restored = indexes.length;
    await rtcpUntil(restored + 1, proxy);
    const afterWorkerRestart = indexes[restored]!;
    assert.ok(afterWorkerRestart >= 2 ** 22, `the restarted worker skipped ahead: ${afterWorkerRestart}`);
    await proxy.kill();
    proxy = startCliProxy(config);
    const before = indexes.length;
    await rtcpUntil(before + 1, proxy);
    const afterProcessRestart = indexes[before]!;
    console.log(`  SRTCP index after the worker restart ${afterWorkerRestart}, after the process restart ${afterProcessRestart}`);
    assert.ok(afterProcessRestart > afterWorkerRestart, `the process restart went on past the restarted worker's indexes (${afterProcessRestart} after ${afterWorkerRestart}): it restored what the worker restart saved, not the checkpoint before it\n${proxy.output()}`);
  } finally {
    tx.close();
    await proxy.stop();
    out.close();
    rtcpOut.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("restarted under an edited config that makes the unprotect stage protect under the same key: the stage holds its saved state and drops every packet (key_role_changed), saying why; the file keeps the state", async () => {
  const r = await rig();
  try {
    const srtpOf = await srtpSender();
    await firstRun(r, true, srtpOf);
    type Saved = { stages: { segment: string; filter: string; state: string }[] };
    const decState = (): string | undefined => (JSON.parse(readFileSync(r.stateFile, "utf8")) as Saved).stages.find((st) => st.segment === "dec")?.state;
    const saved = decState();
    assert.ok(saved, "the dec stage's state is in the file");
    const admin = await freePortPair();
    const edited = r.config(true) as { segments: { chain: { config: { direction: string } }[] }[] };
    edited.segments[1]!.chain[0]!.config.direction = "protect";
    const proxy = startCliProxy({ ...edited, admin: { address: LO, port: admin } });
    const tx = await bindUdp();
    try {
      await waitFor(() => /filter srtp: the state of segment dec was not carried over: config key 'key' unprotected packets before this change and would now protect/.test(proxy.output()), 20_000, `the refusal in the log\n${proxy.output()}`);
      const plainBefore = r.plainOut.received;
      let dropped = 0;
      await waitFor(async () => {
        tx.send(indexedRtp(30), r.decListen, LO);
        await sleep(100);
        const metrics = await fetch(`http://${LO}:${admin}/metrics`).then((res) => res.text(), () => "");
        dropped = Number(/msm_filter_drops_total\{segment="dec",stage="0",filter="srtp",reason="key_role_changed"\} (\d+)/.exec(metrics)?.[1] ?? 0);
        return dropped > 0;
      }, 10_000, "key_role_changed drops in /metrics");
      assert.is(r.plainOut.received, plainBefore, "nothing protected under the sender's key left the stage");
      const after = Date.now();
      await waitFor(() => (JSON.parse(readFileSync(r.stateFile, "utf8")) as { savedAtMs: number }).savedAtMs > after + 250, 5000, "a checkpoint saved since");
      // as it came, marked as a checkpoint not yet treated (flag 4 of the srtp blob's flags byte): a
      // config that takes it on later under a new key skips past what the failed stage used after it
      const [held, before] = [Buffer.from(decState()!, "base64"), Buffer.from(saved!, "base64")];
      assert.is(held.length, before.length, "the held state is saved as it came");
      const differing = [...held.keys()].filter((i) => held[i] !== before[i]);
      assert.ok(differing.length === 0 || (differing.length === 1 && (held[differing[0]!]! ^ before[differing[0]!]!) === 4), `the held state is saved as it came, but for its checkpoint mark (bytes ${differing.join(", ")} differ)`);
    } finally {
      tx.close();
      await proxy.stop();
    }
  } finally {
    r.close();
  }
});

test("a rollback: restarted from a stateFile whose srtp state a newer build wrote (blob version 6), protect holds it and drops every packet (state_too_new), saying why, instead of starting again at SRTCP index 0; the file keeps that state for the newer build", async () => {
  const r = await rig();
  try {
    const srtpOf = await srtpSender();
    await firstRun(r, true, srtpOf);
    type Saved = { stages: { segment: string; filter: string; state: string }[] };
    const encState = (): string | undefined => (JSON.parse(readFileSync(r.stateFile, "utf8")) as Saved).stages.find((st) => st.segment === "enc")?.state;
    // what a newer build's srtp writes: its version, the rest as it chooses
    const saved = JSON.parse(readFileSync(r.stateFile, "utf8")) as Saved;
    const enc = saved.stages.find((st) => st.segment === "enc")!;
    const newer = Buffer.concat([Buffer.from(enc.state, "base64"), Buffer.from([1, 2, 3])]);
    newer.writeUInt32LE(6, 0);
    enc.state = newer.toString("base64");
    writeFileSync(r.stateFile, JSON.stringify(saved));
    const admin = await freePortPair();
    const proxy = startCliProxy({ ...r.config(true), admin: { address: LO, port: admin } });
    const tx = await bindUdp();
    try {
      await waitFor(() => /filter srtp: the state of segment enc was not carried over: srtp state blob of version 6, written by a newer build/.test(proxy.output()), 20_000, `the refusal in the log\n${proxy.output()}`);
      const outBefore = r.protectedOut.packets.length;
      let dropped = 0;
      await waitFor(async () => {
        tx.send(indexedRtp(11), r.encListen, LO);
        tx.send(sr(), r.encListen + 1, LO);
        await sleep(100);
        const metrics = await fetch(`http://${LO}:${admin}/metrics`).then((res) => res.text(), () => "");
        dropped = Number(/msm_filter_drops_total\{segment="enc",stage="0",filter="srtp",reason="state_too_new"\} (\d+)/.exec(metrics)?.[1] ?? 0);
        return dropped > 1;
      }, 10_000, "state_too_new drops in /metrics");
      assert.is(r.protectedOut.packets.length, outBefore, "nothing protected afresh left the stage (before: SRTCP index 0 again)");
      const after = Date.now();
      await waitFor(() => (JSON.parse(readFileSync(r.stateFile, "utf8")) as { savedAtMs: number }).savedAtMs > after + 250, 5000, "a checkpoint saved since");
      assert.equal(Buffer.from(encState()!, "base64"), newer, "the newer build's state is saved as it came");
    } finally {
      tx.close();
      await proxy.stop();
    }
  } finally {
    r.close();
  }
});

test("restarted from its stateFile after the stream may have moved 2^15 sequence numbers: protect drops its RTP (roc_unknown), saying why, instead of guessing its roll-over counter", async () => {
  const r = await rig();
  const admin = await freePortPair();
  const config = { ...r.config(true), admin: { address: LO, port: admin } };
  try {
    const first = startCliProxy(config);
    const tx = await bindUdp();
    try {
      await waitFor(async () => {
        tx.send(indexedRtp(1), r.encListen, LO);
        await sleep(100);
        return rtpOut(r).length > 0;
      }, 20_000, `the proxy to start\n${first.output()}`);
      // 20,000 packets in a burst of about 0.2 s: the rate protect runs at, as the next checkpoint records it
      for (let seq = 2; seq <= 20_001; seq += 500) {
        for (let k = seq; k < seq + 500; k++) tx.send(indexedRtp(k), r.encListen, LO);
        await sleep(5);
      }
      const burstEnd = Date.now();
      await waitFor(() => existsSync(r.stateFile) && (JSON.parse(readFileSync(r.stateFile, "utf8")) as { savedAtMs: number }).savedAtMs > burstEnd + 50, 5000, "a checkpoint saved after the burst");
    } finally {
      tx.close();
      await first.kill();
    }
    // 3 s down: at the burst's rate (at least 10,000 packets/s even on a slow machine) the sender
    // may be 30,000 packets on, past what the sequence number tells
    await sleep(3000);
    const second = startCliProxy(config);
    const tx2 = await bindUdp();
    try {
      await waitFor(() => /restored from a checkpoint: it was taken \d+ ms ago, and at the \d+ packets a second protected before it the sender may have moved its sequence numbers by 2\^15 or more.*roc_unknown/.test(second.output()), 20_000, `the hold in the log\n${second.output()}`);
      const outBefore = rtpOut(r).length;
      let dropped = 0;
      await waitFor(async () => {
        tx2.send(indexedRtp(40_000), r.encListen, LO);
        await sleep(100);
        const metrics = await fetch(`http://${LO}:${admin}/metrics`).then((res) => res.text(), () => "");
        dropped = Number(/msm_filter_drops_total\{segment="enc",stage="0",filter="srtp",reason="roc_unknown"\} (\d+)/.exec(metrics)?.[1] ?? 0);
        return dropped > 0;
      }, 10_000, "roc_unknown drops in /metrics");
      assert.is(rtpOut(r).length, outBefore, "no RTP protected");
    } finally {
      tx2.close();
      await second.stop();
    }
  } finally {
    r.close();
  }
});

test("a stateFile that cannot be read stops the start, naming the file and how to start fresh on purpose", async () => {
  const r = await rig();
  try {
    mkdirSync(dirname(r.stateFile));
    writeFileSync(r.stateFile, "{ not json");
    const proxy = startCliProxy(r.config(true));
    await waitFor(() => /did not start/.test(proxy.output()), 15_000, "the start to fail");
    await proxy.stop();
    const out = proxy.output();
    assert.match(out, /stateFile .*stage-state\.json: not valid JSON/);
    assert.match(out, /give every srtp stage new keys and delete the file/);
    assert.is(readFileSync(r.stateFile, "utf8"), "{ not json", "the file is left for the operator");
  } finally {
    r.close();
  }
});

test("a proxy killed alone (SIGKILL to its main process) leaves no watchdog beacon file of its worker processes in /dev/shm (Bun)", async () => {
  const r = await rig();
  try {
    const srtpOf = await srtpSender();
    const proxy = await started(r, true, { enc: 1, dec: srtpOf(1) });
    const beacons = () => readdirSync("/dev/shm").filter((n) => n.startsWith(`msm-beacon-${proxy.pid}-`));
    if (beacons().length === 0) {
      await proxy.stop(); // worker threads (Node): no beacon files
      return;
    }
    await waitFor(() => beacons().length === 2, 10_000, "the worker's and the spare's beacon files");
    const workers = processTree(proxy.pid).slice(1);
    process.kill(proxy.pid, "SIGKILL"); // the main process only, as the OOM killer ends one process
    await waitFor(() => workers.every((p) => !existsSync(`/proc/${p}`)), 10_000, "the worker processes to end with it");
    // before the fix each crash of the proxy left one file per worker process
    await waitFor(() => beacons().length === 0, 5000, `the beacon files removed: ${beacons().join(", ")}`);
    await proxy.kill();
  } finally {
    r.close();
  }
});

test("beacon files of a proxy killed with its worker processes are removed at the next start; a running proxy's are kept", async () => {
  // a pid no process has now: a child that ran and ended
  const gone = spawnSync("true").pid!;
  const stale = `/dev/shm/msm-beacon-${gone}-0-1`;
  const spare = `/dev/shm/msm-beacon-${gone}-spare-1`;
  const live = `/dev/shm/msm-beacon-${process.ppid}-0-1`; // the test runner's: it runs
  for (const f of [stale, spare, live]) writeFileSync(f, new Uint8Array(96));
  try {
    const { proxy } = await startProxy({ workers: 1 });
    await proxy.close();
    assert.ok(!existsSync(stale) && !existsSync(spare), "the files of the proxy that is gone were removed (before: kept for good)");
    assert.ok(existsSync(live), "the file of a proxy that runs stays");
  } finally {
    for (const f of [stale, spare, live]) rmSync(f, { force: true });
  }
});

test("a clean stop (SIGTERM) saves the states as they end", async () => {
  const r = await rig();
  try {
    const srtpOf = await srtpSender();
    const proxy = await started(r, true, { enc: 1, dec: srtpOf(1) });
    const tx = await bindUdp();
    try {
      tx.send(sr(), r.encListen + 1, LO);
      await waitFor(() => rtcpOutOf(r).length >= 1, 5000, "an SRTCP packet");
    } finally {
      tx.close();
    }
    await proxy.stop();
    const saved = JSON.parse(readFileSync(r.stateFile, "utf8")) as { format: number; stages: { segment: string; filter: string }[] };
    assert.is(saved.format, 1);
    assert.equal(saved.stages.map((s) => `${s.segment}/${s.filter}`).sort(), ["dec/srtp", "enc/srtp"]);
  } finally {
    r.close();
  }
});

/** An in-process proxy's rig: "enc" (srtp protect under KEY), its SRTCP indexes as they come out. */
async function inProcessRig() {
  const dir = mkdtempSync(join(tmpdir(), "msm-state-file-"));
  const stateFile = join(dir, "stage-state.json");
  const listen = await freePortPair();
  const out = await Sink.open(await freePortPair());
  const rtcpOut = await bindUdp(out.port + 1);
  const indexes: number[] = [];
  rtcpOut.on("message", (m: Buffer) => indexes.push(srtcpIndex(m)));
  const tx = await bindUdp();
  const config = (extra: Partial<ProxyConfigInput> = {}, worker?: number): ProxyConfigInput => ({
    stateFile, stateCheckpointMs: 3_600_000, ...extra,
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{
      name: "enc", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: out.port }], ...(worker === undefined ? {} : { worker }),
      chain: [{ filter: "srtp", config: { direction: "protect", suite: SUITE, key: KEY } }],
    }],
  });
  /** An SR through "enc" until one comes out protected: its SRTCP index. */
  const nextIndex = async (): Promise<number> => {
    const before = indexes.length;
    await waitFor(async () => {
      tx.send(sr(), listen + 1, LO);
      await sleep(50);
      return indexes.length > before;
    }, 10_000, "an SRTCP packet out of enc");
    return indexes[before]!;
  };
  const close = () => {
    tx.close();
    out.close();
    rtcpOut.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, stateFile, listen, indexes, config, nextIndex, close };
}

test("a segment whose port was taken at the start goes on from the stateFile's state once it runs, not from SRTCP index 0", async () => {
  const r = await inProcessRig();
  try {
    let { proxy } = await startProxy(r.config());
    for (let k = 0; k < 3; k++) await r.nextIndex();
    await proxy.close(); // saves the states as they end
    assert.equal(r.indexes, [0, 1, 2]);
    const squatter = await bindUdp(r.listen); // another process holds enc's port at the next start
    ({ proxy } = await startProxy(r.config()));
    try {
      assert.equal(proxy.segmentsNotRunning, ["enc"]);
      squatter.close();
      await proxy.apply(validateProxyConfig(r.config())); // the retry its owner makes
      const index = await r.nextIndex();
      // before the fix the stage was created without the file's state: index 0 again under KEY
      assert.ok(index >= 2 ** 22, `the stage created once the port was free restored the file's state: SRTCP index ${index}`);
    } finally {
      await proxy.close();
    }
  } finally {
    r.close();
  }
});

test("a segment the start's config lacks keeps its saved state: added back later (the agent's snapshot after an older last-good.json), it goes on from it", async () => {
  const r = await inProcessRig();
  try {
    let { proxy } = await startProxy(r.config());
    for (let k = 0; k < 3; k++) await r.nextIndex();
    await proxy.close();
    assert.equal(r.indexes, [0, 1, 2]);
    ({ proxy } = await startProxy({ ...r.config(), segments: [] })); // what the agent's last-good.json had
    try {
      await sleep(1200); // a periodic write of the file in between
      await proxy.apply(validateProxyConfig(r.config())); // the control plane's snapshot, with enc
      const index = await r.nextIndex();
      // before the fix the start's commit forgot enc's state, and its stage began at index 0 again
      assert.ok(index >= 2 ** 22, `enc, added back, goes on from the state the file kept for it: SRTCP index ${index}`);
    } finally {
      await proxy.close();
    }
  } finally {
    r.close();
  }
});

test("a checkpoint the moved segment's old worker answers while the move commits does not replace the state its new worker restored and saved", async () => {
  const r = await inProcessRig();
  const copy = join(r.dir, "as-the-move-left-it.json");
  try {
    const { proxy } = await startProxy(r.config({ workers: 2 }, 0));
    type Inside = { saveStates(): Promise<void>; checkpointDue: Set<unknown>; refreshWorker(w: unknown): Promise<boolean>; workers: unknown[]; stateWrites: Promise<void> };
    const inside = proxy as unknown as Inside;
    let moveIndex: number;
    try {
      for (let k = 0; k < 3; k++) await r.nextIndex();
      await sleep(1200); // past the first periodic checkpoint (the only one in an hour)
      // the race, made certain: the periodic checkpoint of worker 0 (which runs enc until the
      // commit) answers right after the move's restored state was put in place, before it is written
      const save = inside.saveStates.bind(proxy);
      let armed = true;
      inside.saveStates = async () => {
        if (armed) {
          armed = false;
          inside.checkpointDue.add(inside.workers[0]);
          assert.ok(await inside.refreshWorker(inside.workers[0]), "worker 0's checkpoint taken while the move commits");
        }
        return save();
      };
      await proxy.apply(validateProxyConfig(r.config({ workers: 2 }, 1)));
      await inside.stateWrites;
      copyFileSync(r.stateFile, copy); // what a SIGKILL now would leave
      moveIndex = await r.nextIndex();
      assert.ok(moveIndex >= 2 ** 22, `worker 1 restored enc's state: ${moveIndex}`);
    } finally {
      await proxy.close();
    }
    const again = await startProxy({ ...r.config({ workers: 2 }, 1), stateFile: copy });
    try {
      const index = await r.nextIndex();
      console.log(`  SRTCP index after the move ${moveIndex}, after a restart from the file the move left ${index}`);
      assert.ok(index > moveIndex, `a restart from the file the move left goes on past the moved segment's indexes (${index} after ${moveIndex})`);
    } finally {
      await again.proxy.close();
    }
  } finally {
    r.close();
  }
});

/** The rig's config with its srtp stage on a new entry of the filter, "srtp-v2" (a rollout). */
function rolledOut(base: ProxyConfigInput): ProxyConfigInput {
  const enc = base.segments![0]!;
  return {
    ...base,
    filters: { "srtp-v2": { path: filterWasm("srtp"), metricsName: "srtp" } },
    segments: [{ ...enc, chain: [{ ...enc.chain![0]!, filter: "srtp-v2" }] }],
  };
}

test("a reload that hands an srtp stage to a new entry of the filter (a rollout) saves the state it goes on from under the new entry, not a fresh one", async () => {
  const r = await inProcessRig();
  const copy = join(r.dir, "as-the-reload-left-it.json");
  const v2 = (): ProxyConfigInput => rolledOut(r.config());
  try {
    const { proxy } = await startProxy({ ...r.config(), filters: { srtp: { path: filterWasm("srtp"), metricsName: "srtp" } } });
    let swapIndex: number;
    try {
      for (let k = 0; k < 3; k++) await r.nextIndex();
      await sleep(1200); // past the first periodic checkpoint (the only one in an hour)
      await proxy.apply(validateProxyConfig(v2()));
      await (proxy as unknown as { stateWrites: Promise<void> }).stateWrites;
      copyFileSync(r.stateFile, copy); // what a SIGKILL now would leave
      swapIndex = await r.nextIndex();
      assert.is(swapIndex, 3, "the hot swap carried the SRTCP index on");
    } finally {
      await proxy.close();
    }
    const again = await startProxy({ ...v2(), stateFile: copy });
    try {
      const index = await r.nextIndex();
      // before the fix the file held a fresh state under srtp-v2, found before the family's: index 0 again
      assert.ok(index >= 2 ** 22, `a restart from the file the reload left goes on from the swapped state: SRTCP index ${index}`);
    } finally {
      await again.proxy.close();
    }
  } finally {
    r.close();
  }
});

test("a source new between a rollout's prepare and its commit: its ask exported the old stage, and the commit asks again, so that the file's state of the new entry knows it", async () => {
  const r = await inProcessRig();
  const NEW_SSRC = 0x5eedbeef;
  const v2 = (): ProxyConfigInput => rolledOut(r.config());
  const knows = (entry: string, ssrc: number): boolean => {
    const saved = JSON.parse(readFileSync(r.stateFile, "utf8")) as { stages: { filter: string; state: string }[] };
    const blob = Buffer.from(saved.stages.find((c) => c.filter === entry)?.state ?? "", "base64");
    const be = Buffer.alloc(4);
    be.writeUInt32BE(ssrc);
    const le = Buffer.from(be).reverse();
    return blob.includes(be) || blob.includes(le);
  };
  try {
    const { proxy } = await startProxy({ ...r.config(), filters: { srtp: { path: filterWasm("srtp"), metricsName: "srtp" } } });
    type W = { checkpoint(): Promise<unknown[]>; commit(): Promise<unknown[]> };
    const inside = proxy as unknown as { workers: W[]; stateWrites: Promise<void> };
    const tx = await bindUdp();
    try {
      await r.nextIndex();
      await sleep(1200); // past the first periodic checkpoint (the only one in an hour)
      assert.ok(knows("srtp", SSRC), "the blob names a source it knows (what this test reads)");
      const w = inside.workers[0]!;
      let rounds = 0;
      const checkpoint = w.checkpoint.bind(w);
      w.checkpoint = () => (rounds++, checkpoint());
      const commit = w.commit.bind(w);
      w.commit = async () => {
        // the change is prepared (the new entry's state, exported now, is in the file): a new source
        const before = r.indexes.length;
        const roundsBefore = rounds;
        tx.send(senderReport(NEW_SSRC, 1000, 0), r.listen + 1, LO);
        await waitFor(() => r.indexes.length > before, 5000, "the new source's SR protected");
        // the round it asked for, of the old stage, taken before the commit
        await waitFor(() => rounds > roundsBefore, 5000, "the round the new source asked for");
        await inside.stateWrites;
        return commit();
      };
      await proxy.apply(validateProxyConfig(v2()));
      await waitFor(async () => (await inside.stateWrites, knows("srtp-v2", NEW_SSRC)), 2000, "the new entry's state in the file to know the new source (before the fix: not until the next periodic checkpoint, an hour on)");
    } finally {
      tx.close();
      await proxy.close();
    }
  } finally {
    r.close();
  }
});

test("a filter instance restarted after a trap: the worker's states go to the stateFile at once, not at the next checkpoint", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-state-file-"));
  const stateFile = join(dir, "stage-state.json");
  const listen = await freePortPair();
  const sink = await Sink.open();
  const tx = await bindUdp();
  const { proxy, events } = await startProxy({
    stateFile, stateCheckpointMs: 3_600_000, // one checkpoint at the first tick, the next in an hour
    filters: { misbehave: { path: fixture("misbehave") }, counter: { path: fixture("counter") } },
    segments: [{
      name: "cam", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }],
      chain: [{ filter: "misbehave", config: {} }, { filter: "counter" }], failure: { mode: "closed", restartBackoffMs: 10 },
    }],
  });
  const saved = (): number => (existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, "utf8")) as { savedAtMs: number }).savedAtMs : 0);
  try {
    await waitFor(() => saved() > 0, 5000, "the first checkpoint saved");
    await sleep(300);
    const trapAt = Date.now();
    const trap = Buffer.from(indexedRtp(1));
    trap[12] = 0xde; // misbehave traps on this packet: its instance is restarted from its checkpoint
    tx.send(trap, listen, LO);
    await waitFor(() => events.some((e) => e.type === "restarted" && e.filter === "misbehave"), 5000, "the filter restarted");
    await waitFor(() => saved() > trapAt, 3000, "the states saved after the restart (before the fix: at the next checkpoint, an hour later)");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a checkpoint asked for while the worker still answers a refresh waits for its answer: no stateFile write without a checkpoint taken, then one with it", async () => {
  const r = await inProcessRig();
  const saved = (): number => (existsSync(r.stateFile) ? (JSON.parse(readFileSync(r.stateFile, "utf8")) as { savedAtMs: number }).savedAtMs : 0);
  try {
    const { proxy } = await startProxy(r.config());
    type W = { refresh(): Promise<void> };
    type Inside = { workers: W[]; refreshWorker(w: W): Promise<boolean>; checkpointWished(w: W): void; saveStates(): Promise<void> };
    const inside = proxy as unknown as Inside;
    try {
      await r.nextIndex();
      await sleep(1200); // past the first periodic checkpoint (the only one in an hour)
      const w = inside.workers[0]!;
      const refresh = w.refresh.bind(w);
      w.refresh = async () => (await sleep(300), refresh()); // a worker slow to answer
      let writes = 0;
      const save = inside.saveStates.bind(proxy);
      inside.saveStates = () => (writes++, save());
      const refreshed = inside.refreshWorker(w); // the counters' refresh, in flight (w is not due)
      const asked = Date.now();
      inside.checkpointWished(w); // a new source's first packet asks meanwhile
      await sleep(200);
      assert.is(writes, 0, "nothing written while no checkpoint could be taken (a version of 2026-12-06 wrote one each 50 ms)");
      await refreshed;
      await waitFor(() => saved() > asked, 2000, "the checkpoint asked for, saved once the worker answered");
      assert.is(writes, 1, "one write, with the checkpoint");
    } finally {
      await proxy.close();
    }
  } finally {
    r.close();
  }
});

test("a stateFile write that does not end (a hung disk) does not hold the periodic checkpoint rounds back: the workers' restarts go on finding recent states", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-state-file-"));
  const listen = await freePortPair();
  const { proxy } = await startProxy({
    stateFile: join(dir, "stage-state.json"), stateCheckpointMs: 200,
    filters: { counter: { path: fixture("counter") } },
    segments: [{ name: "cam", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: listen + 2 }], chain: [{ filter: "counter" }] }],
  });
  const inside = proxy as unknown as { workers: { checkpoint(): Promise<unknown[]> }[]; stateWrites: Promise<void> };
  try {
    await sleep(500);
    let rounds = 0;
    const w = inside.workers[0]!;
    const checkpoint = w.checkpoint.bind(w);
    w.checkpoint = () => (rounds++, checkpoint());
    let release = (): void => {};
    inside.stateWrites = inside.stateWrites.then(() => new Promise<void>((r) => (release = r))); // the next write does not end (an fsync on a stuck mount)
    await sleep(2500);
    release();
    console.log(`  ${rounds} checkpoint rounds in 2.5 s while a write hung (period 200 ms)`);
    // a version of 2026-12-06 took one (no round was taken while a write was pending)
    assert.ok(rounds >= 4, `${rounds} rounds in 2.5 s`);
  } finally {
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("while the stateFile cannot be written, a change that brings no state (a segment removed) goes through, and one that creates an srtp stage is refused naming the file", async () => {
  const r = await inProcessRig();
  const plainPort = await freePortPair();
  const enc2Port = await freePortPair();
  const withSegments = (...names: string[]): ProxyConfigInput => {
    const base = r.config();
    const enc = base.segments![0]!;
    const all = {
      enc,
      plain: { name: "plain", listen: { address: LO, port: plainPort }, destinations: [{ address: LO, port: plainPort + 2 }] },
      enc2: { ...enc, name: "enc2", listen: { address: LO, port: enc2Port } },
    } as Record<string, NonNullable<ProxyConfigInput["segments"]>[number]>;
    return { ...base, segments: names.map((n) => all[n]!) };
  };
  const { proxy, events } = await startProxy(withSegments("enc", "plain"));
  try {
    await r.nextIndex();
    // a file where the stateFile's directory was: every write fails (a missing directory would be made)
    rmSync(r.dir, { recursive: true, force: true });
    writeFileSync(r.dir, "not a directory");
    // before the fix this was refused too ("cannot save the new stages' state"), with no new stage
    await proxy.apply(validateProxyConfig(withSegments("enc")));
    assert.equal(proxy.currentConfig.segments.map((s) => s.name), ["enc"], "the segment was removed");
    const refused = await proxy.apply(validateProxyConfig(withSegments("enc", "enc2"))).then(() => undefined, (err: Error) => err);
    assert.ok(refused, "a change that creates an srtp stage is refused while its state cannot be saved");
    assert.match(refused!.message, /config not applied, the running config is unchanged/);
    assert.match(refused!.message, /stateFile .*stage-state\.json: cannot save the new stages' state, so they do not start/);
    assert.equal(proxy.currentConfig.segments.map((s) => s.name), ["enc"], "the running config stays");
    assert.ok(events.some((e) => e.type === "error" && /cannot save the stages' state/.test(e.message)), "the failed write is said");
  } finally {
    await proxy.close();
    r.close();
  }
});

test.run();
