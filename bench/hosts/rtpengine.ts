// An rtpengine baseline for the end-to-end benchmark: the rtpengine 10.5 daemon (Debian's
// rtpengine-daemon) forwarding in user space, with one call set up through its ng control
// protocol so that RTP sent to one of its ports goes to 127.0.0.1:<sinkPort>, unchanged.
//
// The call. The generator is party A (the offerer), the sink party B (the answerer):
//   offer  from-tag "generator", SDP: c=127.0.0.1, m=audio 9 RTP/AVP 96, a=sendonly
//          (A receives nothing, so its port is the conventional placeholder 9);
//   answer to-tag "sink", SDP: c=127.0.0.1, m=audio <sinkPort> RTP/AVP 96, a=recvonly.
// The SDP rtpengine returns with the answer (what A would be told) holds the port A sends to:
// that is `port`. Packets arriving there are forwarded to B's SDP address from rtpengine's
// B-facing port. No flags: without `strict-source` rtpengine forwards packets from any source
// address, so the generator's ephemeral port need not be known (checked: a second source port,
// before and after the address is confirmed, is forwarded too), and without transcoding,
// SRTP, ICE or SSRC options the packets pass through byte for byte (checked by the test).
//
// The daemon (see `daemonArgs`): user space only, foreground, log on stderr, loopback only, the
// ng listener and a small media port range on free loopback ports, no config file (Debian's
// /etc/rtpengine/rtpengine.conf asks for the kernel table and every interface), a temp
// directory as its working directory.
//
// Overload: rtpengine reads a media socket at most 50 packets per wake-up (its poller is
// edge-triggered); a wake-up that has read 50 and still finds packets queued counts a strike
// against the socket and leaves the rest queued until the next packet arrives; a wake-up that
// drains the queue takes a strike back; at 5 strikes it stops reading that socket for good
// ("UDP receive queue exceeded 5 times: discarding packet", logged at the next wake-up). So one
// overloaded trial would fail every later one: `beforeTrial()` starts a fresh daemon and call
// (and `port` may change). It also makes rtpengine's result depend on how bursty the sender is
// more than on its CPU: it spends 3.4-3.8 us of CPU per packet (bench/RESULTS.md), yet any >50-packet burst
// between two of its reads is a strike. Measured here with a Node sender that catches up in
// bursts, the stream died at 5-20k pps in some trials; with a smooth (busy-waiting) sender it
// carried 40k pps without a strike, and in some trials 80-100k pps with under 1% loss.
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NgClient } from "./ng-client.js";
import type { RelayProcess } from "./relay-process.js";
import { isGone, stopProcess } from "./spawn.js";

export const RTPENGINE = "rtpengine";

/**
 * Worker threads. The machine has 2 cores, so 2 workers, one per core: rtpengine's own rule is
 * one per core, but it raises anything below 4 to 4, and more workers than cores only adds
 * context switches. All workers share one edge-triggered poller, so while one worker is busy
 * with the socket another can take its next wake-up. (1, 2 and 4 workers gave no consistent
 * difference here: the strike rule above decides far more than the thread count.) Media
 * playback threads (--media-num-threads) are off: nothing plays media.
 */
export const RTPENGINE_THREADS = 2;

/**
 * Receive buffer. rtpengine 10.5 has no option for its media sockets' SO_RCVBUF (none in
 * `--help` or the man page) and does not set it: `ss -uam` shows rb212992 on its media socket,
 * the kernel default net.core.rmem_default (the "~208 KB"). We leave it there rather than raise
 * that machine-wide sysctl for everyone: a longer queue would not raise rtpengine's sustainable
 * rate, because a wake-up that finds more than 50 packets queued is already a strike (see
 * above), and the default buffer already holds more than 50 packets of every size the benchmark
 * sends (measured on loopback: 256 of 60 bytes, 166 of 200, 92 of 1200-1400; only jumbo
 * datagrams, 12 of 8000 bytes, would be dropped by the kernel first). The other relays' 4 MiB
 * buffers help them through bursts that would cost rtpengine a strike anyway.
 */

/** Media ports for the daemon: 2 parties x (RTP + RTCP) = 4, with room for its random picks. */
const MEDIA_PORTS = 16;
const READY_TIMEOUT_MS = 10_000;
const NG_TIMEOUT_MS = 3000;
const ATTEMPTS = 5;
const STDERR_KEEP = 16_384;
/** Media timeouts: a trial's stream must never be torn down for silence between trials. */
const MEDIA_TIMEOUT_S = 86_400;

