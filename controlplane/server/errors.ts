// A refusal with its gRPC status code, and how any error becomes a status for the caller.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { StoreError } from "../store/index.js";

export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(readonly code: status, message: string, readonly trailers: Readonly<Record<string, string>> = {}) {
    super(message);
  }
}

/** A request refused field by field: INVALID_ARGUMENT, one line per issue. */
export function invalid(issues: readonly string[]): RpcError {
  return new RpcError(status.INVALID_ARGUMENT, issues.join("\n"));
}

export function toStatus(err: unknown, log: (message: string) => void): Partial<ServiceError> {
  if (err instanceof RpcError) {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(err.trailers)) metadata.set(key, value);
    return { code: err.code, details: err.message, metadata };
  }
  if (err instanceof StoreError) {
    log(`store: ${err.message}`);
    return { code: status.UNAVAILABLE, details: `store: ${err.message}` };
  }
  log(`internal error: ${(err as Error)?.stack ?? String(err)}`);
  return { code: status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
}
