// A real etcd for a test: one member on 127.0.0.1 with free ports and a temporary data directory,
// started and waited for until it reports healthy, stopped and removed afterwards.
// Needs the etcd binary (Debian: etcd-server; CI installs it) or MSM_ETCD=/path/to/etcd.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestEtcd {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** The store spec for startControlPlane / openStore: "etcd:http://127.0.0.1:PORT". */
  readonly spec: string;
  /** What etcd printed, for a failing test's message. */
  output(): string;
  /** Stops etcd (SIGTERM) and starts it again on the same ports and data: clients must reconnect. */
  restart(): Promise<void>;
  /** Stops etcd (SIGTERM), keeping its ports and data for resume(): an etcd that is down. */
  pause(): Promise<void>;
  /** Starts a paused etcd again and waits until it is healthy. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

function etcdBinary(): string {
  const bin = process.env.MSM_ETCD ?? "etcd";
  const probe = spawnSync(bin, ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `etcd is needed for this test but '${bin} --version' failed (${probe.error?.message ?? probe.stderr.trim()}): ` +
        "install it (Debian/Ubuntu: apt-get install etcd-server) or set MSM_ETCD to its path",
    );
  }
  return bin;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

async function startOnce(bin: string, extraArgs: readonly string[]): Promise<TestEtcd | undefined> {
  const [client, peer] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), "msm-etcd-"));
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const args = [
    "--name", "test",
    "--data-dir", join(dir, "data"),
    "--listen-client-urls", url, "--advertise-client-urls", url,
    "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl,
    "--initial-cluster", `test=${peerUrl}`,
    "--log-level", "warn",
    ...extraArgs,
  ];
  let out = "";
  let child: ChildProcess;
  let exited = false;
  let exit: Promise<void>;
  const spawnEtcd = (): void => {
    child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    exited = false;
    exit = new Promise<void>((resolve) => child.once("exit", () => {
      exited = true;
      resolve();
    }));
  };
  const kill = async (): Promise<void> => {
    if (exited) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exit;
    clearTimeout(killer);
  };
  const stop = async (): Promise<void> => {
    await kill();
    rmSync(dir, { recursive: true, force: true });
  };
  /** Resolves true when healthy, false when etcd exited because a port was taken. */
  const waitHealthy = async (): Promise<boolean> => {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (exited) {
        if (/address already in use/i.test(out)) return false;
        throw new Error(`etcd exited before it was healthy:\n${out}`);
      }
      if (await healthy(url)) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`etcd did not become healthy within 20 s:\n${out}`);
  };
  spawnEtcd();
  try {
    if (!(await waitHealthy())) {
      await stop();
      return undefined; // a port was taken meanwhile: retry with others
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const resume = async (): Promise<void> => {
    spawnEtcd();
    if (!(await waitHealthy())) throw new Error(`etcd could not restart: its port was taken:\n${out}`);
  };
  const restart = async (): Promise<void> => {
    await kill();
    await resume();
  };
  return { url, spec: `etcd:${url}`, output: () => out, restart, pause: kill, resume, stop };
}

/** Starts etcd (with `extraArgs`, e.g. a small --quota-backend-bytes); throws with a clear message if it is not installed or does not come up. */
export async function startEtcd(extraArgs: readonly string[] = []): Promise<TestEtcd> {
  const bin = etcdBinary();
  for (let attempt = 0; attempt < 3; attempt++) {
    const etcd = await startOnce(bin, extraArgs);
    if (etcd) return etcd;
  }
  throw new Error("etcd: could not find free ports after 3 attempts");
}

export interface TestEtcdCluster {
  /** The store spec naming every member: "etcd:http://127.0.0.1:A,http://127.0.0.1:B,...". */
  readonly spec: string;
  readonly urls: readonly string[];
  /** Stops member `i` (SIGTERM); the others keep running. */
  stopMember(i: number): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

/**
 * A real etcd cluster of `n` members on 127.0.0.1 (for what needs a quorum: stop members until
 * there is none). Ports are picked free just before the start; a clash fails the start loudly.
 */
export async function startEtcdCluster(n: number): Promise<TestEtcdCluster> {
  const bin = etcdBinary();
  const dir = mkdtempSync(join(tmpdir(), "msm-etcd-cluster-"));
  const members = [];
  for (let i = 0; i < n; i++) members.push({ name: `m${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  const cluster = members.map((m) => `${m.name}=${m.peer}`).join(",");
  let out = "";
  const children = members.map((m) => {
    const child = spawn(bin, [
      "--name", m.name, "--data-dir", join(dir, m.name),
      "--listen-client-urls", m.client, "--advertise-client-urls", m.client,
      "--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
      "--initial-cluster", cluster, "--initial-cluster-state", "new", "--log-level", "warn",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    return { child, exit };
  });
  const stopMember = async (i: number): Promise<void> => {
    const { child, exit } = children[i]!;
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exit;
    clearTimeout(killer);
  };
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((_, i) => stopMember(i)));
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (const m of members) {
    while (!(await healthy(m.client))) {
      if (Date.now() > deadline || children.some((c) => c.child.exitCode !== null)) {
        await stop();
        throw new Error(`etcd cluster of ${n} did not become healthy:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const urls = members.map((m) => m.client);
  return { spec: `etcd:${urls.join(",")}`, urls, stopMember, output: () => out, stop };
}
