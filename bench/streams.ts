// (h) Streams: what the per-stream (SSRC) stats of issue #13 cost the proxy, measured with them
// off (`streams.max: 0`) and on (the default) in the same run:
//
// 1. CPU per packet at a fixed rate: one stream of `size`-byte RTP at `cpuRatePps` through the
//    end-to-end part's `filter` host (one segment, rtcpMux, the chain [validate]), under Node and
//    Bun. Each variant is a proxy of its own with a generator of its own (a stream's source port and
//    sequence numbers must stay its own: the filter's source gate and sequence checks would refuse a
//    stream that moved), all running side by side (an idle one costs nothing); trials go round
//    robin, who goes first rotating, so that drift on a shared machine hits on and off alike. The
//    trial is bench/e2e.ts's: the proxy's process tree CPU (schedstat) over the trial and its drain,
//    per packet delivered. Ratios are taken within a round, then the median.
// 2. 10,000 streams on one proxy: the scale part's level (bench/scale.ts: N segments with
//    symmetricRtp and rtcpMux, one 5 packets/s stream each, 2 workers) with stats off, on, and on
//    with a small streams.max (the rest aggregated per segment), in rotating order over rounds:
//    CPU per packet, RSS, and from /stats after the window: every stream listed with ingress and
//    egress counted, or aggregated in streamsOverflow; the report's size in JSON and in the
//    agent's pages (controlplane/api/stats-pages.ts), and what a /stats snapshot costs the proxy.
// 3. In process (bench/streams-micro.ts): ns per packet of the counting itself, and bytes per stream.
import { availableParallelism } from "node:os";
import { type ProxySnapshot, renderPrometheus, STREAMS_DEFAULTS } from "../runtime/index.js";
import { pageStats, STATS_MAX_PAGES, STATS_PAGE_BYTES } from "../controlplane/api/stats-pages.js";
import { median, NOISY_CPU_PCT, progress, round, sleep } from "./common.js";
import { runTrial, startProxy, withHarness, type Harness, type SearchOptions } from "./e2e.js";
import { treeCpuUs } from "./hosts/process-stats.js";
import type { ProxyProcess } from "./hosts/proxy-process.js";
import { whyNotStarted, type Runtime } from "./hosts/spawn.js";
import { LoadProcess } from "./load-process.js";
import type { LoadgenReply, LoadgenRequest } from "./loadgen.js";
import { runScale, type ScaleRow } from "./scale.js";
import { runStreamsMicro, type StreamsMicroResult } from "./streams-micro.js";

export interface StreamsOptions {
  readonly filterPath: string;
  readonly filterName: string;
  // 1. CPU per packet at a fixed rate
  readonly cpuRatePps: number;
  readonly size: number;
  readonly trialMs: number;
  readonly drainMs: number;
  readonly rounds: number;
  readonly runtimes: readonly Runtime[];
  readonly pin: boolean;
  readonly batchSize?: number;
  // 2. many streams on one proxy
  readonly segments: number;
  readonly ratePerStream: number;
  /** The small streams.max of the bounded variant (per worker, as the proxy counts it). */
  readonly boundedMax: number;
  readonly scaleRounds: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** After the window: how long the proxy's CPU is read with no traffic (its once-a-second work), in one-second readings. */
  readonly idleMs: number;
  readonly workers: number;
  readonly basePort: number;
  // 3. in process
  readonly microStreams: number;
  readonly sampleMs: number;
  readonly microRepeats: number;
  /** Called after every trial and level, for the progress bar. */
  readonly onStep?: (done: number, total: number) => void;
}

export type StatsSwitch = "off" | "on";

export interface StreamsCpuTrial {
  readonly runtime: Runtime;
  readonly streams: StatsSwitch;
  readonly round: number;
  readonly usPerPacket: number | null;
  /** The rate the generator reached, packets/s. */
  readonly achievedPps: number;
  readonly lossPct: number;
  readonly otherCpuPct: number | null;
  readonly generatorShort: boolean;
}

export interface StreamsCpuRow {
  readonly runtime: Runtime;
  /** The socket I/O the proxies' start lines named. */
  readonly io: string | null;
  /** Medians over the rounds. */
  readonly offUsPerPacket: number | null;
  readonly onUsPerPacket: number | null;
  /** on / off within each round: the median, and the lowest and highest round's. */
  readonly onOverOff: number | null;
  readonly onOverOffRange: readonly [number, number] | null;
  /** on - off within each round, the median, ns. */
  readonly addedNsPerPacket: number | null;
  /** The worst loss of the rounds counted, %. */
  readonly offLossPct: number;
  readonly onLossPct: number;
  /** Rounds counted, and of all rounds those whose two trials ran at the rate and lost under 0.1% (counted when there are enough). */
  readonly rounds: number;
  readonly cleanRounds: number;
  /** Streams the "on" proxy listed in /stats after the trials (1 expected), and the "off" one (0). */
  readonly onStreamsListed: number;
  readonly offStreamsListed: number;
}

