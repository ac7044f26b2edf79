// Multicast on a segment's sockets (docs/proxy.md "Multicast"): a listen socket bound to a group
// joins it (source-specific when the segment names its sender), and every egress socket gets its
// TTL, loopback and interface: the segment's, or a leg's own (legMulticast: a second path's leg
// leaves on its own network). A join or interface the kernel refuses is an error that
// names the config field, so the apply that asked for it is refused.
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { canonicalAddress } from "../config/endpoints.js";
import { interfaceName, socketInterface } from "../config/multicast.js";
import { groupJoin, legMulticast, segmentMulticast, type GroupJoin, type MulticastOut, type SegmentConfig } from "../config/proxy-config.js";

/** What an errno means for a join or an interface, in the operator's words. */
const HINTS: Record<string, string> = {
  ENODEV: "no interface has that address, or no route to the group (give the interface, or add a multicast route)",
  EADDRNOTAVAIL: "not an address of this host",
  EINVAL: "the kernel refused the group or source",
  ENOBUFS: "too many groups joined on this host (net.ipv4.igmp_max_memberships)",
};

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return HINTS[code] ? `${code}: ${HINTS[code]}` : code;
}

/** Throws unless an IPv6 interface name exists here (an unknown name would silently mean "any interface"). */
function requireInterface(value: string, field: string): void {
  const name = interfaceName(value);
  if (!(name in networkInterfaces())) throw new Error(`${field}: no interface '${name}' on this host (${Object.keys(networkInterfaces()).join(", ")})`);
}

/** Joins `join.group` on `socket`; throws naming the field when the kernel refuses. */
export function joinGroup(socket: Socket, join: GroupJoin): void {
  const family = isIP(join.group);
  const field = join.interface !== undefined ? `${join.field}.interface` : `${join.field}.address`;
  if (join.interface !== undefined && family === 6) requireInterface(join.interface, field);
  const iface = join.interface === undefined ? undefined : socketInterface(join.interface, family);
  try {
    if (join.source !== undefined) socket.addSourceSpecificMembership(join.source, join.group, iface);
    else socket.addMembership(join.group, iface);
  } catch (err) {
    const what = join.source !== undefined ? `${join.group} (source-specific, sender ${join.source})` : join.group;
    throw new Error(`${field}: cannot join ${what} on ${join.interface ?? "the interface the kernel picks"}: ${reason(err)}`);
  }
}

/**
 * The name of the interface that has `address` (an IPv6 leg's own egress address: its socket
 * names the interface by name); throws naming `field` when none has it.
 */
function interfaceWithAddress(address: string, field: string): string {
  const want = canonicalAddress(address.split("%")[0]!);
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (addresses?.some((a) => canonicalAddress(a.address.split("%")[0]!) === want)) return name;
  }
  throw new Error(`${field}: no interface of this host has ${address}, so multicast cannot leave from its interface`);
}

/** Sets an egress socket's multicast TTL, loopback and interface (segmentMulticast, legMulticast); throws naming the field. */
export function applyMulticastOptions(socket: Socket, out: MulticastOut, family: number): void {
  socket.setMulticastTTL(out.ttl);
  socket.setMulticastLoopback(out.loopback);
  if (out.interface === undefined) return;
  const iface = out.ofEgress && family === 6 ? interfaceWithAddress(out.interface, out.field) : out.interface;
  if (family === 6) requireInterface(iface, out.field);
  try {
    socket.setMulticastInterface(socketInterface(iface, family));
  } catch (err) {
    throw new Error(`${out.field}: cannot send multicast from ${iface}: ${reason(err)}`);
  }
}

/**
 * Tries the segment's joins and multicast interface on throw-away sockets, without taking any
 * port: for a change whose sockets are bound only after the commit (they replace sockets that
 * hold the same ports), so that a group that cannot be joined refuses the change beforehand.
 */
export async function checkMulticast(config: SegmentConfig): Promise<void> {
  const joins = [groupJoin(config), ...config.legs.map((_, k) => groupJoin(config, k))].filter((j): j is GroupJoin => j !== null);
  const family = isIP(config.egress?.address ?? config.listen.address);
  const probes: [Socket, (s: Socket) => void][] = joins.map((j) => [probe(isIP(j.group)), (s) => joinGroup(s, j)]);
  probes.push([probe(family), (s) => applyMulticastOptions(s, segmentMulticast(config), family)]);
  config.legs.forEach((l, k) => {
    if (!l.send) return;
    const legFamily = l.egress ? isIP(l.egress.address) : family;
    probes.push([probe(legFamily), (s) => applyMulticastOptions(s, legMulticast(config, k), legFamily)]);
  });
  try {
    for (const [socket, attempt] of probes) {
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.bind(0, () => resolve());
      });
      attempt(socket);
    }
  } catch (err) {
    throw new Error(`segment '${config.name}': ${(err as Error).message}`);
  } finally {
    for (const [socket] of probes) {
      try {
        socket.close();
      } catch {
        // a failed bind closed it already
      }
    }
  }
}

function probe(family: number): Socket {
  return createSocket({ type: family === 6 ? "udp6" : "udp4", ipv6Only: family === 6 });
}
