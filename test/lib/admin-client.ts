// A control-plane replica's AdminService for tests: the calls the tests make, each with a 10 s
// deadline, an error naming the method and the server's details.
import type { ServiceError } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { AdminServiceClient, type ApplySegmentsResponse, type FilterRef, type ProxyStats, type ProxyStatus, type Segment } from "../../controlplane/api/proto.js";
import { channelCredentials, type TlsFiles } from "../../controlplane/security/tls.js";

/** The AdminService of the replica at 127.0.0.1:`port` (plain text unless `tls`). */
export function adminClient(port: number, tls: TlsFiles | "insecure" = "insecure") {
  const client = new AdminServiceClient(`127.0.0.1:${port}`, channelCredentials(tls), { "grpc.ssl_target_name_override": "msm-control-plane" }) as unknown as
    Record<string, (req: object, options: { deadline: number }, cb: (err: ServiceError | null, res: unknown) => void) => void> & { close(): void };
  const call = <T>(method: string, req: object): Promise<T> =>
    new Promise((resolve, reject) => client[method]!(req, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(new Error(`${method}: ${err.details}`)) : resolve(res as T))));
  return {
    push: async (name: string, version: string, file: string): Promise<FilterRef> => (await call<{ ref: FilterRef }>("PushFilter", { name, version, wasm: readFileSync(file) })).ref,
    /** Applies segments; resolves with the revision, which is the new snapshot version of their proxy. */
    apply: async (...segments: Segment[]): Promise<number> => Number((await call<ApplySegmentsResponse>("ApplySegments", { segments })).revision),
    proxy: async (node: string): Promise<ProxyStatus | undefined> => (await call<{ proxies: ProxyStatus[] }>("ListProxies", {})).proxies.find((p) => p.nodeId === node),
    stats: async (node: string): Promise<ProxyStats[]> => (await call<{ proxies: ProxyStats[] }>("GetStats", { proxy: node })).proxies,
    close: () => client.close(),
  };
}
