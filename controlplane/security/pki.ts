// A small certificate authority for tests, demos and first installs: a CA and leaf certificates
// whose URI SAN is a SPIFFE ID. Uses the openssl command line (Debian's openssl package).
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TlsFiles } from "./tls.js";

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export interface Pki {
  readonly dir: string;
  readonly ca: string;
  /** Issues a certificate for `spiffeId` signed by this CA (or by `otherCa` to make a wrong one). */
  issue(name: string, spiffeId: string): TlsFiles;
  /** Issues a certificate for `spiffeId` that expired long ago (valid through January 2020), for tests of refusals. */
  issueExpired(name: string, spiffeId: string): TlsFiles;
}

/** Creates a CA in `dir` (EC P-256, valid one day: enough for a test run). */
export function createPki(dir: string, commonName = "msm test CA"): Pki {
  mkdirSync(dir, { recursive: true });
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], dir);
  openssl(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "1", "-subj", `/CN=${commonName}`, "-out", "ca.pem"], dir);
  const ca = join(dir, "ca.pem");
  return {
    dir,
    ca,
    issue(name: string, spiffeId: string): TlsFiles {
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=URI:${spiffeId}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
      openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
      openssl(["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-out", `${name}.csr`], dir);
      openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-sha256", "-extfile", ext, "-out", `${name}.pem`], dir);
      return { ca, cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    },
    issueExpired(name: string, spiffeId: string): TlsFiles {
      // `openssl x509 -req` of OpenSSL 3.0 sets no start date: `openssl ca` does, with a database of its own
      const db = join(dir, `${name}-ca`);
      mkdirSync(db, { recursive: true });
      writeFileSync(join(db, "index.txt"), "");
      writeFileSync(join(db, "serial"), "01\n");
      writeFileSync(
        join(db, "ca.cnf"),
        `[ca]\ndefault_ca = c\n[c]\ndatabase = ${db}/index.txt\nnew_certs_dir = ${db}\nserial = ${db}/serial\ndefault_md = sha256\npolicy = p\n` +
          `[p]\ncommonName = supplied\n[ext]\nsubjectAltName = URI:${spiffeId}\nextendedKeyUsage = serverAuth,clientAuth\nbasicConstraints = CA:FALSE\n`,
      );
      openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
      openssl(["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-out", `${name}.csr`], dir);
      openssl(["ca", "-batch", "-config", join(db, "ca.cnf"), "-cert", "ca.pem", "-keyfile", "ca.key", "-in", `${name}.csr`, "-out", `${name}.pem`,
        "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-extensions", "ext"], dir);
      return { ca, cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    },
  };
}