export interface StreamsCpuResult {
  readonly ratePps: number;
  readonly size: number;
  readonly trialMs: number;
  readonly rounds: number;
  readonly rows: StreamsCpuRow[];
  readonly trials: StreamsCpuTrial[];
}

/** What /stats says about a proxy's streams. */
export interface StreamListing {
  readonly segments: number;
  /** Streams listed one by one, and those with both directions counted. */
  readonly streamsListed: number;
  readonly withIngressAndEgress: number;
  /** Segments that list exactly one stream. */
  readonly segmentsWithOneStream: number;
  /** Segments whose streams went to streamsOverflow, and its packets. */
  readonly overflowSegments: number;
  readonly overflowIngressPackets: number;
  readonly overflowEgressPackets: number;
  /** Segments that took packets in but neither list a stream nor count an overflow: none expected. */
  readonly unaccountedSegments: number;
  /** Per worker: its segments and the streams it lists; with a streams.max, at most that many each. */
  readonly byWorker: readonly { readonly worker: number; readonly segments: number; readonly streams: number }[];
  /** Streams listed + overflow packets against the packets the segments took in (ingress), and sent (egress). */
  readonly ingressPackets: number;
  readonly egressPackets: number;
  readonly packetsIn: number;
  readonly packetsOut: number;
}

/** The size of a /stats report, and how it travels in the agent's pages. */
export interface StatsReportSize {
  /** /stats as served (indented JSON). */
  readonly statsBytes: number;
  /** Compact JSON: what the agent pages. */
  readonly compactBytes: number;
  /** /metrics (Prometheus text) of the same snapshot. */
  readonly metricsBytes: number;
  readonly pages: number;
  readonly segmentsReported: number;
  readonly segmentsTotal: number;
}

export interface StreamsScaleLevel {
  readonly round: number;
  readonly row: ScaleRow;
  readonly listing: StreamListing;
  readonly report: StatsReportSize;
  /** The proxy's CPU with no traffic after the window (streams still listed), % of one core. */
  readonly idleCpuPct: number;
  /** One /stats (snapshot, transfer, JSON) after the window: wall ms, and the proxy's CPU ms. */
  readonly snapshotMs: number;
  readonly snapshotCpuMs: number;
}

export interface StreamsScaleRow {
  readonly label: string;
  /** The proxy's streams.max (per worker). */
  readonly streamsMax: number;
  readonly cpuUsPerPacket: number | null;
  /** CPU per packet over the "off" level's, within each round, the median. */
  readonly vsOff: number | null;
  /** The proxy's CPU over the window, % of one core (the median). */
  readonly cpuPct: number | null;
  /** With no traffic after the window, % of one core (the median), and less the "off" level's within each round (the median). */
  readonly idleCpuPct: number | null;
  readonly idleOverOffPct: number | null;
  readonly rssBytes: number | null;
  /** RSS - the "off" level's, within each round, the median. */
  readonly rssOverOffBytes: number | null;
  /** What the stats should take: each worker's table columns at its capacity, and every segment's bookkeeping. */
  readonly expectedBytes: number;
  readonly snapshotMs: number | null;
  readonly snapshotCpuMs: number | null;
  /** Packets the proxy dropped in the window, the worst round (loss at the sink on a busy machine is the harness's: see the warnings). */
  readonly proxyDrops: number;
  /** The last round's listing and report. */
  readonly listing: StreamListing | null;
  readonly report: StatsReportSize | null;
  readonly levels: StreamsScaleLevel[];
}

export interface StreamsScaleResult {
  readonly segments: number;
  readonly ratePerStream: number;
  readonly workers: number;
  readonly rounds: number;
  readonly rows: StreamsScaleRow[];
  /** Compact JSON bytes one stream adds to a report ((on - off) / streams), and what follows from it. */
  readonly reportBytesPerStream: number | null;
  /** Streams one segment may list before its counters pass a page (the segment is then a stub). */
  readonly streamsPerSegmentPage: number | null;
  /** Streams (at one per segment) a whole report of STATS_MAX_PAGES pages holds. */
  readonly streamsPerReport: number | null;
}

export interface StreamsResult {
  readonly method: string;
  readonly chain: string;
  readonly cpu: StreamsCpuResult;
  readonly scale: StreamsScaleResult;
  readonly micro: StreamsMicroResult;
  readonly warnings: string[];
}

type Load = LoadProcess<LoadgenRequest, LoadgenReply>;

/** A CPU trial counts when the generator reached the rate and less than this was lost, %. */
const CLEAN_LOSS_PCT = 0.1;
/** Fewer clean rounds than this: every round counts (and the run says so). */
const MIN_CLEAN_ROUNDS = 3;

function cleanTrial(t: StreamsCpuTrial): boolean {
  return !t.generatorShort && t.lossPct < CLEAN_LOSS_PCT;
}

function med(xs: readonly (number | null | undefined)[], digits: number): number | null {
  const v = xs.filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  return v.length === 0 ? null : round(median(v), digits);
}

function streamsOf(s: ProxySnapshot): number {
  return s.segments.reduce((n, seg) => n + seg.streams.length, 0);
}

// ---- 1. CPU per packet at a fixed rate ----

