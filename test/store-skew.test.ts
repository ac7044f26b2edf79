// A control plane older than its store: a segment record a newer control plane stored with a
// setting this build does not define (two builds' replicas on one etcd during an upgrade, or a
// control plane rolled back) reaches this one's snapshots. Built here, the snapshot would drop
// the setting and the proxy run the segment without it; instead that proxy's snapshot is held
// back, saying why, and the proxy keeps what it runs. Real control plane (file store, the
// record edited on disk as a newer build would have written it), real gRPC proxy streams.
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, type Client, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { AdminServiceClient, ProxyServiceClient, type ControlMessage, type ProxyMessage, type Snapshot } from "../controlplane/api/proto.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { SEGMENTS } from "../controlplane/server/keys.js";
import { suite } from "./lib/suite.js";
import { filterWasm } from "./lib/paths.js";
import { waitFor } from "./lib/udp.js";

const test = suite("a control plane older than its store", { timeoutMs: 30_000 });
const dir = mkdtempSync(join(tmpdir(), "msm-store-skew-"));
const storeDir = join(dir, "store");
const logs: string[] = [];
const clients: Client[] = [];
let cp: ControlPlane | undefined;

function call<T>(client: Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!.bind(client);
    fn(request, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

const start = async (): Promise<ControlPlane> =>
  (cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${storeDir}`, tls: "insecure", name: "cp-old", log: (m) => logs.push(m) }));

/** A proxy's Connect stream, registered as `nodeId`, and the snapshots it gets. */
function proxy(port: number, nodeId: string): { snapshots: Snapshot[]; stream: ClientDuplexStream<ProxyMessage, ControlMessage> } {
  const client = new ProxyServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  clients.push(client);
  const stream = (client as unknown as { Connect(): ClientDuplexStream<ProxyMessage, ControlMessage> }).Connect();
  const snapshots: Snapshot[] = [];
  stream.on("data", (m: ControlMessage) => m.kind === "snapshot" && snapshots.push(m.snapshot));
  stream.on("error", () => {});
  stream.write({ register: { nodeId, capabilities: ["runtime=node"], abiVersions: ["1.9"], runningVersion: 0 } } as unknown as ProxyMessage);
  return { snapshots, stream };
}

const segment = (name: string, node: string, port: number) => ({
  name, proxy: node, listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: port + 1000 }], chain: [{ filter: "validate" }],
});

test.after(async () => {
  for (const c of clients) c.close();
  await cp?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("a segment stored with settings this build does not know: its proxy's snapshot is held back and the log names them; other proxies' snapshots go out", async () => {
  const first = await start();
  const admin = new AdminServiceClient(`127.0.0.1:${first.port}`, credentials.createInsecure());
  clients.push(admin);
  await call(admin, "PushFilter", { name: "validate", version: "1.0.0", wasm: readFileSync(filterWasm("validate")) });
  await call(admin, "ApplySegments", { segments: [segment("cam-new", "node-new", 23000), segment("cam-plain", "node-plain", 23010)] });
  admin.close();
  await first.close();
  cp = undefined;

  // what a newer control plane wrote: the same record with a setting of its own, and one in a destination
  const file = join(storeDir, "keys", `${createHash("sha256").update(`${SEGMENTS}cam-new`).digest("hex")}.json`);
  const record = JSON.parse(readFileSync(file, "utf8")) as { value: string };
  const stored = JSON.parse(Buffer.from(record.value, "base64").toString()) as Record<string, unknown> & { destinations: Record<string, unknown>[] };
  stored.futureSetting = 3;
  stored.destinations[0]!.futureEndpointKey = "x";
  record.value = Buffer.from(JSON.stringify(stored)).toString("base64");
  writeFileSync(file, JSON.stringify(record));

  const cpOld = await start();
  const plain = proxy(cpOld.port, "node-plain");
  const held = proxy(cpOld.port, "node-new");
  await waitFor(() => plain.snapshots.length > 0, 10_000, "node-plain's snapshot");
  assert.equal(plain.snapshots[0]!.segments.map((s) => s.name), ["cam-plain"]);
  await waitFor(() => logs.some((l) => /proxy node-new: not sending snapshot/.test(l)), 10_000, `the hold in the log\n${logs.join("\n")}`);
  const line = logs.find((l) => /proxy node-new: not sending snapshot/.test(l))!;
  assert.match(line, /: cam-new \(.*\(top level\): 'futureSetting' \(not a field of msm\.v1\.Segment\)/);
  assert.match(line, /: cam-new \(.*destinations\[0\]: 'futureEndpointKey' \(not a field of msm\.v1\.Endpoint\)/);
  assert.match(line, /upgrade this control plane/);
  assert.equal(held.snapshots, [], "no snapshot without the setting (before: cam-new without it)");
  held.stream.end();
  plain.stream.end();
});

test.run();
