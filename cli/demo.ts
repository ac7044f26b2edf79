// `msm demo`: a proxy with a validate chain between a generated RTP stream (with a share of
// malformed packets) and a sink, live counters on the terminal, and a summary that checks the
// outcome: every good packet delivered, every bad one dropped and counted by reason.
import { createSocket, type Socket } from "node:dgram";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DropWatch, dropReasonName, Proxy, startAdminServer, validateProxyConfig, type SegmentSnapshot } from "../runtime/index.js";
import { buildRtp, hostileRtp } from "../sdk/harness/packets.js";
import { describeEvent } from "./proxy-command.js";
import { numberFlag, parseFlags, UsageError } from "./usage.js";

const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");
const VALIDATE = join(ROOT, "filters", "validate", "build", "validate.wasm");

async function bindUdp(port: number): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(port, "127.0.0.1", () => {
      s.off("error", reject);
      resolve();
    });
  });
  return s;
}

/** An even port P with P and P+1 free on 127.0.0.1 (RTP and RTCP). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const p = 20000 + 2 * Math.floor(Math.random() * 20000);
    try {
      const a = await bindUdp(p);
      const b = await bindUdp(p + 1).catch((e: Error) => {
        a.close();
        throw e;
      });
      a.close();
      b.close();
      return p;
    } catch {
      // taken: try another
    }
  }
  throw new Error("no free UDP port pair found on 127.0.0.1");
}

export async function runDemo(args: readonly string[]): Promise<number> {
  const { flags, rest } = parseFlags(args, ["seconds", "rate", "bad-percent"]);
  if (rest.length > 0) throw new UsageError(`unexpected '${rest[0]}'`);
  const seconds = numberFlag(flags, "seconds", 8, 1, 3600);
  const rate = numberFlag(flags, "rate", 1000, 1, 50_000);
  const badPercent = numberFlag(flags, "bad-percent", 5, 0, 100);
  if (!existsSync(VALIDATE)) {
    console.error(`msm demo: ${VALIDATE} is missing: run npm install (it builds the filters)`);
    return 1;
  }

  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const config = validateProxyConfig({
    workers: 1,
    stateCheckpointMs: 0, // a demo restarts nothing: no checkpoints, and no warning that a restart would lose them
    filters: { validate: { path: VALIDATE } },
    segments: [{
      name: "demo",
      listen: { address: "127.0.0.1", port: listen },
      destinations: [{ address: "127.0.0.1", port: sinkPort }],
      chain: [{ filter: "validate", config: { allowedPayloadTypes: [96], maxSize: 1500 } }],
    }],
  });
  const proxy = await Proxy.start(config);
  proxy.on("event", (e) => console.error(`  [proxy] ${describeEvent(e)}`));
  const admin = await startAdminServer(proxy, "127.0.0.1", 0);
  const sink = await bindUdp(sinkPort);
  const sender = createSocket("udp4");
  // a busy machine's loss: datagrams the kernel dropped at a full socket, the proxy's or the sink's
  const kernelWatch = new DropWatch([listen, sinkPort]);
  const kernelDrops = (): { listen: number; sink: number } => {
    const { byPort } = kernelWatch.since();
    return { listen: byPort[listen]!, sink: byPort[sinkPort]! };
  };
  const seen = new Set<number>();
  let delivered = 0;
  let duplicates = 0;
  sink.on("message", (msg) => {
    delivered++;
    const seq = msg.readUInt16BE(2);
    if (seen.has(seq)) duplicates++;
    seen.add(seq);
  });

  console.log(`msm demo: ${rate} packets/s for ${seconds} s, ${badPercent}% malformed`);
  console.log(`  sender -> 127.0.0.1:${listen} [proxy: validate] -> sink 127.0.0.1:${sinkPort}`);
  console.log(`  Prometheus metrics while it runs: http://127.0.0.1:${admin.port}/metrics\n`);

  const injected = new Map<string, number>();
  let goodSent = 0;
  let badSent = 0;
  let seq = 0;
  let badIndex = 0;
  const total = Math.round(rate * seconds);
  const started = Date.now();
  const tty = process.stdout.isTTY === true;
  let lastPrint = 0;

  const printLive = async (final: boolean): Promise<void> => {
    const snap = await proxy.stats();
    const seg = snap.segments[0];
    const line = `  t=${((Date.now() - started) / 1000).toFixed(1)}s  sent ${goodSent} good + ${badSent} bad  ->  delivered ${delivered}  dropped ${seg?.dropsTotal ?? 0}`;
    if (tty && !final) process.stdout.write(`\r${line}   `);
    else console.log(line);
  };

  // Paced sending: each millisecond tick sends what is due, so the rate holds without a busy loop.
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * rate));
      while (goodSent + badSent < due) {
        if (Math.random() * 100 < badPercent) {
          const catalogue = hostileRtp(seq);
          const bad = catalogue[badIndex++ % catalogue.length]!;
          injected.set(dropReasonName(bad.reason), (injected.get(dropReasonName(bad.reason)) ?? 0) + 1);
          sender.send(bad.bytes, listen, "127.0.0.1");
          badSent++;
        } else {
          sender.send(buildRtp({ seq: seq & 0xffff, ssrc: 0x5eed, payloadSize: 1000 }), listen, "127.0.0.1");
          seq++;
          goodSent++;
        }
      }
      if (Date.now() - lastPrint >= 500) {
        lastPrint = Date.now();
        void printLive(false);
      }
      if (goodSent + badSent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  // the last packets land: until every packet is accounted for, or nothing moved for half a
  // second (a busy machine's worker may be seconds behind; 300 ms fixed read its backlog as loss)
  const accounted = async (): Promise<{ seg: SegmentSnapshot; all: boolean; progress: number }> => {
    const seg = (await proxy.stats()).segments[0]!;
    const k = kernelDrops();
    const progress = delivered + seg.dropsTotal + k.listen + k.sink;
    return { seg, all: progress >= goodSent + badSent, progress };
  };
  let settle = await accounted();
  for (let quietSince = Date.now(), until = Date.now() + 10_000; !settle.all && Date.now() - quietSince < 500 && Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 50));
    const next = await accounted();
    if (next.progress !== settle.progress) quietSince = Date.now();
    settle = next;
  }
  if (tty) process.stdout.write("\n");
  const seg = settle.seg;
  const kernel = kernelDrops();
  const stage = seg.stages[0];

  console.log("\nSummary");
  console.log(`  good packets sent      ${goodSent}`);
  console.log(`  good packets delivered ${seen.size}${duplicates ? ` (+${duplicates} duplicates)` : ""}`);
  console.log(`  malformed sent         ${badSent}`);
  console.log(`  dropped by validate    ${seg.dropsTotal}`);
  const perBatch = stage && stage.calls > 0 ? stage.packetsIn / stage.calls : 0;
  console.log(`  time in filter         ${stage ? stage.nsPerPacket.toFixed(0) : "?"} ns/packet (copy in, call, read back; ${perBatch.toFixed(1)} packets per batch)`);
  if (perBatch < 4) console.log("                         (small batches at a low rate run cache-cold: npm run bench measures the steady cost)");
  console.log("\n  drop reason            injected   counted by the proxy");
  const reasons = new Set([...injected.keys(), ...Object.keys(seg.drops)]);
  for (const r of [...reasons].sort()) {
    console.log(`  ${r.padEnd(22)} ${String(injected.get(r) ?? 0).padStart(8)}   ${String(seg.drops[r] ?? 0).padStart(8)}`);
  }
  // RFC 3550 A.1: a new source is on probation until MIN_SEQUENTIAL packets arrive in sequence,
  // so the validator holds back the first packet of the stream; that is by design, not loss.
  const probation = seg.drops.probation ?? 0;
  if (probation > 0) console.log(`\n  (probation: the first ${probation} packet(s) of the new source, held back by RFC 3550 A.1 until MIN_SEQUENTIAL packets arrive in order)`);
  const verdict = demoVerdict({ goodSent, badSent, probation, goodArrived: seen.size, duplicates, validateDrops: seg.dropsTotal, kernel });
  for (const line of verdict.lines) console.log(line);
  sender.close();
  sink.close();
  await admin.close();
  await proxy.close();
  return verdict.ok ? 0 : 1;
}

export interface DemoCounts {
  goodSent: number;
  badSent: number;
  /** The stream's first packets validate held back and gave up (RFC 3550 A.1 probation): counted among its drops. */
  probation: number;
  goodArrived: number;
  duplicates: number;
  validateDrops: number;
  /** Datagrams the kernel dropped at a full socket buffer: the proxy's listen socket, the sink's. */
  kernel: { listen: number; sink: number };
}

