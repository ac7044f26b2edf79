// `msm proxy` as users run it, in a process inside one of a lab's namespaces: from a config file
// (--config) or from a control plane (--control-plane, the agent), with its admin endpoint on
// 127.0.0.1 there (read through ns-tools/http-get.ts in the same namespace).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProxySnapshot } from "../../runtime/index.js";
import type { NetnsLab, NsProcess } from "./netns.js";
import { nsTool } from "./ns-rtp.js";
import { ROOT } from "./paths.js";

const MSM = join(ROOT, "dist", "cli", "msm.js");

// A lab proxy sends without UDP GSO unless its config says otherwise: the lab impairs links and
// counts their drops per packet at the sending veth's qdisc (test/lib/link-impairment.ts), which
// would see a GSO message of many datagrams as one packet, where a real path's loss hits datagrams
// one by one (docs/batched-io.md, "What tc sees"). GSO itself: batched-io-gso, multicast-netns.
const LAB_GSO = "off";

export interface NsProxy {
  readonly role: string;
  readonly process: NsProcess;
  /** The config it runs, as given. */
  readonly config: Readonly<Record<string, unknown>>;
  stats(): Promise<ProxySnapshot>;
  /** SIGTERM (the proxy drains and exits 0), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

/** Starts a proxy in `role`'s namespace from a config object (filter paths absolute); waits until it runs. */
export async function startNsProxy(lab: NetnsLab, role: string, config: Record<string, unknown>): Promise<NsProxy> {
  const dir = mkdtempSync(join(tmpdir(), "msm-netns-proxy-"));
  const file = join(dir, "proxy.json"); // the CLI reads YAML, of which JSON is a subset
  writeFileSync(file, JSON.stringify({ gso: LAB_GSO, ...config }, null, 2));
  const proc = lab.spawn(role, process.execPath, [MSM, "proxy", "--config", file, "--admin", "127.0.0.1:0"]);
  return running(lab, role, proc, config, dir, /admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics[\s\S]*proxy running/);
}

/**
 * Starts `msm proxy --control-plane ADDRESS` in `role`'s namespace (plain text: --insecure), node
 * id `role`; waits until it runs the control plane's first snapshot. `config`: the segments the
 * control plane gives it, as a proxy config ({ segments }), for what reads NsProxy.config.
 */
export async function startNsAgent(lab: NetnsLab, role: string, opts: { controlPlane: string; config: Record<string, unknown>; gso?: "auto" | "off" }): Promise<NsProxy> {
  const dir = mkdtempSync(join(tmpdir(), "msm-netns-agent-"));
  const proc = lab.spawn(role, process.execPath, [
    MSM, "proxy", "--control-plane", opts.controlPlane, "--node-id", role, "--state-dir", dir, "--insecure", "--admin", "127.0.0.1:0",
    "--gso", opts.gso ?? LAB_GSO,
  ]);
  // the admin endpoint is up from the start; the first snapshot is applied later
  return running(lab, role, proc, opts.config, dir, /^(?=[\s\S]*snapshot \d+ applied)[\s\S]*admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
}

/** The proxy once `ready` matches its output (the admin port its first group); `dir` is removed when it stops. */
async function running(lab: NetnsLab, role: string, proc: NsProcess, config: Record<string, unknown>, dir: string, ready: RegExp): Promise<NsProxy> {
  let adminPort: number;
  try {
    adminPort = Number((await proc.ready(ready, 30_000))[1]);
  } catch (err) {
    proc.kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    role,
    process: proc,
    config,
    stats: async () => {
      const get = lab.spawn(role, process.execPath, [nsTool("http-get"), `http://127.0.0.1:${adminPort}/stats`]);
      const code = await get.exited;
      if (code !== 0) throw new Error(`/stats of the proxy in ${role}: ${get.output().slice(-1000)}`);
      return JSON.parse(get.stdout()) as ProxySnapshot;
    },
    stop: async () => {
      const code = await proc.stop("SIGTERM", 10_000);
      rmSync(dir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`the proxy in ${role} exited with ${code}:\n${proc.output().slice(-2000)}`);
    },
  };
}
