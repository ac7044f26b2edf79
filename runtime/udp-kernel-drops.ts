// The kernel's count of datagrams it dropped at a UDP socket whose receive queue was full (the
// last column of /proc/net/udp and /proc/net/udp6): loss a busy machine causes before any reader
// runs, told apart from loss a reader causes. The tables are per network namespace.
import { readFileSync } from "node:fs";

/** Reads /proc/net/udp or /proc/net/udp6 of one network namespace; undefined when it has none. */
export type ProcNetReader = (table: "udp" | "udp6") => string | undefined;

/** The tables of this process's own network namespace. */
export const ownNamespace: ProcNetReader = (table) => {
  try {
    return readFileSync(`/proc/net/${table}`, "utf8");
  } catch {
    return undefined; // no IPv6, or not Linux
  }
};

/** The UDP sockets of a namespace: local port and kernel receive drops of each. */
export function udpSockets(read: ProcNetReader = ownNamespace): { port: number; drops: number }[] {
  const sockets: { port: number; drops: number }[] = [];
  for (const table of ["udp", "udp6"] as const) {
    const text = read(table);
    if (text === undefined) continue;
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 13) continue;
      const local = cols[1]!;
      sockets.push({ port: parseInt(local.slice(local.lastIndexOf(":") + 1), 16), drops: Number(cols[cols.length - 1]) });
    }
  }
  return sockets;
}

/** Kernel receive drops per port, summed over the UDP sockets bound to it (one read of the tables). */
export function udpDropsByPort(ports: readonly number[], read: ProcNetReader = ownNamespace): Map<number, number> {
  const sockets = udpSockets(read);
  return new Map(ports.map((p) => [p, sockets.reduce((sum, s) => sum + (s.port === p ? s.drops : 0), 0)]));
}

/** Kernel drops on a set of ports since the watch began. */
export class DropWatch {
  private readonly start: Map<number, number>;

  constructor(readonly ports: readonly number[], private readonly read: ProcNetReader = ownNamespace) {
    this.start = udpDropsByPort(ports, read);
  }

  /** Drops since the watch began, per port and in all. */
  since(): { total: number; byPort: Record<number, number> } {
    const now = udpDropsByPort(this.ports, this.read);
    const byPort: Record<number, number> = {};
    let total = 0;
    for (const [port, before] of this.start) {
      const d = now.get(port)! - before;
      byPort[port] = d;
      total += d;
    }
    return { total, byPort };
  }
}