interface CpuVariant {
  readonly runtime: Runtime;
  readonly streams: StatsSwitch;
  readonly proxy: ProxyProcess;
  /** The harness with this variant's own generator. */
  readonly h: Harness;
}

async function measureCpu(opts: StreamsOptions, warnings: string[], step: () => void): Promise<StreamsCpuResult> {
  const search: SearchOptions = {
    size: opts.size, repeats: 1, trialMs: opts.trialMs, drainMs: opts.drainMs, steps: 0, floorPps: opts.cpuRatePps, maxPps: opts.cpuRatePps,
    maxLoss: 0.001, sweepRates: [], pin: opts.pin, noisyRetries: 0, ...(opts.batchSize !== undefined && { batchSize: opts.batchSize }),
  };
  const chain = [{ name: opts.filterName, path: opts.filterPath }];
  return withHarness(opts.pin, warnings, async (h) => {
    const variants: CpuVariant[] = [];
    const extraGens: Load[] = [];
    try {
      for (const runtime of opts.runtimes) {
        for (const streams of ["off", "on"] as const) {
          let proxy: ProxyProcess;
          try {
            // off is streams.max 0; on is the proxy's default
            proxy = await startProxy(h.sink.port, runtime, chain, opts.batchSize, streams === "off" ? { streams: { max: 0 } } : {});
          } catch (err) {
            warnings.push(`CPU per packet under ${runtime}, stats ${streams}: not measured: ${whyNotStarted(err as Error)}`);
            continue;
          }
          // each proxy has a generator of its own: its stream's source port and sequence numbers stay its own
          let gen = h.gen;
          if (variants.length > 0) {
            gen = new LoadProcess<LoadgenRequest, LoadgenReply>(new URL("./loadgen.js", import.meta.url), "gen");
            extraGens.push(gen);
            await gen.ready;
          }
          const v: CpuVariant = { runtime, streams, proxy, h: { ...h, gen } };
          // priming, not counted: JIT warm-up, and the validate filter's probation for the stream
          await runTrial(v.h, proxy, Math.min(20_000, opts.cpuRatePps), 300, search, false);
          variants.push(v);
        }
      }
      const trials: StreamsCpuTrial[] = [];
      for (let r = 0; r < opts.rounds; r++) {
        for (let k = 0; k < variants.length; k++) {
          const v = variants[(k + r) % variants.length]!;
          const t = await runTrial(v.h, v.proxy, opts.cpuRatePps, opts.trialMs, search, false);
          trials.push({ runtime: v.runtime, streams: v.streams, round: r, usPerPacket: t.relayCpuUsPerPacket, achievedPps: t.achievedPps, lossPct: t.lossPct, otherCpuPct: t.otherCpuPct, generatorShort: t.generatorShort });
          progress(`streams: ${v.runtime}, stats ${v.streams}, round ${r + 1}/${opts.rounds}: ${t.relayCpuUsPerPacket ?? "-"} us/packet at ${t.achievedPps} pps, loss ${t.lossPct}%, other ${t.otherCpuPct ?? "?"}%`);
          step();
        }
      }
      const listed = new Map<CpuVariant, number>();
      for (const v of variants) listed.set(v, streamsOf(await v.proxy.stats()));
      const rows: StreamsCpuRow[] = [];
      for (const runtime of opts.runtimes) {
        const off = variants.find((v) => v.runtime === runtime && v.streams === "off");
        const on = variants.find((v) => v.runtime === runtime && v.streams === "on");
        if (!off || !on) continue;
        const of = (s: StatsSwitch, r: number): StreamsCpuTrial | undefined => trials.find((t) => t.runtime === runtime && t.streams === s && t.round === r);
        const all = Array.from({ length: opts.rounds }, (_, r) => [of("off", r), of("on", r)] as const)
          .filter((p): p is readonly [StreamsCpuTrial, StreamsCpuTrial] => (p[0]?.usPerPacket ?? 0) > 0 && (p[1]?.usPerPacket ?? 0) > 0);
        // a round counts where both trials ran at the rate and lost nothing: one that fell short ran
        // smaller batches, and its CPU per packet says so rather than what the stats cost
        const clean = all.filter((p) => p.every(cleanTrial));
        const chosen = clean.length >= MIN_CLEAN_ROUNDS ? clean : all;
        if (chosen === all && all.length > 0) warnings.push(`CPU per packet under ${runtime}: only ${clean.length} of ${all.length} rounds ran clean (both trials at the rate, loss < ${CLEAN_LOSS_PCT}%): the ratio is over every round`);
        const pairs = chosen.map(([a, b]) => [a.usPerPacket!, b.usPerPacket!] as const);
        const mine = (s: StatsSwitch): StreamsCpuTrial[] => chosen.map((p) => p[s === "off" ? 0 : 1]);
        rows.push({
          runtime,
          io: on.proxy.io,
          offUsPerPacket: med(mine("off").map((t) => t.usPerPacket), 3),
          onUsPerPacket: med(mine("on").map((t) => t.usPerPacket), 3),
          onOverOff: med(pairs.map(([a, b]) => b / a), 3),
          onOverOffRange: pairs.length === 0 ? null : [round(Math.min(...pairs.map(([a, b]) => b / a)), 3), round(Math.max(...pairs.map(([a, b]) => b / a)), 3)],
          addedNsPerPacket: med(pairs.map(([a, b]) => (b - a) * 1000), 0),
          offLossPct: Math.max(0, ...mine("off").map((t) => t.lossPct)),
          onLossPct: Math.max(0, ...mine("on").map((t) => t.lossPct)),
          rounds: pairs.length,
          cleanRounds: clean.length,
          onStreamsListed: listed.get(on)!,
          offStreamsListed: listed.get(off)!,
        });
        if (listed.get(on) !== 1) warnings.push(`CPU per packet under ${runtime}: the proxy with stats on listed ${listed.get(on)} streams, not 1`);
        if (listed.get(off) !== 0) warnings.push(`CPU per packet under ${runtime}: the proxy with stats off listed ${listed.get(off)} streams, not 0`);
      }
      const noisy = trials.filter((t) => t.otherCpuPct !== null && t.otherCpuPct > NOISY_CPU_PCT).length;
      if (noisy > 0) warnings.push(`CPU per packet: ${noisy} of ${trials.length} trials ran while other processes used more than ${NOISY_CPU_PCT}% of a core: the machine was not quiet (the ratios within a round are what count)`);
      const lossy = trials.filter((t) => t.lossPct >= 0.1).length;
      if (lossy > 0) warnings.push(`CPU per packet: ${lossy} of ${trials.length} trials lost 0.1% or more: CPU per delivered packet there includes work on packets that did not arrive`);
      const short = trials.filter((t) => t.generatorShort).length;
      if (short > 0) warnings.push(`CPU per packet: in ${short} of ${trials.length} trials the generator fell short of ${opts.cpuRatePps} pps (the machine was busy): those trials ran at a lower rate`);
      return { ratePps: opts.cpuRatePps, size: opts.size, trialMs: opts.trialMs, rounds: opts.rounds, rows, trials };
    } finally {
      await Promise.all(variants.map((v) => v.proxy.close()));
      await Promise.all(extraGens.map((g) => g.exit()));
    }
  });
}

