// Which pushed version of a filter is the newest, for a chain stage that names none: the highest
// release, versions compared as dotted numbers (1.10.0 after 1.9.0; a leading "v" and "+build"
// understood), so that pushing a hotfix for an older line (1.0.1 after 1.1.0) or an old build again
// does not move every unpinned stage back. A pre-release (1.2.0-rc1) is the newest only while no
// release is pushed, as npm's `latest` leaves them out; versions that do not read as dotted numbers
// only while neither is, and among themselves by push order. A total order: every replica picks the
// same one whatever order it read the registry in.

interface Parsed {
  readonly parts: number[];
  /** Pre-release identifiers (SemVer 11: numeric ones compare as numbers, below alphanumeric ones); empty for a release. */
  readonly pre: string[];
}

function parse(version: string): Parsed | undefined {
  const m = /^v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(version);
  return m ? { parts: m[1]!.split(".").map(Number), pre: m[2] ? m[2].split(".") : [] } : undefined;
}

function compareIdentifiers(a: string, b: string): number {
  const na = /^\d+$/.test(a);
  const nb = /^\d+$/.test(b);
  if (na && nb) return Number(a) - Number(b);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareParsed(a: Parsed, b: Parsed): number {
  for (let i = 0; i < Math.max(a.parts.length, b.parts.length); i++) {
    const d = (a.parts[i] ?? 0) - (b.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length; // a release after its pre-releases
  for (let i = 0; i < Math.min(a.pre.length, b.pre.length); i++) {
    const d = compareIdentifiers(a.pre[i]!, b.pre[i]!);
    if (d !== 0) return d;
  }
  return a.pre.length - b.pre.length;
}

/** Negative, 0 or positive as `a` is older than, level with or newer than `b`; undefined when either is not a dotted version. */
export function compareVersions(a: string, b: string): number | undefined {
  const pa = parse(a);
  const pb = parse(b);
  return pa && pb ? compareParsed(pa, pb) : undefined;
}

/** How far up the order a version's kind puts it: releases, then pre-releases, then the rest. */
function rank(p: Parsed | undefined): number {
  return p === undefined ? 0 : p.pre.length > 0 ? 1 : 2;
}

/** The newest of `items` (see the file's header); `pushedOrder` breaks ties and orders versions that do not compare. */
export function newestVersion<T>(items: Iterable<T>, version: (item: T) => string, pushedOrder: (item: T) => number): T | undefined {
  let newest: { item: T; parsed: Parsed | undefined } | undefined;
  for (const item of items) {
    const parsed = parse(version(item));
    if (!newest) {
      newest = { item, parsed };
      continue;
    }
    const byRank = rank(parsed) - rank(newest.parsed);
    const byVersion = byRank !== 0 || !parsed || !newest.parsed ? 0 : compareParsed(parsed, newest.parsed);
    const newer = byRank !== 0 ? byRank > 0 : byVersion !== 0 ? byVersion > 0 : pushedOrder(item) > pushedOrder(newest.item);
    if (newer) newest = { item, parsed };
  }
  return newest?.item;
}
