// Transport security for every control-plane link: TLS with mutual authentication, and
// SPIFFE-style identities (spiffe://<trust-domain>/<role>/<name> in the certificate's URI SAN)
// that say what a peer may do. Plain text only when the caller asks for it explicitly.
import { ChannelCredentials, ServerCredentials, type ServerDuplexStream, type ServerUnaryCall } from "@grpc/grpc-js";
import { X509Certificate } from "node:crypto";
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

/**
 * A connection must finish its TLS handshake within this time. Node's default is 120 s, during
 * which a client that connects and says nothing, or speaks plain text, holds a socket; a server
 * without TLS closes such a connection by its keepalive pings (about 15 s).
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Mutual TLS: a client certificate signed by the CA is required; the handshake is bounded. */
class MutualTlsCredentials extends ServerCredentials {
  constructor(files: TlsFiles) {
    super(
      { requestCert: true, rejectUnauthorized: true, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS },
      { ca: readFileSync(files.ca), cert: [readFileSync(files.cert)], key: [readFileSync(files.key)] },
    );
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export function serverCredentials(tls: TlsFiles | "insecure"): ServerCredentials {
  if (tls === "insecure") return ServerCredentials.createInsecure();
  return new MutualTlsCredentials(tls);
}

/**
 * Credentials for a client link to a control plane (a proxy's agent, msmctl). Besides the chain to
 * the CA, the server's certificate must carry the control-plane role of our trust domain
 * (spiffe://<td>/control-plane/<name>): any other certificate of the CA, a proxy's say, would
 * otherwise be able to pose as a control plane and be sent its callers' segments, keys included.
 * The trust domain is the one of our own certificate's SPIFFE ID unless given.
 */
export function channelCredentials(tls: TlsFiles | "insecure", trustDomain?: string): ChannelCredentials {
  if (tls === "insecure") return ChannelCredentials.createInsecure();
  const cert = readFileSync(tls.cert);
  const domain = trustDomain ?? trustDomainOf(cert, tls.cert);
  return ChannelCredentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), cert, {
    // Peers are named by SPIFFE ID, not by DNS name: the chain to our CA and the ID are what is checked.
    checkServerIdentity: (_host, peer) => checkControlPlane(peer.subjectaltname ?? "", domain),
  });
}

/** The SPIFFE IDs (spiffe://...) in a certificate's subjectAltName text. */
function spiffeIds(subjectAltName: string): string[] {
  return subjectAltName.split(/,\s*/).filter((p) => p.startsWith("URI:spiffe://")).map((p) => p.slice(4));
}

/** The trust domain of the first SPIFFE ID in a PEM certificate. Throws naming the file when it has none. */
export function trustDomainOf(pem: Buffer, file: string): string {
  let san: string | undefined;
  try {
    san = new X509Certificate(pem).subjectAltName;
  } catch (err) {
    throw new Error(`${file}: not a PEM certificate (${(err as Error).message})`);
  }
  const id = spiffeIds(san ?? "")[0];
  if (!id) throw new Error(`${file}: the certificate carries no SPIFFE ID (URI SAN spiffe://<trust-domain>/<role>/<name>), so the control plane's trust domain is unknown`);
  return new URL(id).host;
}

/** Undefined when the server's certificate names a control plane of `trustDomain`; else why not. */
export function checkControlPlane(subjectAltName: string, trustDomain: string): Error | undefined {
  const ids = spiffeIds(subjectAltName);
  if (ids.some((id) => parseSpiffeId(id, trustDomain)?.role === "control-plane")) return undefined;
  const shown = ids.length > 0 ? ids.join(", ") : "no SPIFFE ID";
  return new Error(`the server is not a control plane: its certificate has ${shown}, not spiffe://${trustDomain}/control-plane/<name>`);
}

/** Parses a SPIFFE ID of this trust domain into its role and name, or undefined. */
export function parseSpiffeId(uri: string, trustDomain: string): Identity | undefined {
  const m = /^spiffe:\/\/([^/]+)\/(proxy|admin|control-plane)\/([A-Za-z0-9._-]+)$/.exec(uri);
  if (!m || m[1] !== trustDomain) return undefined;
  return { spiffeId: uri, role: m[2] as Role, name: m[3]! };
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

/** The first SPIFFE ID of this trust domain in a certificate's subjectAltName text, or undefined. */
export function identityIn(subjectAltName: string, trustDomain: string): Identity | undefined {
  for (const uri of spiffeIds(subjectAltName)) {
    const id = parseSpiffeId(uri, trustDomain);
    if (id) return id;
  }
  return undefined;
}

/** The verified peer's identity from its client certificate, or undefined (no TLS, no or foreign ID). */
export function peerIdentity(call: AnyCall, trustDomain: string): Identity | undefined {
  return identityIn(call.getAuthContext()?.sslPeerCertificate?.subjectaltname ?? "", trustDomain);
}
