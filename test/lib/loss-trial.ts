// Loss through a namespace lab, attributed. PathWatch counts, along a path of the lab, everything
// that can drop a packet: each link's loss model (measured: what it carried and dropped), a full
// link queue, the veth pairs, the proxies' listen sockets (kernel drops) and the proxies' drop
// counters. A trial starts proxies, impairs one link and sends a stream from sender to receiver:
// runLossTrial() the lab's RTP test stream, `count` packets at `rate`, every packet that did not
// arrive attributed (what nothing explains is `unexplained`), one row of a "loss table"
// (lossTable() prints rows as markdown); runH264LossTrial() FFmpeg's H.264 stream, judged by
// FFmpeg's decoder.
import type { ProxySnapshot } from "../../runtime/index.js";
import { DropWatch, settled } from "./kernel-drops.js";
import { clearImpairment, describeImpairment, impair, impairmentBackend, linkCounters, type Impairment, type LinkCounters } from "./link-impairment.js";
import type { NetnsLab } from "./netns.js";
import { startNsProxy, type NsProxy } from "./ns-proxy.js";
import { runH264Trial, type H264Quality, type H264Stream } from "./h264-quality.js";
import { runNsSender, startNsSink, type SinkReport } from "./ns-rtp.js";
import type { StreamFormat } from "./ns-tools/rtp-stream.js";

/** What a path dropped while a PathWatch ran. */
export interface PathCounters {
  /** Each link in the direction of the path, by "from>to". */
  readonly links: Readonly<Record<string, LinkCounters>>;
  /** Kernel drops on the proxies' listen sockets (with any `extra` drops the caller adds), by "role:port"; only those above 0. */
  readonly kernel: Readonly<Record<string, number>>;
  /** Each proxy's drops, by reason; only those above 0. */
  readonly proxyDrops: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Each proxy segment's packets in and out, by "role/segment". */
  readonly segments: Readonly<Record<string, { readonly in: number; readonly out: number }>>;
  /** The proxies' stats at the end, by role. */
  readonly stats: ReadonlyMap<string, ProxySnapshot>;
}

/** Sum of every drop in `c` (link loss, queues, veths, sockets, proxies). */
export function totalDrops(c: PathCounters): number {
  const links = Object.values(c.links).reduce((sum, l) => sum + l.lost + l.queueDrops + l.interfaceDrops, 0);
  const kernel = Object.values(c.kernel).reduce((a, b) => a + b, 0);
  const proxies = Object.values(c.proxyDrops).flatMap((d) => Object.values(d)).reduce((a, b) => a + b, 0);
  return links + kernel + proxies;
}

/** The sockets worth watching in a proxy: each segment's listen port and the five above it (RTCP, FEC legs). */
function listenPorts(config: Record<string, unknown>): number[] {
  const segments = (config.segments ?? []) as { listen?: { port?: number } }[];
  return segments.flatMap((s) => (s.listen?.port ? [0, 1, 2, 3, 4, 5].map((d) => s.listen!.port! + d) : []));
}

function segmentCounters(snap: ProxySnapshot): Map<string, { in: number; out: number; drops: Record<string, number> }> {
  return new Map(snap.segments.map((s) => [s.name, { in: s.packetsIn, out: s.packetsOut, drops: s.drops }]));
}

export class PathWatch {
  private constructor(
    private readonly lab: NetnsLab,
    private readonly pairs: readonly (readonly [string, string])[],
    private readonly proxies: readonly NsProxy[],
    private readonly linksBefore: readonly LinkCounters[],
    private readonly kernel: readonly { role: string; watch: DropWatch }[],
    private readonly statsBefore: readonly ProxySnapshot[],
  ) {}

  /** Starts counting along the chain from role `from` to role `to`, through `proxies` (running in roles on the way). */
  static async start(lab: NetnsLab, from: string, to: string, proxies: readonly NsProxy[]): Promise<PathWatch> {
    const [i, j] = [lab.roles.indexOf(from), lab.roles.indexOf(to)];
    if (i < 0 || j < 0) throw new TypeError(`no role '${i < 0 ? from : to}' in this lab`);
    const hops = i <= j ? lab.roles.slice(i, j + 1) : lab.roles.slice(j, i + 1).reverse();
    const pairs = hops.slice(1).map((b, k) => [hops[k]!, b] as const);
    return new PathWatch(
      lab, pairs, proxies,
      pairs.map(([a, b]) => linkCounters(lab, a, b)),
      proxies.map((p) => ({ role: p.role, watch: new DropWatch(listenPorts(p.config), lab.procNet(p.role)) })),
      await Promise.all(proxies.map((p) => p.stats())),
    );
  }

