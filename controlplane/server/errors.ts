// A refusal with its gRPC status code, and how any error becomes a status for the caller.
import { status, type ServiceError } from "@grpc/grpc-js";
import { StoreError } from "../store/index.js";

export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(readonly code: status, message: string) {
    super(message);
  }
}

/** A request refused field by field: INVALID_ARGUMENT, one line per issue. */
export function invalid(issues: readonly string[]): RpcError {
  return new RpcError(status.INVALID_ARGUMENT, issues.join("\n"));
}

export function toStatus(err: unknown, log: (message: string) => void): Partial<ServiceError> {
  if (err instanceof RpcError) return { code: err.code, details: err.message };
  if (err instanceof StoreError) {
    log(`store: ${err.message}`);
    return { code: status.UNAVAILABLE, details: `store: ${err.message}` };
  }
  log(`internal error: ${(err as Error)?.stack ?? String(err)}`);
  return { code: status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
}
