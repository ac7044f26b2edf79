// msmctl's command line, parsed the way kubectl users expect: flags anywhere among the words,
// `--flag value`, `--flag=value`, short forms (`-f FILE`, `-o json`, `-ojson`), `--` to end flags.
import { argTokens, unknownFlag, UsageError } from "../usage.js";

export { UsageError };

export interface FlagSpec {
  /** Long name, without the dashes. */
  readonly name: string;
  readonly short?: string;
  /** Takes no value (`--insecure`). */
  readonly boolean?: boolean;
  /** May be given more than once (`-f a.yaml -f b.yaml`). */
  readonly repeated?: boolean;
  /** The commands that accept it; absent: every command (a global flag). */
  readonly commands?: readonly string[];
  readonly help: string;
  readonly value?: string;
}

export const FLAGS: readonly FlagSpec[] = [
  { name: "server", value: "HOST:PORT|unix:PATH", help: "the control plane (env MSM_SERVER; default 127.0.0.1:7400)" },
  { name: "tls-ca", value: "FILE", help: "CA bundle that signs the control plane (env MSM_TLS_CA)" },
  { name: "tls-cert", value: "FILE", help: "your admin certificate (env MSM_TLS_CERT)" },
  { name: "tls-key", value: "FILE", help: "its key (env MSM_TLS_KEY)" },
  { name: "insecure", boolean: true, help: "plain text, no TLS (env MSM_INSECURE=1); only for a server started so" },
  { name: "output", short: "o", value: "FORMAT", help: "table (default), json, yaml, wide (get: more columns), or name (get, apply, delete: kind/name lines)" },
  { name: "timeout", value: "SECONDS", help: "how long to wait for each answer (default 10)" },
  { name: "help", short: "h", boolean: true, help: "usage" },
  { name: "version", boolean: true, help: "msmctl's version (as msmctl version)" },
  { name: "filename", short: "f", value: "FILE", repeated: true, commands: ["apply", "delete"], help: "a YAML or JSON file of segments, or a directory of them (.yaml, .yml, .json); - reads stdin" },
  { name: "dry-run", boolean: true, commands: ["apply"], help: "check with the server, change nothing" },
  { name: "wait", boolean: true, commands: ["apply", "delete"], help: "wait until each proxy concerned runs the change; exit 1 if one refuses it or does not answer" },
  { name: "wait-timeout", value: "SECONDS", commands: ["apply", "delete"], help: "how long --wait waits (default 60)" },
  { name: "ignore-not-found", boolean: true, commands: ["delete"], help: "a name that does not exist is not an error" },
  { name: "proxy", value: "NODE", commands: ["get", "top"], help: "only this proxy's segments (streams: those crossing it)" },
  { name: "bad", boolean: true, commands: ["get", "top"], help: "streams only: those with a bad hop" },
  { name: "show-secrets", boolean: true, commands: ["get", "describe"], help: "print keys and other secret-looking config values (hidden as <redacted> by default)" },
  { name: "once", boolean: true, commands: ["top"], help: "print one sample (after two polls) and exit" },
  { name: "interval", value: "SECONDS", commands: ["top"], help: "between samples (default 1)" },
  { name: "dashboard-url", value: "URL", commands: ["dashboard"], help: "the control plane's dashboard, https://HOST:PORT as its --dashboard (env MSM_DASHBOARD_URL)" },
  { name: "port", value: "N", commands: ["dashboard"], help: "the local port to serve it on (default 7480; 0 picks one)" },
  { name: "address", value: "ADDR", commands: ["dashboard"], help: "the local address (default 127.0.0.1)" },
];

export interface ParsedArgs {
  readonly words: readonly string[];
  /** Each flag given, by long name: its values in order ("" for a boolean flag). */
  readonly flags: ReadonlyMap<string, readonly string[]>;
}

function findSpec(name: string): FlagSpec | undefined {
  return FLAGS.find((f) => f.name === name);
}

/** Every flag for node:util's parseArgs: its type and short form (what it means stays in FLAGS). */
const PARSE_OPTIONS = Object.fromEntries(
  FLAGS.map((f) => [f.name, { type: f.boolean ? ("boolean" as const) : ("string" as const), ...(f.short ? { short: f.short } : {}) }]),
);

const FLAG_NAMES = FLAGS.map((f) => f.name);

/** Splits argv into words and flags. Throws UsageError for an unknown flag or a missing value. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const words: string[] = [];
  const flags = new Map<string, string[]>();
  for (const t of argTokens(argv, PARSE_OPTIONS)) {
    if (t.kind === "positional") words.push(t.value);
    if (t.kind !== "option") continue;
    const spec = findSpec(t.name);
    if (!spec) throw new UsageError(unknownFlag(t.rawName, FLAG_NAMES));
    const shown = t.rawName.startsWith("--") ? `--${spec.name}` : `-${spec.short}`;
    // parseArgs keeps the "=" of `-o=json` in the value; `--output=json` and `-ojson` have none
    const value = t.inlineValue && !t.rawName.startsWith("--") && t.value?.startsWith("=") ? t.value.slice(1) : t.value;
    if (spec.boolean && value !== undefined) throw new UsageError(`${shown} takes no value`);
    if (!spec.boolean && value === undefined) throw new UsageError(`${shown} needs a value${spec.value ? ` (${spec.value})` : ""}`);
    const list = flags.get(spec.name) ?? [];
    if (list.length > 0 && !spec.repeated && !spec.boolean) throw new UsageError(`--${spec.name} given twice`);
    list.push(value ?? "");
    flags.set(spec.name, list);
  }
  return { words, flags };
}

/** Refuses flags that belong to other commands. */
export function checkFlagsFor(command: string, args: ParsedArgs): void {
  for (const name of args.flags.keys()) {
    const spec = findSpec(name);
    if (spec?.commands && !spec.commands.includes(command)) throw new UsageError(`--${name} does not apply to '${command}'`);
  }
}

export function flag(args: ParsedArgs, name: string): string | undefined {
  const values = args.flags.get(name);
  return values?.[values.length - 1];
}

export function flagSet(args: ParsedArgs, name: string): boolean {
  return args.flags.has(name);
}

export function flagValues(args: ParsedArgs, name: string): readonly string[] {
  return args.flags.get(name) ?? [];
}

/** A flag's value as seconds, returned in milliseconds. */
export function secondsFlag(args: ParsedArgs, name: string, def: number, min: number, max: number): number {
  const raw = flag(args, name);
  if (raw === undefined) return def * 1000;
  const n = Number(raw.replace(/s$/, ""));
  if (raw.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number of seconds from ${min} to ${max}, got '${raw}'`);
  }
  return Math.round(n * 1000);
}

/** The flags' help lines, for the usage text. */
export function flagHelp(filter: (spec: FlagSpec) => boolean): string {
  const rows = FLAGS.filter(filter).map((f) => {
    const names = `${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.value ? ` ${f.value}` : ""}`;
    return [names, f.help] as const;
  });
  const width = Math.max(...rows.map(([n]) => n.length));
  return rows.map(([n, h]) => `  ${n.padEnd(width)}   ${h}`).join("\n");
}
