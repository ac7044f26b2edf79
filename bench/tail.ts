// (i) Tail latency: the proxy's p99.9 at 10,000 packets/s against its runtime's plain node:dgram
// relay, in paired, interleaved trials.
//
// A p99.9 over a few seconds is the few dozen slowest packets: on a shared 2-core machine they are
// the moments the relay was not running, and those move from one trial to the next by more than
// any relay differs. The end-to-end sweep measures each relay in a block of its own, minutes
// apart, so its p99.9s compare moments more than relays. Here both relays run side by side (the
// idle one costs next to nothing) and each round measures, in an order that rotates, the proxy
// once and the plain relay twice. The proxy is judged by the median over rounds of its p99.9 over
// the geometric mean of the round's two relay trials; the two relay trials against each other
// (an A/A pair: the same relay, the same chain of nothing) show how far a ratio moves by noise
// alone.
import { NOISY_CPU_PCT, median, progress, round } from "./common.js";
import { runTrial, startProxy, withHarness, type SearchOptions, type Target, type Trial } from "./e2e.js";
import { startPlainRelay } from "./hosts/plain-relay.js";
import type { RelayProcess } from "./hosts/relay-process.js";

export type TailRuntime = "node" | "bun";
type Slot = "proxy" | "relay";

export interface TailOptions {
  readonly filterPath: string;
  readonly filterName: string;
  readonly runtimes: readonly TailRuntime[];
  readonly ratePps: number;
  readonly size: number;
  readonly trialMs: number;
  /** The start of every trial whose latencies do not count: a stream's first packets meet cold caches and sleeping CPUs under any relay. */
  readonly settleMs: number;
  /**
   * Traffic each relay gets before the first round, in trials of at most trialMs. Under Bun
   * the proxy's JIT keeps compiling its packet path for about 25 s at 10,000 packets/s, and its
   * p99.9 is 2-6 ms until it is done: warm-up, not the tail.
   */
  readonly primeMs: number;
  readonly drainMs: number;
  readonly rounds: number;
  readonly pin: boolean;
  /** Called after every trial (priming ones too), for the progress bar. */
  readonly onTrial?: () => void;
}

/** One trial's latency, us, and what was lost. */
export interface TailSample {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly over1ms: number;
  readonly received: number;
  readonly lossPct: number;
  /** The machine's CPU used by others than the relay and the harness during the trial, % of a core. */
  readonly otherCpuPct: number | null;
}

export interface TailRound {
  readonly order: readonly Slot[];
  readonly proxy: TailSample;
  /** The plain relay's two trials, in the order they ran. */
  readonly relay: readonly [TailSample, TailSample];
  /** proxy p99.9 over the geometric mean of the relay's two. */
  readonly ratio: number;
  /** The relay's second p99.9 over its first: what noise alone does to a ratio. */
  readonly aa: number;
}

export interface TailRuntimeResult {
  readonly runtime: TailRuntime;
  readonly rounds: TailRound[];
  /** Medians over the rounds. */
  readonly proxy: Omit<TailSample, "otherCpuPct">;
  readonly relay: Omit<TailSample, "otherCpuPct">;
  readonly medianRatio: number;
  readonly ratioRange: readonly [number, number];
  /** Rounds whose ratio is at most 1: near half of them when proxy and relay are alike. */
  readonly roundsAtMostOne: number;
  /** The A/A ratio's median and range over the rounds. */
  readonly medianAa: number;
  readonly aaRange: readonly [number, number];
}

export interface TailResult {
  readonly method: string;
  readonly ratePps: number;
  readonly size: number;
  readonly trialMs: number;
  readonly settleMs: number;
  /** Absent in results from before 2026-12-05 (one priming trial of 1 s). */
  readonly primeMs?: number;
  readonly filter: string;
  readonly runtimes: TailRuntimeResult[];
  readonly warnings: string[];
}

/** Round r's order: the three slots rotated by r; over a multiple of 3 rounds the proxy runs first, second and third equally often. */
export function roundOrder(r: number): Slot[] {
  const base: Slot[] = ["proxy", "relay", "relay"];
  return base.map((_, i) => base[(i + r) % base.length]!);
}

function sample(t: Trial): TailSample | null {
  const l = t.latencyUs;
  if (!l) return null;
  return { p50: l.p50, p99: l.p99, p999: l.p999, max: l.max, over1ms: l.over1ms ?? 0, received: t.received, lossPct: t.lossPct, otherCpuPct: t.otherCpuPct };
}