// ---- 2. many streams on one proxy ----

/** What /stats says about the streams of `snapshot`'s segments (one stream each expected). */
export function streamListing(snapshot: ProxySnapshot): StreamListing {
  let streamsListed = 0;
  let withBoth = 0;
  let one = 0;
  let overflowSegments = 0;
  let overflowIn = 0;
  let overflowOut = 0;
  let unaccounted = 0;
  let ingress = 0;
  let egress = 0;
  let packetsIn = 0;
  let packetsOut = 0;
  const byWorker = new Map<number, { worker: number; segments: number; streams: number }>();
  for (const seg of snapshot.segments) {
    const w = byWorker.get(seg.worker) ?? { worker: seg.worker, segments: 0, streams: 0 };
    byWorker.set(seg.worker, w);
    w.segments++;
    w.streams += seg.streams.length;
    streamsListed += seg.streams.length;
    if (seg.streams.length === 1) one++;
    for (const s of seg.streams) {
      if ((s.ingress?.packets ?? 0) > 0 && (s.egress?.packets ?? 0) > 0) withBoth++;
      ingress += s.ingress?.packets ?? 0;
      egress += s.egress?.packets ?? 0;
    }
    if (seg.streamsOverflow) {
      overflowSegments++;
      overflowIn += seg.streamsOverflow.ingressPackets;
      overflowOut += seg.streamsOverflow.egressPackets;
    }
    if (seg.packetsIn > 0 && seg.streams.length === 0 && !seg.streamsOverflow) unaccounted++;
    packetsIn += seg.packetsIn;
    packetsOut += seg.packetsOut;
  }
  return {
    segments: snapshot.segments.length,
    streamsListed,
    withIngressAndEgress: withBoth,
    segmentsWithOneStream: one,
    overflowSegments,
    overflowIngressPackets: overflowIn,
    overflowEgressPackets: overflowOut,
    unaccountedSegments: unaccounted,
    byWorker: [...byWorker.values()].sort((a, b) => a.worker - b.worker),
    ingressPackets: ingress + overflowIn,
    egressPackets: egress + overflowOut,
    packetsIn,
    packetsOut,
  };
}

/** The report's size as served, as the agent pages it, and as /metrics. */
export function reportSize(snapshot: ProxySnapshot): StatsReportSize {
  const pages = pageStats(snapshot);
  const first = JSON.parse(pages[0]!) as { truncated?: { segmentsReported: number } };
  return {
    statsBytes: Buffer.byteLength(JSON.stringify(snapshot, null, 2)),
    compactBytes: Buffer.byteLength(JSON.stringify(snapshot)),
    metricsBytes: Buffer.byteLength(renderPrometheus(snapshot)),
    pages: pages.length,
    segmentsReported: first.truncated?.segmentsReported ?? snapshot.segments.length,
    segmentsTotal: snapshot.segments.length,
  };
}

