// Flag parsing shared by the msm commands: node:util's parseArgs splits the words, and the
// errors here name the flag (parseArgs' own strict errors do not say what value was expected).
import { parseArgs } from "node:util";
import { nearName } from "../runtime/index.js";

export class UsageError extends Error {}

/** One flag or word of a command line, as node:util's parseArgs (tokens mode) reports it. */
export type ArgToken = NonNullable<ReturnType<typeof parseArgs>["tokens"]>[number];

/**
 * The tokens of `args`: `--flag value`, `--flag=value`, short forms for `short`, `--` ends the
 * flags. Not strict: an unknown flag or a missing value is left to the caller to name.
 */
export function argTokens(args: readonly string[], options: Record<string, { type: "string" | "boolean"; short?: string }>): ArgToken[] {
  return parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true }).tokens;
}

/**
 * Parses `--flag value` and `--flag=value` (every flag takes a value); returns the flags and the
 * positional words. `switches`: the command's flags without a value, taken out before (named in errors).
 */
export function parseFlags(args: readonly string[], known: readonly string[], switches: readonly string[] = []): { flags: Map<string, string>; rest: string[] } {
  const options = Object.fromEntries(known.map((name) => [name, { type: "string" as const }]));
  const flags = new Map<string, string>();
  const rest: string[] = [];
  for (const t of argTokens(args, options)) {
    if (t.kind === "positional") rest.push(t.value);
    if (t.kind !== "option") continue;
    if (!known.includes(t.name)) throw new UsageError(unknownFlag(t.rawName, [...known, ...switches]));
    if (t.value === undefined) throw new UsageError(`--${t.name} needs a value`);
    flags.set(t.name, t.value);
  }
  return { flags, rest };
}

/** "unknown flag --conifg; did you mean --config?", or with the flags there are where none is near (a short -c). */
export function unknownFlag(raw: string, known: readonly string[]): string {
  const meant = raw.startsWith("--") ? nearName(raw.slice(2).split("=")[0]!, known) : undefined;
  if (meant) return `unknown flag ${raw}; did you mean --${meant}?`;
  return known.length <= 12 ? `unknown flag ${raw} (its flags: ${known.map((k) => `--${k}`).join(", ")})` : `unknown flag ${raw}`;
}

/** A flag's value as a positive number, or the default. */
export function numberFlag(flags: Map<string, string>, name: string, def: number, min: number, max: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}, got '${raw}'`);
  return n;
}
