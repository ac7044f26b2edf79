// The control plane on a unix-domain socket (`unix:PATH`), as the commands take it: `msm
// control-plane --listen unix:PATH`, a proxy agent `msm proxy --control-plane unix:PATH`, and
// `msmctl --server unix:PATH`: a segment applied through it runs and forwards; an empty path is
// refused by each with the flag named.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { Child } from "./lib/child.js";
import { startControlPlaneProcess } from "./lib/control-plane-cli.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { ROOT } from "./lib/paths.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";

const test = suite("control plane on a unix socket", { timeoutMs: 60_000 });
const MSM = join(ROOT, "dist", "cli", "msm.js");
const MSMCTL = join(ROOT, "dist", "cli", "msmctl.js");

test("msm control-plane, msm proxy and msmctl over unix:PATH: a segment applied runs and forwards", async () => {
  const cp = await startControlPlaneProcess();
  const dir = mkdtempSync(join(tmpdir(), "msm-unix-"));
  const listen = await freePortPair();
  const sink = await Sink.open();
  const tx = await bindUdp();
  let agent: Child | undefined;
  try {
    assert.match(cp.child.stderr, new RegExp(`control plane cp listening on ${cp.address}`));
    writeFileSync(join(dir, "seg.yaml"), `kind: Segment
metadata: { name: local }
spec:
  proxy: edge-1
  listen: { address: 127.0.0.1, port: ${listen} }
  destinations: [{ address: 127.0.0.1, port: ${sink.port} }]
`);
    const applied = await cp.msmctl(["apply", "-f", join(dir, "seg.yaml")]);
    assert.is(applied.code, 0, applied.err);
    assert.match(applied.out, /segment\/local created/);
    agent = new Child(process.execPath, [MSM, "proxy", "--control-plane", cp.address, "--node-id", "edge-1", "--state-dir", join(dir, "state"), "--insecure"], { limitMs: 60_000 });
    await waitFor(() => /snapshot \d+ applied/.test(agent!.stderr), 20_000, `the agent to run its snapshot:\n${agent.stderr}`);
    assert.match(agent.stderr, new RegExp(`control plane ${cp.address}: connected`));

    const kernel = new DropWatch([listen, sink.port]);
    for (let i = 0; i < 50; i++) tx.send(indexedRtp(i), listen, "127.0.0.1");
    await waitFor(() => sink.received + kernel.since().total >= 50, 5000, `packets through the proxy (${sink.received}/50)`);
    assert.ok(sink.received > 0, "the proxy forwards");

    const proxies = await cp.msmctl(["get", "proxies"]);
    assert.is(proxies.code, 0, proxies.err);
    assert.match(proxies.out, /^edge-1\s+yes\s+cp\s/m);
    // a unix socket has no peer address: the connection is named by its id, not "unknown"
    const described = await cp.msmctl(["describe", "proxy", "edge-1"]);
    assert.match(described.out, /^Connected:\s+yes, to cp from a unix socket \(connection [0-9a-f]{8}\)$/m, described.out);
  } finally {
    tx.close();
    sink.close();
    await agent?.stop("SIGTERM", 5000);
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an empty unix: path is refused by each command, naming the flag", async () => {
  const run = async (cli: string, args: string[]): Promise<string> => {
    const c = new Child(process.execPath, [cli, ...args], { limitMs: 20_000 });
    const exit = await c.exited;
    assert.ok(exit.code !== 0, `${args.join(" ")} exited 0`);
    return c.stderr;
  };
  assert.match(await run(MSM, ["control-plane", "--listen", "unix:", "--store", "file:/nonexistent", "--insecure"]), /listen address 'unix:' must be HOST:PORT \(IPv6 as \[ADDR\]:PORT\) or unix:PATH/);
  assert.match(await run(MSM, ["proxy", "--control-plane", "unix:", "--node-id", "n", "--state-dir", "/nonexistent", "--insecure"]), /--control-plane takes HOST:PORT or unix:PATH, got 'unix:'/);
  assert.match(await run(MSMCTL, ["get", "segments", "--server", "unix:", "--insecure"]), /--server must be HOST:PORT \(IPv6 as \[ADDR\]:PORT\) or unix:PATH, got 'unix:'/);
});

test.run();
