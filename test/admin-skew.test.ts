// An msmctl (or any AdminService client) newer than its control plane, over real gRPC to a real
// control plane (file store): a segment setting the control plane's msm.proto does not define
// (what a later .proto adds) is refused naming it, and nothing is stored. Decoded as usual the
// field would vanish: the segment stored and pushed to its proxy without it, the apply reported
// as done. And the other way: msmctl older than its control plane (a gRPC server speaking a newer
// msm.proto) says that the segments it gets and describes have settings it cannot show.
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import protobuf from "protobufjs";
import { credentials, makeGenericClientConstructor, Server, ServerCredentials, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { AdminServiceClient, type Segment } from "../controlplane/api/proto.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { runMsmctl } from "../cli/msmctl/main.js";
import type { Io } from "../cli/msmctl/context.js";
import { suite } from "./lib/suite.js";
import { filterWasm, ROOT } from "./lib/paths.js";

const test = suite("AdminService: a client newer than its control plane", { timeoutMs: 30_000 });
const dir = mkdtempSync(join(tmpdir(), "msm-admin-skew-"));
let cp: ControlPlane;
let admin: Client;
const clients: Client[] = [];

// the newer client's msm.proto: this one with settings a later version adds
const newer = protobuf.loadSync(join(ROOT, "controlplane", "proto", "msm.proto"));
newer.lookupType("msm.v1.Segment").add(new protobuf.Field("futureSetting", 900, "uint32"));
newer.lookupType("msm.v1.Endpoint").add(new protobuf.Field("futureEndpointKey", 901, "string"));
const NewerApply = newer.lookupType("msm.v1.ApplySegmentsRequest");
const ApplyResponse = newer.lookupType("msm.v1.ApplySegmentsResponse");

function newerClient(): Client {
  const Ctor = makeGenericClientConstructor({
    ApplySegments: {
      path: "/msm.v1.AdminService/ApplySegments",
      requestStream: false,
      responseStream: false,
      requestSerialize: (req: object) => Buffer.from(NewerApply.encode(NewerApply.fromObject(req)).finish()),
      requestDeserialize: (b: Buffer) => NewerApply.decode(b),
      responseSerialize: () => Buffer.alloc(0),
      responseDeserialize: (b: Buffer) => ApplyResponse.toObject(ApplyResponse.decode(b), { longs: Number, defaults: true }),
    },
  }, "AdminService");
  const c = new Ctor(`127.0.0.1:${cp.port}`, credentials.createInsecure());
  clients.push(c);
  return c;
}

function call<T>(client: Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!.bind(client);
    fn(request, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

async function refusal(work: Promise<unknown>): Promise<ServiceError> {
  try {
    await work;
  } catch (err) {
    return err as ServiceError;
  }
  throw new assert.Assertion({ message: "expected a refusal, the call succeeded", generated: false, operator: "refused", expects: "error", actual: "ok" });
}

const segment = (name: string, port: number, extra: Record<string, unknown> = {}) => ({
  name, proxy: "node-s", listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: port + 1000 }],
  chain: [{ filter: "validate" }], ...extra,
});

test.before(async () => {
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${join(dir, "store")}`, tls: "insecure", name: "cp-skew", log: () => {} });
  admin = new AdminServiceClient(`127.0.0.1:${cp.port}`, credentials.createInsecure());
  clients.push(admin);
  await call(admin, "PushFilter", { name: "validate", version: "1.0.0", wasm: readFileSync(filterWasm("validate")) });
});

test.after(async () => {
  for (const c of clients) c.close();
  await cp?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("ApplySegments with a setting the control plane does not know is refused naming it (segment, field, message), dry run or not; nothing is stored", async () => {
  const client = newerClient();
  const request = {
    segments: [
      segment("cam-ok", 21000),
      segment("cam-new", 21010, { futureSetting: 3, destinations: [{ address: "127.0.0.1", port: 22010, futureEndpointKey: "x" }] }),
    ],
  };
  for (const dryRun of [true, false]) {
    const e = await refusal(call(client, "ApplySegments", { ...request, dryRun }));
    assert.is(status[e.code], status[status.INVALID_ARGUMENT], e.details);
    assert.match(e.details, /segments\[1\] \('cam-new'\): field 900 of msm\.v1\.Segment/);
    assert.match(e.details, /segments\[1\]\.destinations\[0\] \('cam-new'\): field 901 of msm\.v1\.Endpoint/);
    assert.match(e.details, /newer than this control plane/);
  }
  const { segments } = await call<{ segments: Segment[] }>(admin, "ListSegments", {});
  assert.equal(segments.map((s) => s.name), [], "none of the request was stored");
  // the same client without the new settings: applied as usual
  const r = await call<{ created: string[] }>(client, "ApplySegments", { segments: [segment("cam-ok", 21000)] });
  assert.equal(r.created, ["cam-ok"]);
});

/** A control plane of a newer build, as far as msmctl get / describe segments ask it (with no proxies, filters, stats or streams). */
async function newerControlPlane(segments: object[]): Promise<{ port: number; close: () => void }> {
  const server = new Server();
  const unary = (type: string, answer: object) => {
    const T = newer.lookupType(`msm.v1.${type}`);
    return {
      path: "", requestStream: false, responseStream: false,
      requestSerialize: () => Buffer.alloc(0), requestDeserialize: () => ({}),
      responseSerialize: (m: object) => Buffer.from(T.encode(T.fromObject(m)).finish()), responseDeserialize: (b: Buffer) => b,
      answer,
    };
  };
  const methods = { ListSegments: unary("ListSegmentsResponse", { segments }), ListProxies: unary("ListProxiesResponse", { proxies: [] }), ListFilters: unary("ListFiltersResponse", { filters: [] }),
    GetStats: unary("GetStatsResponse", {}), ListStreams: unary("ListStreamsResponse", {}) };
  server.addService(
    Object.fromEntries(Object.entries(methods).map(([name, m]) => [name, { ...m, path: `/msm.v1.AdminService/${name}` }])),
    Object.fromEntries(Object.entries(methods).map(([name, m]) => [name, (_call: unknown, cb: (e: null, r: object) => void) => cb(null, m.answer)])),
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, close: () => server.forceShutdown() };
}

async function msmctl(args: string[], port: number): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = {
    out: (t) => void (out += t), err: (t) => void (err += t), readStdin: async () => Buffer.alloc(0),
    env: { MSM_SERVER: `127.0.0.1:${port}`, MSM_INSECURE: "1" }, isTty: false, onInterrupt: () => () => {},
  };
  return { code: await runMsmctl(args, io), out, err };
}

test("msmctl older than its control plane: get and describe say which segments have settings it does not know, and that applying the output back would remove them", async () => {
  const cpNewer = await newerControlPlane([
    { ...segment("cam-new", 21020, { futureSetting: 3 }), destinations: [{ address: "127.0.0.1", port: 22020, futureEndpointKey: "x" }] },
    segment("cam-plain", 21030),
  ]);
  try {
    for (const args of [["get", "segments", "-o", "yaml"], ["get", "segment", "cam-new"], ["describe", "segment", "cam-new"]]) {
      const r = await msmctl(args, cpNewer.port);
      assert.is(r.code, 0, r.err);
      assert.match(r.out, /cam-new/);
      assert.match(r.err, /warning: segment cam-new has settings this msmctl does not know \(.*\): they are not shown, and applying this output back would remove them; the control plane is newer than this msmctl: upgrade msmctl/, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, /does not know \([^)]*field 900 of msm\.v1\.Segment/);
      assert.match(r.err, /does not know \([^)]*destinations\[0\]: field 901 of msm\.v1\.Endpoint/);
      assert.not.match(r.err, /segment cam-plain has settings/);
    }
  } finally {
    cpNewer.close();
  }
});

test.run();
