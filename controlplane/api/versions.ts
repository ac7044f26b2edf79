// Which pushed version of a filter is the newest, for a chain stage that names none: the highest
// version, compared as dotted numbers (1.10.0 after 1.9.0; a leading "v" and a "-suffix"
// pre-release, ordered before its release, understood), so that pushing a hotfix for an older
// line (1.0.1 after 1.1.0) or an old build again does not move every unpinned stage back. Versions
// that do not read as dotted numbers are ordered by when they were pushed.

/** Negative, 0 or positive as `a` is older than, level with or newer than `b`; undefined when either is not a dotted version. */
export function compareVersions(a: string, b: string): number | undefined {
  const pa = parse(a);
  const pb = parse(b);
  if (!pa || !pb) return undefined;
  for (let i = 0; i < Math.max(pa.parts.length, pb.parts.length); i++) {
    const d = (pa.parts[i] ?? 0) - (pb.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  if (pa.pre === pb.pre) return 0;
  if (pa.pre === "") return 1; // a release after its pre-releases
  if (pb.pre === "") return -1;
  return pa.pre < pb.pre ? -1 : 1;
}

function parse(version: string): { parts: number[]; pre: string } | undefined {
  const m = /^v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(version);
  return m ? { parts: m[1]!.split(".").map(Number), pre: m[2] ?? "" } : undefined;
}

/** The newest of `items`: the highest version, or where versions do not compare, the one pushed last (`pushedOrder`). */
export function newestVersion<T>(items: Iterable<T>, version: (item: T) => string, pushedOrder: (item: T) => number): T | undefined {
  let newest: T | undefined;
  for (const item of items) {
    if (newest === undefined) {
      newest = item;
      continue;
    }
    const c = compareVersions(version(item), version(newest));
    if (c === undefined ? pushedOrder(item) > pushedOrder(newest) : c > 0 || (c === 0 && pushedOrder(item) > pushedOrder(newest))) newest = item;
  }
  return newest;
}
