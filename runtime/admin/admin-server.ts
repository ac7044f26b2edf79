// The proxy's admin HTTP endpoint: /metrics (Prometheus), /stats (JSON), /healthz.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Proxy } from "../proxy.js";
import { renderPrometheus } from "./prometheus.js";

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startAdminServer(proxy: Proxy, address: string, port: number): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { "content-type": type });
      res.end(body);
    };
    if (path === "/healthz") return reply(200, "text/plain", "ok\n");
    if (path !== "/metrics" && path !== "/stats") return reply(404, "text/plain", "not found: try /metrics, /stats or /healthz\n");
    proxy.stats().then(
      (snap) =>
        path === "/metrics"
          ? reply(200, "text/plain; version=0.0.4", renderPrometheus(snap))
          : reply(200, "application/json", JSON.stringify(snap, null, 2)),
      (err: Error) => reply(500, "text/plain", `${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
