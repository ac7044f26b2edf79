// Transport security for every control-plane link: TLS with mutual authentication, and
// SPIFFE-style identities (spiffe://<trust-domain>/<role>/<name> in the certificate's URI SAN)
// that say what a peer may do. Plain text only when the caller asks for it explicitly.
import { ChannelCredentials, ServerCredentials, type ServerDuplexStream, type ServerUnaryCall } from "@grpc/grpc-js";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { createSecureContext } from "node:tls";

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

/**
 * What the three files are now (inode, size, modification time of each, links followed): a
 * renewal in place (cert-manager's and SPIRE's, a Kubernetes Secret volume's symlink swap, a cp
 * over the file) changes it. Undefined when one cannot be read.
 */
export function filesStamp(files: TlsFiles): string | undefined {
  try {
    return [files.ca, files.cert, files.key].map((f) => {
      const st = statSync(f);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    }).join("/");
  } catch {
    return undefined;
  }
}

/** When a certificate is valid until, for a log line. */
function validUntil(pem: Buffer): string {
  try {
    return new Date(new X509Certificate(pem).validTo).toISOString();
  } catch {
    return "?";
  }
}

/**
 * The TLS files, read again when they change: certificates are renewed in place while the
 * process runs (cert-manager, SPIRE: hours or days), and files read once at start would leave a
 * long-running proxy or control plane with an expired certificate, every new connection refused
 * until a restart. `check()` says whether they changed since the last read, and reads them; a
 * set that does not make a context (a key that does not match its certificate, a file half
 * written) is not taken, and the last good one stays.
 */
export class TlsFileWatch {
  private stamp: string | undefined;
  private failedStamp: string | undefined;

  constructor(
    readonly files: TlsFiles,
    /** Takes the files' contents; throws when they are not usable (the old ones stay). */
    private readonly take: (pems: { ca: Buffer; cert: Buffer; key: Buffer }) => void,
    /**
     * filesStamp taken before the caller first read the files: a renewal between that read and
     * this watch's start is then seen at the first check (stamped after, it would never be).
     */
    stampBeforeRead: string | undefined,
  ) {
    this.stamp = stampBeforeRead;
  }

  /**
   * Reads the files again if they changed: "renewed ..." when the new ones were taken, "not
   * taken ..." when they are not usable (said once per change), undefined when nothing changed.
   */
  check(): string | undefined {
    const stamp = filesStamp(this.files);
    if (stamp === undefined || stamp === this.stamp || stamp === this.failedStamp) return undefined;
    try {
      const pems = { ca: readFileSync(this.files.ca), cert: readFileSync(this.files.cert), key: readFileSync(this.files.key) };
      createSecureContext(pems); // a key that does not match, a PEM that does not parse: throws here, not at a handshake
      this.take(pems);
      this.stamp = stamp;
      this.failedStamp = undefined;
      return `TLS files changed: using the certificate in ${this.files.cert} now (valid until ${validUntil(pems.cert)})`;
    } catch (err) {
      this.failedStamp = stamp;
      return `TLS files changed but are not usable (${(err as Error).message}): still using the ones read before (${this.files.cert}, ${this.files.key}, ${this.files.ca})`;
    }
  }
}

/**
 * Mutual TLS: a client certificate signed by the CA is required; the handshake is bounded.
 * `reload()` reads the files again when they changed: new connections get the new certificate
 * and CA, those open keep theirs.
 */
class MutualTlsCredentials extends ServerCredentials {
  private readonly watch: TlsFileWatch;

  constructor(files: TlsFiles) {
    const stamp = filesStamp(files);
    super(
      { requestCert: true, rejectUnauthorized: true, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS },
      { ca: readFileSync(files.ca), cert: [readFileSync(files.cert)], key: [readFileSync(files.key)] },
    );
    this.watch = new TlsFileWatch(files, (p) => this.updateSecureContextOptions({ ca: p.ca, cert: [p.cert], key: [p.key] }), stamp);
  }