/** Slots a worker's table holds for `streams` streams: it doubles from 16, up to its limit. */
export function tableCapacity(limit: number, streams: number): number {
  if (limit === 0 || streams === 0) return 0;
  let c = 0;
  while (c < Math.min(limit, streams)) c = Math.min(limit, Math.max(16, c * 2));
  return c;
}

interface ScaleVariant {
  readonly label: string;
  readonly streamsMax: number;
}

async function measureScale(opts: StreamsOptions, micro: StreamsMicroResult, warnings: string[], step: () => void): Promise<StreamsScaleResult> {
  const variants: ScaleVariant[] = [
    { label: "stats off (streams.max 0)", streamsMax: 0 },
    { label: `stats on (streams.max ${STREAMS_DEFAULTS.max.toLocaleString("en-US")}, the default)`, streamsMax: STREAMS_DEFAULTS.max },
    { label: `stats on, streams.max ${opts.boundedMax.toLocaleString("en-US")} (the rest aggregated)`, streamsMax: opts.boundedMax },
  ];
  const levels = new Map<ScaleVariant, StreamsScaleLevel[]>(variants.map((v) => [v, []]));
  for (let r = 0; r < opts.scaleRounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + r) % variants.length]!;
      progress(`streams: ${opts.segments} segments, ${v.label}, round ${r + 1}/${opts.scaleRounds}`);
      let seen: Omit<StreamsScaleLevel, "round" | "row"> | undefined;
      const result = await runScale({
        counts: [opts.segments],
        ratePerStream: opts.ratePerStream,
        size: 200,
        warmupMs: opts.warmupMs,
        measureMs: opts.measureMs,
        runtime: "node",
        workers: opts.workers,
        filter: { name: opts.filterName, path: opts.filterPath },
        basePort: opts.basePort,
        symmetricRtp: true,
        // the default is what "on" measures: the proxy's own, not this config's copy of it
        ...(v.streamsMax !== STREAMS_DEFAULTS.max && { streamsMax: v.streamsMax }),
        afterWindow: async (proxy) => {
          // the generator has stopped: what the proxy spends now is its once-a-second work (windows, the snapshot it keeps)
          const idleCpuPct = await idleCpu(proxy, opts.idleMs);
          // and then what one /stats costs it
          const cpu0 = treeCpuUs(proxy.pids());
          const t0 = performance.now();
          const snap = await proxy.stats();
          const snapshotMs = performance.now() - t0;
          const snapshotCpuMs = (treeCpuUs(proxy.pids()) - cpu0) / 1000;
          seen = { listing: streamListing(snap), report: reportSize(snap), idleCpuPct: round(idleCpuPct, 2), snapshotMs: round(snapshotMs, 1), snapshotCpuMs: round(snapshotCpuMs, 1) };
        },
      });
      // (the scale part's per-segment figures need its 1-segment level, which this part does not use)
      warnings.push(...result.warnings.filter((w) => !w.startsWith("no 1-segment level")).map((w) => `${v.label}: ${w}`));
      const row = result.rows.find((x) => x.segments === opts.segments && x.ratePerStream === opts.ratePerStream);
      if (row && seen) levels.get(v)!.push({ round: r, row, ...seen });
      step();
    }
  }
  const off = levels.get(variants[0]!)!;
  const offIn = (r: number): StreamsScaleLevel | undefined => off.find((l) => l.round === r);
  const rows = variants.map((v): StreamsScaleRow => {
    const ls = levels.get(v)!;
    const last = ls[ls.length - 1];
    const paired = ls.map((l) => [offIn(l.round), l] as const).filter((p): p is readonly [StreamsScaleLevel, StreamsScaleLevel] => p[0] !== undefined);
    const expectedBytes = expectedStatsBytes(v.streamsMax, (last?.listing.byWorker ?? []).map((w) => w.segments), micro);
    return {
      label: v.label,
      streamsMax: v.streamsMax,
      cpuUsPerPacket: med(ls.map((l) => l.row.cpuUsPerPacket), 2),
      vsOff: med(paired.map(([a, b]) => (a.row.cpuUsPerPacket && b.row.cpuUsPerPacket ? b.row.cpuUsPerPacket / a.row.cpuUsPerPacket : null)), 3),
      cpuPct: med(ls.map((l) => l.row.cpuPct), 1),
      idleCpuPct: med(ls.map((l) => l.idleCpuPct), 1),
      idleOverOffPct: med(paired.map(([a, b]) => b.idleCpuPct - a.idleCpuPct), 1),
      rssBytes: med(ls.map((l) => l.row.rssBytes), 0),
      rssOverOffBytes: med(paired.map(([a, b]) => b.row.rssBytes - a.row.rssBytes), 0),
      expectedBytes,
      snapshotMs: med(ls.map((l) => l.snapshotMs), 1),
      snapshotCpuMs: med(ls.map((l) => l.snapshotCpuMs), 1),
      proxyDrops: Math.max(0, ...ls.map((l) => l.row.proxyDrops)),
      listing: last?.listing ?? null,
      report: last?.report ?? null,
      levels: ls,
    };
  });
  for (const row of rows) {
    const l = row.listing;
    if (!l) {
      warnings.push(`${row.label}: not measured (see the warnings above)`);
      continue;
    }
    const expected = expectedListed(row.streamsMax, l);
    if (l.streamsListed !== expected) warnings.push(`${row.label}: /stats listed ${l.streamsListed} streams, ${expected} expected`);
    if (row.streamsMax > 0 && l.unaccountedSegments > 0) warnings.push(`${row.label}: ${l.unaccountedSegments} segments took packets in but neither listed a stream nor counted an overflow`);
  }
  const offReport = rows[0]!.report;
  const onReport = rows[1]!.report;
  const onStreams = rows[1]!.listing?.streamsListed ?? 0;
  const perStream = offReport && onReport && onStreams > 0 ? (onReport.compactBytes - offReport.compactBytes) / onStreams : null;
  const perSegment = offReport ? offReport.compactBytes / Math.max(1, offReport.segmentsTotal) : null;
  return {
    segments: opts.segments,
    ratePerStream: opts.ratePerStream,
    workers: opts.workers,
    rounds: opts.scaleRounds,
    rows,
    reportBytesPerStream: perStream === null ? null : round(perStream, 0),
    streamsPerSegmentPage: perStream === null || perSegment === null ? null : Math.floor((STATS_PAGE_BYTES - 1024 - perSegment) / perStream),
    streamsPerReport: perStream === null || perSegment === null ? null : Math.floor((STATS_MAX_PAGES * (STATS_PAGE_BYTES - 1024)) / (perStream + perSegment)),
  };
}

