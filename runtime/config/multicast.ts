// Multicast addresses and the config rules around them (docs/proxy.md "Multicast"): which
// addresses are groups, and what names the interface a group is joined on or sent from. An IPv4
// socket names an interface by one of its local addresses; an IPv6 socket by the interface's name
// (node:dgram takes it as the zone of "::%name").
import { isIP } from "node:net";

/** Whether `address` is a multicast group: 224.0.0.0/4 or ff00::/8. */
export function isMulticast(address: string): boolean {
  const family = isIP(address);
  if (family === 4) {
    const first = Number(address.slice(0, address.indexOf(".")));
    return first >= 224 && first <= 239;
  }
  return family === 6 && /^ff/i.test(address);
}

/** An IPv6 interface name as written (`eth1` or `%eth1`), without the `%`. */
export function interfaceName(value: string): string {
  return value.startsWith("%") ? value.slice(1) : value;
}

const IFNAME = /^%?[A-Za-z0-9_.:@-]{1,15}$/;

/**
 * What is wrong with `value` as the interface for a socket of IP version `family`, or null. IPv4:
 * a local unicast IPv4 address. IPv6: an interface name (`eth1`, or `%eth1`).
 */
export function interfaceProblem(value: string, family: number): string | null {
  if (family === 4) {
    if (isIP(value) === 4 && !isMulticast(value)) return null;
    return `'${value}': an IPv4 group is joined and sent to from a local IPv4 address of the interface (such as 10.0.0.5)`;
  }
  if (isIP(value) === 0 && IFNAME.test(value)) return null;
  return `'${value}': an IPv6 group is joined and sent to on an interface named by its name (such as eth1 or %eth1), not by an address`;
}

/** The interface as node:dgram's addMembership and setMulticastInterface take it. */
export function socketInterface(value: string, family: number): string {
  return family === 4 ? value : `::%${interfaceName(value)}`;
}