  async since(): Promise<PathCounters> {
    const statsAfter = await Promise.all(this.proxies.map((p) => p.stats()));
    const links: Record<string, LinkCounters> = {};
    this.pairs.forEach(([a, b], i) => {
      const [before, after] = [this.linksBefore[i]!, linkCounters(this.lab, a, b)];
      links[`${a}>${b}`] = {
        offered: after.offered - before.offered,
        lost: after.lost - before.lost,
        queueDrops: after.queueDrops - before.queueDrops,
        interfaceDrops: after.interfaceDrops - before.interfaceDrops,
      };
    });
    const kernel: Record<string, number> = {};
    for (const k of this.kernel) for (const [port, n] of Object.entries(k.watch.since().byPort)) if (n > 0) kernel[`${k.role}:${port}`] = n;
    const proxyDrops: Record<string, Record<string, number>> = {};
    const segments: Record<string, { in: number; out: number }> = {};
    this.proxies.forEach((p, i) => {
      const before = segmentCounters(this.statsBefore[i]!);
      const drops: Record<string, number> = {};
      for (const [name, after] of segmentCounters(statsAfter[i]!)) {
        const b = before.get(name) ?? { in: 0, out: 0, drops: {} };
        segments[`${p.role}/${name}`] = { in: after.in - b.in, out: after.out - b.out };
        for (const [reason, n] of Object.entries(after.drops)) {
          const d = n - (b.drops[reason] ?? 0);
          if (d > 0) drops[reason] = (drops[reason] ?? 0) + d;
        }
      }
      proxyDrops[p.role] = drops;
    });
    return { links, kernel, proxyDrops, segments, stats: new Map(this.proxies.map((p, i) => [p.role, statsAfter[i]!])) };
  }
}

/** What every trial needs: the lab, the impaired link, the proxies and where the stream enters. */
export interface TrialSetup {
  /** The table's row label. */
  readonly label: string;
  readonly lab: NetnsLab;
  /** The impaired direction, two neighbouring roles. */
  readonly link: readonly [from: string, to: string];
  readonly impairment: Impairment;
  /** Proxy configs (as for `msm proxy --config`, filter paths absolute), each started in its role's namespace for this trial alone. */
  readonly proxies: readonly { readonly role: string; readonly config: Record<string, unknown> }[];
  /** Where the stream starts and where it is sent (the first proxy's listen address, or the receiver's). */
  readonly sender: { readonly role: string; readonly address: string; readonly port: number };
  /** Where it ends. */
  readonly receiver: { readonly role: string; readonly port: number };
}

/**
 * Starts the proxies (fresh ones: a proxy latches its first sender), impairs the link, runs
 * `traffic` with a PathWatch from sender to receiver started, and undoes it all.
 */
async function onImpairedPath<T>(setup: TrialSetup, traffic: (watch: PathWatch) => Promise<T>): Promise<T> {
  const { lab } = setup;
  const proxies: NsProxy[] = [];
  try {
    await Promise.all(setup.proxies.map(async (p) => proxies.push(await startNsProxy(lab, p.role, p.config))));
    impair(lab, setup.link[0], setup.link[1], setup.impairment);
    return await traffic(await PathWatch.start(lab, setup.sender.role, setup.receiver.role, proxies));
  } finally {
    const stops = await Promise.allSettled(proxies.map((p) => p.stop()));
    clearImpairment(lab, setup.link[0], setup.link[1]);
    const failed = stops.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
  }
}

interface TrialBase {
  readonly label: string;
  /** The impaired link, "from>to". */
  readonly link: string;
  readonly impairment: string;
  readonly backend: string;
  /** The impaired link, measured: packets it carried (all of them: media, FEC, RTCP) and dropped by the loss model. */
  readonly offered: { readonly packets: number; readonly lost: number; readonly loss: number };
  /** Everything the path dropped (the receiver's socket included, as kernel "role:port"). */
  readonly path: PathCounters;
}

function trialBase(setup: TrialSetup, path: PathCounters): TrialBase {
  const link = `${setup.link[0]}>${setup.link[1]}`;
  const counted = path.links[link] ?? { offered: 0, lost: 0 };
  return {
    label: setup.label,
    link,
    impairment: describeImpairment(setup.impairment),
    backend: impairmentBackend() ?? "none",
    offered: { packets: counted.offered, lost: counted.lost, loss: counted.offered > 0 ? counted.lost / counted.offered : 0 },
    path,
  };
}

/** The path's counters with the receiver's own socket drops added. */
function withReceiverDrops(setup: TrialSetup, path: PathCounters, drops: number): PathCounters {
  return drops > 0 ? { ...path, kernel: { ...path.kernel, [`${setup.receiver.role}:${setup.receiver.port}`]: drops } } : path;
}

