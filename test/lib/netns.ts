// A chain of network namespaces joined by veth pairs, for tests that need a real link between
// processes (sender -> proxy A -> link -> proxy B -> sink, or fewer): loopback up in each, IPv4 and
// IPv6 addresses on every link, forwarding and routes along the chain. Names carry this process's
// pid, so test files running side by side never clash; namespaces of a process that died without
// cleaning up are removed when the next lab starts. Everything a lab made (namespaces, the veth
// pairs in them, the processes it started) goes on close(), on exit, and on SIGINT/SIGTERM.
// Needs root and iproute2's `ip`. Impairing a link: test/lib/link-impairment.ts.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { udpSockets, type ProcNetReader } from "./kernel-drops.js";
import { peer, runsOk } from "./peers.js";

/**
 * Every namespace a lab makes is named `msmt-<pid>-<lab>-<role>`; MSM_NETNS_PREFIX (lowercase
 * letters, digits, ending in '-') replaces `msmt-` where a host's namespaces must carry another name.
 */
export const NETNS_PREFIX = /^[a-z][a-z0-9]{0,7}-$/.test(process.env.MSM_NETNS_PREFIX ?? "") ? process.env.MSM_NETNS_PREFIX! : "msmt-";

export const netnsPeer = peer(
  "network namespaces (root and iproute2's ip)",
  "run the tests as root; Debian package iproute2",
  () => process.getuid?.() === 0 && runsOk("ip", ["netns", "list"]),
);

