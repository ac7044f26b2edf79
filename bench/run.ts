// The benchmark entry point: `npm run bench` (or `node dist/bench/run.js` after a build).
//
//   --quick            the whole suite in under two minutes: fewer samples, short trials, one
//                      repeat, scale up to 1,000 segments (a smoke run, not figures to quote)
//   --only LIST        parts to run, comma-separated: micro, srtp, fec, e2e, tail, scale, fanout, workers,
//                      streams, congestion (default all but congestion, which needs root: RFC 8867
//                      in network namespaces, full length in --quick too; docs/congestion-eval.md)
//   --hosts LIST       end-to-end relays (default all): direct, plain, bun, c, gstreamer, rtpengine,
//                      proxy, filter, filter@dgram, filter@bun, srtp
//   --repeats N        end-to-end and workers repeats (default 3, quick 1); the streams part runs 5N rounds
//   --scale LIST       segment counts of the scale part (default 1,100,1000,10000; quick 1,100,1000)
//   --scale-rate N     packets/s of each stream in the scale part (default 50; a level whose aggregate is
//                      over 50,000 runs again reduced to fit)
//   --filter PATH      the filter under test (default filters/validate/build/validate.wasm)
//   --batch-size N     the proxy's batchSize in the end-to-end part (default: the proxy's own)
//   --pin              pin the relays to CPU 0 and the generator and sink to the others (taskset)
//   --json FILE        also write the results JSON to FILE
//   --no-save          do not write bench/results/ or bench/RESULTS.md
//   --render           run nothing: redraw the charts and bench/RESULTS.md from bench/results/
//
// Tables go to stdout, progress to stderr (a bar on a terminal). Results go to
// bench/results/<date>[-quick][-<parts>].json, with SVG charts beside them, and bench/RESULTS.md
// is regenerated from the newest results. See docs/benchmarks.md.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, release, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { DEFAULT_FILTER, ROOT, progress, useProgressBar } from "./common.js";
import { filterNameOf, HOST_KINDS, HOST_NAMES, runE2e, type HostKind, type SearchOptions } from "./e2e.js";
import { BUN } from "./hosts/spawn.js";
import { runMicro } from "./micro.js";
import { ProgressBar, type Phase } from "./progress-bar.js";
import { e2eCharts, printText, renderResultsMarkdown, type BenchResults, type Machine } from "./report.js";
import { runScale } from "./scale.js";
import { runSrtp, SRTP_FILTER, SRTP_SUITES } from "./srtp.js";
import { runFec } from "./fec.js";
import { FANOUT_RELAYS, runFanout } from "./fanout.js";
import { runWorkers, workerCountsFor } from "./workers.js";
import { runStreams } from "./streams.js";
import { runCongestion } from "./congestion.js";
import { runTail } from "./tail.js";

const FEC_FILTER = join(ROOT, "filters", "fec", "build", "fec.wasm");
const PARTS = ["micro", "srtp", "fec", "e2e", "tail", "scale", "fanout", "workers", "streams", "congestion"] as const;
type Part = (typeof PARTS)[number];
/** What a run without --only runs: congestion needs root and runs for minutes. */
const DEFAULT_PARTS = PARTS.filter((p) => p !== "congestion");

interface Args {
  quick: boolean;
  json: string | undefined;
  filter: string;
  only: Part[];
  repeats: number | undefined;
  pin: boolean;
  save: boolean;
  hosts: HostKind[] | undefined;
  scale: number[] | undefined;
  scaleRate: number;
  render: boolean;
  batchSize: number | undefined;
}

/** The max-rate search and sweep of the end-to-end and workers parts, as the arguments set them. */
function search(args: Args, repeats: number, steps: number, sweepRates: readonly number[]): SearchOptions & { filterPath: string } {
  const q = args.quick;
  return {
    filterPath: args.filter,
    size: 1200,
    repeats,
    trialMs: q ? 400 : 2000,
    drainMs: q ? 100 : 250,
    noisyRetries: q ? 0 : 3,
    steps,
    floorPps: 10_000,
    maxPps: 400_000,
    maxLoss: 0.001,
    sweepRates,
    pin: args.pin,
    ...(args.batchSize !== undefined && { batchSize: args.batchSize }),
  };
}

