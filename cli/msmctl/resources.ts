// Resource names as kubectl users type them: singular, plural or short (`segment`, `segments`,
// `seg`), and `TYPE/NAME` as well as `TYPE NAME`.
import { UsageError } from "./flags.js";

export type Resource = "segments" | "proxies" | "filters" | "streams";

const ALIASES: Record<string, Resource> = {
  segment: "segments",
  segments: "segments",
  seg: "segments",
  segs: "segments",
  proxy: "proxies",
  proxies: "proxies",
  px: "proxies",
  filter: "filters",
  filters: "filters",
  stream: "streams",
  streams: "streams",
};

export const SINGULAR: Record<Resource, string> = { segments: "segment", proxies: "proxy", filters: "filter", streams: "stream" };

/** The resource a word names, or a UsageError listing the ones that exist. */
export function resourceOf(word: string | undefined, allowed: readonly Resource[], command: string): Resource {
  const r = word === undefined ? undefined : ALIASES[word.toLowerCase()];
  if (!r || !allowed.includes(r)) {
    const what = allowed.map((a) => a).join(", ");
    throw new UsageError(word === undefined ? `${command} needs a resource type: ${what}` : `${command}: unknown resource type '${word}' (${what})`);
  }
  return r;
}

/** Splits `["segment", "a", "b"]` or `["segment/a", "segment/b"]` into a type and names. */
export function resourceAndNames(words: readonly string[], allowed: readonly Resource[], command: string): { resource: Resource; names: string[] } {
  const first = words[0];
  if (first !== undefined && first.includes("/")) {
    let resource: Resource | undefined;
    const names: string[] = [];
    for (const w of words) {
      const slash = w.indexOf("/");
      if (slash < 0) throw new UsageError(`${command}: mix of TYPE/NAME and plain '${w}'`);
      const r = resourceOf(w.slice(0, slash), allowed, command);
      if (resource && r !== resource) throw new UsageError(`${command}: one resource type at a time`);
      resource = r;
      const name = w.slice(slash + 1);
      if (name === "") throw new UsageError(`${command}: '${w}' has no name`);
      names.push(name);
    }
    return { resource: resource!, names };
  }
  return { resource: resourceOf(first, allowed, command), names: words.slice(1) };
}
