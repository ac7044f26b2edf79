// GStreamer baselines: `udpsrc ! udpsink` for the end-to-end benchmark, which hands every
// datagram udpsrc receives, as one buffer, to udpsink, which sends it as one datagram; and
// `udpsrc ! multiudpsink` for the fan-out part, which sends each buffer to every one of its
// clients. Nothing parses or rewrites the packets. udpsrc asks for the same 4 MiB receive buffer
// as the other relays (bench/relay.ts, the proxy), so no side gets a socket trick the other lacks.
//
// gst-launch-1.0 -q prints nothing when it is up, so readiness is read from the kernel: the
// process is ready once /proc/net/udp shows a socket on the chosen port whose inode is one of
// its file descriptors. From then on datagrams sent to the port are queued, whatever state the
// pipeline is in. A port taken between our check and its bind ("bind failed") means another try
// with another port.
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { RelayProcess } from "./relay-process.js";
import { freeUdpPort, isGone, stopProcess } from "./spawn.js";

export const GST_LAUNCH = "gst-launch-1.0";
const RECEIVE_BUFFER = 4 << 20;
const READY_TIMEOUT_MS = 10_000;
const ATTEMPTS = 5;
const STDERR_KEEP = 8192;

/** Inodes of the UDP (IPv4) sockets bound to local port `port`, from /proc/net/udp. */
export function udpSocketInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  let table: string;
  try {
    table = readFileSync("/proc/net/udp", "utf8");
  } catch {
    return inodes;
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of table.split("\n").slice(1)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    if (f[1]!.split(":")[1] === hexPort) inodes.add(f[9]!);
  }
  return inodes;
}

/** True if process `pid` holds one of the sockets `inodes` (checked through /proc/PID/fd). */
export function ownsSocket(pid: number, inodes: ReadonlySet<string>): boolean {
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && inodes.has(m[1]!)) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

function gstArgs(port: number, sink: readonly string[]): string[] {
  return ["-q", "udpsrc", "address=127.0.0.1", `port=${port}`, `buffer-size=${RECEIVE_BUFFER}`, "!", ...sink, "sync=false", "async=false"];
}

interface Attempt {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  stderr(): string;
}

function launch(args: readonly string[]): Attempt {
  const child = spawn(GST_LAUNCH, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  const keep = (d: Buffer): void => {
    stderr = (stderr + d.toString()).slice(-STDERR_KEEP);
  };
  // gst-launch prints its errors on stderr and, with -q, nothing else; both pipes are drained
  // so that it can never block on a full one.
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
    child.once("error", () => resolve()); // spawn failed (ENOENT): "exit" may never come
  });
  return { child, exited, stderr: () => stderr };
}

/**
 * Starts `gst-launch-1.0 udpsrc ! udpsink` forwarding from a free loopback port to
 * 127.0.0.1:`sinkPort`, and resolves once its socket is bound.
 */
export function startGstreamerRelay(sinkPort: number): Promise<RelayProcess> {
  return startGstreamer("gstreamer", ["udpsink", "host=127.0.0.1", `port=${sinkPort}`]);
}

/**
 * Starts `gst-launch-1.0 udpsrc ! multiudpsink` sending every datagram from a free loopback port
 * to each of `clients`, and resolves once its socket is bound.
 */
export function startGstreamerFanout(clients: readonly { address: string; port: number }[]): Promise<RelayProcess> {
  return startGstreamer("multiudpsink", ["multiudpsink", `clients=${clients.map((c) => `${c.address}:${c.port}`).join(",")}`]);
}

/** Starts `gst-launch-1.0 udpsrc ! SINK...` on a free loopback port; resolves once its socket is bound. */
async function startGstreamer(name: string, sink: readonly string[]): Promise<RelayProcess> {
  let lastError = "";
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const port = await freeUdpPort();
    const args = gstArgs(port, sink);
    // (a thousand clients make a long argument: messages show its start)
    const command = `${GST_LAUNCH} ${args.map((a) => (a.length > 120 ? `${a.slice(0, 120)}...` : a)).join(" ")}`;
    const run = launch(args);
    let spawnError: Error | undefined;
    run.child.once("error", (e) => (spawnError = e));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let ready = false;
    while (!ready) {
      if (spawnError) throw new Error(`${command}: could not start: ${spawnError.message}`);
      if (isGone(run.child) && run.child.pid !== undefined) break; // (no pid: the spawn error is on its way)
      if (Date.now() > deadline) {
        await stopProcess(run.child);
        throw new Error(`${command}: its socket on 127.0.0.1:${port} was not bound within ${READY_TIMEOUT_MS} ms\n--- stderr ---\n${run.stderr()}`);
      }
      ready = run.child.pid !== undefined && ownsSocket(run.child.pid, udpSocketInodes(port));
      if (!ready) await new Promise((r) => setTimeout(r, 10));
    }
    if (ready) {
      let closing: Promise<void> | undefined;
      return {
        name,
        port,
        pids: () => (isGone(run.child) ? [] : [run.child.pid!]),
        close: () => (closing ??= stopProcess(run.child)),
      };
    }
    await run.exited;
    const how = run.child.signalCode ?? `code ${run.child.exitCode}`;
    lastError = `${command}: exited (${how}) before its socket was bound\n--- stderr ---\n${run.stderr()}`;
    // Someone else took the port between our check and its bind: another port, another try.
    if (!/bind failed|Address already in use/i.test(run.stderr())) throw new Error(lastError);
  }
  throw new Error(`gave up after ${ATTEMPTS} attempts; the last:\n${lastError}`);
}
