// Worker restart: how long a segment goes without packets when its worker is restarted (the
// watchdog ending a filter stuck in an endless loop), with the spare worker (spareWorker, the
// default) against without, interleaved in one run on one machine (docs/benchmarks.md).
//
//   node dist/bench/restart.js [--repeats N]      (or: bun dist/bench/restart.js, for Bun's workers)
//
// One proxy per trial, in this process, one worker: a segment "stuck" whose filter (the
// misbehave fixture) never returns from one packet, and a bystander segment on the same worker
// with a plain counter, fed 2,000 packets a second. Measured per trial: the watchdog's event to
// the worker's return (worker-restarted), and the bystander's longest gap between two packets at
// its sink (the stall until the watchdog fires, plus the restart), and how many of the bystander's
// packets never arrived (none should: the killed worker's listen sockets stay bound for its
// replacement, which reads what they hold; under Bun through the proxy's duplicates of them).
// Printed: the median of each mode and the ratio spare / none.
import dgram from "node:dgram";
import { join } from "node:path";
import { Proxy, validateProxyConfig, type ProxyEvent } from "../runtime/index.js";
import { median, ROOT, round, sleep } from "./common.js";

const MISBEHAVE = join(ROOT, "test", "fixtures", "filters", "build", "misbehave.wasm");
const COUNTER = join(ROOT, "test", "fixtures", "filters", "build", "counter.wasm");
const RATE = 2000;
const STUCK_MS = 100;
const TRIAL_LIMIT_MS = 10_000;

interface Trial {
  readonly restartMs: number;
  readonly gapMs: number;
  /** Bystander packets sent that its sink never got (the kernel's drops at the sink included). */
  readonly lost: number;
  readonly sent: number;
}

async function bound(port = 0): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(port, "127.0.0.1", r));
  return s;
}

function packet(i: number, command = 0): Buffer {
  const b = Buffer.alloc(100);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt16BE(i & 0xffff, 2);
  b.writeUInt32BE(0x5eed, 8);
  b.writeUInt32BE(i, 12);
  if (command !== 0) b[12] = command; // misbehave: 0xAD loops forever
  return b;
}

export async function restartTrial(spareWorker: boolean): Promise<Trial> {
  const sink = await bound();
  sink.setRecvBufferSize(4 << 20); // room for the burst a restart's backlog arrives in
  const ports = [await bound(), await bound()].map((s) => {
    const p = (s.address() as { port: number }).port;
    s.close();
    return p;
  });
  let lastAt = 0;
  let gapMs = 0;
  let received = 0;
  sink.on("message", () => {
    received++;
    const now = performance.now();
    if (lastAt > 0) gapMs = Math.max(gapMs, now - lastAt);
    lastAt = now;
  });
  const at: Partial<Record<ProxyEvent["type"], number>> = {};
  const proxy = await Proxy.start(validateProxyConfig({
    workers: 1, spareWorker, watchdog: { stuckMs: STUCK_MS },
    filters: { misbehave: { path: MISBEHAVE }, counter: { path: COUNTER } },
    segments: [
      { name: "stuck", listen: { address: "127.0.0.1", port: ports[0]! }, destinations: [{ address: "127.0.0.1", port: 9 }], chain: [{ filter: "misbehave" }] },
      { name: "bystander", listen: { address: "127.0.0.1", port: ports[1]! }, destinations: [{ address: "127.0.0.1", port: (sink.address() as { port: number }).port }], chain: [{ filter: "counter" }] },
    ],
  }), (e) => void (at[e.type] ??= performance.now()));
  const tx = await bound();
  try {
    await sleep(1500); // the spare is up a second after the start
    let i = 0;
    const started = performance.now();
    let looped = false;
    // bounded: 10 s of packets at most (a restart takes a fraction of a second, but a loaded
    // machine once took over 2.5 s: the test of this bench runs beside other tests)
    while (performance.now() - started < TRIAL_LIMIT_MS) {
      const due = Math.floor(((performance.now() - started) / 1000) * RATE);
      while (i < due) tx.send(packet(i++), ports[1]!, "127.0.0.1");
      if (!looped && performance.now() - started > 500) {
        looped = true;
        tx.send(packet(0, 0xad), ports[0]!, "127.0.0.1");
      }
      if (at["worker-restarted"] !== undefined && performance.now() - at["worker-restarted"]! > 500) break;
      await sleep(1);
    }
    await sleep(300); // what waited in the listen socket's queue is through by then
    if (at.watchdog === undefined || at["worker-restarted"] === undefined) throw new Error(`the worker was not restarted within ${TRIAL_LIMIT_MS / 1000} s`);
    return { restartMs: at["worker-restarted"]! - at.watchdog, gapMs, lost: i - received, sent: i };
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
}

export async function runRestart(repeats: number): Promise<{ spare: Trial[]; none: Trial[] }> {
  const spare: Trial[] = [];
  const none: Trial[] = [];
  for (let k = 0; k < repeats; k++) {
    spare.push(await restartTrial(true));
    none.push(await restartTrial(false));
  }
  return { spare, none };
}

async function main(): Promise<void> {
  const at = process.argv.indexOf("--repeats");
  const repeats = at >= 0 ? Number(process.argv[at + 1]) : 5;
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 50) throw new Error("--repeats takes 1..50");
  const { spare, none } = await runRestart(repeats);
  const runtime = "Bun" in globalThis ? "bun" : `node ${process.version}`;
  const line = (label: string, t: Trial[]) =>
    `${label.padEnd(6)} restart ${round(median(t.map((x) => x.restartMs)))} ms (${t.map((x) => Math.round(x.restartMs)).join(", ")}), bystander gap ${round(median(t.map((x) => x.gapMs)))} ms, lost ${t.map((x) => `${x.lost}/${x.sent}`).join(", ")}`;
  console.log(`worker restart (${runtime}, ${repeats} interleaved repeats, watchdog.stuckMs ${STUCK_MS}, ${RATE} packets/s on the bystander)`);
  console.log(line("spare", spare));
  console.log(line("none", none));
  const ratio = (f: (t: Trial) => number) => round(median(spare.map(f)) / median(none.map(f)), 2);
  console.log(`ratio spare/none: restart ${ratio((t) => t.restartMs)}, bystander gap ${ratio((t) => t.gapMs)}`);
}

if (process.argv[1]?.endsWith("restart.js")) await main();
