// Schema errors as an operator reads them. A misspelt key ("adress") is two issues to the schema,
// an unknown key and a missing one; reported as one line that names the key it likely meant.
import type { z } from "zod";

type Issue = z.core.$ZodIssue;

export function schemaProblems(issues: readonly Issue[], pathString: (path: readonly PropertyKey[]) => string, schema?: z.ZodType): string[] {
  const missing = issues.filter(isMissing);
  const folded = new Set<Issue>();
  const out: string[] = [];
  for (const issue of issues) {
    if (issue.code !== "unrecognized_keys") continue;
    for (const key of issue.keys) {
      const twin = missing.find((m) => !folded.has(m) && sameParent(m.path, issue.path) && looksLike(key, String(m.path[m.path.length - 1])));
      if (twin) {
        folded.add(twin);
        out.push(`${pathString(issue.path)}: unknown key '${key}'; did you mean '${String(twin.path[twin.path.length - 1])}'?`);
      } else {
        const near = schema ? keysAt(schema, issue.path).find((k) => looksLike(key, k)) : undefined;
        out.push(`${pathString(issue.path)}: unknown key '${key}'${near ? `; did you mean '${near}'?` : ""}`);
      }
    }
  }
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys" || folded.has(issue)) continue;
    out.push(`${pathString(issue.path)}: ${isMissing(issue) ? `required (${issue.expected})` : withShape(issue, schema)}`);
  }
  return out;
}

/**
 * A string field YAML read as a number or a boolean: digits (a digest, a name) or true/false
 * written unquoted. A long run of digits is a float that lost some of them, so it cannot be taken
 * back as text: the operator quotes it.
 */
function unquotedHint(issue: Issue): string {
  if (issue.code !== "invalid_type" || issue.expected !== "string") return "";
  if (/received number$/.test(issue.message)) return ": YAML reads a value of digits alone as a number (a long one, such as a digest, loses digits); write it in quotes";
  if (/received boolean$/.test(issue.message)) return ": YAML reads true and false unquoted as a boolean; write it in quotes";
  return "";
}

/** "expected object, received string" alone leaves the operator guessing what object: name its keys. */
function withShape(issue: Issue, schema?: z.ZodType): string {
  const hint = unquotedHint(issue);
  if (hint !== "") return issue.message + hint;
  if (!schema || issue.code !== "invalid_type" || issue.expected !== "object") return issue.message;
  const keys = keysAt(schema, issue.path);
  return keys.length === 0 ? issue.message : `${issue.message} (an object with the keys ${keys.join(", ")})`;
}

/** The key of the schema's object at `path` that `key` likely misspells, if one looks like it. */
export function nearKey(schema: z.ZodType, path: readonly PropertyKey[], key: string): string | undefined {
  return nearName(key, keysAt(schema, path));
}

/** The one of `names` a misspelt `word` most likely meant (case aside, at most 2 edits and a third of its length), or undefined. */
export function nearName(word: string, names: readonly string[]): string | undefined {
  return names.find((k) => k !== word && looksLike(word, k));
}

/** The keys the schema allows in the object at `path` (best effort: none where it cannot tell). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let node: unknown = schema;
  for (const step of [...path, null]) {
    // wrappers (optional, default, a refinement's pipe) hold the schema that matters inside
    for (let def = defOf(node); def && !("shape" in def) && !("element" in def); def = defOf(node)) {
      const inner = def.innerType ?? def.in;
      if (!inner) return [];
      node = inner;
    }
    const def = defOf(node);
    if (!def) return [];
    if (step === null) return "shape" in def && def.shape ? Object.keys(def.shape) : [];
    if (typeof step === "number" && "element" in def) node = def.element;
    else if (typeof step === "string" && "shape" in def && def.shape) node = def.shape[step];
    else return [];
  }
  return [];
}

function defOf(node: unknown): { shape?: Record<string, unknown>; element?: unknown; innerType?: unknown; in?: unknown } | undefined {
  return (node as { _zod?: { def?: never } } | undefined)?._zod?.def;
}

/** A key the object lacks: zod 4 says so only in its message (issues carry no input by default). */
function isMissing(issue: Issue): issue is Extract<Issue, { code: "invalid_type" }> {
  return issue.code === "invalid_type" && /received undefined$/.test(issue.message);
}

function sameParent(path: readonly PropertyKey[], parent: readonly PropertyKey[]): boolean {
  return path.length === parent.length + 1 && parent.every((p, i) => path[i] === p);
}

/** Within two edits (a typo, a letter dropped or doubled, two swapped) and not a different short word. */
function looksLike(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x === y || editDistance(x, y) <= Math.min(2, Math.floor(Math.max(x.length, y.length) / 3));
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}
