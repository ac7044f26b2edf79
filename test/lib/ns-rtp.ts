// The lab's test stream from the test's side: a sink and a sender, each a process in a namespace
// (ns-tools/rtp-sink.ts and rtp-send.ts), the same stream sent in bursts as cross traffic
// (ns-tools/rtp-bursts.ts), and a fixed delay on a flow (ns-tools/udp-delay.ts).
import { join } from "node:path";
import type { NetnsLab, NsProcess } from "./netns.js";
import { DEFAULT_STREAM, formatArgs, type StreamFormat } from "./ns-tools/rtp-stream.js";
import type { SinkReport } from "./ns-tools/rtp-sink.js";
import type { DelayReport } from "./ns-tools/udp-delay.js";
import { ROOT } from "./paths.js";

export type { SinkReport } from "./ns-tools/rtp-sink.js";

export const nsTool = (name: string): string => join(ROOT, "dist", "test", "lib", "ns-tools", `${name}.js`);

export interface NsSink {
  readonly process: NsProcess;
  /** Datagrams received so far, as the sink last said (every 100 ms). */
  received(): number;
  /** Stops the sink and returns its report. */
  stop(): Promise<SinkReport>;
}

/** Starts a sink of `count` packets on `port` in `role`'s namespace: all IPv4 addresses, or `address` ("::" for IPv6 and IPv4). */
export async function startNsSink(lab: NetnsLab, role: string, opts: { port: number; count: number; address?: string; format?: StreamFormat }): Promise<NsSink> {
  const proc = lab.spawn(role, process.execPath, [
    nsTool("rtp-sink"), "--port", String(opts.port), "--count", String(opts.count), ...(opts.address ? ["--address", opts.address] : []),
    ...formatArgs(opts.format ?? DEFAULT_STREAM),
  ], { stdin: true });
  let received = 0;
  proc.onLine((line) => {
    const m = /^received (\d+)$/.exec(line);
    if (m) received = Number(m[1]);
  });
  await proc.ready(/^ready$/m);
  return {
    process: proc,
    received: () => received,
    stop: async () => {
      proc.write("stop\n");
      const code = await proc.stop("SIGTERM", 5000).catch(() => null);
      const m = /^report (.*)$/m.exec(proc.stdout());
      if (!m) throw new Error(`the sink in ${role} gave no report (exit ${code}):\n${proc.output().slice(-2000)}`);
      return JSON.parse(m[1]!) as SinkReport;
    },
  };
}

/** Sends `count` packets at `rate` packets/s from `role`'s namespace to address:port; resolves with how many it sent. */
export function runNsSender(lab: NetnsLab, role: string, opts: { address: string; port: number; count: number; rate: number; format?: StreamFormat }): Promise<{ sent: number; ms: number }> {
  // the sender bounds itself (count / rate + 5 s)
  return runSending(lab, role, "the sender", (opts.count / opts.rate) * 1000, [
    nsTool("rtp-send"), "--address", opts.address, "--port", String(opts.port), "--count", String(opts.count), "--rate", String(opts.rate),
    ...formatArgs(opts.format ?? DEFAULT_STREAM),
  ]);
}

/**
 * Sends `count` packets of the test stream from `role`'s namespace to address:port in bursts of
 * `burst`, each after a pause drawn from `gapMs` (ns-tools/rtp-bursts.ts); resolves with how many it sent.
 */
export function runNsBursts(
  lab: NetnsLab, role: string,
  opts: { address: string; port: number; count: number; burst: number; gapMs: readonly [number, number]; seed?: number; format?: StreamFormat },
): Promise<{ sent: number; ms: number }> {
  // the tool bounds itself (its pauses at their longest + 5 s)
  return runSending(lab, role, "the bursts", Math.ceil(opts.count / opts.burst) * opts.gapMs[1], [
    nsTool("rtp-bursts"), "--address", opts.address, "--port", String(opts.port), "--count", String(opts.count), "--burst", String(opts.burst),
    "--gap-ms", `${opts.gapMs[0]}-${opts.gapMs[1]}`, "--seed", String(opts.seed ?? 1), ...formatArgs(opts.format ?? DEFAULT_STREAM),
  ]);
}

/** Runs a sending tool (node `args`) that bounds itself to about `expectedMs` + 5 s, and reads the JSON line it ends with; kills it 15 s late as a backstop. */
async function runSending(lab: NetnsLab, role: string, what: string, expectedMs: number, args: string[]): Promise<{ sent: number; ms: number }> {
  const proc = lab.spawn(role, process.execPath, args);
  const backstop = setTimeout(() => proc.kill(), expectedMs + 15_000);
  const code = await proc.exited;
  clearTimeout(backstop);
  const m = /^(\{.*\})$/m.exec(proc.stdout());
  if (code !== 0 || !m) throw new Error(`${what} in ${role} failed (exit ${code}):\n${proc.output().slice(-2000)}`);
  return JSON.parse(m[1]!) as { sent: number; ms: number };
}

export interface NsDelay {
  readonly process: NsProcess;
  /** Stops the delay and returns what it forwarded and its socket's kernel drops. */
  stop(): Promise<DelayReport>;
}

/** Starts a fixed delay (ns-tools/udp-delay.ts) in `role`'s namespace: datagrams to `port` leave for `to` after `delayMs`. */
export async function startNsDelay(lab: NetnsLab, role: string, opts: { port: number; to: { address: string; port: number }; delayMs: number }): Promise<NsDelay> {
  const to = opts.to.address.includes(":") ? `[${opts.to.address}]:${opts.to.port}` : `${opts.to.address}:${opts.to.port}`;
  const proc = lab.spawn(role, process.execPath, [nsTool("udp-delay"), "--port", String(opts.port), "--to", to, "--delay-ms", String(opts.delayMs)], { stdin: true });
  await proc.ready(/^ready$/m);
  return {
    process: proc,
    stop: async () => {
      proc.write("stop\n");
      const code = await proc.stop("SIGTERM", 5000).catch(() => null);
      const m = /^report (.*)$/m.exec(proc.stdout());
      if (!m) throw new Error(`the delay in ${role} gave no report (exit ${code}):\n${proc.output().slice(-2000)}`);
      return JSON.parse(m[1]!) as DelayReport;
    },
  };
}
