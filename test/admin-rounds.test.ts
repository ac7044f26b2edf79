// The admin endpoint under many requests at once: /stats and /metrics share the workers' rounds
// (docs/proxy.md "Metrics"), against a real proxy over loopback.
import * as assert from "uvu/assert";
import { startAdminServer, validateProxyConfig, Proxy } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortRun, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats } from "./lib/proxy.js";
import { httpGet } from "./lib/http-get.js";

const test = suite("admin endpoint rounds");
const LO = "127.0.0.1";

test("regression: many /stats and /metrics requests at once share the workers' rounds (each had a round of its own: memory and worker time grew with the requests), and none is answered with a round older than it", async () => {
  const base = await freePortRun(100);
  const sink = await Sink.open();
  const names = Array.from({ length: 100 }, (_, k) => `seg-${k}`);
  const proxy = await Proxy.start(validateProxyConfig({
    segments: names.map((name, k) => ({ name, rtcpMux: true, symmetricRtp: true, listen: { address: LO, port: base + k }, destinations: [{ address: LO, port: sink.port }] })),
  }));
  let rounds = 0;
  const stats = proxy.stats.bind(proxy);
  proxy.stats = () => (rounds++, stats()); // counted: the real rounds, through the real workers
  const admin = await startAdminServer(proxy, LO, 0);
  const tx = await bindUdp();
  try {
    const n = 200;
    const flood = Array.from({ length: n }, (_, k) => httpGet(admin.port, k % 2 === 0 ? "/stats" : "/metrics"));
    // packets that arrive while the flood is answered, then a request: it sees all of them
    for (let i = 0; i < 10; i++) tx.send(indexedRtp(i), base, LO);
    await waitFor(async () => (await segmentStats(proxy, "seg-0")).packetsIn >= 10, 5000, "the 10 packets taken");
    const after = JSON.parse((await httpGet(admin.port, "/stats")).body) as { segments: { name: string; packetsIn: number }[] };
    assert.is(after.segments.find((x) => x.name === "seg-0")?.packetsIn, 10, "a request after the packets counts them");
    const answers = await Promise.all(flood);
    assert.ok(answers.every((a) => a.status === 200), "every request answered");
    for (const a of answers.filter((_, k) => k % 2 === 0)) assert.is((JSON.parse(a.body) as { segments: unknown[] }).segments.length, names.length);
    assert.ok(rounds < n / 4, `${rounds} rounds of the workers for ${n + 1} requests`);
  } finally {
    tx.close();
    sink.close();
    await admin.close();
    await proxy.close();
  }
});

test.run();
