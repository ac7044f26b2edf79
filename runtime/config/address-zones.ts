// A link-local IPv6 address names its link by a zone (fe80::1%eth0). A zone that is no interface
// of this host is not refused by the kernel: the socket sends with scope 0, by the routing table,
// and the packets go nowhere a typo meant (fe80::1%eht0). Judged on the proxy's own host only.
import { existsSync } from "node:fs";
import { networkInterfaces } from "node:os";

/** Whether `zone` names an interface here: a number (an index), or an interface's name. */
function knownZone(zone: string): boolean {
  if (/^\d+$/.test(zone)) return true;
  // /sys/class/net lists every interface of this network namespace, with an address or not
  if (process.platform === "linux" && existsSync("/sys/class/net")) return !zone.includes("/") && existsSync(`/sys/class/net/${zone}`);
  return Object.hasOwn(networkInterfaces(), zone);
}

/** Every `address` field below `value` (a segment) whose zone names no interface of this host, as problems naming the field. */
export function unknownZoneProblems(value: unknown, at: string): string[] {
  const out: string[] = [];
  const walk = (v: unknown, path: string): void => {
    if (typeof v !== "object" || v === null) return;
    for (const [key, child] of Object.entries(v)) {
      const here = Array.isArray(v) ? `${path}[${key}]` : `${path}.${key}`;
      if (key === "address" && typeof child === "string" && child.includes("%")) {
        const zone = child.slice(child.indexOf("%") + 1);
        if (!knownZone(zone)) out.push(`${here}: zone '${zone}' names no interface of this host (${child}): its packets would leave by the routing table, not on that link`);
      } else {
        walk(child, here);
      }
    }
  };
  walk(value, at);
  return out;
}
