// gRPC's words for a connection that failed, cut to the cause: grpc-js wraps it as
// "No connection established. Last error: Error: <cause>. Resolution note: <...>".
export function connectionFailure(details: string): string {
  return details
    .replace(/^No connection established\. Last error: /, "")
    .replace(/^Error: /, "")
    .replace(/\.? Resolution note: .*$/s, "")
    .trim();
}

/** `text` without the ISO timestamps grpc-js adds in parentheses: two failures for the same reason read the same. */
export function withoutTimestamps(text: string): string {
  return text.replace(/\s*\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\)/g, "");
}
