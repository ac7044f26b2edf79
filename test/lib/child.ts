// A peer program for a test: its output collected, its life bounded (killed after `limitMs`
// whatever happens), and stopped with a signal, then SIGKILL if it lingers.
import { spawn, type ChildProcess } from "node:child_process";

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class Child {
  stdout = "";
  stderr = "";
  /** Set once the process is gone. */
  exit: Exit | null = null;
  readonly exited: Promise<Exit>;
  private readonly proc: ChildProcess;

  constructor(readonly cmd: string, readonly args: readonly string[], options: { limitMs: number; env?: NodeJS.ProcessEnv }) {
    this.proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env } });
    this.proc.stdout!.on("data", (d: Buffer) => (this.stdout += d.toString()));
    this.proc.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    const limit = setTimeout(() => {
      this.stderr += `\n[test] killed after ${options.limitMs} ms\n`;
      this.proc.kill("SIGKILL");
    }, options.limitMs);
    this.exited = new Promise<Exit>((resolve) => {
      const done = (exit: Exit): void => {
        clearTimeout(limit);
        this.exit ??= exit;
        resolve(this.exit);
      };
      this.proc.once("error", (err) => { // e.g. ENOENT: "close" may not follow
        this.stderr += `\n[spawn error] ${err.message}\n`;
        done({ code: -1, signal: null });
      });
      this.proc.once("close", (code, signal) => done({ code, signal }));
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** "cmd args...": exit status, and what it printed. */
  describe(): string {
    const status = this.exit ? ` (exited: ${this.exit.code ?? this.exit.signal})` : "";
    return `${this.cmd} ${this.args.join(" ")}${status}\n--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`;
  }

  /** Sends `signal`, then SIGKILL after `graceMs` if the process is still there; safe to call twice. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.proc.kill(signal);
    const kill = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    const exit = await this.exited;
    clearTimeout(kill);
    return exit;
  }
}