function medianSample(xs: readonly TailSample[]): Omit<TailSample, "otherCpuPct"> {
  const m = (f: (s: TailSample) => number, digits = 1): number => round(median(xs.map(f)), digits);
  return { p50: m((s) => s.p50), p99: m((s) => s.p99), p999: m((s) => s.p999), max: m((s) => s.max), over1ms: m((s) => s.over1ms, 0), received: m((s) => s.received, 0), lossPct: m((s) => s.lossPct, 4) };
}

function range(xs: readonly number[]): [number, number] {
  return [round(Math.min(...xs), 2), round(Math.max(...xs), 2)];
}

export async function runTail(o: TailOptions): Promise<TailResult> {
  const warnings: string[] = [];
  const search: SearchOptions = {
    size: o.size, repeats: 1, trialMs: o.trialMs, drainMs: o.drainMs, steps: 0, floorPps: o.ratePps, maxPps: o.ratePps,
    maxLoss: 0.001, sweepRates: [o.ratePps], pin: o.pin, noisyRetries: 0,
  };
  const latencyFrom = Math.round((o.ratePps * o.settleMs) / 1000);
  const runtimes = await withHarness(o.pin, warnings, async (h) => {
    const out: TailRuntimeResult[] = [];
    for (const runtime of o.runtimes) {
      let proxy: RelayProcess | undefined;
      let relay: RelayProcess | undefined;
      try {
        // the generator takes a new source port each time it moves from one relay to the other, and
        // a relay trial lies between two of the proxy's: a second of silence lets the gate take it
        proxy = await startProxy(h.sink.port, runtime, [{ name: o.filterName, path: o.filterPath }], undefined, { sourceIdleMs: 1000 });
        relay = await startPlainRelay(h.sink.port, runtime);
        // priming: JIT, page faults and the source gate's learning are not the tail
        for (let primed = 0; primed < o.primeMs; primed += o.trialMs) {
          for (const r of [proxy, relay]) {
            await runTrial(h, r, o.ratePps, Math.min(o.primeMs - primed, o.trialMs), search, false);
            o.onTrial?.();
          }
        }
        const rounds: TailRound[] = [];
        for (let r = 0; r < o.rounds; r++) {
          const order = roundOrder(r);
          const got: { proxy?: TailSample; relay: TailSample[] } = { relay: [] };
          for (const slot of order) {
            const t = await runTrial(h, slot === "proxy" ? proxy : relay, o.ratePps, o.trialMs, search, false, latencyFrom);
            o.onTrial?.();
            const s = sample(t);
            if (!s) throw new Error(`${runtime} ${slot}: the sink timed no packet (none arrived after the first ${o.settleMs} ms)`);
            if (slot === "proxy") got.proxy = s;
            else got.relay.push(s);
          }
          const [a, b] = got.relay as [TailSample, TailSample];
          if (!(a.p999 > 0 && b.p999 > 0)) {
            warnings.push(`tail ${runtime} round ${r + 1}: a relay p99.9 of 0 us, left out`);
            continue;
          }
          const ratio = round(got.proxy!.p999 / Math.sqrt(a.p999 * b.p999), 3);
          const aa = round(b.p999 / a.p999, 3);
          rounds.push({ order, proxy: got.proxy!, relay: [a, b], ratio, aa });
          progress(`tail ${runtime} round ${r + 1}/${o.rounds}: proxy p99.9 ${got.proxy!.p999} us, relay ${a.p999} and ${b.p999} us: ratio ${ratio}, A/A ${aa}`);
        }
        if (rounds.length === 0) throw new Error("no round could be measured");
        const ratios = rounds.map((x) => x.ratio);
        const aas = rounds.map((x) => x.aa);
        out.push({
          runtime,
          rounds,
          proxy: medianSample(rounds.map((x) => x.proxy)),
          relay: medianSample(rounds.flatMap((x) => x.relay)),
          medianRatio: round(median(ratios), 3),
          ratioRange: range(ratios),
          roundsAtMostOne: ratios.filter((x) => x <= 1).length,
          medianAa: round(median(aas), 3),
          aaRange: range(aas),
        });
      } catch (err) {
        warnings.push(`tail ${runtime}: could not run: ${(err as Error).message.split("\n")[0]}`);
      } finally {
        await proxy?.close();
        await relay?.close();
      }
    }
    return out;
  });
  const samples = runtimes.flatMap((r) => r.rounds.flatMap((x) => [x.proxy, ...x.relay]));
  const lossy = samples.filter((s) => s.lossPct >= 0.1).length;
  if (lossy > 0) warnings.push(`${lossy} trials lost 0.1% or more: their p99.9 leaves out what never arrived`);
  const noisy = samples.filter((s) => (s.otherCpuPct ?? 0) > NOISY_CPU_PCT).length;
  if (noisy > 0) warnings.push(`${noisy} trials ran while other processes used more than ${NOISY_CPU_PCT}% of a core`);
  return {
    method: "per runtime, the proxy (one segment, the filter under test) and the plain node:dgram relay run side by side; each round measures the proxy once and the relay twice, the order rotating; ratio = proxy p99.9 / geometric mean of the round's two relay p99.9s; A/A = relay's second p99.9 / its first",
    ratePps: o.ratePps,
    size: o.size,
    trialMs: o.trialMs,
    settleMs: o.settleMs,
    primeMs: o.primeMs,
    filter: o.filterName,
    runtimes,
    warnings,
  };
}

