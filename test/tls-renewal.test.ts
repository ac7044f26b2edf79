// Certificates renewed in place while the processes run (cert-manager rewrites a Secret volume,
// SPIRE's helper rewrites its files, every hour for SPIRE's defaults): the agent and the control
// plane read their TLS files again when they change, so that a renewal reaches the next
// connection without a restart. Before, both read them once at start: an agent whose first
// certificate was refused (or expired meanwhile) stayed refused with the renewed one on disk, and
// so did every proxy of a control plane whose own certificate was renewed. Real gRPC, real TLS
// (certificates from the openssl command), no restarts.
import * as assert from "uvu/assert";
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { filesStamp, TlsFileWatch, type TlsFiles } from "../controlplane/security/tls.js";
import { createPki } from "../controlplane/security/pki.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { Agent } from "../controlplane/agent/index.js";
import { ChannelCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { AdminServiceClient } from "../controlplane/api/proto.js";
import { startDashboard } from "../controlplane/dashboard/server.js";
import { suite } from "./lib/suite.js";
import { waitFor } from "./lib/udp.js";

const test = suite("tls-renewal", { timeoutMs: 60_000 });

const tempDirs: string[] = [];
function tempDir(what: string): string {
  const dir = mkdtempSync(join(tmpdir(), `msm-tls-renewal-${what}-`));
  tempDirs.push(dir);
  return dir;
}

/** Copies a set of TLS files to a directory of their own: the files a pod mounts, renewed in place by `renew`. */
function mounted(files: TlsFiles): TlsFiles {
  const dir = tempDir("mount");
  const placed = { ca: join(dir, "ca.pem"), cert: join(dir, "tls.crt"), key: join(dir, "tls.key") };
  renew(placed, files);
  return placed;
}

/** Replaces the mounted files' contents with `next`'s, each by a rename (as a Secret volume's update is atomic per file). */
function renew(mount: TlsFiles, next: { ca?: string; cert?: string; key?: string }): void {
  for (const k of ["ca", "cert", "key"] as const) {
    const from = next[k];
    if (from === undefined) continue;
    copyFileSync(from, `${mount[k]}.new`);
    renameSync(`${mount[k]}.new`, mount[k]);
  }
}

async function replica(tls: TlsFiles): Promise<ControlPlane & { address: string; log: string[] }> {
  const log: string[] = [];
  const cp = await startControlPlane({
    listen: "127.0.0.1:0", store: `file:${tempDir("store")}`, tls, trustDomain: "msm.test", name: "cp-1",
    timing: { tlsReloadMs: 100 }, log: (m) => void log.push(m),
  });
  return Object.assign(cp, { address: `127.0.0.1:${cp.port}`, log });
}

test("an agent whose certificate is renewed in place connects with the new one, without a restart", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const otherPki = createPki(join(tempDir("pki-other"), "ca"), "another CA");
  const cp = await replica(pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"));
  // the agent's certificate is not (or no longer) accepted: another CA's, as an expired one is refused alike
  const mount = mounted({ ...otherPki.issue("node-a", "spiffe://msm.test/proxy/node-a"), ca: pki.ca });
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir: tempDir("state"), tls: mount });
  const failures: string[] = [];
  const tlsLines: string[] = [];
  agent.on("connect-failed", (f) => void failures.push(f.reason));
  agent.on("tls-files", (e) => void tlsLines.push(e.message));
  try {
    await agent.start();
    await waitFor(() => failures.length > 0, 15_000, "the refused certificate reported");
    assert.is(agent.connectedTo, null);
    const renewed = pki.issue("node-a2", "spiffe://msm.test/proxy/node-a");
    renew(mount, { cert: renewed.cert, key: renewed.key });
    await waitFor(() => agent.connectedTo === cp.address, 20_000, `the agent connected with its renewed certificate (failures: ${failures.slice(-3).join(" | ")})`);
    assert.ok(tlsLines.some((l) => l.includes(`using the certificate in ${mount.cert} now`)), `the renewal is logged: ${tlsLines.join(" | ")}`);
  } finally {
    await agent.close();
    await cp.close();
  }
});

