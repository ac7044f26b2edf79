// (f) Fan-out: what each extra destination costs a relay that sends every packet it receives to N
// destinations, for N = 1, 10, 100 and 1,000, in CPU microseconds per packet sent, against
// GStreamer `udpsrc ! multiudpsink` measured in the same run.
//
// Relays (bench/hosts/), each a process of its own, each given the same N destinations:
//   proxy          `msm proxy`, one segment, an empty chain, N `destinations` (Node);
//   proxy@bun      the same under Bun;
//   multiudpsink   gst-launch-1.0 udpsrc ! multiudpsink clients=... sync=false async=false.
//
// Destinations are N distinct loopback addresses 127.1.x.y at one port, all received by one sink
// socket bound to 0.0.0.0 at that port (the whole of 127/8 is local), so that the harness costs one
// socket whatever N. The generators and the sink are bench/loadgen.ts's: RTP, 1200 bytes, paced.
// Each relay kind has a generator of its own: a generator that moves to another relay reconnects
// its socket, which takes a new source port, and the proxy's source gate rightly refuses a sender
// that changes port once its learning window is over.
//
// The input rate is chosen per N so that the relay sends the same number of packets per second
// whatever N (sendsPerSecond / N packets in): CPU per packet sent compares like with like, and N =
// 1,000 does not saturate anyone. A relay's CPU is its process tree's run time (schedstat) over a
// trial, from the generator's first packet to the end of the drain. Per N, all relays run side by
// side (the idle ones cost nothing) and trials go round-robin, who goes first rotating, for a
// number of rounds; figures are medians over rounds, and ratios are taken within a round.
//
// A relay's CPU has a part that runs by the clock, not by the packet (timers, a collector, helper
// threads): at N = 1,000 the input is 50 packets/s, so 10 ms of it per second would add 0.2 us to
// every destination's share. Before each trial the relay's CPU is taken over a quiet window with
// no input (idle), and the slope per extra destination is computed with that rate taken out.
import type { LoadgenReply, LoadgenRequest } from "./loadgen.js";
import { NOISY_CPU_PCT, machineBusyUs, median, progress, round, sleep, udpDrops } from "./common.js";
import { startProxy, type Target } from "./e2e.js";
import { startGstreamerFanout } from "./hosts/gstreamer.js";
import { treeCpuUs, treeUserSystemUs } from "./hosts/process-stats.js";
import type { ProxyProcess } from "./hosts/proxy-process.js";
import type { RelayProcess } from "./hosts/relay-process.js";
import { LoadProcess } from "./load-process.js";

export type FanoutRelay = "proxy" | "proxy@bun" | "multiudpsink";
export const FANOUT_RELAYS: readonly FanoutRelay[] = ["proxy", "proxy@bun", "multiudpsink"];

export function fanoutLabel(relay: FanoutRelay): string {
  switch (relay) {
    case "proxy": return "msm proxy (Node)";
    case "proxy@bun": return "msm proxy (Bun)";
    case "multiudpsink": return "GStreamer multiudpsink";
  }
}

export interface FanoutOptions {
  /** Destination counts, ascending. */
  readonly counts: readonly number[];
  readonly relays: readonly FanoutRelay[];
  /** Packets the relay sends per second, whatever N (the input rate is this / N). */
  readonly sendsPerSecond: number;
  readonly size: number;
  readonly trialMs: number;
  readonly drainMs: number;
  /** Trials per relay and N (interleaved); the first, a priming one, is extra and not counted. */
  readonly rounds: number;
  /**
   * The priming trial before the rounds, not counted: it lasts as long as `primeInputPackets`
   * take at the trial's input rate, within [primeMs, primeMaxMs]. A JIT warms up by how often its
   * code runs, and the input rate differs 1,000-fold from N = 1 to N = 1,000: primed for a fixed
   * time, the proxy at N = 1,000 was still compiling through its first rounds.
   */
  readonly primeMs: number;
  readonly primeInputPackets: number;
  readonly primeMaxMs: number;
  /** The quiet window before each trial over which the relay's idle CPU is taken. */
  readonly idleMs: number;
  /** Called after every trial, for the progress bar. */
  readonly onTrial?: () => void;
}