const USAGE = "usage: node dist/bench/run.js [--quick] [--only micro,srtp,fec,e2e,tail,scale,fanout,workers,streams,congestion] [--hosts LIST] [--repeats N] [--scale LIST] [--scale-rate N] [--filter PATH] [--batch-size N] [--pin] [--json FILE] [--no-save] | --render";

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, json: undefined, filter: DEFAULT_FILTER, only: DEFAULT_PARTS, repeats: undefined, pin: false, save: true, hosts: undefined, scale: undefined, scaleRate: 50, render: false, batchSize: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new TypeError(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--quick") args.quick = true;
    else if (a === "--json") args.json = resolve(value());
    else if (a === "--filter") args.filter = resolve(value());
    else if (a === "--only") {
      const list = value().split(",");
      const bad = list.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (bad.length > 0) throw new TypeError(`--only takes a comma list of ${PARTS.join(", ")}; not ${bad.join(", ")}\n${USAGE}`);
      args.only = PARTS.filter((p) => list.includes(p));
    } else if (a === "--repeats") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 50) throw new TypeError(`--repeats takes 1..50\n${USAGE}`);
      args.repeats = n;
    } else if (a === "--hosts") {
      const list = value().split(",");
      const bad = list.filter((h) => HOST_NAMES[h] === undefined);
      if (bad.length > 0) throw new TypeError(`--hosts takes a comma list of ${Object.keys(HOST_NAMES).join(", ")}; not ${bad.join(", ")}\n${USAGE}`);
      args.hosts = HOST_KINDS.filter((k) => list.some((h) => HOST_NAMES[h] === k));
    } else if (a === "--scale") {
      const list = value().split(",").map(Number);
      if (list.some((n) => !Number.isInteger(n) || n < 1 || n > 12_000)) throw new TypeError(`--scale takes segment counts 1..12000, comma-separated\n${USAGE}`);
      args.scale = list;
    } else if (a === "--scale-rate") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new TypeError(`--scale-rate takes 1..10000 packets/s\n${USAGE}`);
      args.scaleRate = n;
    } else if (a === "--pin") args.pin = true;
    else if (a === "--no-save") args.save = false;
    else if (a === "--render") args.render = true;
    else if (a === "--batch-size") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 1024) throw new TypeError(`--batch-size takes 1..1024\n${USAGE}`);
      args.batchSize = n;
    }
    else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else throw new TypeError(`unknown argument '${a}'\n${USAGE}`);
  }
  return args;
}

function versionOf(command: string, args: string[], pattern: RegExp): string | null {
  const r = spawnSync(command, args, { encoding: "utf8", timeout: 15_000 });
  if (r.status !== 0) return null;
  return pattern.exec(`${r.stdout}${r.stderr}`)?.[1] ?? null;
}

function machine(): Machine {
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  return {
    cpu,
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    bun: versionOf(BUN, ["--version"], /^(\S+)/),
    gstreamer: versionOf("gst-launch-1.0", ["--version"], /version (\S+)/),
    rtpengine: versionOf("rtpengine", ["--version"], /Version:\s*(\S+)/i) ?? versionOf("dpkg-query", ["-W", "-f", "${Version}", "rtpengine-daemon"], /^(\S+)/),
  };
}

/** The bar's plan: estimated seconds per part (quick, full). */
const ESTIMATES: Record<Part, [number, number]> = { micro: [5, 60], srtp: [10, 240], fec: [10, 90], e2e: [80, 1200], tail: [35, 400], scale: [15, 200], fanout: [35, 280], workers: [30, 240], streams: [60, 750], congestion: [150, 150] };

