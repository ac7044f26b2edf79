// Sockets are file descriptors, and a process may hold only so many (ulimit -n). A config whose
// segments need more than the limit allows would fail part way through binding with EMFILE;
// this check refuses it up front, with the numbers and what to change. Linux only (/proc); where
// the limit cannot be read, nothing is checked.
import { readdirSync, readFileSync } from "node:fs";
import type { SegmentConfig } from "../config/proxy-config.js";

/** Descriptors a process keeps for itself beyond segment sockets (runtime, admin, pipes, files). */
export const DESCRIPTOR_RESERVE = 64;

/**
 * Sockets a segment binds: RTP in and out (one with symmetricRtp), RTCP in and out unless RTCP is
 * multiplexed, and one per leg per direction it uses.
 */
export function socketsFor(segments: readonly SegmentConfig[]): number {
  let n = 0;
  for (const s of segments) {
    n += (s.rtcpMux ? 1 : 2) * (s.symmetricRtp ? 1 : 2);
    for (const l of s.legs) n += (l.receive ? 1 : 0) + (l.send ? 1 : 0);
  }
  return n;
}

/** The soft limit on open files of this process, or null where it cannot be read. */
export function openFileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (!m) return null;
    return m[1] === "unlimited" ? Number.POSITIVE_INFINITY : Number(m[1]);
  } catch {
    return null;
  }
}

/** Descriptors this process has open now, or null where that cannot be read. */
export function openFileCount(): number | null {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return null;
  }
}

/**
 * Null if `needed` sockets fit beside `other` descriptors under the open-files `limit` (this
 * process's by default), else a message for the operator that starts with `where`.
 */
export function descriptorShortfall(needed: number, other: number, where: string, limit = openFileLimit()): string | null {
  if (limit === null || needed + other <= limit) return null;
  return `${where} need ${needed} sockets, but the open-files limit is ${limit} (ulimit -n) and ${other} descriptors are kept ` +
    "for the rest of the process: raise the limit (ulimit -n, systemd LimitNOFILE=, the container's nofile), " +
    "use rtcpMux and symmetricRtp (1 socket per segment instead of 4), or spread the segments over more proxies";
}

/**
 * Per worker (a process of its own under Bun, with its own open-files limit): the sockets it holds
 * while a change is prepared, its running segments' and those the change brings to it, new or
 * moved from another worker (bound before the old worker lets theirs go).
 */
export function socketsPerWorkerDuringChange(
  running: readonly SegmentConfig[], next: readonly SegmentConfig[], workers: number, workerOf: (s: SegmentConfig) => number,
): { sockets: number; segments: number }[] {
  return Array.from({ length: workers }, (_, i) => {
    const held = running.filter((s) => workerOf(s) === i);
    const here = new Set(held.map((s) => s.name));
    const arriving = next.filter((s) => workerOf(s) === i && !here.has(s.name));
    return { sockets: socketsFor(held) + socketsFor(arriving), segments: held.length + arriving.length };
  });
}