/**
 * The proxy's CPU with no traffic, % of one core: the median of one-second readings over `ms`,
 * after a second to settle, so that a collection of what the last /stats left behind does not
 * make the figure.
 */
async function idleCpu(proxy: ProxyProcess, ms: number): Promise<number> {
  const sampleMs = Math.min(1000, ms);
  await sleep(sampleMs);
  const readings: number[] = [];
  for (let k = 0; k < Math.max(1, Math.round(ms / sampleMs)); k++) {
    const cpu0 = treeCpuUs(proxy.pids());
    const t0 = performance.now();
    await sleep(sampleMs);
    readings.push(((treeCpuUs(proxy.pids()) - cpu0) / 1000 / (performance.now() - t0)) * 100);
  }
  return median(readings);
}

/** Streams a proxy lists: each worker at most streamsMax of the streams of its segments (one each). */
export function expectedListed(streamsMax: number, l: StreamListing): number {
  return l.byWorker.reduce((n, w) => n + Math.min(streamsMax, w.segments), 0);
}

/** Each worker's table at capacity for its streams, and every segment's bookkeeping, as measured in process. */
function expectedStatsBytes(streamsMax: number, segmentsPerWorker: readonly number[], micro: StreamsMicroResult): number {
  if (streamsMax === 0) return 0;
  const tables = segmentsPerWorker.reduce((n, s) => n + tableCapacity(streamsMax, s) * micro.tableBytesPerSlot, 0);
  return tables + segmentsPerWorker.reduce((n, s) => n + s, 0) * (micro.heapBytesPerSegment ?? 0);
}

export async function runStreams(opts: StreamsOptions): Promise<StreamsResult> {
  if (opts.runtimes.length === 0) throw new TypeError("streams: no runtime to measure");
  if (!(opts.boundedMax > 0 && opts.boundedMax < opts.segments / opts.workers)) {
    throw new TypeError(`streams: the bounded streams.max (${opts.boundedMax}) must be above 0 and under the streams per worker (${opts.segments} / ${opts.workers})`);
  }
  const warnings: string[] = [];
  const total = opts.rounds * opts.runtimes.length * 2 + opts.scaleRounds * 3;
  let done = 0;
  const step = (): void => opts.onStep?.(++done, total);
  // in process first, while no proxy shares the machine
  progress(`streams: in process, ${opts.microStreams} streams`);
  const micro = runStreamsMicro({ streams: opts.microStreams, sampleMs: opts.sampleMs, repeats: opts.microRepeats });
  if (micro.otherCpuPct !== null && micro.otherCpuPct > NOISY_CPU_PCT) warnings.push(`in process: other processes used ${micro.otherCpuPct}% of a core meanwhile: the machine was not quiet`);
  const cpu = await measureCpu(opts, warnings, step);
  const scale = await measureScale(opts, micro, warnings, step);
  const cores = availableParallelism();
  return {
    method:
      `(1) One proxy per runtime and switch (stats off: streams.max 0; on: the default), each with a generator of its own, side by side; one stream of ${opts.size}-byte RTP at ${opts.cpuRatePps} pps, ` +
      `${opts.trialMs} ms trials and a ${opts.drainMs} ms drain, the variants round robin (who goes first rotating) for ${opts.rounds} rounds after a priming trial each; ` +
      `CPU = the proxy's process tree over the trial and drain, per delivered packet; ratios within a round, then the median. ` +
      `(2) The scale part's level: ${opts.segments} segments (symmetricRtp, rtcpMux, chain [${opts.filterName}], ${opts.workers} workers) x ${opts.ratePerStream} pps of 200-byte RTP, ` +
      `a proxy per variant (off, on, on with streams.max ${opts.boundedMax} per worker), ${opts.scaleRounds} rounds in rotating order; after each window, one /stats: its listing, size and cost. ` +
      `(3) In process (bench/streams-micro.ts): the runtime's StreamTable and SegmentStreams in a loop, median of ${opts.microRepeats} samples of about ${opts.sampleMs} ms, round robin. ` +
      `This machine has ${cores} cores, shared with other users: the figures move from run to run; the ratios within a run are what count.`,
    chain: opts.filterName,
    cpu,
    scale,
    micro,
    warnings,
  };
}

