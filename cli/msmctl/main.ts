// msmctl's dispatcher: usage, command selection, and exit codes (0 done, 1 failed, 2 misused).
import { applyCommand, deleteCommand } from "./apply.js";
import { CliError } from "./client.js";
import { makeContext, outputFormat, type Context, type Io } from "./context.js";
import { dashboardCommand } from "./dashboard.js";
import { describeCommand } from "./describe.js";
import { filterCommand } from "./filter.js";
import { checkFlagsFor, flag, flagHelp, flagSet, parseArgs, UsageError, type ParsedArgs } from "./flags.js";
import { render } from "./format.js";
import { getCommand } from "./get.js";
import { ManifestError } from "./manifest.js";
import { printable } from "../../controlplane/security/terminal.js";
import { topCommand } from "./top.js";
import { versionInfo, versionLine } from "../version.js";

interface Command {
  readonly run: (ctx: Context) => Promise<number>;
  readonly synopsis: string;
  readonly summary: string;
}

const COMMANDS: Record<string, Command> = {
  apply: { run: applyCommand, synopsis: "apply -f FILE [-f FILE...] [--dry-run | --wait]", summary: "create or change segments (YAML documents or JSON; - is stdin)" },
  get: { run: getCommand, synopsis: "get segments|proxies|filters|streams [NAME...]", summary: "list them in a table (-o wide: more columns, not for streams; -o json|yaml: whole objects)" },
  describe: { run: describeCommand, synopsis: "describe segment [NAME...] | proxy [NODE...] | stream NAME", summary: "in detail (no name: each one): status, the reason of a refusal, counters; a stream hop by hop" },
  delete: { run: deleteCommand, synopsis: "delete segment NAME... | -f FILE [--wait] | delete proxy NAME...", summary: "remove segments; forget proxies gone for good" },
  filter: { run: filterCommand, synopsis: "filter push NAME@VERSION FILE.wasm", summary: "add a module to the registry" },
  top: { run: topCommand, synopsis: "top [segments|streams] [--once] [--interval S]", summary: "live rates per segment, or streams worst first" },
  dashboard: { run: dashboardCommand, synopsis: "dashboard --dashboard-url URL [--port N]", summary: "the control plane's live dashboard on http://127.0.0.1 (as kubectl proxy)" },
};

const WIDTH = Math.max(...Object.values(COMMANDS).map((c) => c.synopsis.length));
const line = (c: Command): string => `  msmctl ${c.synopsis.padEnd(WIDTH)}   ${c.summary}`;

export const USAGE = `msmctl: operate a Media Streaming Mesh control plane

Usage:
${Object.values(COMMANDS).map(line).join("\n")}
  msmctl ${"version [-o json|yaml]".padEnd(WIDTH)}   msmctl's version and the filter ABI it speaks of
  msmctl ${"help [COMMAND]".padEnd(WIDTH)}   this text, or one command's

Global flags:
${flagHelp((f) => !f.commands)}

Command flags:
${flagHelp((f) => !!f.commands)}

Examples:
  export MSM_SERVER=cp.example:7400 MSM_TLS_CA=ca.pem MSM_TLS_CERT=admin.pem MSM_TLS_KEY=admin.key
  msmctl filter push validate@1.0.0 filters/validate/build/validate.wasm
  msmctl apply -f segments.yaml
  msmctl get proxies
  msmctl describe segment cam-1
  msmctl top
  msmctl get streams
  msmctl describe stream cam-1

Docs: docs/control-plane.md`;

function commandUsage(name: string): string {
  const c = COMMANDS[name];
  if (!c) return USAGE;
  return `Usage:\n  msmctl ${c.synopsis}\n  ${c.summary}\n\nFlags:\n${flagHelp((f) => !!f.commands?.includes(name))}\n\nGlobal flags:\n${flagHelp((f) => !f.commands)}\n`.replace("Flags:\n\n", "");
}

/** Runs one msmctl invocation; returns the exit code. Never throws. */
export async function runMsmctl(argv: readonly string[], io: Io): Promise<number> {
  let args: ParsedArgs;
  let name: string | undefined;
  try {
    args = parseArgs(argv);
    name = args.words[0];
    if (name === "version" || flagSet(args, "version")) {
      // as every command: a flag of another command, or an output it does not have, is refused,
      // not ignored (`msmctl version -o json` printed the text line, exit 0)
      if (name === "version") checkFlagsFor("version", args);
      const o = flag(args, "output");
      if (o === "name" || o === "wide") throw new UsageError(`-o ${o} applies to ${o === "name" ? "get, apply and delete" : "get"}`);
      const format = outputFormat(args);
      io.out(format === "table" ? `${versionLine("msmctl")}\n` : render({ client: "msmctl", ...versionInfo() }, format));
      return 0;
    }
    if (name === undefined || name === "help") {
      const topic = args.words[1];
      // a misspelt topic is said, not answered with the whole usage as if it were one (exit 2)
      if (topic !== undefined && topic !== "version" && !COMMANDS[topic]) throw new UsageError(`no help for '${topic}': not a command (${[...Object.keys(COMMANDS), "version"].join(", ")})`);
      io.out((topic && COMMANDS[topic] ? commandUsage(topic) : USAGE) + "\n");
      return 0;
    }
    if (!COMMANDS[name]) throw new UsageError(`unknown command '${name}'`); // also with --help: 'msmctl aply --help' is a typo
    if (flagSet(args, "help")) {
      io.out(commandUsage(name) + "\n");
      return 0;
    }
    checkFlagsFor(name, args);
    if (flag(args, "output") === "name" && !["get", "apply", "delete"].includes(name)) throw new UsageError("-o name applies to get, apply and delete");
    if (flag(args, "output") === "wide" && name !== "get") throw new UsageError("-o wide applies to get");
  } catch (err) {
    // a flag parseArgs refused comes before the words are known: the first word that is a command is meant
    return fail(io, err, name ?? argv.find((a) => Object.hasOwn(COMMANDS, a)));
  }
  const command = COMMANDS[name]!;
  let ctx: ReturnType<typeof makeContext> | undefined;
  try {
    ctx = makeContext(io, args, args.words.slice(1));
    return await command.run(ctx);
  } catch (err) {
    return fail(io, err, name);
  } finally {
    ctx?.close();
  }
}

function fail(io: Io, err: unknown, command: string | undefined): number {
  if (err instanceof UsageError) {
    const hint = command && COMMANDS[command] ? `msmctl help ${command}` : "msmctl help";
    io.err(`msmctl: ${err.message}\nSee '${hint}'.\n`);
    return 2;
  }
  if (err instanceof ManifestError) {
    io.err(err.problems.map((p) => `msmctl: ${printable(p)}\n`).join(""));
    return 1;
  }
  if (err instanceof CliError) {
    // the server's words, and through it a proxy's: printed, never interpreted by the terminal
    io.err(err.message.split("\n").map((l) => `msmctl: ${printable(l)}\n`).join(""));
    return 1;
  }
  io.err(`msmctl: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}