/**
 * The demo's verdict: OK when every good packet arrived once and validate counted every malformed
 * one, but for what the kernel dropped at a full socket on a busy machine (either kind at the
 * proxy's socket, good ones at the sink's), which it says; NOT OK for loss nothing explains.
 */
export function demoVerdict(c: DemoCounts): { ok: boolean; lines: string[] } {
  const goodMissing = c.goodSent - c.probation - c.goodArrived;
  const badMissing = c.badSent - (c.validateDrops - c.probation);
  const byKernel = c.kernel.listen + c.kernel.sink;
  const ok = c.duplicates === 0 && badMissing >= 0 && goodMissing + badMissing <= byKernel;
  const lines: string[] = [];
  if (byKernel > 0) {
    lines.push(`\n  the kernel dropped ${byKernel} packet(s) at a full socket buffer before anyone read them (the proxy's listen socket ${c.kernel.listen}, the sink's ${c.kernel.sink}): a busy machine, not the proxy`);
  }
  const good = goodMissing === 0 ? "every good packet arrived once" : `${goodMissing} good packet(s) missing`;
  const bad = badMissing === 0 ? "every malformed packet was dropped and counted"
    : badMissing > 0 ? `${badMissing} malformed packet(s) not counted by validate` : `${-badMissing} more packet(s) dropped by validate than were malformed`;
  const head = !ok ? "NOT OK" : byKernel > 0 ? "OK, but for the kernel's drops above" : "OK";
  lines.push(`\n${head}: ${good}; ${bad}${c.duplicates > 0 ? `; ${c.duplicates} duplicate(s)` : ""}.`);
  return { ok, lines };
}
