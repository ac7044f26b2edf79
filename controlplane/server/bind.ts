// Binding the control plane's gRPC port, with a failure said once, in msm's words. grpc-js logs
// its own "E No address added out of total 1 resolved" on stderr before it rejects, and its
// rejection wraps the cause ("... errors: [listen EADDRINUSE: address already in use ...]").
import { setLogger, type Server, type ServerCredentials } from "@grpc/grpc-js";

/** grpc-js's lines that only repeat a bind failure the caller is told anyway. */
const BIND_NOISE = /^No address added out of total \d+ resolved/;

let quieted = false;

/** grpc-js's default logger (stderr, "E "/"I "/"D " prefixes), without the bind-failure line. */
function quietBindNoise(): void {
  if (quieted) return;
  quieted = true;
  const line = (prefix: string) => (message?: unknown, ...rest: unknown[]): void => {
    if (typeof message === "string" && BIND_NOISE.test(message)) return;
    console.error(`${prefix} ${String(message)}`, ...rest);
  };
  setLogger({ error: line("E"), info: line("I"), debug: line("D") });
}

/** The cause of a failed bind, as a person reads it. */
export function bindFailure(message: string): string {
  const inner = /errors: \[(.*)\]$/s.exec(message)?.[1] ?? message;
  if (/EADDRINUSE/.test(inner)) return "the address is in use (another control plane, or another program, listens there)";
  if (/EADDRNOTAVAIL/.test(inner)) return "no interface of this host has that address";
  if (/EACCES/.test(inner)) return `permission denied (${inner.replace(/^listen EACCES: permission denied\s*/, "").trim() || "a port below 1024 needs privileges"})`;
  return inner;
}

/** Binds `listen` (HOST:PORT or unix:PATH); resolves with the port grpc-js reports. */
export function bindServer(server: Server, listen: string, credentials: ServerCredentials): Promise<number> {
  quietBindNoise();
  return new Promise((resolve, reject) => {
    server.bindAsync(listen, credentials, (err, port) => (err ? reject(new Error(`cannot listen on ${listen}: ${bindFailure(err.message)}`)) : resolve(port)));
  });
}
