// What an out-of-memory error names (the cap, the usage), /metrics shows before it happens: one
// msm_filter_memory_bytes series per filter instance (not per stage: segments share instances),
// with its cap beside it, scraped from a real proxy's admin endpoint.
import * as assert from "uvu/assert";
import { Proxy, startAdminServer, validateProxyConfig } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { freePortRun } from "./lib/udp.js";

const test = suite("filter memory gauge");

/** Every sample of a family in a Prometheus text: labels as a record, and the value. */
function samples(text: string, family: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${family}\\{([^}]*)\\} (\\S+)$`).exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

test("msm_filter_memory_bytes: one series per instance, its linear memory, growing as the filter allocates", async () => {
  const base = await freePortRun(8);
  const segment = (name: string, at: number, chain: { filter: string; config?: unknown }[]) => ({
    name, listen: { address: "127.0.0.1", port: base + at }, destinations: [{ address: "127.0.0.1", port: base + at + 1 }], chain,
  });
  const config = (allocateKiB: number) => validateProxyConfig({
    workers: 1,
    filters: { teach: { path: fixture("teach"), maxMemoryPages: 64 }, validate: { path: filterWasm("validate") } },
    segments: [
      segment("a", 0, [{ filter: "validate" }, { filter: "teach" }]),
      segment("b", 2, [{ filter: "validate" }, { filter: "teach", config: { allocateKiB } }]),
    ],
  });
  const proxy = await Proxy.start(config(0));
  const admin = await startAdminServer(proxy, "127.0.0.1", 0);
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  try {
    let text = await scrape();
    assert.match(text, /# TYPE msm_filter_memory_bytes gauge/);
    // Prometheus sets `instance` and `job` on every series it scrapes: a series' own would be renamed
    for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
      assert.not.match(line, /[{,](instance|job)="/, `a target label on a series: ${line}`);
    }
    const before = samples(text, "msm_filter_memory_bytes");
    assert.is(before.length, 2, "two instances (validate, teach), though four stages use them");
    const teach = before.find((s) => s.labels.filter === "teach")!;
    assert.equal(Object.keys(teach.labels).sort(), ["filter", "filter_instance", "worker"]);
    assert.is(teach.labels.worker, "0");
    assert.ok(teach.value >= 4 * 65536 && teach.value % 65536 === 0, `whole pages, at least the module's 4: ${teach.value}`);
    const cap = samples(text, "msm_filter_memory_max_bytes").find((s) => s.labels.filter === "teach" && s.labels.filter_instance === teach.labels.filter_instance);
    assert.is(cap?.value, 64 * 65536, "the cap from maxMemoryPages");

    // segment b's new context takes 2 MiB in the same instance (only the stage's config changed)
    await proxy.apply(config(2048));
    text = await scrape();
    const after = samples(text, "msm_filter_memory_bytes").find((s) => s.labels.filter === "teach")!;
    assert.is(after.labels.filter_instance, teach.labels.filter_instance, "the same instance");
    assert.ok(after.value > teach.value && after.value > 2048 * 1024, `grew to hold the 2 MiB: ${teach.value} -> ${after.value}`);
  } finally {
    await admin.close();
    await proxy.close();
  }
});

test.run();
