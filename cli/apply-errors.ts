// How `msm proxy --config` words a refused or partly applied change: each segment's error at the
// field of the file it comes from (segments[2].chain[0].config), the way schema errors are named.
// A filter module that cannot load is its entry's error (filters.NAME.sha256), said once for
// every segment that uses it.
import type { ApplyError, ProxyConfig } from "../runtime/index.js";

type SegmentError = ApplyError["errors"][number];

/** The errors, a line each (joined for a two-space indent), located in `config`. */
export function applyErrorLines(err: ApplyError, config: ProxyConfig): string {
  const lines: string[] = [];
  const moduleErrors = new Map<string, string[]>(); // a filter entry's line -> the segments that use it
  for (const e of err.errors) {
    const entry = moduleError(e, config);
    if (!entry) lines.push(located(e, config));
    else if (moduleErrors.has(entry)) moduleErrors.get(entry)!.push(e.segment);
    else {
      moduleErrors.set(entry, [e.segment]);
      lines.push(entry);
    }
  }
  return lines.map((line) => {
    const users = moduleErrors.get(line);
    if (!users) return line;
    const named = users.filter(Boolean).map((s) => `'${s}'`);
    return named.length === 0 ? line : `${line} (used by segment${named.length > 1 ? "s" : ""} ${named.join(", ")})`;
  }).join("\n  ");
}

/** The filter entry's field a module's load error is about, by what the loader says. */
const LOAD_FIELDS: readonly [RegExp, string][] = [
  [/^digest mismatch/, ".sha256"],
  [/^cannot read /, ".path"],
  [/^memory minimum/, ".maxMemoryPages"],
];

/** A module load error (`filter 'validate': digest mismatch ...`) as its filter entry's line (`filters.validate.sha256: digest mismatch ...`), or undefined for any other error. */
export function moduleErrorLine(text: string, filters: ProxyConfig["filters"]): string | undefined {
  const m = /^filter '([^']+)': ([^]*)$/.exec(text);
  if (!m || !Object.hasOwn(filters, m[1]!)) return undefined;
  const field = LOAD_FIELDS.find(([re]) => re.test(m[2]!))?.[1] ?? "";
  return `filters.${m[1]}${field}: ${m[2]}`;
}

function moduleError(e: SegmentError, config: ProxyConfig): string | undefined {
  return moduleErrorLine(e.message.replace(`segment '${e.segment}': `, ""), config.filters);
}

function located(e: SegmentError, config: ProxyConfig): string {
  const text = e.message.replace(`segment '${e.segment}': `, "");
  const i = config.segments.findIndex((s) => s.name === e.segment);
  if (i < 0) return e.segment ? `segment '${e.segment}': ${text}` : text;
  const at = `segments[${i}]`;
  if (text.startsWith("chain[")) return `${at}.${text} (segment '${e.segment}')`;
  const m = /^filter '([^']+)' rejected its config/.exec(text);
  const j = m ? config.segments[i]!.chain.findIndex((st) => st.filter === m[1]) : -1;
  if (j >= 0) return `${at}.chain[${j}].config: ${text} (segment '${e.segment}')`;
  return `${at} (segment '${e.segment}'): ${text}`;
}
