// gRPC's words for a connection that failed, cut to the cause: grpc-js wraps it as
// "No connection established. Last error: Error: <cause>. Resolution note: <...>", stamps some
// causes with the time ("Failed to connect (2026-...Z)"), and passes OpenSSL's error lines as
// they are ("<hex>:error:<code>:SSL routines:<function>:<reason>:<source file>:<line>:<more>").
export function connectionFailure(details: string): string {
  const cause = withoutTimestamps(details
    .replace(/^No connection established\. Last error: /, "")
    .replace(/^Error: /, "")
    .replace(/\.? Resolution note: .*$/s, ""))
    .trim();
  return cause.split("\n").map(opensslReason).filter((l) => l !== "").join("; ");
}

/** `text` without the ISO timestamps grpc-js adds in parentheses: two failures for the same reason read the same. */
export function withoutTimestamps(text: string): string {
  return text.replace(/\s*\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\)/g, "");
}

/** One OpenSSL error line as its reason (and the detail after the source line, an alert's number); other text as it is. */
function opensslReason(line: string): string {
  const m = /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):[^:]*:\d+:(.*)$/.exec(line.trim());
  if (!m) return line.trim();
  return m[2]!.trim() ? `${m[1]} (${m[2]!.trim()})` : m[1]!;
}
