// Starting a proxy for a test from a compact description.
import { Proxy, validateProxyConfig, type ProxyConfigInput, type ProxyEvent } from "../../runtime/index.js";

export interface TestProxy {
  proxy: Proxy;
  events: ProxyEvent[];
}

/** MSM_TEST_IO=dgram runs a test file's proxies on node:dgram I/O (test/run.ts does, for the proxy's tests). */
const TEST_IO = process.env.MSM_TEST_IO as ProxyConfigInput["io"];

export async function startProxy(input: ProxyConfigInput): Promise<TestProxy> {
  const events: ProxyEvent[] = [];
  const proxy = await Proxy.start(validateProxyConfig(TEST_IO && input.io === undefined ? { ...input, io: TEST_IO } : input), (e) => events.push(e));
  if (TEST_IO) {
    // the tests' reloads name no io: they keep the one the proxy started with, as a file that names it would
    const apply = proxy.apply.bind(proxy);
    proxy.apply = (config) => apply({ ...config, io: TEST_IO });
  }
  return { proxy, events };
}

export async function segmentStats(proxy: Proxy, name: string) {
  const snapshot = await proxy.stats();
  const s = snapshot.segments.find((x) => x.name === name);
  if (!s) {
    // why, when the proxy knows: a segment that does not run (its port taken) is listed apart
    const why = snapshot.notRunning.filter((n) => n.segment === name).map((n) => n.reason);
    throw new Error(`no segment ${name}${why.length > 0 ? ` (not running: ${why.join("; ")})` : ""}`);
  }
  return s;
}
