// How `msm proxy --config` words a refused or partly applied change: each segment's error at the
// field of the file it comes from (segments[2].chain[0].config), the way schema errors are named.
import type { ApplyError, ProxyConfig } from "../runtime/index.js";

type SegmentError = ApplyError["errors"][number];

/** The errors, a line each (joined for a two-space indent), located in `config`. */
export function applyErrorLines(err: ApplyError, config: ProxyConfig): string {
  return err.errors.map((e) => located(e, config)).join("\n  ");
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