export interface FanoutTrial {
  readonly relay: FanoutRelay;
  readonly destinations: number;
  readonly round: number;
  readonly inputPps: number;
  /** Packets the generator sent, and those the relay's listen socket dropped (kernel). */
  readonly sent: number;
  readonly relayKernelDrops: number | null;
  /** Copies that reached the sink (all destinations together), and those its socket dropped (kernel). */
  readonly arrivals: number;
  readonly sinkKernelDrops: number | null;
  /** Generator packets of which at least one copy arrived. */
  readonly distinctArrived: number;
  /** sent x N - arrivals. */
  readonly missing: number;
  /** The proxy only: packets it counted out, and its segment's drops. */
  readonly proxyPacketsOut?: number;
  readonly proxyDrops?: number;
  readonly proxyDropReasons?: Record<string, number>;
  readonly relayCpuUs: number;
  /** The same split into user and system (kernel) time, from /proc/PID/stat's 10 ms ticks. */
  readonly relayUserUs: number;
  readonly relaySystemUs: number;
  /** CPU per packet that reached the relay, and per packet it sent (arrivals + sink kernel drops). */
  readonly usPerInputPacket: number;
  readonly usPerPacketSent: number;
  /** The relay's CPU with no input just before the trial, us per second. */
  readonly idleCpuUsPerS: number;
  /** usPerInputPacket with the idle rate over the trial's wall time taken out. */
  readonly usPerInputPacketNet: number;
  readonly relayCpuPct: number;
  readonly otherCpuPct: number | null;
  readonly generatorShort: boolean;
}

export interface FanoutCell {
  readonly relay: FanoutRelay;
  readonly destinations: number;
  readonly inputPps: number;
  /** Medians over the rounds. */
  readonly usPerInputPacket: number;
  readonly usPerPacketSent: number;
  /** The kernel's share of the relay's CPU (system over user + system time, all rounds together), %. */
  readonly systemPct: number | null;
  /** Arrivals over sent x N, the worst round, %. */
  readonly deliveredPct: number;
  /** The worst round's copies missing that no kernel or proxy drop counter explains. */
  readonly unexplainedLoss: number;
  /** The relay's idle CPU, ms per second (median; absent in results made before it was measured). */
  readonly idleMsPerS?: number;
  /** Marginal cost of one more destination: the slope of us per input packet, idle taken out, from the previous N. */
  readonly usPerExtraDestination: number | null;
  /** us per packet sent over multiudpsink's at the same N, the median of the rounds' ratios. */
  readonly vsMultiudpsink: number | null;
}

export interface FanoutResult {
  readonly method: string;
  readonly size: number;
  readonly sendsPerSecond: number;
  readonly trialMs: number;
  readonly rounds: number;
  readonly counts: readonly number[];
  readonly cells: FanoutCell[];
  readonly trials: FanoutTrial[];
  readonly warnings: string[];
}

/** Destination k of N: 127.1.x.y, y in 1..250. */
export function destinationAddress(k: number): string {
  return `127.1.${Math.floor(k / 250)}.${(k % 250) + 1}`;
}

export function destinationAddresses(n: number): string[] {
  return Array.from({ length: n }, (_, k) => destinationAddress(k));
}

/** Starts `relay` sending everything it receives to each of `addresses` at `port`. */
export function startFanoutRelay(relay: FanoutRelay, addresses: readonly string[], port: number): Promise<RelayProcess> {
  switch (relay) {
    case "proxy": return startProxy(port, "node", [], undefined, { destinationAddresses: addresses });
    case "proxy@bun": return startProxy(port, "bun", [], undefined, { destinationAddresses: addresses });
    case "multiudpsink": return startGstreamerFanout(addresses.map((address) => ({ address, port })));
  }
}

type Load = LoadProcess<LoadgenRequest, LoadgenReply>;

interface ProxyCount {
  packetsOut: number;
  drops: number;
  reasons: Record<string, number>;
}

