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
 * Binds by where they are, for "does this one clash with any held?" in constant time: a fleet puts
 * thousands of segments on one port, each at its own address (a multicast group per camera), where
 * comparing the new bind with every bind on its port was quadratic. Every bind added is held, even
 * one that clashes with another (what runs, or what a change releases); the owner of the first
 * bind at a place is the one named.
 */
export class EndpointIndex<T> {
  /** "family|port|canonical address" -> the first owner there. */
  private readonly exact = new Map<string, T>();
  /** "family|port" -> the first owner of a wildcard bind of that family on that port. */
  private readonly wildcard = new Map<string, T>();
  /** "family|port" -> the first owner of any bind of that family on that port (a wildcard lookup clashes with it). */
  private readonly anyOnPort = new Map<string, T>();

  add(endpoint: Endpoint, owner: T): void {
    if (endpoint.port === 0) return; // the kernel picks a free port: never a clash
    const { onPort, canonical } = place(endpoint);
    if (!this.anyOnPort.has(onPort)) this.anyOnPort.set(onPort, owner);
    if (isWildcard(canonical)) {
      if (!this.wildcard.has(onPort)) this.wildcard.set(onPort, owner);
    } else if (!this.exact.has(`${onPort}|${canonical}`)) this.exact.set(`${onPort}|${canonical}`, owner);
  }

  /** The owner of a held bind that binding `endpoint` would clash with (endpointsClash), or undefined. */
  clashing(endpoint: Endpoint): T | undefined {
    if (endpoint.port === 0) return undefined;
    const { onPort, canonical } = place(endpoint);
    if (isWildcard(canonical)) return this.anyOnPort.get(onPort);
    return this.wildcard.get(onPort) ?? this.exact.get(`${onPort}|${canonical}`);
  }
}

function place(endpoint: Endpoint): { onPort: string; canonical: string } {
  const address = endpoint.address; // read once: a getter or a long IPv6 text costs each time
  return { onPort: `${isIP(address)}|${endpoint.port}`, canonical: canonicalAddress(address) };
}

/** Collects binds and reports the first earlier one each new bind clashes with (a clashing bind is not kept). */
export class EndpointClaims<T> {
  private readonly held = new EndpointIndex<T>();

  /** Records `endpoint` for `owner`; returns the owner of a clashing earlier claim, or undefined. */
  claim(endpoint: Endpoint, owner: T): T | undefined {
    const clash = this.held.clashing(endpoint);
    if (clash !== undefined) return clash;
    this.held.add(endpoint, owner);
    return undefined;
  }
}
