// TLS on one side and plain text (--insecure) on the other is the mistake gRPC reports worst: a
// TLS client gets OpenSSL's "wrong version number", a plain-text client a bare "Failed to
// connect". These name it, for msmctl and the proxy alike (both take --insecure or --tls-*).
import { connect } from "node:tls";

/** What a TLS client says when the server answered with bytes that are not TLS (HTTP/2 in plain text). */
export const SERVER_IS_PLAIN_TEXT = "the server is plain text (started --insecure): give --insecure instead of --tls-ca, --tls-cert and --tls-key, or start the control plane with TLS";
/** What a plain-text client says when a probe found the server speaks TLS. */
export const SERVER_SPEAKS_TLS = "the server speaks TLS: drop --insecure and give --tls-ca, --tls-cert and --tls-key";

/** Whether a TLS client's failure (connectionFailure's text) means the server does not speak TLS. */
export function plainTextServer(cause: string): boolean {
  return /wrong version number|packet length too long/i.test(cause);
}

/** Whether a plain-text client's failure is grpc-js's bare one, which a TLS server causes (it closes on the HTTP/2 preface). */
export function bareConnectFailure(cause: string): boolean {
  return /^Failed to connect$/.test(cause.trim());
}

/**
 * Whether a TLS client's failure is how a server that refused its certificate looks: it just closes,
 * and grpc-js says "Failed to connect", or the read is reset.
 */
export function closedAtHandshake(cause: string): boolean {
  return bareConnectFailure(cause) || /ECONNRESET|Connection dropped/i.test(cause);
}

/**
 * What the server at `address` (HOST:PORT, [V6]:PORT or unix:PATH) speaks, found by starting a
 * TLS handshake and sending nothing else: "tls" when it answers as a TLS server (a handshake, or a
 * TLS alert such as "certificate required"), "plain" when it answers bytes that are not TLS,
 * undefined when that cannot be told (refused, silent past `timeoutMs`).
 */
export function probeTransport(address: string, timeoutMs: number): Promise<"tls" | "plain" | undefined> {
  const unix = /^unix:(.+)$/.exec(address);
  const hostPort = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!unix && !hostPort) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    // servername: peers are named by SPIFFE ID, and an IP literal as SNI only earns a warning
    const target = unix ? { path: unix[1]! } : { host: hostPort![1]!, port: Number(hostPort![2]) };
    const socket = connect({ ...target, servername: "msm-control-plane", rejectUnauthorized: false, ALPNProtocols: ["h2"] });
    const timer = setTimeout(() => settle(undefined), timeoutMs);
    const settle = (answer: "tls" | "plain" | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    socket.once("secureConnect", () => settle("tls"));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      if (/wrong version number|packet length too long/i.test(err.message)) settle("plain");
      else settle(/alert/i.test(err.message) || /ALERT/.test(err.code ?? "") ? "tls" : undefined);
    });
  });
}
