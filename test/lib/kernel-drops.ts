// Loss a busy machine causes, told apart from loss the proxy causes. When the CPUs are busy, a
// socket's receive queue can overflow before its reader runs: the kernel drops the datagram and
// counts it per socket (the last column of /proc/net/udp and /proc/net/udp6). A test that counts
// loss reads these counters for the sockets involved (the proxy's listen sockets, the sink) and
// accepts a loss only when the kernel's drops explain it. The tables are per network namespace:
// a socket in a namespace a test made is read through that namespace (test/lib/netns.ts).
import { DropWatch, ownNamespace, udpDropsByPort as dropsByPort, udpSockets, type ProcNetReader } from "../../runtime/udp-kernel-drops.js";

export { DropWatch, ownNamespace, udpSockets, type ProcNetReader };

/** Kernel receive drops, summed over the UDP sockets bound to `port` (in the namespace `read` reads). */
export function kernelDrops(port: number, read: ProcNetReader = ownNamespace): number {
  return dropsByPort([port], read).get(port)!;
}

/** Whether some UDP socket (of any process) is bound to `port` (in the namespace `read` reads). */
export function udpPortBound(port: number, read: ProcNetReader = ownNamespace): boolean {
  return udpSockets(read).some((s) => s.port === port);
}

/**
 * Checks that every packet of `sent` is accounted for: received, dropped by the proxy for a reason
 * the test accepts, or dropped by the kernel on a watched socket. Returns a message naming what
 * is unexplained, or null. A busy machine gives kernel drops; a proxy bug gives unexplained loss.
 */
export function unexplainedLoss(a: { sent: number; received: number; proxyDrops: number; kernel: DropWatch; duplicates?: number }): string | null {
  const kernel = a.kernel.since();
  const lost = a.sent - a.received;
  const unexplained = lost - a.proxyDrops - kernel.total;
  if (unexplained <= 0 && (a.duplicates ?? 0) === 0) return null;
  return `${a.sent} sent, ${a.received} received, ${lost} lost: ${a.proxyDrops} dropped by the proxy, ` +
    `${kernel.total} by the kernel (${JSON.stringify(kernel.byPort)}), ${Math.max(0, unexplained)} unexplained` +
    `${a.duplicates ? `, ${a.duplicates} duplicates` : ""}`;
}

/** Waits until `count()` has not changed for `quietMs` (or `timeoutMs` passed): the last packets are in. */
export async function settled(count: () => number, quietMs = 300, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = count();
  let since = Date.now();
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 25));
    const now = count();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
  }
}
