// Two proxies started with one node id (a DaemonSet pod and a leftover one, a copy-pasted unit)
// share one status record: the newer takes it over, and the control plane logs it. When the newer
// one goes away, the one left takes the record back at its next heartbeat, and with it what *it*
// runs: before, the record kept the leaver's ACK, so `msmctl get proxies` showed the segments the
// leaver could not bind as NOT running on a node that ran them all, for as long as nothing changed.
// Real control plane, real gRPC, real agents and sockets on loopback.
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials as grpcCredentials, type ServiceError } from "@grpc/grpc-js";
import { AdminServiceClient, type ApplySegmentsResponse, type ProxyStatus, type Segment } from "../controlplane/api/proto.js";
import { startControlPlane } from "../controlplane/server/index.js";
import { Agent } from "../controlplane/agent/index.js";
import { suite } from "./lib/suite.js";
import { filterWasm } from "./lib/paths.js";
import { freePortPair, waitFor } from "./lib/udp.js";

const test = suite("node-id-twins", { timeoutMs: 60_000 });

const tempDirs: string[] = [];
function tempDir(what: string): string {
  const dir = mkdtempSync(join(tmpdir(), `msm-twins-${what}-`));
  tempDirs.push(dir);
  return dir;
}

/** A control plane (heartbeat 200 ms) and an admin client of it: its log, a call by method name, and node `nodeId`'s status record. */
async function controlPlaneFor(nodeId: string) {
  const log: string[] = [];
  const cp = await startControlPlane({
    listen: "127.0.0.1:0", store: `file:${tempDir("store")}`, tls: "insecure", timing: { heartbeatMs: 200 }, log: (m) => void log.push(m),
  });
  const client = new AdminServiceClient(`127.0.0.1:${cp.port}`, grpcCredentials.createInsecure()) as unknown as Record<
    string, (req: object, o: { deadline: number }, cb: (err: ServiceError | null, res: unknown) => void) => void
  > & { close(): void };
  const call = <T>(method: string, req: object): Promise<T> =>
    new Promise((resolve, reject) => client[method]!(req, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(new Error(`${method}: ${err.details}`)) : resolve(res as T))));
  const status = async (): Promise<ProxyStatus | undefined> => (await call<{ proxies: ProxyStatus[] }>("ListProxies", {})).proxies.find((p) => p.nodeId === nodeId);
  return { log, cp, client, call, status };
}

test("the second proxy of a node id leaves: the record shows again what the first one runs", async () => {
  const { log, cp, client, call, status } = await controlPlaneFor("node-a");
  const listen = await freePortPair();
  const segment: Segment = {
    name: "cam-1", proxy: "node-a", listen: { address: "127.0.0.1", port: listen, rtcpPort: 0 }, rtcpMux: false, egress: null,
    destinations: [{ address: "127.0.0.1", port: 9, rtcpPort: 0 }], source: null, chain: [], failure: null, revision: 0, legs: [],
  };
  const version = (await call<ApplySegmentsResponse>("ApplySegments", { segments: [segment] })).revision;
  const first = new Agent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-a", stateDir: tempDir("first"), tls: "insecure" });
  const second = new Agent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-a", stateDir: tempDir("second"), tls: "insecure" });
  const warned = { first: [] as string[], second: [] as string[] };
  first.on("warning", (e) => warned.first.push(e.message));
  second.on("warning", (e) => warned.second.push(e.message));
  try {
    await first.start();
    await waitFor(async () => (await status())?.ackedVersion === version && first.runningVersion === version, 15_000, "the first proxy runs the segment");
    // the second one cannot bind the segment's port the first holds: it runs the version without it
    await second.start();
    await waitFor(async () => (await status())?.notRunning.includes("cam-1") ?? false, 15_000, "the second proxy's ACK (cam-1 not running) in the record");
    assert.ok(log.some((l) => /proxy node-a: registered from .* while its connection from .* is live/.test(l)), log.join("\n"));
    // and both proxies are told, in their own logs
    await waitFor(() => warned.second.some((m) => /^the control plane at 127\.0\.0\.1:\d+ says: node id node-a: another connection with it, from .*, is live at this control plane .*two proxies started with one node id/.test(m)), 5000, `the second proxy's warning: ${warned.second.join("; ")}`);
    await waitFor(() => warned.first.some((m) => /says: node id node-a: registered again from .* while this connection is live/.test(m)), 5000, `the first proxy's warning: ${warned.first.join("; ")}`);
    await second.close();
    // the first one's heartbeat takes the record back, with its own ACK: cam-1 runs
    await waitFor(async () => {
      const s = await status();
      return s !== undefined && s.connected && s.notRunning.length === 0 && s.ackedVersion === version;
    }, 15_000, `the record back to the first proxy, which runs cam-1: ${JSON.stringify(await status())}`);
  } finally {
    await second.close();
    await first.close();
    client.close();
    await cp.close();
  }
});

test("the second proxy of a node id refused the version the first runs, then left: the record drops its NACK with its ACK", async () => {
  const { cp, client, call, status } = await controlPlaneFor("node-b");
  // the key file the first proxy read at its start, gone when the second one starts: the second refuses the version
  const keyFile = join(tempDir("keys"), "dec.key");
  writeFileSync(keyFile, `inline:${Buffer.alloc(30, 0x3c).toString("base64")}\n`);
  await call("PushFilter", { name: "srtp", version: "1.0.0", wasm: readFileSync(filterWasm("srtp")) });
  const listen = await freePortPair();
  const segment: Segment = {
    name: "dec", proxy: "node-b", listen: { address: "127.0.0.1", port: listen, rtcpPort: 0 }, rtcpMux: false, egress: null,
    destinations: [{ address: "127.0.0.1", port: 9, rtcpPort: 0 }], source: null, failure: null, revision: 0, legs: [],
    chain: [{ filter: "srtp", version: "", configJson: JSON.stringify({ direction: "unprotect", key: { $file: keyFile } }) }],
  } as unknown as Segment;
  const version = (await call<ApplySegmentsResponse>("ApplySegments", { segments: [segment] })).revision;
  const first = new Agent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-b", stateDir: tempDir("first"), tls: "insecure" });
  const second = new Agent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-b", stateDir: tempDir("second"), tls: "insecure" });
  try {
    await first.start();
    await waitFor(async () => (await status())?.ackedVersion === version && first.runningVersion === version, 15_000, "the first proxy runs the segment");
    unlinkSync(keyFile);
    await second.start();
    await waitFor(async () => (await status())?.nackedVersion === version, 15_000, "the second proxy's NACK in the record");
    await second.close();
    // the first one's heartbeat takes the record back: it runs the version, and refused nothing
    await waitFor(async () => {
      const s = await status();
      return s !== undefined && s.connected && s.nackedVersion === 0 && s.nackError === "";
    }, 15_000, `no NACK of the first proxy's in its record: ${JSON.stringify(await status())}`);
  } finally {
    await second.close();
    await first.close();
    client.close();
    await cp.close();
  }
});

test.after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

test.run();
