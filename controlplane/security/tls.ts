// Transport security for every control-plane link: TLS with mutual authentication, and
// SPIFFE-style identities (spiffe://<trust-domain>/<role>/<name> in the certificate's URI SAN)
// that say what a peer may do. Plain text only when the caller asks for it explicitly.
import { ChannelCredentials, ServerCredentials, type ServerDuplexStream, type ServerUnaryCall } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";

export interface TlsFiles {
  /** CA bundle that signs every peer (PEM). */
  readonly ca: string;
  /** This side's certificate and key (PEM). */
  readonly cert: string;
  readonly key: string;
}

/** Roles a SPIFFE ID can carry: spiffe://<td>/proxy/<node-id>, spiffe://<td>/admin/<name>, spiffe://<td>/control-plane/<name>. */
export type Role = "proxy" | "admin" | "control-plane";

export interface Identity {
  readonly spiffeId: string;
  readonly role: Role;
  readonly name: string;
}

export function serverCredentials(tls: TlsFiles | "insecure"): ServerCredentials {
  if (tls === "insecure") return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(readFileSync(tls.ca), [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], true);
}

export function channelCredentials(tls: TlsFiles | "insecure"): ChannelCredentials {
  if (tls === "insecure") return ChannelCredentials.createInsecure();
  return ChannelCredentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert), {
    // Peers are named by SPIFFE ID, not by DNS name: the chain to our CA is what is checked.
    checkServerIdentity: () => undefined,
  });
}

/** Parses a SPIFFE ID of this trust domain into its role and name, or undefined. */
export function parseSpiffeId(uri: string, trustDomain: string): Identity | undefined {
  const m = /^spiffe:\/\/([^/]+)\/(proxy|admin|control-plane)\/([A-Za-z0-9._-]+)$/.exec(uri);
  if (!m || m[1] !== trustDomain) return undefined;
  return { spiffeId: uri, role: m[2] as Role, name: m[3]! };
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

/** The verified peer's identity from its client certificate, or undefined (no TLS, no or foreign ID). */
export function peerIdentity(call: AnyCall, trustDomain: string): Identity | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  const san = cert?.subjectaltname ?? "";
  for (const part of san.split(/,\s*/)) {
    if (!part.startsWith("URI:")) continue;
    const id = parseSpiffeId(part.slice(4), trustDomain);
    if (id) return id;
  }
  return undefined;
}