// ---- output ----

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);
}

function mib(bytes: number | null | undefined, digits = 1): string {
  return bytes === null || bytes === undefined ? "-" : (bytes / 2 ** 20).toFixed(digits);
}

function runtimeName(r: Runtime): string {
  return r === "bun" ? "Bun" : "Node";
}

export interface StreamsTable {
  readonly title: string;
  readonly rows: string[][];
  readonly alignLeft: number;
  readonly notes: string[];
}

/** The part's tables: CPU at a fixed rate, many streams on one proxy, in process. */
export function streamsTables(r: StreamsResult): StreamsTable[] {
  const c = r.cpu;
  const cpuRows = [["runtime", "rounds counted", "stats off us/pkt", "stats on us/pkt", "on / off", "rounds' range", "added ns/pkt", "worst loss off / on %", "streams listed off / on"]];
  for (const x of c.rows) {
    cpuRows.push([runtimeName(x.runtime), `${x.rounds} of ${c.rounds}${x.rounds === x.cleanRounds ? " (clean)" : ` (${x.cleanRounds} clean)`}`, fmt(x.offUsPerPacket, 2), fmt(x.onUsPerPacket, 2), x.onOverOff === null ? "-" : `${x.onOverOff.toFixed(3)}x`,
      x.onOverOffRange ? `${x.onOverOffRange[0].toFixed(2)}-${x.onOverOffRange[1].toFixed(2)}x` : "-", fmt(x.addedNsPerPacket, 0),
      `${x.offLossPct} / ${x.onLossPct}`, `${x.offStreamsListed} / ${x.onStreamsListed}`]);
  }
  const s = r.scale;
  const scaleRows = [["variant", "CPU %", "CPU us/pkt", "/ off", "idle CPU %", "idle - off", "RSS MiB", "RSS - off MiB", "expected MiB", "streams listed", "with ingress + egress", "segments aggregated", "overflow packets in / out", "proxy drops"]];
  for (const x of s.rows) {
    const l = x.listing;
    const on = x.streamsMax > 0;
    scaleRows.push([x.label, fmt(x.cpuPct, 1), fmt(x.cpuUsPerPacket, 2), on && x.vsOff !== null ? `${x.vsOff.toFixed(3)}x` : "-", fmt(x.idleCpuPct, 1), on ? fmt(x.idleOverOffPct, 1) : "-",
      mib(x.rssBytes), on ? mib(x.rssOverOffBytes) : "-", mib(x.expectedBytes, 2),
      l ? String(l.streamsListed) : "-", l ? String(l.withIngressAndEgress) : "-", l ? String(l.overflowSegments) : "-",
      l ? `${l.overflowIngressPackets} / ${l.overflowEgressPackets}` : "-", String(x.proxyDrops)]);
  }
  const reportRows = [["variant", "/stats bytes", "compact JSON bytes", "/metrics bytes", `agent pages (of ${STATS_MAX_PAGES})`, "segments in the report", "one /stats: wall ms", "proxy CPU ms"]];
  for (const x of s.rows) {
    const p = x.report;
    reportRows.push([x.label, p ? String(p.statsBytes) : "-", p ? String(p.compactBytes) : "-", p ? String(p.metricsBytes) : "-", p ? String(p.pages) : "-", p ? `${p.segmentsReported} of ${p.segmentsTotal}` : "-",
      fmt(x.snapshotMs, 0), fmt(x.snapshotCpuMs, 0)]);
  }
  const m = r.micro;
  const microRows = [["loop", "ns/packet", "range", "over the empty loop", "heap B/packet"]];
  for (const x of m.rows) microRows.push([x.name, fmt(x.nsPerPacket), `${fmt(x.minNs)}-${fmt(x.maxNs)}`, x.overLoopNs === null ? "-" : fmt(x.overLoopNs), fmt(x.heapBytesPerPacket, 2)]);
  const io = c.rows.map((x) => `${runtimeName(x.runtime)}: ${x.io ?? "?"}`).join("; ");
  const fits = s.rows[1]?.report;
  const offFits = s.rows[0]?.report;
  return [
    {
      title: `(h) Streams: CPU per packet with per-stream stats off and on, ${c.ratePps} pps of ${c.size} B, one stream, chain [${r.chain}] (${c.trialMs} ms trials, ${c.rounds} rounds)`,
      rows: cpuRows,
      alignLeft: 1,
      notes: [
        "Off: the proxy config's streams.max 0; on: its default. us/pkt: the proxy's process tree CPU per delivered packet, median of the rounds counted; on / off and added ns: within each round, then the median (the same run on a shared machine: the ratio is the figure to read).",
        `Rounds counted: those whose two trials ran clean (the generator at the rate, loss under ${CLEAN_LOSS_PCT}%: a trial that fell short ran smaller batches, which moves CPU per packet more than the stats do), when at least ${MIN_CLEAN_ROUNDS} did; else every round.`,
        `socket I/O, as the proxies' start lines named it: ${io}`,
      ],
    },
    {
      title: `(h) Streams: ${s.segments.toLocaleString("en-US")} streams on one proxy (${s.segments.toLocaleString("en-US")} segments x ${s.ratePerStream} pps, ${s.workers} workers, median of ${s.rounds} rounds)`,
      rows: scaleRows,
      alignLeft: 1,
      notes: [
        "Each variant is the scale part's level in a proxy of its own (setup as in (d)). streams.max counts per worker: the bounded variant lists at most that many streams on each worker and aggregates the other segments' packets in their streamsOverflow.",
        `RSS: of the proxy's process tree, read once after the window (it moves by a hundred MiB between identical proxies of 10,000 segments: read it over rounds and runs); RSS - off: within each round, then the median. expected: each worker's stream table at its capacity (${m.tableBytesPerSlot} B per slot, doubling from 16 slots up to streams.max) plus ${m.heapBytesPerSegment ?? "?"} B of bookkeeping per segment, both measured in process.`,
        "CPU %: the proxy's process tree over the window, % of one core; us/pkt: per delivered packet (at 5 pps per stream most of it is per-second work spread over few packets; on a busy machine the generator may offer less than asked, which the warnings say, and then us/pkt rises). / off: within each round, then the median.",
        "idle CPU %: the proxy's CPU with no traffic after the window (the streams still listed; a second to settle, then the median of one-second readings), % of one core: its once-a-second work, which includes every worker's snapshot of all its segments (and their streams) sent to the main thread (runtime/proxy.ts refresh) and each worker's roll of its streams' windows. idle - off: within each round, then the median, in % of one core.",
        "proxy drops: the proxy's own drop counters over the window, the worst round (packets missing at the sink with none dropped by the proxy are the harness's on a busy machine: see the warnings).",
      ],
    },
    {
      title: `(h) Streams: the stats report at ${s.segments.toLocaleString("en-US")} segments, one stream each`,
      rows: reportRows,
      alignLeft: 1,
      notes: [
        `/stats bytes: as served (indented JSON); compact: what the agent pages, at most ${STATS_PAGE_BYTES >> 10} KiB a page and ${STATS_MAX_PAGES} pages (controlplane/api/stats-pages.ts), whole segments, those beyond left out (the report says so); /metrics: the Prometheus text of the same snapshot.`,
        "one /stats: after the idle reading, one /stats: the workers' snapshots, their transfer to the main thread, its JSON, the HTTP answer; wall time and the proxy's CPU. The agent takes such a snapshot every second (without the JSON indent; controlplane/agent), and the proxy's own refresh does the workers' part every second too.",
        s.reportBytesPerStream === null ? "bytes per stream: not measured" :
          `One stream adds ${s.reportBytesPerStream} B of compact JSON. So a report of one-stream segments holds about ${s.streamsPerReport} streams, ` +
          `and one segment can list about ${s.streamsPerSegmentPage} streams before its counters pass a page (it is then reported as a stub without counters).` +
          (fits ? ` At ${s.segments.toLocaleString("en-US")} streams: ${fits.segmentsReported === fits.segmentsTotal ? "they fit" : `they do not fit: ${fits.segmentsReported} of ${fits.segmentsTotal} segments are reported`}` +
            (offFits && offFits.segmentsReported < offFits.segmentsTotal ? ` (without streams ${offFits.segmentsReported}: the segments alone pass the limit)` : "") + "." : ""),
      ],
    },
    {
      title: `(h) Streams: counting in process, ns per packet (median of ${m.repeats} samples of about ${m.sampleMs} ms)`,
      rows: microRows,
      alignLeft: 1,
      notes: [
        "The runtime's StreamTable and SegmentStreams in a loop, no sockets. StreamTable.record counts one direction; ingress + egress is what a worker does per packet forwarded (RTP check, SSRC to slot, record, twice). Round robin over many streams touches another stream's columns on every packet (cache misses), as 10,000 segments of 5 pps each do.",
        `Once a second each worker rolls its streams' windows: ${m.rollNsPerStream} ns per stream. A /stats snapshot: ${m.snapshotNsPerStream} ns per stream in the worker (before the transfer and the JSON). Memory: ${m.tableBytesPerSlot} B of typed-array columns per slot, ${m.heapBytesPerSegment ?? "?"} B of V8 heap per segment that counts streams.`,
        ...(m.otherCpuPct !== null && m.otherCpuPct > NOISY_CPU_PCT ? [`warning: other processes used ${m.otherCpuPct}% of a core during the in-process runs: the machine was not quiet`] : []),
      ],
    },
  ];
}
