// The benchmark entry point: `npm run bench` (or `node dist/bench/run.js` after a build).
//
//   --quick          a run of about two to three minutes: fewer samples, 1 s trials, one repeat
//   --json FILE      also write the results JSON to FILE
//   --filter PATH    the filter under test (default filters/validate/build/validate.wasm)
//   --only micro|e2e|srtp  run one part only (srtp: the SRTP filter against node:crypto and libsrtp)
//   --repeats N      end-to-end repeats (default 5, quick 1)
//   --hosts LIST     end-to-end paths to measure, comma-separated: direct,plain,proxy,filter (default all)
//   --pin            pin the relay to CPU 0 and the generator and sink to the others (taskset)
//   --no-save        do not write bench/results/ or bench/RESULTS.md
//
// Tables go to stdout, progress to stderr. Results go to bench/results/<date>[-quick].json
// (`--only srtp`: <date>[-quick]-srtp.json) and bench/RESULTS.md is regenerated from the newest
// full and quick results. See docs/benchmarks.md.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, release } from "node:os";
import { join, resolve } from "node:path";
import { DEFAULT_FILTER, ROOT, progress } from "./common.js";
import { filterNameOf, HOST_KINDS, runE2e, type HostKind } from "./e2e.js";
import { runMicro } from "./micro.js";
import { runSrtp, SRTP_FILTER, SRTP_SUITES } from "./srtp.js";
import { printText, renderResultsMarkdown, type BenchResults, type Machine } from "./report.js";

interface Args {
  quick: boolean;
  json: string | undefined;
  filter: string;
  only: "micro" | "e2e" | "srtp" | undefined;
  repeats: number | undefined;
  pin: boolean;
  save: boolean;
  hosts: HostKind[] | undefined;
}

const USAGE = "usage: node dist/bench/run.js [--quick] [--json FILE] [--filter PATH] [--only micro|e2e|srtp] [--repeats N] [--hosts LIST] [--pin] [--no-save]";

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, json: undefined, filter: DEFAULT_FILTER, only: undefined, repeats: undefined, pin: false, save: true, hosts: undefined };
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
      const v = value();
      if (v !== "micro" && v !== "e2e" && v !== "srtp") throw new TypeError(`--only takes micro, e2e or srtp\n${USAGE}`);
      args.only = v;
    } else if (a === "--repeats") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 50) throw new TypeError(`--repeats takes 1..50\n${USAGE}`);
      args.repeats = n;
    } else if (a === "--hosts") {
      const list = value().split(",").map((h) => (h === "filter" ? "proxy+filter" : h));
      const bad = list.filter((h) => !(HOST_KINDS as readonly string[]).includes(h));
      if (bad.length > 0) throw new TypeError(`--hosts takes a comma list of direct, plain, proxy, filter; not ${bad.join(", ")}\n${USAGE}`);
      args.hosts = list as HostKind[];
    } else if (a === "--pin") args.pin = true;
    else if (a === "--no-save") args.save = false;
    else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else throw new TypeError(`unknown argument '${a}'\n${USAGE}`);
  }
  return args;
}

function machine(): Machine {
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  return { cpu, cores: availableParallelism(), node: process.version, kernel: release() };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.only !== "srtp" && !existsSync(args.filter)) {
    throw new Error(`filter ${args.filter} not found: build it (npm run build:filters) or pass --filter PATH`);
  }
  const filterName = filterNameOf(args.filter);
  const started = Date.now();
  const date = new Date().toISOString().slice(0, 10);
  const command = `node dist/bench/run.js${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(" ")}` : ""}`;
  const q = args.quick;
  let results: BenchResults = {
    version: 1,
    date,
    mode: q ? "quick" : "full",
    command,
    machine: machine(),
    filter: filterName,
    ...((args.only === undefined || args.only === "micro") && {
      micro: await runMicro({
        filterPath: args.filter,
        filterName,
        sizes: [200, 1200],
        batches: [1, 8, 32, 64],
        packetsPerSample: q ? 50_000 : 200_000,
        repeats: q ? 7 : 15,
      }),
    }),
  };
  if (args.only === undefined || args.only === "srtp") {
    if (!existsSync(SRTP_FILTER)) throw new Error(`${SRTP_FILTER} not found: build it (npm run build:filters)`);
    results = {
      ...results,
      srtp: await runSrtp({
        filterPath: SRTP_FILTER,
        sizes: [200, 1200],
        suites: SRTP_SUITES.map((s) => s.name),
        batch: 32,
        packetsPerSample: q ? 20_000 : 50_000,
        repeats: q ? 5 : 9,
        gstPackets: q ? 50_000 : 100_000,
        gstRepeats: q ? 3 : 5,
      }),
    };
  }
  const withE2e: BenchResults = args.only === "micro" || args.only === "srtp" ? results : {
    ...results,
    e2e: await runE2e({
      filterPath: args.filter,
      filterName,
      size: 1200,
      repeats: args.repeats ?? (q ? 1 : 5),
      trialMs: q ? 1000 : 2000,
      drainMs: 250,
      steps: q ? 6 : 8,
      floorPps: 10_000,
      cpuRatePps: 50_000,
      maxPps: 400_000,
      maxLoss: 0.001,
      pin: args.pin,
      ...(args.hosts && { hosts: args.hosts }),
    }),
  };
  console.log(printText(withE2e));
  const json = `${JSON.stringify(withE2e, null, 2)}\n`;
  if (args.save) {
    const dir = join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    // a run of the SRTP part alone gets its own file, so that it does not replace the day's full or quick run
    const file = join(dir, `${date}${q ? "-quick" : ""}${args.only === "srtp" ? "-srtp" : ""}.json`);
    writeFileSync(file, json);
    writeFileSync(join(ROOT, "bench", "RESULTS.md"), renderResultsMarkdown(dir));
    progress(`wrote ${file} and bench/RESULTS.md`);
  }
  if (args.json) {
    writeFileSync(args.json, json);
    progress(`wrote ${args.json}`);
  }
  progress(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
