// Flag parsing shared by the msm commands.

export class UsageError extends Error {}

/** Parses `--flag value` and `--flag=value`; returns the flags and the positional words. */
export function parseFlags(args: readonly string[], known: readonly string[]): { flags: Map<string, string>; rest: string[] } {
  const flags = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) {
      rest.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    if (!known.includes(name)) throw new UsageError(`unknown flag --${name}`);
    const value = eq < 0 ? args[++i] : a.slice(eq + 1);
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    flags.set(name, value);
  }
  return { flags, rest };
}

/** A flag's value as a positive number, or the default. */
export function numberFlag(flags: Map<string, string>, name: string, def: number, min: number, max: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}, got '${raw}'`);
  return n;
}