export interface RtpengineRelay extends RelayProcess {
  /**
   * Lines the current daemon logged about an overfull receive queue: strikes ("Too many packets
   * in UDP receive queue") and the final verdict. rtpengine rate-limits these lines, so this
   * says whether it happened, not how often.
   */
  queueOverflowLogs(): number;
  /** True once the current daemon said it stopped reading a media socket ("UDP receive queue exceeded"). */
  stoppedForwarding(): boolean;
}

export function daemonArgs(ngPort: number, portMin: number, portMax: number, threads = RTPENGINE_THREADS): string[] {
  return [
    "--config-file=none", // not Debian's /etc/rtpengine/rtpengine.conf
    "--foreground",
    "--log-stderr",
    "--log-level=5", // notices and worse: the queue-overflow errors show, per-packet debug does not
    "--table=-1", // no kernel forwarding: user space only
    "--interface=127.0.0.1",
    `--listen-ng=127.0.0.1:${ngPort}`,
    `--port-min=${portMin}`,
    `--port-max=${portMax}`,
    `--num-threads=${threads}`,
    "--media-num-threads=0", // media playback threads: nothing here plays media
    // Confirm the sender's address on its first packet: with the default ("delayed") that
    // happens 3 s into every trial, a change of state in the middle of a measurement. Either
    // way packets from other addresses are still forwarded (no strict-source).
    "--endpoint-learning=immediate",
    `--timeout=${MEDIA_TIMEOUT_S}`,
    `--silent-timeout=${MEDIA_TIMEOUT_S}`,
  ];
}

function sdp(sessionId: number, port: number, direction: "sendonly" | "recvonly"): string {
  return [
    "v=0",
    `o=- ${sessionId} 1 IN IP4 127.0.0.1`,
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    `m=audio ${port} RTP/AVP 96`,
    "a=rtpmap:96 opus/48000/2",
    `a=${direction}`,
    "",
  ].join("\r\n");
}

async function bindLoopback(port: number): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    s.once("error", (e) => {
      s.close();
      reject(e);
    });
    s.bind(port, "127.0.0.1", () => resolve());
  });
  return s;
}

async function closeAll(sockets: readonly Socket[]): Promise<void> {
  await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
}

/** A free port for the ng listener and a range of `MEDIA_PORTS` free ports (even start) for media. */
async function pickPorts(): Promise<{ ngPort: number; portMin: number; portMax: number }> {
  for (let tries = 0; tries < 100; tries++) {
    const portMin = 20000 + 2 * Math.floor(Math.random() * 10000);
    const held: Socket[] = [];
    try {
      for (let p = portMin; p < portMin + MEDIA_PORTS; p++) held.push(await bindLoopback(p));
      held.push(await bindLoopback(0));
      const ngPort = held[held.length - 1]!.address().port;
      return { ngPort, portMin, portMax: portMin + MEDIA_PORTS - 1 };
    } catch {
      // one of them is taken: another range
    } finally {
      await closeAll(held);
    }
  }
  throw new Error("no free range of loopback UDP ports for rtpengine");
}

interface Daemon {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly ng: NgClient;
  port: number;
  stderr(): string;
  overflows(): number;
  stopped(): boolean;
}

async function stopDaemon(d: Daemon): Promise<void> {
  d.ng.close();
  await stopProcess(d.child);
  rmSync(d.dir, { recursive: true, force: true });
}

class StartFailure extends Error {
  constructor(message: string, readonly retry: boolean) {
    super(message);
  }
}