async function proxyCount(relay: RelayProcess): Promise<ProxyCount | undefined> {
  if (!("stats" in relay)) return undefined;
  const seg = (await (relay as ProxyProcess).stats()).segments.find((s) => s.name === "bench");
  return seg ? { packetsOut: seg.packetsOut, drops: seg.dropsTotal, reasons: seg.drops } : undefined;
}

let trialCounter = 0;

async function runTrial(gen: Load, sink: Load, relay: RelayProcess, kind: FanoutRelay, n: number, roundNo: number, durationMs: number, o: FanoutOptions): Promise<FanoutTrial> {
  const trial = ++trialCounter;
  const rate = o.sendsPerSecond / n;
  const expect = Math.max(1, Math.round((rate * durationMs) / 1000));
  const pids = relay.pids();
  const idle0 = treeCpuUs(pids);
  const idleT0 = performance.now();
  await sleep(o.idleMs);
  const idleUsPerMs = (treeCpuUs(pids) - idle0) / (performance.now() - idleT0);
  await sink.request({ cmd: "arm", trial, expect }, "armed", 5000);
  const proxy0 = await proxyCount(relay);
  const sinkDrops0 = udpDrops(sink.port);
  const relayDrops0 = udpDrops(relay.port);
  const busy0 = machineBusyUs();
  const cpu0 = treeCpuUs(pids);
  const split0 = treeUserSystemUs(pids);
  const t0 = performance.now();
  const ran = await gen.request({ cmd: "run", trial, ports: [relay.port], rate, durationMs, size: o.size }, "ran", durationMs * 2 + 10_000);
  await sleep(o.drainMs);
  const relayCpuUs = treeCpuUs(pids) - cpu0;
  const split1 = treeUserSystemUs(pids);
  const busy1 = machineBusyUs();
  const wallMs = performance.now() - t0;
  const got = await sink.request({ cmd: "collect", trial }, "collected", 5000);
  const sinkDrops1 = udpDrops(sink.port);
  const relayDrops1 = udpDrops(relay.port);
  const proxy1 = await proxyCount(relay);
  const sinkKernelDrops = sinkDrops0 === null || sinkDrops1 === null ? null : sinkDrops1 - sinkDrops0;
  const relayKernelDrops = relayDrops0 === null || relayDrops1 === null ? null : relayDrops1 - relayDrops0;
  const arrivals = got.received + got.duplicates;
  const input = ran.sent - (relayKernelDrops ?? 0);
  const sentOn = arrivals + (sinkKernelDrops ?? 0);
  const t: FanoutTrial = {
    relay: kind,
    destinations: n,
    round: roundNo,
    inputPps: Math.round(ran.sent / (ran.sendMs / 1000)),
    sent: ran.sent,
    relayKernelDrops,
    arrivals,
    sinkKernelDrops,
    distinctArrived: got.received,
    missing: ran.sent * n - arrivals,
    ...(proxy0 && proxy1 && {
      proxyPacketsOut: proxy1.packetsOut - proxy0.packetsOut,
      proxyDrops: proxy1.drops - proxy0.drops,
      proxyDropReasons: Object.fromEntries(Object.entries(proxy1.reasons).map(([k, v]) => [k, v - (proxy0.reasons[k] ?? 0)]).filter(([, v]) => v !== 0)),
    }),
    relayCpuUs: Math.round(relayCpuUs),
    relayUserUs: split1.userUs - split0.userUs,
    relaySystemUs: split1.systemUs - split0.systemUs,
    usPerInputPacket: input > 0 ? round(relayCpuUs / input, 2) : NaN,
    usPerPacketSent: sentOn > 0 ? round(relayCpuUs / sentOn, 3) : NaN,
    idleCpuUsPerS: Math.round(idleUsPerMs * 1000),
    usPerInputPacketNet: input > 0 ? round(Math.max(0, relayCpuUs - idleUsPerMs * wallMs) / input, 2) : NaN,
    relayCpuPct: round((relayCpuUs / 1000 / wallMs) * 100, 0),
    otherCpuPct: busy0 === null || busy1 === null ? null
      : round(Math.max(0, (busy1 - busy0 - relayCpuUs - ran.cpuUs - got.cpuUs) / 1000 / wallMs) * 100, 0),
    generatorShort: ran.sent < expect * 0.98,
  };
  o.onTrial?.();
  return t;
}