test("a renewal between the first read and the watch's start is taken at the first check (the stamp is taken before the read)", () => {
  const pki = createPki(join(tempDir("pki-race"), "ca"));
  const mount = mounted(pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"));
  const before = filesStamp(mount); // what a caller takes before it first reads the files
  const renewed = pki.issue("cp-renewed", "spiffe://msm.test/control-plane/cp-1");
  renew(mount, { cert: renewed.cert, key: renewed.key }); // lands after the read, before the watch
  const taken: string[] = [];
  const watch = new TlsFileWatch(mount, (p) => void taken.push(p.cert.toString()), before);
  assert.match(watch.check() ?? "", /using the certificate in .* now/);
  assert.equal(taken, [readFileSync(renewed.cert, "utf8")]);
  assert.is(watch.check(), undefined, "taken once");
});

test("a control plane whose certificate is renewed in place serves the new one; a half-written renewal is not taken", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const otherPki = createPki(join(tempDir("pki-other"), "ca"), "another CA");
  // the control plane's certificate is one its proxies refuse (another CA's: expired is alike)
  const wrong = otherPki.issue("cp-old", "spiffe://msm.test/control-plane/cp-1");
  const mount = mounted({ ...wrong, ca: pki.ca });
  const cp = await replica(mount);
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir: tempDir("state"), tls: pki.issue("node-a", "spiffe://msm.test/proxy/node-a") });
  const failures: string[] = [];
  agent.on("connect-failed", (f) => void failures.push(f.reason));
  try {
    await agent.start();
    await waitFor(() => failures.length > 0, 15_000, "the control plane's refused certificate reported");
    const good = pki.issue("cp-new", "spiffe://msm.test/control-plane/cp-1");
    // the certificate written, its key not yet: not a pair, so the one read before stays
    renew(mount, { cert: good.cert });
    await waitFor(() => cp.log.some((l) => /TLS files changed but are not usable/.test(l)), 10_000, `the unusable pair logged:\n${cp.log.join("\n")}`);
    assert.is(agent.connectedTo, null);
    renew(mount, { key: good.key });
    await waitFor(() => agent.connectedTo === cp.address, 20_000, `the agent connected to the renewed certificate (failures: ${failures.slice(-3).join(" | ")})\n${cp.log.join("\n")}`);
    assert.ok(cp.log.some((l) => l.includes(`using the certificate in ${mount.cert} now`)), cp.log.join("\n"));
    // the renewed context still asks for a client certificate: a client without one gets no call through
    const anonymous = new AdminServiceClient(cp.address, ChannelCredentials.createSsl(readFileSync(pki.ca), null, null, { checkServerIdentity: () => undefined }), {
      "grpc.ssl_target_name_override": "msm-control-plane",
    }) as unknown as { ListSegments(req: object, o: { deadline: number }, cb: (err: ServiceError | null) => void): void; close(): void };
    const code = await new Promise<number>((resolve) => anonymous.ListSegments({ proxy: "" }, { deadline: Date.now() + 10_000 }, (err) => resolve(err ? err.code : status.OK)));
    anonymous.close();
    assert.is(code, status.UNAVAILABLE, `a client without a certificate is refused at the handshake (got ${status[code]})`);
  } finally {
    await agent.close();
    await cp.close();
  }
});

/** GET over HTTPS with a client certificate: the status, or the TLS failure's message. */
function httpsGet(url: string, tls: TlsFiles): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), servername: "msm-control-plane", checkServerIdentity: () => undefined }, (res) => {
      res.resume();
      resolve(String(res.statusCode));
    });
    req.on("error", (err) => resolve(err.message));
    req.setTimeout(10_000, () => req.destroy(new Error("no answer in 10 s")));
    req.end();
  });
}

test("the dashboard's HTTPS port serves a certificate renewed in place", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const otherPki = createPki(join(tempDir("pki-other"), "ca"), "another CA");
  const mount = mounted({ ...otherPki.issue("cp-old", "spiffe://msm.test/control-plane/cp-1"), ca: pki.ca });
  const log: string[] = [];
  const dashboard = await startDashboard({ listen: "127.0.0.1:0", tls: mount, trustDomain: "msm.test", getPaths: async () => [], log: (m) => void log.push(m), limits: { tlsReloadMs: 100 } });
  const op = pki.issue("op", "spiffe://msm.test/admin/op");
  try {
    const before = await httpsGet(`${dashboard.url}/`, op);
    assert.not.equal(before, "200", "the client refuses a certificate of another CA");
    const good = pki.issue("cp-new", "spiffe://msm.test/control-plane/cp-1");
    renew(mount, { cert: good.cert, key: good.key });
    await waitFor(() => log.some((l) => l.includes(`using the certificate in ${mount.cert} now`)), 10_000, `the renewal read:\n${log.join("\n")}`);
    assert.is(await httpsGet(`${dashboard.url}/`, op), "200");
  } finally {
    await dashboard.close();
  }
});

test.after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

test.run();
