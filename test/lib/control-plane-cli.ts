// The control plane as operators run it, from a test: `msm control-plane` as a process (plain
// text, a file store in a temporary folder) and `msmctl` runs against it, both in this process's
// own namespace. A control plane on a unix-domain socket is reachable from every network namespace
// of the host (they share the filesystem), without a route through any link a test impairs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Child } from "./child.js";
import { ROOT } from "./paths.js";

const MSM = join(ROOT, "dist", "cli", "msm.js");
const MSMCTL = join(ROOT, "dist", "cli", "msmctl.js");

export interface ControlPlaneProcess {
  /** Where proxies and msmctl reach it: unix:PATH. */
  readonly address: string;
  readonly child: Child;
  /** Runs msmctl against it (--insecure); resolves with its exit code and output, whatever the code. */
  msmctl(args: readonly string[], limitMs?: number): Promise<{ code: number | null; out: string; err: string }>;
  /** SIGTERM, then SIGKILL; removes its folder. */
  stop(): Promise<void>;
}

/** Starts `msm control-plane --listen unix:DIR/cp.sock --store file:DIR/store --insecure` (and `extraArgs`); resolves once it listens. */
export async function startControlPlaneProcess(extraArgs: readonly string[] = [], limitMs = 300_000): Promise<ControlPlaneProcess> {
  const dir = mkdtempSync(join(tmpdir(), "msm-cp-"));
  const address = `unix:${join(dir, "cp.sock")}`;
  const child = new Child(process.execPath, [MSM, "control-plane", "--listen", address, "--store", `file:${join(dir, "store")}`, "--insecure", "--name", "cp", ...extraArgs], { limitMs });
  const until = Date.now() + 20_000;
  while (!/listening on unix:/.test(child.stderr)) {
    if (child.exit || Date.now() > until) {
      await child.stop("SIGKILL", 0);
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`the control plane did not start:\n${child.describe()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    address,
    child,
    msmctl: async (args, ctlLimitMs = 20_000) => {
      const ctl = new Child(process.execPath, [MSMCTL, ...args, "--server", address, "--insecure"], { limitMs: ctlLimitMs });
      const exit = await ctl.exited;
      return { code: exit.code, out: ctl.stdout, err: ctl.stderr };
    },
    stop: async () => {
      await child.stop("SIGTERM", 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