const RUNTIME_LABEL: Record<TailRuntime, string> = { node: "Node", bun: "Bun" };

/**
 * Issue #14's tail target for each runtime the part measured: the median paired ratio at most 1.
 * Worded as the end-to-end part words it, whose target it replaces.
 */
export function tailTargets(t: TailResult): Target[] {
  return t.runtimes.map((r) => ({
    what: `p99.9 latency at ${(t.ratePps / 1000).toFixed(1)}k pps: proxy + ${t.filter} no worse than the plain node:dgram relay's (${RUNTIME_LABEL[r.runtime]})`,
    value: `median ratio ${r.medianRatio} over ${r.rounds.length} paired rounds, ${r.roundsAtMostOne} of them at most 1 (range ${r.ratioRange[0]}-${r.ratioRange[1]}; A/A ${r.medianAa}, ${r.aaRange[0]}-${r.aaRange[1]}); ${r.proxy.p999} against ${r.relay.p999} us`,
    met: r.medianRatio <= 1,
  }));
}

export function tailRows(t: TailResult): string[][] {
  const rows = [["runtime", "relay", "p50 us", "p99 us", "p99.9 us", "max us", "packets > 1 ms", "loss %", "p99.9 ratio (range)", "A/A ratio (range)"]];
  for (const r of t.runtimes) {
    const label = RUNTIME_LABEL[r.runtime];
    rows.push([label, `msm proxy + ${t.filter}`, ...cells(r.proxy), `${r.medianRatio} (${r.ratioRange[0]}-${r.ratioRange[1]})`, "-"]);
    rows.push([label, "plain node:dgram relay", ...cells(r.relay), "-", `${r.medianAa} (${r.aaRange[0]}-${r.aaRange[1]})`]);
  }
  return rows;
}

function cells(s: Omit<TailSample, "otherCpuPct">): string[] {
  return [String(s.p50), String(s.p99), String(s.p999), String(s.max), String(s.over1ms), String(s.lossPct)];
}

export function tailNotes(t: TailResult): string[] {
  const timed = Math.round((t.ratePps * (t.trialMs - t.settleMs)) / 1000);
  return [
    `${t.size} B RTP at ${t.ratePps} packets/s, ${t.trialMs} ms a trial; latency counts from ${t.settleMs} ms in (${timed} packets: ${Math.floor(timed / 1000)} are slower than the p99.9). Latency: the sink's kernel receive time minus the generator's stamp. Figures per relay are medians over the rounds (the relay's over both its trials).`,
    `Before the first round each relay had ${((t.primeMs ?? 1000) / 1000).toFixed(1)} s of the same traffic: JIT warm-up is not the tail (under Bun the proxy's takes about 25 s).`,
    "p99.9 ratio: per round, the proxy's p99.9 over the geometric mean of the relay's two trials of that round; the median over rounds judges the target (at most 1). A/A: the relay's second trial over its first, the same relay twice: a ratio's spread from noise alone (one trial over one: somewhat wider than the ratio's, over a mean of two).",
    ...t.warnings.map((w) => `warning: ${w}`),
  ];
}
