// When two UDP binds clash. Comparing "address:port" strings misses most clashes: 0.0.0.0:P takes
// P on every IPv4 address, "::1" and "0:0:0:0:0:0:0:1" are one address. IPv6 sockets are bound
// v6-only (segment-runtime.ts), so the two families never clash with each other.
import { isIP } from "node:net";

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** The one spelling of an IP address (IPv6 compressed and lower-case); other text is returned as is. */
export function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  // a link-local address's zone (fe80::1%eth0) names the interface: kept as written, and kept
  // out of the URL, which refuses it
  const zone = address.indexOf("%");
  if (zone < 0) return new URL(`udp://[${address}]`).hostname.slice(1, -1);
  return new URL(`udp://[${address.slice(0, zone)}]`).hostname.slice(1, -1) + address.slice(zone);
}

function isWildcard(canonical: string): boolean {
  return canonical === "0.0.0.0" || canonical === "::";
}

/** True when binding both endpoints at once would fail (same port and family, same or wildcard address). */
export function endpointsClash(a: Endpoint, b: Endpoint): boolean {
  if (a.port !== b.port || a.port === 0) return false;
  if (isIP(a.address) !== isIP(b.address)) return false;
  const x = canonicalAddress(a.address);
  const y = canonicalAddress(b.address);
  return x === y || isWildcard(x) || isWildcard(y);
}

/**
 * Collects binds and reports the first earlier one each new bind clashes with. Indexed by port, so
 * that a config of 10,000 segments is checked in linear time.
 */
export class EndpointClaims<T> {
  private readonly byPort = new Map<number, { endpoint: Endpoint; owner: T }[]>();

  /** Records `endpoint` for `owner`; returns the owner of a clashing earlier claim, or undefined. */
  claim(endpoint: Endpoint, owner: T): T | undefined {
    let list = this.byPort.get(endpoint.port);
    if (!list) this.byPort.set(endpoint.port, (list = []));
    const clash = list.find((c) => endpointsClash(c.endpoint, endpoint));
    if (clash) return clash.owner;
    list.push({ endpoint, owner });
    return undefined;
  }
}
