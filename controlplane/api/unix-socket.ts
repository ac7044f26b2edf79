// A control plane reachable over a unix-domain socket (`unix:PATH`, as gRPC writes it) instead of
// HOST:PORT: for proxies on the control plane's own host, network namespaces among them (they
// share the filesystem, not the network), and nothing to firewall.

/** Whether `address` names a unix-domain socket: `unix:` and a path (absolute, or relative to the working directory). */
export function isUnixSocketAddress(address: string): boolean {
  return /^unix:[^\s]+$/.test(address);
}