/** One daemon with one call through it; throws StartFailure (retry = ports were taken). */
async function startDaemon(sinkPort: number, threads: number): Promise<Daemon> {
  const { ngPort, portMin, portMax } = await pickPorts();
  const args = daemonArgs(ngPort, portMin, portMax, threads);
  const command = `${RTPENGINE} ${args.join(" ")}`;
  const dir = mkdtempSync(join(tmpdir(), "msm-bench-rtpengine-"));
  const child = spawn(RTPENGINE, args, { cwd: dir, env: { ...process.env, TMPDIR: dir }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let overflows = 0;
  let stopped = false;
  let partial = "";
  const keep = (chunk: Buffer): void => {
    const text = chunk.toString();
    stderr = (stderr + text).slice(-STDERR_KEEP);
    const lines = (partial + text).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      if (/UDP receive queue/.test(line)) overflows++;
      if (/UDP receive queue exceeded/.test(line)) stopped = true;
    }
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  let spawnError: Error | undefined;
  child.once("error", (e) => (spawnError = e)); // could not start (ENOENT): no "exit" follows
  const ng = await NgClient.open(ngPort);
  const d: Daemon = { child, dir, ng, port: 0, stderr: () => stderr, overflows: () => overflows, stopped: () => stopped };
  const fail = async (why: string, retry: boolean): Promise<never> => {
    await stopDaemon(d);
    throw new StartFailure(`${command}: ${why}\n--- its stderr (last lines) ---\n${stderr.split("\n").slice(-30).join("\n")}`, retry);
  };

  // Ready when it answers a ping (its ng socket is bound and its threads run).
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (true) {
    if (spawnError) return fail(`could not start: ${spawnError.message}`, false);
    if (isGone(child)) {
      if (child.pid === undefined && !spawnError) {
        await new Promise((r) => setImmediate(r)); // the spawn error is on its way
        continue;
      }
      const taken = /in use|Failed to (open|bind|create)|bind.*failed/i.test(stderr);
      return fail(`exited (${child.signalCode ?? `code ${child.exitCode}`}) before it answered a ping`, taken);
    }
    if (Date.now() > deadline) return fail(`no answer to an ng ping within ${READY_TIMEOUT_MS} ms`, false);
    try {
      await ng.call({ command: "ping" }, 50);
      break;
    } catch {
      // not listening yet
    }
  }

  // One call: the generator offers, the sink answers.
  const callId = `msm-bench-${process.pid}-${Date.now()}`;
  let answer;
  try {
    await ng.call({ command: "offer", "call-id": callId, "from-tag": "generator", sdp: sdp(1, 9, "sendonly") }, NG_TIMEOUT_MS);
    answer = await ng.call(
      { command: "answer", "call-id": callId, "from-tag": "generator", "to-tag": "sink", sdp: sdp(2, sinkPort, "recvonly") },
      NG_TIMEOUT_MS,
    );
  } catch (e) {
    // "Ran out of ports" when something else took ports of the range since we checked it.
    const msg = (e as Error).message;
    return fail(`setting up the call failed: ${msg}`, /port/i.test(msg));
  }
  const answerSdp = String(answer.sdp ?? "");
  const m = /^m=audio (\d+) /m.exec(answerSdp);
  const c = /^c=IN IP4 (\S+)/m.exec(answerSdp);
  if (!m || c?.[1] !== "127.0.0.1") return fail(`unexpected SDP in the answer's reply:\n${answerSdp}`, false);
  d.port = Number(m[1]);
  return d;
}

/** Starts rtpengine with one call forwarding RTP sent to `port` to 127.0.0.1:`sinkPort`. */
export async function startRtpengineRelay(sinkPort: number): Promise<RtpengineRelay> {
  const start = async (): Promise<Daemon> => {
    let last: Error | undefined;
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        return await startDaemon(sinkPort, RTPENGINE_THREADS);
      } catch (e) {
        last = e as Error;
        if (!(e instanceof StartFailure) || !e.retry) throw e;
      }
    }
    throw new Error(`gave up after ${ATTEMPTS} attempts; the last:\n${last?.message}`);
  };

  let daemon: Daemon | null = await start();
  // beforeTrial and close run one at a time, in call order.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  };
  let closed = false;

  return {
    name: "rtpengine",
    get port() {
      if (!daemon) throw new Error("rtpengine relay: no daemon (closed, or beforeTrial failed)");
      return daemon.port;
    },
    pids: () => (daemon && !isGone(daemon.child) ? [daemon.child.pid!] : []),
    queueOverflowLogs: () => daemon?.overflows() ?? 0,
    stoppedForwarding: () => daemon?.stopped() ?? false,
    beforeTrial: () =>
      serial(async () => {
        if (closed) throw new Error("rtpengine relay: beforeTrial after close");
        const old = daemon;
        daemon = null;
        if (old) await stopDaemon(old);
        daemon = await start();
      }),
    close: () =>
      serial(async () => {
        closed = true;
        const old = daemon;
        daemon = null;
        if (old) await stopDaemon(old);
      }),
  };
}