function describe(t: FanoutTrial): string {
  const loss = t.missing === 0 ? "all delivered" : `${t.missing} of ${t.sent * t.destinations} copies missing (kernel drops: sink ${t.sinkKernelDrops ?? "?"}, relay ${t.relayKernelDrops ?? "?"}${t.proxyDrops ? `; proxy drops ${JSON.stringify(t.proxyDropReasons)}` : ""})`;
  return `${t.inputPps} pps in x ${t.destinations}: ${t.usPerInputPacket} us/input pkt (${t.usPerInputPacketNet} without idle ${t.idleCpuUsPerS / 1000} ms/s), ${t.usPerPacketSent} us/pkt sent (${t.relayCpuPct}% cpu), ${loss}` +
    `${t.generatorShort ? ", generator short" : ""}, other ${t.otherCpuPct ?? "?"}%`;
}

/** Copies missing that no counter explains: each relay kernel drop costs N copies, each sink or proxy drop one. */
function unexplained(t: FanoutTrial): number {
  return Math.max(0, t.missing - (t.sinkKernelDrops ?? 0) - (t.relayKernelDrops ?? 0) * t.destinations - (t.proxyDrops ?? 0));
}

function summarize(trials: readonly FanoutTrial[], o: FanoutOptions): FanoutCell[] {
  const cells: FanoutCell[] = [];
  for (const relay of o.relays) {
    let previous: { n: number; net: number } | null = null;
    for (const n of o.counts) {
      const ts = trials.filter((t) => t.relay === relay && t.destinations === n);
      if (ts.length === 0) continue;
      const us = median(ts.map((t) => t.usPerInputPacket));
      const net = median(ts.map((t) => t.usPerInputPacketNet));
      const user = ts.reduce((sum, t) => sum + t.relayUserUs, 0);
      const system = ts.reduce((sum, t) => sum + t.relaySystemUs, 0);
      const ratios = ts.flatMap((t) => {
        const g = trials.find((x) => x.relay === "multiudpsink" && x.destinations === n && x.round === t.round);
        return g && relay !== "multiudpsink" ? [t.usPerPacketSent / g.usPerPacketSent] : [];
      });
      cells.push({
        relay,
        destinations: n,
        inputPps: Math.round(median(ts.map((t) => t.inputPps))),
        usPerInputPacket: round(us, 2),
        idleMsPerS: round(median(ts.map((t) => t.idleCpuUsPerS)) / 1000, 2),
        usPerPacketSent: round(median(ts.map((t) => t.usPerPacketSent)), 3),
        systemPct: user + system > 0 ? round((100 * system) / (user + system), 0) : null,
        deliveredPct: round(Math.min(...ts.map((t) => (100 * t.arrivals) / (t.sent * n))), 3),
        unexplainedLoss: Math.max(...ts.map(unexplained)),
        usPerExtraDestination: previous ? round((net - previous.net) / (n - previous.n), 3) : null,
        vsMultiudpsink: ratios.length > 0 ? round(median(ratios), 2) : null,
      });
      previous = { n, net };
    }
  }
  return cells;
}

/**
 * The target: each proxy's marginal cost per extra destination (the slope between the two largest
 * N, where the per-packet receive cost is spread thinnest) below multiudpsink's.
 */
export function fanoutTargets(r: FanoutResult): Target[] {
  const [lo, hi] = r.counts.slice(-2);
  const slope = (relay: FanoutRelay): number | null => r.cells.find((c) => c.relay === relay && c.destinations === hi)?.usPerExtraDestination ?? null;
  const gst = slope("multiudpsink");
  return (["proxy", "proxy@bun"] as const).filter((p) => r.cells.some((c) => c.relay === p)).map((p) => {
    const what = `fan-out: ${fanoutLabel(p)} cheaper per extra destination than GStreamer multiudpsink`;
    const mine = slope(p);
    if (lo === undefined || hi === undefined || mine === null || gst === null) return { what, value: "not measured", met: null };
    return { what, value: `${mine} against ${gst} us per extra destination (${lo} to ${hi}): ${(mine / gst).toFixed(2)}x`, met: mine < gst };
  });
}