  reload(): string | undefined {
    return this.watch.check();
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** A server's credentials; `reload` (TLS only) reads its files again when they changed (TlsFileWatch.check). */
export function serverCredentials(tls: TlsFiles | "insecure"): ServerCredentials & { reload?: () => string | undefined } {
  if (tls === "insecure") return ServerCredentials.createInsecure();
  return new MutualTlsCredentials(tls);
}

/**
 * A client's credentials that follow its files: `current()` gives the credentials of the files as
 * they are now (read again only when they changed; `onChange` hears TlsFileWatch.check's line).
 */
export function reloadingChannelCredentials(tls: TlsFiles | "insecure", onChange: (line: string) => void): () => ChannelCredentials {
  if (tls === "insecure") {
    const insecure = channelCredentials(tls);
    return () => insecure;
  }
  const stamp = filesStamp(tls);
  let creds = channelCredentials(tls);
  const watch = new TlsFileWatch(tls, () => {
    creds = channelCredentials(tls);
  }, stamp);
  return () => {
    const line = watch.check();
    if (line) onChange(line);
    return creds;
  };
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

/** The PEM certificates in a bundle (a CA file may hold several). */
function certificatesIn(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const certs: X509Certificate[] = [];
  for (const block of blocks) {
    try {
      certs.push(new X509Certificate(block));
    } catch {
      // not one: the CA file's own problem, said by the TLS stack
    }
  }
  return certs;
}

/**
 * Why a server would refuse this client certificate, as far as the client can tell: expired, not
 * valid yet, not signed by the CA of `--tls-ca` (which signs the control plane and its clients
 * alike), or not for client authentication. A server that refuses a client certificate just closes
 * the connection, and gRPC says only "Failed to connect" (or a reset): this names the cause.
 * Undefined when none of these is found (or the files cannot be read: said elsewhere).
 */
export function clientCertificateProblem(files: TlsFiles, now = Date.now()): string | undefined {
  let cert: X509Certificate;
  let cas: X509Certificate[];
  try {
    cert = new X509Certificate(readFileSync(files.cert));
    cas = certificatesIn(readFileSync(files.ca, "utf8"));
  } catch {
    return undefined;
  }
  const invalid = notValidNow(cert, files.cert, now);
  if (invalid) return `${invalid}${invalid.includes("expired") ? ": renew it" : " (is this host's clock right?)"}`;
  if (cas.length > 0 && !cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    return `the certificate ${files.cert} is not signed by the CA in ${files.ca} (it was issued by ${cert.issuer.replace(/\n/g, ", ")}): the control plane trusts only its CA`;
  }
  const usage = cert.keyUsage; // the extended key usages; undefined: any
  if (usage && !usage.includes("1.3.6.1.5.5.7.3.2") && !usage.includes("2.5.29.37.0")) {
    return `the certificate ${files.cert} is not for client authentication (its extendedKeyUsage lacks clientAuth)`;
  }
  return undefined;
}

/**
 * What is wrong with a control plane's own certificate for serving `trustDomain`: `fatal` when it
 * can never be accepted (no spiffe://<td>/control-plane/<name> in it: proxies and msmctl refuse
 * any other, a proxy's or an admin's certificate of the same CA included, or one of another trust
 * domain), `warning` when it is not valid now (expired, or not yet: a renewal in place is read
 * again). Undefined fields: nothing found (a file that cannot be read is said by the listen).
 */
export function serverCertificateProblem(files: TlsFiles, trustDomain: string, now = Date.now()): { fatal?: string; warning?: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(files.cert));
  } catch {
    return {};
  }
  const wrong = checkControlPlane(cert.subjectAltName ?? "", trustDomain);
  if (wrong) {
    const ids = spiffeIds(cert.subjectAltName ?? "");
    return {
      fatal: `--tls-cert ${files.cert} is not a control plane's certificate: it has ${ids.length > 0 ? ids.join(", ") : "no SPIFFE ID"}, and proxies and msmctl ` +
        `accept only spiffe://${trustDomain}/control-plane/<name> from a server (is --trust-domain right? it is '${trustDomain}')`,
    };
  }
  const invalid = notValidNow(cert, files.cert, now);
  if (!invalid) return {};
  const until = invalid.includes("expired") ? "until it is renewed (the file is read again when it changes)" : "until then (is this host's clock right?)";
  return { warning: `${invalid}: every proxy and msmctl refuses it ${until}` };
}

/** "the certificate FILE expired on ..." or "... is not valid before ...", or undefined when it is valid at `now`. */
function notValidNow(cert: X509Certificate, file: string, now: number): string | undefined {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (now > to) return `the certificate ${file} expired on ${new Date(to).toISOString()}`;
  if (now < from) return `the certificate ${file} is not valid before ${new Date(from).toISOString()}`;
  return undefined;
}