export interface LossTrialSpec extends TrialSetup {
  readonly count: number;
  /** Packets per second. */
  readonly rate: number;
  readonly format?: StreamFormat;
  /** How long the sink must get nothing before the trial ends (default 500 ms; add a decoder's hold). */
  readonly quietMs?: number;
  /** Packets the proxies rebuilt (FEC), from their stats after the trial: they offset losses. Default none. */
  readonly recovered?: (stats: ReadonlyMap<string, ProxySnapshot>) => number;
}

export interface LossTrialResult extends TrialBase {
  readonly sent: number;
  /** Stream packets that never reached the sink, of those sent. */
  readonly residual: { readonly lost: number; readonly loss: number };
  /** Packets rebuilt on the way (`recovered` of the spec). */
  readonly recovered: number;
  /** residual lost - every drop on the path + recovered: 0 when every loss is explained. */
  readonly unexplained: number;
  readonly sink: SinkReport;
}

/** The lab's RTP test stream (ns-tools/rtp-stream.ts) from sender to a sink at the receiver, every loss attributed. */
export async function runLossTrial(spec: LossTrialSpec): Promise<LossTrialResult> {
  const { lab } = spec;
  const format = spec.format && { format: spec.format };
  const sink = await startNsSink(lab, spec.receiver.role, { port: spec.receiver.port, count: spec.count, ...format });
  let stopped = false;
  try {
    return await onImpairedPath(spec, async (watch) => {
      const { sent } = await runNsSender(lab, spec.sender.role, { ...spec.sender, count: spec.count, rate: spec.rate, ...format });
      await settled(() => sink.received(), spec.quietMs ?? 500, 20_000);
      const counters = await watch.since();
      const report = await sink.stop();
      stopped = true;
      const path = withReceiverDrops(spec, counters, report.kernelDrops);
      const recovered = spec.recovered?.(path.stats) ?? 0;
      return {
        ...trialBase(spec, path),
        sent,
        residual: { lost: report.missing, loss: report.missing / sent },
        recovered,
        unexplained: report.missing - totalDrops(path) + recovered,
        sink: report,
      };
    });
  } finally {
    if (!stopped) await sink.stop().catch(() => undefined);
  }
}

export interface H264TrialSpec extends TrialSetup {
  readonly stream?: H264Stream;
}

export interface H264TrialResult extends TrialBase {
  readonly quality: H264Quality;
}

/** FFmpeg's H.264 stream (h264-quality.ts) from sender to a decoder at the receiver, with what the path dropped. */
export async function runH264LossTrial(spec: H264TrialSpec): Promise<H264TrialResult> {
  return onImpairedPath(spec, async (watch) => {
    const quality = await runH264Trial(spec.lab, { from: spec.sender.role, to: spec.sender, receiver: spec.receiver.role, port: spec.receiver.port, ...(spec.stream && { stream: spec.stream }) });
    return { ...trialBase(spec, withReceiverDrops(spec, await watch.since(), quality.kernelDrops)), quality };
  });
}

const percent = (x: number): string => (x === 0 ? "0%" : `${+(x * 100).toPrecision(3)}%`);

/** Drops other than the impaired link's loss model, in words: "veth a>b 2, socket sink:6000 3, b host_send_failed 1". */
export function otherDrops(r: LossTrialResult): string {
  const parts: string[] = [];
  for (const [name, l] of Object.entries(r.path.links)) {
    if (l.lost > 0 && name !== r.link) parts.push(`loss ${name} ${l.lost}`);
    if (l.queueDrops > 0) parts.push(`queue ${name} ${l.queueDrops}`);
    if (l.interfaceDrops > 0) parts.push(`veth ${name} ${l.interfaceDrops}`);
  }
  for (const [where, n] of Object.entries(r.path.kernel)) parts.push(`socket ${where} ${n}`);
  for (const [role, drops] of Object.entries(r.path.proxyDrops)) for (const [reason, n] of Object.entries(drops)) parts.push(`${role} ${reason} ${n}`);
  return parts.join(", ");
}

/** The trials as a markdown table: measured offered loss on the link next to residual loss at the sink, and where the rest went. */
export function lossTable(results: readonly LossTrialResult[]): string {
  const rows = [
    "| trial | link impairment | backend | sent | link carried | link dropped | offered loss | lost at sink | residual loss | mean burst at sink | other drops | recovered | unexplained |",
    "|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|",
  ];
  for (const r of results) {
    rows.push(`| ${r.label} | ${r.impairment} | ${r.backend} | ${r.sent} | ${r.offered.packets} | ${r.offered.lost} | ${percent(r.offered.loss)} | ${r.residual.lost} | ${percent(r.residual.loss)} | ${r.sink.bursts.mean.toFixed(2)} | ${otherDrops(r) || "-"} | ${r.recovered} | ${r.unexplained} |`);
  }
  return rows.join("\n");
}