/** How long the priming trial at N destinations lasts (see FanoutOptions.primeInputPackets). */
export function primeDuration(n: number, o: Pick<FanoutOptions, "sendsPerSecond" | "primeMs" | "primeInputPackets" | "primeMaxMs">): number {
  const inputPps = o.sendsPerSecond / n;
  return Math.round(Math.min(o.primeMaxMs, Math.max(o.primeMs, (o.primeInputPackets / inputPps) * 1000)));
}

export async function runFanout(o: FanoutOptions): Promise<FanoutResult> {
  const warnings: string[] = [];
  const trials: FanoutTrial[] = [];
  const script = new URL("./loadgen.js", import.meta.url);
  const gens = new Map(o.relays.map((kind): [FanoutRelay, Load] => [kind, new LoadProcess<LoadgenRequest, LoadgenReply>(script, "gen")]));
  // one socket on every local address: it receives what is sent to any 127.x.y.z at its port
  const sink: Load = new LoadProcess<LoadgenRequest, LoadgenReply>(script, "sink", ["0.0.0.0"]);
  try {
    await Promise.all([...[...gens.values()].map((g) => g.ready), sink.ready]);
    for (const n of o.counts) {
      const addresses = destinationAddresses(n);
      const running: { kind: FanoutRelay; relay: RelayProcess }[] = [];
      try {
        for (const kind of o.relays) {
          try {
            running.push({ kind, relay: await startFanoutRelay(kind, addresses, sink.port) });
          } catch (err) {
            const why = (err as Error).message.split("\n")[0];
            warnings.push(`${fanoutLabel(kind)} with ${n} destinations: not measured: ${why}`);
            progress(`fanout: ${fanoutLabel(kind)} x ${n}: not measured: ${why}`);
          }
        }
        // priming, not counted: JIT warm-up, the proxy latching its sender
        const primeMs = primeDuration(n, o);
        for (const { kind, relay } of running) await runTrial(gens.get(kind)!, sink, relay, kind, n, -1, primeMs, o);
        for (let r = 0; r < o.rounds; r++) {
          for (let i = 0; i < running.length; i++) {
            const { kind, relay } = running[(i + r) % running.length]!;
            const t = await runTrial(gens.get(kind)!, sink, relay, kind, n, r, o.trialMs, o);
            trials.push(t);
            const noisy = t.otherCpuPct !== null && t.otherCpuPct > NOISY_CPU_PCT;
            progress(`  fanout ${fanoutLabel(kind)}: ${describe(t)}${noisy ? " (noisy)" : ""}`);
          }
        }
      } finally {
        await Promise.all(running.map(({ relay }) => relay.close()));
      }
    }
  } finally {
    await Promise.all([...[...gens.values()].map((g) => g.exit()), sink.exit()]);
  }
  const cells = summarize(trials, o);
  for (const c of cells) {
    if (c.unexplainedLoss > 0) warnings.push(`${fanoutLabel(c.relay)} with ${c.destinations} destinations: ${c.unexplainedLoss} copies missing that no drop counter explains (worst round)`);
  }
  const noisy = trials.filter((t) => t.otherCpuPct !== null && t.otherCpuPct > NOISY_CPU_PCT).length;
  if (noisy > 0) warnings.push(`${noisy} of ${trials.length} trials ran while other processes used more than ${NOISY_CPU_PCT}% of a core: the machine was not quiet`);
  const short = trials.filter((t) => t.generatorShort).length;
  if (short > 0) warnings.push(`in ${short} of ${trials.length} trials the generator fell short of its rate`);
  return {
    method: "per N, the relays side by side; trials round-robin; CPU of the relay's process tree (schedstat) from the first packet to the end of the drain, over the packets that reached the relay (per input packet) and over the copies that reached the sink's socket (per packet sent); the slope per extra destination with the relay's idle CPU rate (a quiet window before each trial) taken out",
    size: o.size,
    sendsPerSecond: o.sendsPerSecond,
    trialMs: o.trialMs,
    rounds: o.rounds,
    counts: o.counts,
    cells,
    trials,
    warnings,
  };
}
