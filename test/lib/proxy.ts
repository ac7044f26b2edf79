// Starting a proxy for a test from a compact description.
import { Proxy, validateProxyConfig, type ProxyConfigInput, type ProxyEvent } from "../../runtime/index.js";

export interface TestProxy {
  proxy: Proxy;
  events: ProxyEvent[];
}

export async function startProxy(input: ProxyConfigInput): Promise<TestProxy> {
  const proxy = await Proxy.start(validateProxyConfig(input));
  const events: ProxyEvent[] = [];
  proxy.on("event", (e) => events.push(e));
  return { proxy, events };
}

export async function segmentStats(proxy: Proxy, name: string) {
  const s = (await proxy.stats()).segments.find((x) => x.name === name);
  if (!s) throw new Error(`no segment ${name}`);
  return s;
}
