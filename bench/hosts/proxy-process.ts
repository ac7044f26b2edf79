// The proxy as users run it, `msm proxy --config FILE`, in a process of its own under Node or
// Bun, with its admin endpoint on a kernel-picked loopback port for /stats.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProxySnapshot } from "../../runtime/index.js";
import { ROOT } from "../common.js";
import type { RelayProcess } from "./relay-process.js";
import { runtimeBinary, spawnUntilReady, stopProcess, type Runtime } from "./spawn.js";

export interface ProxySegmentSpec {
  readonly name: string;
  readonly listenPort: number;
  readonly destinationPort: number;
  /** The destinations' addresses, all at destinationPort (default: 127.0.0.1 alone). */
  readonly destinationAddresses?: readonly string[];
  /** The worker the segment is pinned to (default: the proxy spreads segments by name). */
  readonly worker?: number;
  /** Send from the listen socket (RFC 4961 symmetric RTP): one socket per segment, no egress socket. */
  readonly symmetricRtp?: boolean;
  /** The source gate's `idleMs`: how long the latched sender must be silent before another is taken (absent: the proxy's default). */
  readonly sourceIdleMs?: number;
}

/** The proxy's socket I/O (its `io` key): "auto" is its default, "dgram" the node:dgram path it had before batched I/O. */
export type ProxyIo = "auto" | "native" | "dgram";

export interface ProxyProcessOptions {
  readonly runtime: Runtime;
  readonly segments: readonly ProxySegmentSpec[];
  /** Filters by name -> .wasm path, and each stage's config; the chain uses them in this order. */
  readonly chain: readonly { readonly name: string; readonly path: string; readonly config?: Readonly<Record<string, unknown>> }[];
  readonly workers?: number;
  /** The proxy's `io` key (absent: the proxy's default). */
  readonly io?: ProxyIo;
  /** The proxy's batchSize (its default when absent). */
  readonly batchSize?: number;
  /** The proxy's per-stream stats (its `streams` key; absent: the proxy's default). */
  readonly streams?: { readonly max: number };
  /** How long to wait for "proxy running" (large configs take a while). */
  readonly readyTimeoutMs?: number;
}

export interface ProxyProcess extends RelayProcess {
  /** Every segment's listen port, in the order of the options' segments. */
  readonly ports: readonly number[];
  /** Milliseconds from spawn to the proxy's "proxy running" line (process start included). */
  readonly startMs: number;
  /** The socket I/O its "proxy running" line names ("batched I/O (recvmmsg/sendmmsg)", ...), null where it names none. */
  readonly io: string | null;
  stats(): Promise<ProxySnapshot>;
}

export async function startProxyProcess(opts: ProxyProcessOptions): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), "msm-bench-proxy-"));
  const file = join(dir, "proxy.json");
  // the CLI reads YAML, of which JSON is a subset
  writeFileSync(file, JSON.stringify({
    workers: opts.workers ?? 1,
    ...(opts.batchSize !== undefined && { batchSize: opts.batchSize }),
    ...(opts.io !== undefined && { io: opts.io }),
    ...(opts.streams !== undefined && { streams: opts.streams }),
    filters: Object.fromEntries(opts.chain.map((f) => [f.name, { path: f.path }])),
    segments: opts.segments.map((s) => ({
      name: s.name,
      listen: { address: "127.0.0.1", port: s.listenPort },
      rtcpMux: true,
      // a symmetric segment sends from its listen socket: it has no egress of its own
      ...(s.symmetricRtp ? { symmetricRtp: true } : { egress: { address: "127.0.0.1" } }),
      destinations: (s.destinationAddresses ?? ["127.0.0.1"]).map((address) => ({ address, port: s.destinationPort })),
      chain: opts.chain.map((f) => ({ filter: f.name, ...(f.config && { config: f.config }) })),
      ...(s.worker !== undefined && { worker: s.worker }),
      ...(s.sourceIdleMs !== undefined && { source: { idleMs: s.sourceIdleMs } }),
    })),
  }));
  const t0 = performance.now();
  let started;
  try {
    started = await spawnUntilReady(
      runtimeBinary(opts.runtime),
      [join(ROOT, "dist", "cli", "msm.js"), "proxy", "--config", file, "--admin", "127.0.0.1:0"],
      /admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics[\s\S]*proxy running: ([^\n]*)\n/,
      opts.readyTimeoutMs ?? 20_000,
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const startMs = performance.now() - t0;
  const { child, match } = started;
  const adminPort = Number(match[1]);
  // "N segment(s) on W worker(s), <its I/O>"
  const io = /worker\(s\), (.+)$/.exec(match[2]!)?.[1] ?? null;
  // keep draining its output so that a chatty proxy never blocks on a full pipe
  child.stdout!.resume();
  child.stderr!.resume();
  return {
    name: `msm proxy (${opts.runtime})`,
    port: opts.segments[0]!.listenPort,
    ports: opts.segments.map((s) => s.listenPort),
    startMs,
    io,
    pids: () => [child.pid!],
    stats: async () => {
      const url = `http://127.0.0.1:${adminPort}/stats`;
      // a kept-alive connection that the proxy closed meanwhile (a /stats of many segments keeps its
      // loop busy for seconds, past its keep-alive timeout) resets the next request: once more, anew
      const res = await fetch(url).catch(() => fetch(url));
      if (!res.ok) throw new Error(`proxy /stats: HTTP ${res.status}`);
      return (await res.json()) as ProxySnapshot;
    },
    close: async () => {
      await stopProcess(child, 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
