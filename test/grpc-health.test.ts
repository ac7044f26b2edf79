// The control plane's standard gRPC health service (grpc.health.v1.Health), called the way a
// Kubernetes gRPC probe or grpc_health_probe calls it: a real gRPC client on the real port. The
// status follows the store: SERVING while it answers, NOT_SERVING when etcd loses its quorum, and
// NOT_SERVING to watchers when the replica shuts down.
import { credentials, loadPackageDefinition, status, type Client, type ClientReadableStream, type ServiceClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { createPki } from "../controlplane/security/pki.js";
import { channelCredentials, type TlsFiles } from "../controlplane/security/tls.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { StoreHealth } from "../controlplane/server/health.js";
import type { Store } from "../controlplane/store/index.js";
import { startEtcdCluster } from "./lib/etcd.js";
import { suite } from "./lib/suite.js";

const test = suite("gRPC health (grpc.health.v1)", { timeoutMs: 60_000 });

// the client side read from the spec's .proto, as any probe would
const Health = (loadPackageDefinition(loadSync(protoPath, { enums: String, defaults: true })) as unknown as {
  grpc: { health: { v1: { Health: ServiceClientConstructor } } };
}).grpc.health.v1.Health;

type HealthClient = Client & Record<string, (...args: unknown[]) => unknown>;

function client(cp: ControlPlane, tls: TlsFiles | "insecure" = "insecure"): HealthClient {
  return new Health(`127.0.0.1:${cp.port}`, tls === "insecure" ? credentials.createInsecure() : channelCredentials(tls)) as HealthClient;
}

function check(c: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) => {
    c.Check!({ service }, { deadline: Date.now() + 5000 }, (err: ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res.status)));
  });
}

/** A Watch stream and the statuses it has sent so far. */
function watch(c: HealthClient, service: string): { seen: string[]; stream: ClientReadableStream<{ status: string }>; next(want: string, ms: number): Promise<void> } {
  const stream = c.Watch!({ service }) as ClientReadableStream<{ status: string }>;
  const seen: string[] = [];
  stream.on("data", (m: { status: string }) => seen.push(m.status));
  stream.on("error", () => {}); // cancelled at the end of a test
  const next = async (want: string, ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (seen.at(-1) !== want) {
      if (Date.now() > deadline) throw new Error(`Watch(${JSON.stringify(service)}) sent ${JSON.stringify(seen)}, not ${want} within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { seen, stream, next };
}

test("a file store: the server and both services are SERVING; an unknown name is NOT_FOUND; Watch hears NOT_SERVING at shutdown", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-health-"));
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${dir}`, tls: "insecure", log: () => {} });
  const c = client(cp);
  try {
    for (const name of ["", "msm.v1.AdminService", "msm.v1.ProxyService"]) assert.is(await check(c, name), "SERVING", `Check(${JSON.stringify(name)})`);
    const err = await check(c, "msm.v1.NoSuchService").then(() => undefined, (e: ServiceError) => e);
    assert.is(err?.code, status.NOT_FOUND, "an unknown service name");
    const w = watch(c, "");
    await w.next("SERVING", 5000);
    const unknown = watch(c, "msm.v1.NoSuchService");
    await unknown.next("SERVICE_UNKNOWN", 5000);
    unknown.stream.cancel();
    await cp.close();
    await w.next("NOT_SERVING", 5000);
    assert.equal(w.seen, ["SERVING", "NOT_SERVING"]);
    w.stream.cancel();
  } finally {
    c.close();
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("mTLS: a proxy's certificate may ask (no role needed), a client without a certificate is refused at the handshake", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-health-tls-"));
  const pki = createPki(join(dir, "pki"));
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${join(dir, "store")}`, tls: pki.issue("cp", "spiffe://msm.local/control-plane/cp"), log: () => {} });
  const proxy = client(cp, pki.issue("node-1", "spiffe://msm.local/proxy/node-1"));
  const anonymous = new Health(`127.0.0.1:${cp.port}`, credentials.createSsl(readFileSync(pki.ca), null, null, { checkServerIdentity: () => undefined })) as HealthClient;
  try {
    assert.is(await check(proxy, "msm.v1.AdminService"), "SERVING");
    const err = await check(anonymous, "").then(() => undefined, (e: ServiceError) => e);
    assert.is(err?.code, status.UNAVAILABLE, `refused: ${err?.details}`);
    assert.match(err?.details ?? "", /certificate required/i, `for the missing certificate (the server's is taken as it is): ${err?.details}`);
  } finally {
    proxy.close();
    anonymous.close();
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("etcd without a quorum: Check and Watch turn NOT_SERVING (the store no longer answers)", async () => {
  const cluster = await startEtcdCluster(3);
  const logged: string[] = [];
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: cluster.spec, tls: "insecure", log: (m) => logged.push(m), timing: { healthCheckMs: 300 } });
  const c = client(cp);
  try {
    assert.is(await check(c, ""), "SERVING");
    const w = watch(c, "msm.v1.AdminService");
    await w.next("SERVING", 5000);
    await cluster.stopMember(1);
    await cluster.stopMember(2);
    await w.next("NOT_SERVING", 20_000);
    assert.is(await check(c, ""), "NOT_SERVING");
    assert.ok(logged.some((l) => /^health: NOT_SERVING \(store etcd:/.test(l)), `the cause is logged: ${logged.join(" | ")}`);
    w.stream.cancel();
  } finally {
    c.close();
    await cp.close();
    await cluster.stop();
  }
}, { timeoutMs: 90_000 });

test("a probe answered after a newer one does not undo it (the recheck at the first listing overlaps the interval's probe)", async () => {
  // the store's revision() answers when the test says: an older probe fails after a newer one succeeded
  const pending: { resolve(n: number): void; reject(e: Error): void }[] = [];
  const store = {
    description: "fake:",
    revision: () => new Promise<number>((resolve, reject) => void pending.push({ resolve, reject })),
  } as unknown as Store;
  const logged: string[] = [];
  let listed = false;
  const health = new StoreHealth(store, 60_000, (m) => logged.push(m), () => (listed ? undefined : "the desired state is not listed yet"));
  const started = health.start();
  pending.shift()!.resolve(1);
  await started;
  health.recheck(); // the interval's probe: etcd slow, no answer yet
  const older = pending.shift()!;
  listed = true;
  health.recheck(); // the mirror listed the state: probes again at once
  pending.shift()!.resolve(2);
  await new Promise((r) => setImmediate(r));
  older.reject(new Error("no answer in time"));
  await new Promise((r) => setImmediate(r));
  health.stop();
  assert.equal(logged, ["health: NOT_SERVING (the desired state is not listed yet)", "health: SERVING (the store answers, the desired state is listed)"]);
});

test.run();