/** The --hosts name of a relay (the first that maps to it), for file names. */
function shortHostName(kind: HostKind): string {
  return Object.entries(HOST_NAMES).find(([, k]) => k === kind)![0].replace("@", "-");
}

/** Redraws every run's charts and RESULTS.md from the JSON files (after a change to the report). */
function render(): void {
  const dir = join(ROOT, "bench", "results");
  for (const file of readdirSync(dir).filter((f) => /^\d{4}-\d{2}-\d{2}.*\.json$/.test(f))) {
    const r = JSON.parse(readFileSync(join(dir, file), "utf8")) as BenchResults;
    if (r.version !== 2 || !r.e2e) continue;
    for (const [suffix, svg] of Object.entries(e2eCharts(r.e2e))) writeFileSync(join(dir, `${file.replace(/\.json$/, "")}-${suffix}.svg`), svg);
  }
  writeFileSync(join(ROOT, "bench", "RESULTS.md"), renderResultsMarkdown(dir));
  progress("redrew the charts and bench/RESULTS.md");
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.render) return render();
  const q = args.quick;
  const has = (p: Part): boolean => args.only.includes(p);
  if ((has("micro") || has("e2e") || has("scale") || has("workers") || has("streams")) && !existsSync(args.filter)) {
    throw new Error(`filter ${args.filter} not found: build it (npm run build:filters) or pass --filter PATH`);
  }
  const srtpHost = has("e2e") && (args.hosts ?? HOST_KINDS).includes("proxy+srtp");
  if ((has("micro") || has("srtp") || srtpHost) && !existsSync(SRTP_FILTER)) throw new Error(`${SRTP_FILTER} not found: build it (npm run build:filters)`);
  const filterName = filterNameOf(args.filter);
  const started = Date.now();
  const date = new Date().toISOString().slice(0, 10);
  const command = `node dist/bench/run.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`;
  const phases: Phase[] = args.only.map((p) => ({ name: p, estimateS: ESTIMATES[p][q ? 0 : 1] }));
  const bar = new ProgressBar(phases);
  useProgressBar(bar);
  let results: BenchResults = { version: 2, date, mode: q ? "quick" : "full", command, machine: machine(), filter: filterName, parts: args.only, durationS: 0 };

  if (has("micro")) {
    bar.begin("micro");
    results = {
      ...results,
      micro: await runMicro({
        filterPath: args.filter,
        filterName,
        sizes: [200, 1200],
        batches: q ? [1, 8, 64] : [1, 2, 4, 8, 16, 32, 64],
        sampleMs: q ? 4 : 20,
        repeats: q ? 5 : 15,
        onCell: (done, total) => bar.advance(done / total),
      }),
    };
  }
  if (has("srtp")) {
    bar.begin("srtp");
    results = {
      ...results,
      srtp: await runSrtp({
        filterPath: SRTP_FILTER,
        sizes: q ? [1200] : [200, 1200],
        suites: q ? ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"] : SRTP_SUITES.map((s) => s.name),
        batch: 32,
        packetsPerSample: q ? 10_000 : 50_000,
        repeats: q ? 3 : 9,
        gstPackets: q ? 30_000 : 100_000,
        gstRepeats: q ? 2 : 5,
      }),
    };
  }
  if (has("fec")) {
    bar.begin("fec");
    if (!existsSync(FEC_FILTER)) throw new Error(`${FEC_FILTER} not found: build it (npm run build:filters)`);
    results = {
      ...results,
      fec: await runFec({
        filterPath: FEC_FILTER,
        sizes: [200, 1200],
        shapes: [
          { columns: 5, rows: 5, rowFec: true },
          { columns: 10, rows: 10, rowFec: true },
          { columns: 20, rows: 5, rowFec: true },
          { columns: 10, rows: 10, rowFec: false },
        ],
        batch: 32,
        packetsPerSample: q ? 20_000 : 100_000,
        repeats: q ? 3 : 9,
      }),
    };
  }
  if (has("e2e")) {
    bar.begin("e2e");
    const repeats = args.repeats ?? (q ? 1 : 3);
    const sweepRates = q ? [10_000, 50_000, 100_000] : [10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000];
    const steps = q ? 4 : 7;
    const hostCount = (args.hosts ?? HOST_KINDS).length;
    // for the bar: a prime, the floor and the steps of the search, and the sweep, per relay and repeat
    const expectedTrials = repeats * hostCount * (2 + steps + sweepRates.length);
    let trials = 0;
    results = {
      ...results,
      e2e: await runE2e({
        ...search(args, repeats, steps, sweepRates),
        filterName,
        latencyRates: [10_000, 50_000],
        cpuRatePps: 50_000,
        ...(args.hosts && { hosts: args.hosts }),
        onTrial: () => bar.advance(++trials / expectedTrials),
      }),
    };
  }
  if (has("tail")) {
    bar.begin("tail");
    // a multiple of 3: the proxy runs first, second and third in as many rounds
    const rounds = q ? 3 : 9;
    const runtimes = ["node", "bun"] as const;
    const trialMs = q ? 1000 : 4500;
    const primeMs = q ? 1000 : 27_000;
    // per runtime: both relays primed, then three trials a round
    const expectedTrials = runtimes.length * (2 * Math.ceil(primeMs / trialMs) + 3 * rounds);
    let trials = 0;
    results = {
      ...results,
      tail: await runTail({
        filterPath: args.filter,
        filterName,
        runtimes,
        ratePps: 10_000,
        size: 1200,
        // 40,000 packets timed a trial: 40 are slower than the p99.9
        trialMs,
        settleMs: q ? 200 : 500,
        primeMs,
        drainMs: 250,
        rounds,
        pin: args.pin,
        onTrial: () => bar.advance(++trials / expectedTrials),
      }),
    };
  }
  if (has("scale")) {
    bar.begin("scale");
    const counts = args.scale ?? (q ? [1, 100, 1000] : [1, 100, 1000, 10_000]);
    const scaleUnder = (runtime: "node" | "bun", levels: number[]) => runScale({
      counts: levels,
      ratePerStream: args.scaleRate,
      size: 200,
      warmupMs: q ? 1000 : 1500,
      measureMs: q ? 1500 : 5000,
      runtime,
      workers: Math.min(2, availableParallelism()),
      filter: { name: filterName, path: args.filter },
      basePort: 20_000,
      symmetricRtp: true,
    });
    results = { ...results, scale: await scaleUnder("node", counts) };
    // the largest level again under Bun, whose workers are processes with descriptors of their own
    const largest = Math.max(...counts);
    if (!q && largest >= 1000) results = { ...results, scaleBun: await scaleUnder("bun", [1, largest]) };
  }
  if (has("fanout")) {
    bar.begin("fanout");
    const counts = [1, 10, 100, 1000];
    const rounds = q ? 1 : 5;
    let trials = 0;
    results = {
      ...results,
      fanout: await runFanout({
        counts,
        relays: FANOUT_RELAYS,
        // the relay sends 50,000 packets/s whatever N: 50 packets/s in at N = 1,000
        sendsPerSecond: 50_000,
        size: 1200,
        trialMs: q ? 400 : 1500,
        drainMs: 250,
        rounds,
        // 2,000 input packets: 0.3 s at N = 1 and 10, 4 s at 100, 10 s (500 packets) at 1,000
        primeMs: 300,
        primeInputPackets: q ? 200 : 2000,
        primeMaxMs: q ? 1000 : 10_000,
        idleMs: q ? 200 : 1000,
        onTrial: () => bar.advance(++trials / (counts.length * FANOUT_RELAYS.length * (rounds + 1))),
      }),
    };
  }
  if (has("workers")) {
    bar.begin("workers");
    const workerCounts = workerCountsFor(availableParallelism());
    const repeats = args.repeats ?? (q ? 1 : 3);
    const steps = q ? 4 : 7;
    let trials = 0;
    results = {
      ...results,
      workers: await runWorkers({
        ...search(args, repeats, steps, []),
        filterName,
        workerCounts,
        segments: 2 * Math.max(...workerCounts),
        // a prime, the floor and the steps of the search, per worker count and the ceiling, per repeat
        onTrial: () => bar.advance(++trials / (repeats * (workerCounts.length + 1) * (2 + steps))),
      }),
    };
  }
  if (has("streams")) {
    bar.begin("streams");
    const cores = availableParallelism();
    results = {
      ...results,
      streams: await runStreams({
        filterPath: args.filter,
        filterName,
        cpuRatePps: 50_000,
        size: 1200,
        trialMs: q ? 400 : 2000,
        drainMs: q ? 100 : 250,
        // a round is one trial per variant: five of them per end-to-end repeat
        rounds: 5 * (args.repeats ?? (q ? 1 : 3)),
        runtimes: ["node", "bun"],
        pin: args.pin,
        ...(args.batchSize !== undefined && { batchSize: args.batchSize }),
        segments: q ? 1000 : 10_000,
        ratePerStream: 5,
        boundedMax: q ? 100 : 1000,
        scaleRounds: q ? 1 : 3,
        warmupMs: q ? 1000 : 1500,
        measureMs: q ? 1500 : 5000,
        idleMs: q ? 2000 : 5000,
        workers: Math.min(2, cores),
        basePort: 20_000,
        microStreams: 10_000,
        sampleMs: q ? 4 : 20,
        microRepeats: q ? 5 : 15,
        onStep: (done, total) => bar.advance(done / total),
      }),
    };
  }
  if (has("congestion")) {
    bar.begin("congestion");
    await runCongestion({ command, save: args.save });
  }
  bar.finish();
  useProgressBar(null);
  results = { ...results, durationS: Math.round((Date.now() - started) / 1000) };
  console.log(printText(results));
  const json = `${JSON.stringify(results, null, 2)}\n`;
  // congestion alone saved its own results (bench/congestion.ts)
  if (args.save && args.only.some((p) => p !== "congestion")) {
    const dir = join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    // the stem names what differs from a default run, so that such a run replaces no other
    const variant = [
      ...(args.only.join() !== DEFAULT_PARTS.join() ? args.only : []),
      ...(args.hosts ? ["hosts", ...args.hosts.map(shortHostName)] : []),
      ...(args.batchSize !== undefined ? [`batch${args.batchSize}`] : []),
      ...(args.repeats !== undefined ? [`r${args.repeats}`] : []),
      ...(args.scale ? [`scale${args.scale.join("_")}`] : []),
      ...(args.filter !== DEFAULT_FILTER ? [filterName] : []),
      ...(args.pin ? ["pin"] : []),
    ];
    const base = `${date}${q ? "-quick" : ""}${variant.length > 0 ? `-${variant.join("-")}` : ""}`;
    // the same run again the same day is kept beside the first (-run2, -run3...), never over it
    let stem = base;
    for (let k = 2; existsSync(join(dir, `${stem}.json`)); k++) stem = `${base}-run${k}`;
    writeFileSync(join(dir, `${stem}.json`), json);
    if (results.e2e) for (const [suffix, svg] of Object.entries(e2eCharts(results.e2e))) writeFileSync(join(dir, `${stem}-${suffix}.svg`), svg);
    writeFileSync(join(ROOT, "bench", "RESULTS.md"), renderResultsMarkdown(dir));
    progress(`wrote bench/results/${stem}.json and bench/RESULTS.md`);
  }
  if (args.json) {
    writeFileSync(args.json, json);
    progress(`wrote ${args.json}`);
  }
  progress(`done in ${results.durationS} s`);
}

main().catch((err: unknown) => {
  process.stderr.write(`\nbench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
