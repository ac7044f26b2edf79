// A control plane started with a certificate no client accepts says so. Proxies and msmctl accept
// a server only with spiffe://<td>/control-plane/<name> in its certificate; a replica given a
// proxy's certificate (a Secret mixed up) or one of another trust domain started, logged
// "listening ... (mutual TLS)", passed a gRPC health probe, and served nobody. It now refuses to
// start (exit 1, naming the certificate and what it has); an expired certificate starts with a
// warning (a renewal in place is read again). Real control plane, certificates from openssl.
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TlsFiles } from "../controlplane/security/tls.js";
import { createPki } from "../controlplane/security/pki.js";
import { startControlPlane } from "../controlplane/server/index.js";
import { suite } from "./lib/suite.js";
import { ROOT } from "./lib/paths.js";

const test = suite("tls-server-certificate", { timeoutMs: 60_000 });
const MSM = join(ROOT, "dist", "cli", "msm.js");

const tempDirs: string[] = [];
function tempDir(what: string): string {
  const dir = mkdtempSync(join(tmpdir(), `msm-tls-server-${what}-`));
  tempDirs.push(dir);
  return dir;
}

/** `msm control-plane` as built, until it exits (a start refused) or says it listens (then stopped). */
function runControlPlane(tls: TlsFiles, trustDomain: string): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MSM, "control-plane", "--listen", "127.0.0.1:0", "--store", `file:${tempDir("store")}`, "--trust-domain", trustDomain,
      "--tls-ca", tls.ca, "--tls-cert", tls.cert, "--tls-key", tls.key], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) child.kill("SIGTERM");
    });
    const limit = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code) => {
      clearTimeout(limit);
      resolve({ code, err });
    });
  });
}

test("a proxy's certificate, or one of another trust domain, given to a control plane: the start is refused, naming it", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const proxyCert = pki.issue("node-1", "spiffe://msm.test/proxy/node-1");
  const ran = await runControlPlane(proxyCert, "msm.test");
  assert.is(ran.code, 1, ran.err);
  assert.match(ran.err, `--tls-cert ${proxyCert.cert} is not a control plane's certificate: it has spiffe://msm.test/proxy/node-1, and proxies and msmctl accept only spiffe://msm.test/control-plane/<name> from a server`);
  const otherDomain = pki.issue("cp-x", "spiffe://other.test/control-plane/cp-x");
  const refused = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${tempDir("store")}`, tls: otherDomain, trustDomain: "msm.test", log: () => {} }).then(
    async (cp) => {
      await cp.close();
      return "started";
    },
    (err: Error) => err.message,
  );
  assert.match(refused, /it has spiffe:\/\/other\.test\/control-plane\/cp-x, .*\(is --trust-domain right\? it is 'msm\.test'\)/);
  // the right one starts
  const good = await runControlPlane(pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), "msm.test");
  assert.match(good.err, /control plane .* listening on 127\.0\.0\.1:\d+ .*mutual TLS/);
});

test("an expired certificate: the control plane starts, and warns", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const expired = pki.issueExpired("cp-old", "spiffe://msm.test/control-plane/cp-1");
  const log: string[] = [];
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${tempDir("store")}`, tls: expired, trustDomain: "msm.test", log: (m) => void log.push(m) });
  try {
    assert.ok(log.some((l) => l.startsWith(`warning: the certificate ${expired.cert} expired on 2020-02-01T00:00:00.000Z: every proxy and msmctl refuses it`)), log.join("\n"));
  } finally {
    await cp.close();
  }
});

test.after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

test.run();
