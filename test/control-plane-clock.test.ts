// A control-plane replica whose host clock is off by minutes, with a real etcd, a real second
// replica and a real proxy (agent): the proxy connected to the skewed replica must still read as
// connected on the other one (last_seen is written and judged by etcd's clock), and the skewed
// replica says its clock is off. The skew is real for that process: its Date.now is shifted by a
// preload module, as a host without time sync would have it.
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { startControlPlane } from "../controlplane/server/index.js";
import { startAgent } from "../controlplane/agent/index.js";
import { suite } from "./lib/suite.js";
import { adminClient as admin } from "./lib/admin-client.js";
import { startEtcd } from "./lib/etcd.js";
import { Child } from "./lib/child.js";
import { ROOT } from "./lib/paths.js";
import { freePortPair, Sink, waitFor } from "./lib/udp.js";

const test = suite("control-plane-clock", { timeoutMs: 120_000 });


test("a replica whose clock is 2 minutes behind: its proxy reads as connected on the other replica too, and it logs that its clock is off", async () => {
  const etcd = await startEtcd();
  const dir = mkdtempSync(join(tmpdir(), "msm-cp-clock-"));
  const preload = join(dir, "skew.mjs");
  writeFileSync(preload, "const real = Date.now; const off = Number(process.env.MSM_TEST_SKEW_MS); Date.now = () => real() + off;\n");
  const skewed = new Child(process.execPath, ["--import", pathToFileURL(preload).href, join(ROOT, "dist", "cli", "msm.js"), "control-plane",
    "--listen", "127.0.0.1:0", "--store", etcd.spec, "--insecure", "--name", "cp-skewed"], { limitMs: 120_000, env: { MSM_TEST_SKEW_MS: "-120000" } });
  const other = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", name: "cp-right", log: () => {} });
  const ops = admin(other.port);
  const sink = await Sink.open();
  const stateDir = join(dir, "state");
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  try {
    await waitFor(() => /listening on 127\.0\.0\.1:\d+/.test(skewed.stderr) || skewed.exit !== null, 20_000, "the skewed replica to listen");
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(skewed.stderr)?.[1]);
    assert.ok(port > 0, skewed.describe());
    const listen = await freePortPair();
    const v = await ops.apply({
      name: "cam-c", proxy: "node-c", listen: { address: "127.0.0.1", port: listen, rtcpPort: 0 }, rtcpMux: false, egress: null,
      destinations: [{ address: "127.0.0.1", port: sink.port, rtcpPort: 0 }], source: null, chain: [], failure: null, revision: 0, legs: [],
    });
    agent = await startAgent({ controlPlanes: [`127.0.0.1:${port}`], nodeId: "node-c", stateDir, tls: "insecure" });
    await waitFor(async () => Number((await ops.proxy("node-c"))?.ackedVersion ?? 0) >= v, 20_000, "the proxy to acknowledge (seen through the other replica)");
    const seen = await ops.proxy("node-c");
    assert.is(seen?.server, "cp-skewed");
    assert.ok(seen?.connected, `the other replica says the proxy is not connected: last_seen ${Date.now() - Number(seen?.lastSeenMs)} ms ago by its clock`);
    assert.match(skewed.stderr, /this host's clock is 1[12]\d s behind etcd's/);
  } finally {
    await agent?.close();
    ops.close();
    await other.close();
    await skewed.stop("SIGTERM", 5000);
    sink.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
