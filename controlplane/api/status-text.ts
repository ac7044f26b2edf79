// gRPC's words for a connection that failed, cut to the cause: grpc-js wraps it as
// "No connection established. Last error: Error: <cause>. Resolution note: <...>".
export function connectionFailure(details: string): string {
  return details
    .replace(/^No connection established\. Last error: /, "")
    .replace(/^Error: /, "")
    .replace(/\.? Resolution note: .*$/s, "")
    .trim();
}
