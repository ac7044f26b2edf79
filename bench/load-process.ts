// The load generators and sinks run as forked processes (bench/loadgen.ts for the end-to-end
// part, bench/scale-load.ts for the scale part) so that they share neither a thread nor a CPU
// account with the relay under test. This is both ends of their IPC: the parent's handle, which
// pairs each request with the next reply, and the helpers the children share.
import { fork, type ChildProcess } from "node:child_process";
import type { Socket } from "node:dgram";

/**
 * The parent's handle on a child. A child's first reply is `{ type: "ready", port }` (its UDP
 * port); `{ type: "error", message }` answers a request it refused.
 */
export class LoadProcess<Request extends { cmd: string }, Reply extends { type: string }> {
  readonly child: ChildProcess;
  private waiters: ((m: Reply) => void)[] = [];
  port = 0;
  readonly ready: Promise<void>;
  private broken = false;

  constructor(script: URL, readonly role: string, args: readonly string[] = []) {
    this.child = fork(script, [role, ...args], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "advanced", // typed arrays travel as such
    });
    this.child.on("message", (m: Reply) => this.waiters.shift()?.(m));
    this.ready = this.next(10_000).then((m) => {
      if (m.type !== "ready" || !("port" in m)) throw new Error(`${this.name}: unexpected ${m.type}`);
      this.port = m.port as number;
    });
  }

  private get name(): string {
    return `${this.role} (${this.child.spawnargs[1]?.split("/").pop() ?? "load process"})`;
  }

  request<T extends Reply["type"]>(m: Request, type: T, timeoutMs: number): Promise<Extract<Reply, { type: T }>> {
    // replies pair with requests by order: after a timeout, a late reply would answer the wrong one
    if (this.broken) return Promise.reject(new Error(`${this.name}: out of step since an earlier request timed out`));
    const reply = this.next(timeoutMs);
    this.child.send(m);
    return reply.then((r) => {
      if (r.type === "error" && "message" in r) throw new Error(`${this.name}: ${String(r.message)}`);
      if (r.type !== type) throw new Error(`${this.name}: expected ${type}, got ${r.type}`);
      return r as Extract<Reply, { type: T }>;
    });
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((r) => this.child.once("exit", () => r()));
    try {
      this.child.send({ cmd: "exit" });
    } catch {
      // the channel is already closed: the kill below ends it
    }
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2000);
    await gone;
    clearTimeout(timer);
  }

  private next(timeoutMs: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.broken = true;
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (m: Reply): void => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push(waiter);
    });
  }
}

// ---- in the children ----

export function replyToParent(m: object): void {
  process.send!(m);
}

export function cpuUsSince(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return d.user + d.system;
}

/** Larger socket buffers (4 MiB by default), as far as net.core.rmem_max / wmem_max allow. */
export function tuneSocket(sock: Socket, bytes = 4 << 20): void {
  try {
    sock.setRecvBufferSize(bytes);
    sock.setSendBufferSize(bytes);
  } catch {
    // capped by net.core.rmem_max / wmem_max: the defaults still work
  }
}