/** Runs a command to completion and returns its stdout; throws with its stderr when it fails. */
export function runSync(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000 });
  if (r.error || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: ${r.error?.message ?? (r.stderr.trim() || `exit code ${r.status}`)}`);
  }
  return r.stdout;
}

export interface LinkEnd {
  readonly role: string;
  /** The namespace's name. */
  readonly ns: string;
  /** The veth device (named `ln<index>` at both ends). */
  readonly dev: string;
  readonly ipv4: string;
  readonly ipv6: string;
}

/**
 * Link `index` joins roles[index] (left) and roles[index + 1] (right): 10.77.<index>.1/.2,
 * fd77:0:0:<index>::1/::2. A second path between two neighbours (`parallel` of create) is a link
 * numbered after the chain's, with `path` 1 (2 for a third, ...); the chain's links have path 0.
 */
export interface Link {
  readonly index: number;
  readonly path: number;
  readonly left: LinkEnd;
  readonly right: LinkEnd;
}

function linkAddress(index: number, side: 1 | 2, family: 4 | 6): string {
  return family === 4 ? `10.77.${index}.${side}` : `fd77:0:0:${index}::${side}`;
}

/** A process started in a namespace, in a process group of its own (so stopping it stops its children too). */
export class NsProcess {
  private out = "";
  private err = "";
  private all = "";
  private readonly lineHandlers: ((line: string, stream: "stdout" | "stderr") => void)[] = [];
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  private gone = false;

  constructor(readonly child: ChildProcess, readonly what: string) {
    const partial = { stdout: "", stderr: "" };
    const onData = (stream: "stdout" | "stderr") => (d: Buffer): void => {
      const text = d.toString();
      if (stream === "stdout") this.out = keepTail(this.out + text);
      else this.err = keepTail(this.err + text);
      this.all = keepTail(this.all + text);
      const lines = (partial[stream] + text).split("\n");
      partial[stream] = lines.pop()!;
      for (const line of lines) for (const h of this.lineHandlers) h(line, stream);
    };
    child.stdout?.on("data", onData("stdout"));
    child.stderr?.on("data", onData("stderr"));
    this.exited = new Promise((resolve) => {
      child.once("error", (e) => {
        this.all += `\n[spawn failed: ${e.message}]`;
        this.gone = true;
        resolve(null);
      });
      child.once("close", (code) => {
        this.gone = true;
        resolve(code);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return !this.gone;
  }

  stdout(): string {
    return this.out;
  }

  stderr(): string {
    return this.err;
  }

  /** Both streams as they came, for error messages. */
  output(): string {
    return this.all;
  }

  /** Calls `fn` with every complete line the process prints from now on. */
  onLine(fn: (line: string, stream: "stdout" | "stderr") => void): void {
    this.lineHandlers.push(fn);
  }

  write(text: string): void {
    this.child.stdin?.write(text);
  }

  /** Resolves once `pattern` matches the output so far; rejects if the process exits first or after `timeoutMs`. */
  async ready(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.all);
      if (m) return m;
      if (!this.running) throw new Error(`${this.what}: exited before it was ready\n--- its output ---\n${this.all.slice(-3000)}`);
      if (Date.now() > until) throw new Error(`${this.what}: not ready within ${timeoutMs} ms\n--- its output ---\n${this.all.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `signal` to the process group, then SIGKILL after `graceMs`; resolves when it has exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<number | null> {
    if (!this.running) return this.exited;
    this.signalGroup(signal);
    const killer = setTimeout(() => this.signalGroup("SIGKILL"), graceMs);
    const code = await this.exited;
    clearTimeout(killer);
    return code;
  }

  /** SIGKILL to the process group, without waiting (for cleanup on exit). */
  kill(): void {
    if (this.running) this.signalGroup("SIGKILL");
  }

  /** Sends `signal` to the process group, if it still runs. */
  signalGroup(signal: NodeJS.Signals): void {
    if (!this.running) return;
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }
}

const OUTPUT_KEPT = 1 << 20;
function keepTail(text: string): string {
  return text.length > OUTPUT_KEPT ? text.slice(-OUTPUT_KEPT) : text;
}

const liveLabs = new Set<NetnsLab>();
let labsMade = 0;
let cleanupInstalled = false;

/** Closes every lab on exit and on SIGINT/SIGTERM (then exits as the signal would have). */
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on("exit", () => {
    for (const lab of liveLabs) lab.close();
  });
  for (const [signal, number] of [["SIGINT", 2], ["SIGTERM", 15]] as const) {
    process.once(signal, () => {
      for (const lab of liveLabs) lab.close();
      process.exit(128 + number);
    });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Deletes a namespace after killing whatever still runs in it (its veth pairs go with it). */
function deleteNamespace(name: string): void {
  const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout ?? "";
  for (const pid of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  spawnSync("ip", ["netns", "del", name]);
}

/** Removes the namespaces of test processes that are gone (a run killed before it could clean up). */
export function removeStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const line of runSync("ip", ["netns", "list"]).split("\n")) {
    const name = line.split(" ")[0]!;
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    deleteNamespace(name);
    removed.push(name);
  }
  return removed;
}

let staleRemoved = false;

export class NetnsLab {
  private readonly names = new Map<string, string>();
  private readonly processes = new Set<NsProcess>();
  private linkList: Link[] = [];
  private closed = false;

  private constructor(readonly roles: readonly string[], id: string, private readonly parallel: readonly (readonly [string, string])[]) {
    for (const role of roles) this.names.set(role, `${id}-${role}`);
  }

  /**
   * Makes one namespace per role, in a chain: roles[i] and roles[i + 1] are joined by link i.
   * Roles are short lowercase names ("sender", "a", "b", "sink").
   */
  static create(roles: readonly string[], options: { parallel?: readonly (readonly [string, string])[] } = {}): NetnsLab {
    if (roles.length === 0 || roles.length > 200) throw new TypeError(`a lab needs 1 to 200 roles, got ${roles.length}`);
    for (const role of roles) if (!/^[a-z][a-z0-9]{0,15}$/.test(role)) throw new TypeError(`role '${role}': use 1-16 lowercase letters and digits`);
    if (new Set(roles).size !== roles.length) throw new TypeError(`roles must be unique: ${roles.join(", ")}`);
    installCleanup();
    if (!staleRemoved) {
      staleRemoved = true;
      const removed = removeStaleNamespaces();
      if (removed.length > 0) console.error(`netns lab: removed ${removed.length} namespaces left by dead test processes`);
    }
    for (const [a, b] of options.parallel ?? []) {
      if (Math.abs(roles.indexOf(a) - roles.indexOf(b)) !== 1 || !roles.includes(a)) throw new TypeError(`parallel link ${a}-${b}: not neighbours in ${roles.join(" - ")}`);
    }
    const lab = new NetnsLab(roles, `${NETNS_PREFIX}${process.pid}-${++labsMade}`, options.parallel ?? []);
    liveLabs.add(lab);
    try {
      lab.build();
    } catch (err) {
      lab.close();
      throw err;
    }
    return lab;
  }

  private build(): void {
    for (const [, ns] of this.names) {
      runSync("ip", ["netns", "add", ns]);
      runSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
      // no duplicate address detection: a link-local address still tentative leaves IPv6 neighbours unresolved
      runSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
        "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
    }
    const pairs = this.roles.slice(1).map((right, i) => [this.roles[i]!, right] as const);
    const pathsSoFar = new Map<string, number>();
    for (const [i, [leftRole, rightRole]] of [...pairs, ...this.parallel].entries()) {
      const end = (role: string, side: 1 | 2): LinkEnd =>
        ({ role, ns: this.ns(role), dev: `ln${i}`, ipv4: linkAddress(i, side, 4), ipv6: linkAddress(i, side, 6) });
      const [l, r] = this.roles.indexOf(leftRole) < this.roles.indexOf(rightRole) ? [leftRole, rightRole] : [rightRole, leftRole];
      const path = pathsSoFar.get(`${l}-${r}`) ?? 0;
      pathsSoFar.set(`${l}-${r}`, path + 1);
      const link = { index: i, path, left: end(l, 1), right: end(r, 2) };
      // created in the namespaces directly: the names never meet in the root namespace
      runSync("ip", ["link", "add", link.left.dev, "netns", link.left.ns, "type", "veth", "peer", "name", link.right.dev, "netns", link.right.ns]);
      for (const e of [link.left, link.right]) {
        runSync("ip", ["-n", e.ns, "addr", "add", `${e.ipv4}/24`, "dev", e.dev]);
        runSync("ip", ["-n", e.ns, "-6", "addr", "add", `${e.ipv6}/64`, "dev", e.dev, "nodad"]);
        runSync("ip", ["-n", e.ns, "link", "set", e.dev, "up"]);
      }
      this.linkList.push(link);
      // permanent neighbours: no ARP or neighbour discovery in flight when a test's first packets leave
      // (on a busy machine, resolving three IPv6 hops lost the first 60 ms of a stream in CI)
      for (const [e, peer] of [[link.left, link.right], [link.right, link.left]] as const) {
        const mac = /link\/ether ([0-9a-f:]{17})/.exec(runSync("ip", ["-n", peer.ns, "link", "show", peer.dev]))?.[1];
        if (!mac) throw new Error(`no MAC address on ${peer.dev} in ${peer.ns}`);
        runSync("ip", ["-n", e.ns, "neigh", "replace", peer.ipv4, "lladdr", mac, "dev", e.dev, "nud", "permanent"]);
        runSync("ip", ["-n", e.ns, "-6", "neigh", "replace", peer.ipv6, "lladdr", mac, "dev", e.dev, "nud", "permanent"]);
      }
    }
    // routes to the links beyond a neighbour, through that neighbour
    this.roles.forEach((role, k) => {
      for (const link of this.linkList) {
        if (link.path > 0) continue; // a second path joins neighbours only: nothing routes over it
        const via = link.index > k ? this.linkList[k]?.right : link.index < k - 1 ? this.linkList[k - 1]?.left : undefined;
        if (!via) continue;
        runSync("ip", ["-n", this.ns(role), "route", "add", `${linkAddress(link.index, 1, 4).replace(/\.1$/, ".0")}/24`, "via", via.ipv4]);
        runSync("ip", ["-n", this.ns(role), "-6", "route", "add", `${linkAddress(link.index, 1, 6).replace(/::1$/, "::")}/64`, "via", via.ipv6]);
      }
    });
  }

  get links(): readonly Link[] {
    return this.linkList;
  }

  /** The namespace's name for `role`. */
  ns(role: string): string {
    const name = this.names.get(role);
    if (name === undefined) throw new TypeError(`no role '${role}' in this lab (roles: ${this.roles.join(", ")})`);
    return name;
  }

  /** The link between two neighbouring roles (path 1: the second one `parallel` made), with its ends named from `from`'s side. */
  link(from: string, to: string, path = 0): { index: number; from: LinkEnd; to: LinkEnd } {
    for (const l of this.linkList) {
      if (l.path !== path) continue;
      if (l.left.role === from && l.right.role === to) return { index: l.index, from: l.left, to: l.right };
      if (l.right.role === from && l.left.role === to) return { index: l.index, from: l.right, to: l.left };
    }
    throw new TypeError(`'${from}' and '${to}' are not neighbours ${path > 0 ? `with a path ${path} ` : ""}in this lab (chain: ${this.roles.join(" - ")})`);
  }

  /** The address of `role` on its link to `neighbour`: where the neighbour (or anyone along the chain) reaches it. */
  address(role: string, neighbour: string, family: 4 | 6 = 4, path = 0): string {
    const end = this.link(role, neighbour, path).from;
    return family === 4 ? end.ipv4 : end.ipv6;
  }

  /** Runs a command in `role`'s namespace to completion; returns its stdout, throws with its stderr. */
  execSync(role: string, cmd: string, args: readonly string[]): string {
    return runSync("ip", ["netns", "exec", this.ns(role), cmd, ...args]);
  }

  /** Reads the /proc/net UDP tables of `role`'s namespace (for kernelDrops and DropWatch). */
  procNet(role: string): ProcNetReader {
    const ns = this.ns(role);
    return (table) => {
      const r = spawnSync("ip", ["netns", "exec", ns, "cat", `/proc/net/${table}`], { encoding: "utf8", timeout: 15_000 });
      return r.status === 0 ? r.stdout : undefined;
    };
  }

  /** Resolves once a UDP socket is bound to `port` in `role`'s namespace (for a process that does not say when it listens). */
  async waitForUdpPort(role: string, port: number, timeoutMs = 10_000): Promise<void> {
    const read = this.procNet(role);
    const until = Date.now() + timeoutMs;
    while (!udpSockets(read).some((s) => s.port === port)) {
      if (Date.now() > until) throw new Error(`nothing bound UDP port ${port} in ${role} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Starts `cmd args` in `role`'s namespace; the lab kills it on close() if it still runs. */
  spawn(role: string, cmd: string, args: readonly string[], options: { stdin?: boolean } = {}): NsProcess {
    if (this.closed) throw new Error("this lab is closed");
    const child = spawn("ip", ["netns", "exec", this.ns(role), cmd, ...args], {
      detached: true, // a process group of its own: stop() reaches its children
      stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    const proc = new NsProcess(child, `${cmd} ${args.join(" ")} (in ${role})`);
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  /** Kills what still runs and deletes the namespaces (and with them the veth pairs). Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.processes) p.kill();
    for (const [, ns] of this.names) deleteNamespace(ns);
    liveLabs.delete(this);
  }
}
