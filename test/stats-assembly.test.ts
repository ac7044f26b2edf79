// StatsAssembly (controlplane/server/stats-assembly.ts) with pages the server refused, and
// writeStats with a report that lacks a page: a real file store, read back as msmctl reads it.
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "./lib/suite.js";
import { StatsAssembly } from "../controlplane/server/stats-assembly.js";
import { readStats, writeStats, type StatsPage } from "../controlplane/server/status.js";
import { openStore } from "../controlplane/store/index.js";
import { incompleteReports, mergeStatsPages } from "../cli/msmctl/stats.js";

const test = suite("stats assembly");

const json = (tag: string): string => JSON.stringify({ tag });
const tags = (pages: ReadonlyMap<number, StatsPage> | undefined): string[] => [...(pages ?? new Map()).entries()].sort(([a], [b]) => a - b).map(([n, p]) => `${n}:${(JSON.parse(p.json) as { tag: string }).tag}`);

test("a refused last page still closes its report: a last page refused every time does not leave the proxy without stats", () => {
  const a = new StatsAssembly();
  for (let round = 1; round <= 3; round++) {
    assert.not.ok(a.add(0, 3, json(`r${round}p0`), round * 10));
    assert.not.ok(a.add(1, 3, json(`r${round}p1`), round * 10 + 1));
    assert.ok(a.add(2, 3, undefined, round * 10 + 2), `round ${round}: its last page refused`);
    const whole = a.take();
    assert.equal(tags(whole?.pages), [`0:r${round}p0`, `1:r${round}p1`]);
    assert.is(whole?.pageCount, 3);
  }
});

test("a refused first page begins a report: the pages after it are not stored with the report before as one", () => {
  const a = new StatsAssembly();
  a.add(0, 3, json("r1p0"), 10);
  a.add(1, 3, undefined, 11); // r1's last two pages refused
  assert.ok(a.add(2, 3, undefined, 12));
  a.take();
  a.add(0, 3, json("r2p0"), 20);
  a.add(1, 3, json("r2p1"), 21); // r2's last page lost on the way: never closes
  a.add(0, 3, undefined, 30); // r3's first page refused
  a.add(1, 3, json("r3p1"), 31);
  assert.ok(a.add(2, 3, json("r3p2"), 32));
  const whole = a.take()!;
  assert.equal(tags(whole.pages), ["1:r3p1", "2:r3p2"], "r3 alone");
  assert.equal(new Set([...whole.pages.values()].map((p) => p.atMs)), new Set([30]));
});

test("every page refused: nothing to store, the stored report stays", () => {
  const a = new StatsAssembly();
  a.add(0, 2, undefined, 10);
  assert.not.ok(a.add(1, 2, undefined, 11));
  assert.is(a.take(), undefined);
});

test("a stored report lacking a page (refused) leaves no page of an older report in its place: msmctl counts the gap", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-stats-gap-"));
  const store = await openStore(`file:${dir}`);
  try {
    const page = (atMs: number, tag: string, segment: string): StatsPage => ({
      atMs, json: JSON.stringify({ nodeId: "node-g", atMs, watchdogRestarts: 0, tag, segments: [{ name: segment, atMs, packetsIn: atMs }] }),
    });
    let stored = await writeStats(store, "node-g", new Map([[0, page(1000, "old", "a")], [1, page(1000, "old", "b")], [2, page(1000, "old", "c")]]), 3, undefined);
    stored = await writeStats(store, "node-g", new Map([[0, page(2000, "new", "a")], [2, page(2000, "new", "c")]]), 3, stored);
    const { pages } = await readStats(store, "node-g", "");
    assert.equal(pages.map((p) => p.atMs), [2000, 2000], "the old report's page 1 is gone");
    const [merged] = mergeStatsPages(pages);
    assert.match(merged!.note ?? "", /2 of 3 pages/);
    assert.equal(incompleteReports(pages), ["node-g"]);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
