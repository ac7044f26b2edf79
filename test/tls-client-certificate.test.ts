// A client certificate the control plane refuses (expired, of another CA, not for client
// authentication) is named by msmctl and the proxy. The server refuses it during the handshake by
// closing the connection, and gRPC then says only "Failed to connect" (or a reset), which an
// operator reads as "the control plane is down": msmctl said `the control plane at ... is
// unavailable: Failed to connect` and the proxy logged `cannot connect: Failed to connect`.
// Real control plane, real gRPC and TLS, certificates from the openssl command, msmctl as built.
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TlsFiles } from "../controlplane/security/tls.js";
import { createPki } from "../controlplane/security/pki.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { Agent } from "../controlplane/agent/index.js";
import { suite } from "./lib/suite.js";
import { ROOT } from "./lib/paths.js";
import { waitFor } from "./lib/udp.js";

const test = suite("tls-client-certificate", { timeoutMs: 60_000 });
const MSMCTL = join(ROOT, "dist", "cli", "msmctl.js");

const tempDirs: string[] = [];
function tempDir(what: string): string {
  const dir = mkdtempSync(join(tmpdir(), `msm-tls-client-${what}-`));
  tempDirs.push(dir);
  return dir;
}

/** The built msmctl, as an operator runs it: exit code and stderr. */
function msmctl(server: string, tls: TlsFiles, args: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MSMCTL, "--server", server, "--tls-ca", tls.ca, "--tls-cert", tls.cert, "--tls-key", tls.key, "--timeout", "20", ...args], {
      cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env.PATH ?? "" },
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => resolve({ code, err }));
  });
}

let pki: ReturnType<typeof createPki>;
let otherPki: ReturnType<typeof createPki>;
let cp: ControlPlane & { address: string };

test.before(async () => {
  pki = createPki(join(tempDir("pki"), "ca"));
  otherPki = createPki(join(tempDir("pki-other"), "ca"), "another CA");
  const started = await startControlPlane({
    listen: "127.0.0.1:0", store: `file:${tempDir("store")}`, tls: pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), trustDomain: "msm.test", name: "cp-1", log: () => {},
  });
  cp = Object.assign(started, { address: `127.0.0.1:${started.port}` });
});

test("msmctl names an expired admin certificate, and one of another CA, instead of 'unavailable'", async () => {
  const expired = pki.issueExpired("alice-old", "spiffe://msm.test/admin/alice");
  const ran = await msmctl(cp.address, expired, ["get", "segments"]);
  assert.is(ran.code, 1, ran.err);
  assert.match(ran.err, `TLS with the control plane at ${cp.address} failed: the certificate ${expired.cert} expired on 2020-02-01T00:00:00.000Z: renew it`);
  const foreign = { ...otherPki.issue("eve", "spiffe://msm.test/admin/eve"), ca: pki.ca };
  const other = await msmctl(cp.address, foreign, ["get", "segments"]);
  assert.is(other.code, 1, other.err);
  assert.match(other.err, `the certificate ${foreign.cert} is not signed by the CA in ${pki.ca}`);
  // a good certificate still works: the diagnosis only follows a failure
  const good = await msmctl(cp.address, pki.issue("alice", "spiffe://msm.test/admin/alice"), ["get", "segments"]);
  assert.is(good.code, 0, good.err);
});

test("the proxy's agent names its expired certificate in the connection failure it logs", async () => {
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir: tempDir("state"), tls: pki.issueExpired("node-a-old", "spiffe://msm.test/proxy/node-a") });
  const failures: string[] = [];
  agent.on("connect-failed", (f) => void failures.push(f.reason));
  try {
    await agent.start();
    await waitFor(() => failures.length > 0, 15_000, "a connection failure reported");
    assert.match(failures[0]!, /^the certificate .*node-a-old\.pem expired on 2020-02-01T00:00:00\.000Z: renew it \(/);
  } finally {
    await agent.close();
  }
});

test.after(async () => {
  await cp?.close();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

test.run();
