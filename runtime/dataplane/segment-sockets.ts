// A segment's sockets: RTP (and RTCP unless multiplexed) in at `listen`, out from `egress`.
// Ports the config names are bound before ports the kernel picks, and a segment with a single
// destination gets its egress RTP socket connected to it: the kernel then routes once, not per
// packet, and refuses datagrams from anyone else on that socket. Not a multicast destination:
// nothing ever comes from a group's address, so a socket connected to one would refuse every
// receiver's feedback (RTCP multiplexed on the RTP port). A listen socket bound to a multicast
// group joins it (multicast-sockets.ts).
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIP, isIPv6, type AddressInfo } from "node:net";
import { canonicalAddress } from "../config/endpoints.js";
import { isMulticast } from "../config/multicast.js";
import { fixedBinds, groupJoin, legListen, legMulticast, segmentMulticast, type GroupJoin, type LegConfig, type SegmentConfig } from "../config/proxy-config.js";
import { applyMulticastOptions, joinGroup } from "./multicast-sockets.js";
import { TakenSocket } from "./taken-socket.js";
import { dropRecvErr } from "./bun-recverr.js";

async function bindSocket(address: string, port: number, receiveBuffer: number): Promise<Socket> {
  const socket = createSocket({ type: isIPv6(address) ? "udp6" : "udp4", ipv6Only: isIPv6(address) });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close(); // a socket that failed to bind still holds a descriptor
      reject(err);
    };
    socket.once("error", onError);
    socket.bind(port, address, () => {
      socket.off("error", onError);
      resolve();
    });
  });
  try {
    socket.setRecvBufferSize(receiveBuffer);
  } catch {
    // the kernel may cap it (net.core.rmem_max); the default still works
  }
  await dropRecvErr(socket); // under Bun: an ICMP error must not fail the socket's next send
  return socket;
}

/**
 * Binds a port the kernel picks, then pins it: Linux forgets an auto-picked port when a connected
 * UDP socket disconnects (udp_disconnect unbinds a socket not bound to an explicit port), and the
 * next send would leave from a new port, which a strict receiver, such as the next proxy's source
 * gate, refuses. So the socket is bound again to that port explicitly.
 */
async function bindPinned(address: string, receiveBuffer: number): Promise<Socket> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const probe = await bindSocket(address, 0, receiveBuffer);
    const port = probe.address().port;
    probe.close();
    try {
      return await bindSocket(address, port, receiveBuffer);
    } catch (err) {
      lastError = err; // taken in between: pick again
    }
  }
  throw lastError;
}

/**
 * An ephemeral egress RTP socket and its RTCP socket on the next port (RFC 3550 section 11's
 * pair): a receiver, or the next proxy, that has heard no RTCP from us yet sends its feedback to
 * our RTP port + 1. When the kernel keeps handing out ports whose neighbour is taken, the RTCP
 * socket gets any port (its RTCP then tells the receiver where it is).
 */
async function bindPinnedPair(address: string, receiveBuffer: number): Promise<[Socket, Socket]> {
  for (let attempt = 0; attempt < 16; attempt++) {
    const rtp = await bindPinned(address, receiveBuffer);
    const port = rtp.address().port;
    if (port < 65535) {
      try {
        return [rtp, await bindSocket(address, port + 1, receiveBuffer)];
      } catch {
        // taken: another pair
      }
    }
    rtp.close();
  }
  const rtp = await bindPinned(address, receiveBuffer);
  try {
    return [rtp, await bindPinned(address, receiveBuffer)];
  } catch (err) {
    rtp.close();
    throw err;
  }
}

/** Connects `socket` to its one peer; false where the runtime cannot (the socket then stays unconnected). */
function connectSocket(socket: Socket, port: number, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      socket.connect(port, address, (err?: Error) => resolve(!err)); // a failed connect (no route yet) leaves it unconnected
    } catch {
      resolve(false);
    }
  });
}

/**
 * What the data plane asks of a socket once its segment runs: node:dgram's socket, or one a
 * worker took over from it (taken-socket.ts). Sockets are set up (bound, joined, connected) as
 * node:dgram sockets, here.
 */
export interface UdpSocket {
  address(): AddressInfo;
  disconnect(): void;
  close(): unknown;
  on(event: "message", listener: (msg: Buffer, rinfo: RemoteInfo) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
  send(msg: Uint8Array, offset: number, length: number, callback: (error: Error | null, bytes: number) => void): void;
  send(msg: Uint8Array, offset: number, length: number, port: number, address: string, callback: (error: Error | null, bytes: number) => void): void;
}

/** A leg's sockets (docs/proxy.md "Legs"): each only where the leg receives or sends. */
export interface LegSockets<S extends UdpSocket = UdpSocket> {
  ingress: S | null;
  egress: S | null;
  /** The destination index the egress socket is connected to, or -1. */
  connectedTo: number;
}

export interface SegmentSockets<S extends UdpSocket = UdpSocket> {
  ingressRtp: S;
  ingressRtcp: S | null;
  egressRtp: S;
  egressRtcp: S | null;
  /** The destination index the egress RTP socket is connected to, or -1. */
  connectedTo: number;
  /** Legs 1.. in config order (legs[0] is leg 1). */
  legs: LegSockets<S>[];
}

/** Sockets bound so far: the fixed-port ones first, the ephemeral egress ones after. */
export type PartialSockets = Pick<SegmentSockets<Socket>, "ingressRtp" | "ingressRtcp"> & Partial<Pick<SegmentSockets<Socket>, "egressRtp" | "egressRtcp">> & { legs: LegSockets<Socket>[] };

/** Closes what a failed step opened and throws `message` for the segment. */
function failSegment(config: SegmentConfig, opened: Socket[], message: string): never {
  for (const s of opened) s.close();
  throw new Error(`segment '${config.name}': ${message}`);
}

/** What a bind says of a port another process holds: a start runs without such a segment (runtime/proxy.ts). */
export const PORT_TAKEN = "the port is taken (another process holds it)";

/** Why a bind failed, in an operator's words (Node says 'bind EADDRINUSE 127.0.0.1:5004', Bun leaves the port out). */
export function bindFailure(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case "EADDRINUSE":
      return PORT_TAKEN;
    case "EACCES":
      return "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)";
    case "EADDRNOTAVAIL":
      return "no interface of this host has that address";
    default:
      return (err as Error).message;
  }
}

/**
 * A listen socket that a worker thread left bound when it ended (killed by the watchdog, crashed),
 * with its queue (batched-io.ts claim): (address, port, detail) => the socket, or null (bind afresh).
 */
export type Reclaim = (address: string, port: number, detail: string) => UdpSocket | null;

/** Where a listen socket is bound, as a parked one is found by. */
export function placeOf(address: string, port: number): string {
  return `${canonicalAddress(address)}|${port}`; // ::1 as 0:0:0:0:0:0:0:1 is the same place
}

/**
 * What a listen socket was set up with beyond its place: one parked with other settings is bound
 * afresh. Its segment too: what waits in it was sent to that segment, and another that takes the
 * place in the same change must not forward it (to its own destinations).
 */
function listenDetail(segment: string, join: GroupJoin | null, receiveBuffer: number): string {
  return JSON.stringify({ segment, join, receiveBuffer });
}

const keepTags = new WeakMap<Socket, { place: string; detail: string }>();

/** Where a listen socket is bound and how it was set up, when a worker thread's end may park it (BatchedIo.take). */
export function keepTagOf(socket: Socket): { place: string; detail: string } | undefined {
  return keepTags.get(socket);
}

/**
 * Binds a socket (and joins its group, when `join` names one); on failure closes everything
 * opened so far. A listen socket (`listen`) is first looked for among those ended worker threads
 * left (`reclaim`). A listen socket that also sends (symmetricRtp) is set up as an egress socket too:
 * never reclaimed, and never parked.
 */
function binder(config: SegmentConfig, receiveBuffer: number, opened: Socket[], reclaim?: Reclaim) {
  return async (address: string, port: number, what: string, join: GroupJoin | null = null, listen = false): Promise<Socket> => {
    const keep = listen && !config.symmetricRtp;
    const detail = keep ? listenDetail(config.name, join, receiveBuffer) : "";
    const claimed = listen && reclaim ? reclaim(address, port, detail) : null;
    if (claimed) {
      // bound, joined and sized already, and nothing below sets up a listen socket that does not send
      opened.push(claimed as unknown as Socket);
      return claimed as unknown as Socket;
    }
    let s: Socket;
    try {
      s = port === 0 ? await bindPinned(address, receiveBuffer) : await bindSocket(address, port, receiveBuffer);
    } catch (err) {
      failSegment(config, opened, `cannot bind ${what} ${address}:${port}: ${bindFailure(err)}`);
    }
    opened.push(s);
    try {
      if (join) joinGroup(s, join);
    } catch (err) {
      failSegment(config, opened, (err as Error).message);
    }
    if (keep) keepTags.set(s, { place: placeOf(address, port), detail });
    return s;
  };
}

/** Gives every egress socket its multicast options (the segment's, a leg's own); on failure closes every socket of the segment. */
function setMulticastOptions(config: SegmentConfig, sockets: SegmentSockets<Socket>, opened: Socket[]): void {
  const family = isIP(egressOf(config).address);
  try {
    for (const s of [sockets.egressRtp, sockets.egressRtcp]) if (s) applyMulticastOptions(s, segmentMulticast(config), family);
    for (const [k, l] of config.legs.entries()) {
      const s = sockets.legs[k]!.egress;
      if (s) applyMulticastOptions(s, legMulticast(config, k), isIP(legEgressOf(config, l).address));
    }
  } catch (err) {
    failSegment(config, opened, (err as Error).message);
  }
}

/** Connects an egress socket to its one destination, unless that is a multicast group (see the top). */
async function connectToOnly(socket: Socket, to: { address: string; port: number } | undefined): Promise<boolean> {
  return to !== undefined && !isMulticast(to.address) && connectSocket(socket, to.port, to.address);
}

function egressOf(config: SegmentConfig): { address: string; port: number } {
  return { address: config.egress?.address ?? (isIPv6(config.listen.address) ? "::" : "0.0.0.0"), port: config.egress?.port ?? 0 };
}

function legEgressOf(config: SegmentConfig, l: LegConfig): { address: string; port: number } {
  return l.egress ?? { address: egressOf(config).address, port: 0 };
}

/** Where a leg sends: its own destinations, or the segment's at port + portOffset. */
export function legDestinations(config: SegmentConfig, l: LegConfig): { address: string; port: number }[] {
  return l.destinations ?? config.destinations.map((d) => ({ address: d.address, port: d.port + l.portOffset! }));
}

/**
 * Binds each port the segment names for a moment and closes it again: a segment that binds only
 * after its change is committed (on a port the change frees) learns before the commit that
 * another process holds one. `ours` says which binds this proxy holds itself (left out).
 */
export async function bindProblem(config: SegmentConfig, ours: (bind: { address: string; port: number }) => boolean): Promise<string | null> {
  for (const b of fixedBinds(config)) {
    if (ours(b)) continue;
    try {
      (await bindSocket(b.address, b.port, 0)).close();
    } catch (err) {
      return `cannot bind ${b.what} ${b.address}:${b.port}: ${bindFailure(err)}`;
    }
  }
  return null;
}

/**
 * Binds the sockets whose ports the config names (listen, and egress when it has a port). A
 * caller with many segments binds these for all of them before any ephemeral egress socket, so
 * that a port the kernel picks for one segment's egress cannot take another's listen port.
 */
export async function openFixedSockets(config: SegmentConfig, receiveBuffer: number, reclaim?: Reclaim): Promise<PartialSockets> {
  const opened: Socket[] = [];
  const bind = binder(config, receiveBuffer, opened, reclaim);
  const listen = config.listen;
  const join = groupJoin(config);
  const ingressRtp = await bind(listen.address, listen.port, "listen", join, true);
  // a multicast session's RTCP goes to the group at port + 1 (RFC 3550 section 11): joined too
  const ingressRtcp = config.rtcpMux ? null : await bind(listen.address, listen.port + 1, "listen RTCP", join, true);
  const legs: LegSockets<Socket>[] = [];
  for (const [k, l] of config.legs.entries()) {
    const at = legListen(config, l);
    const ingress = at ? await bind(at.address, at.port, `leg '${l.name}' listen`, groupJoin(config, k), true) : null;
    const out = legEgressOf(config, l);
    const egress = l.send && out.port !== 0 ? await bind(out.address, out.port, `leg '${l.name}' egress`) : null;
    legs.push({ ingress, egress, connectedTo: -1 });
  }
  // symmetric RTP: the listen sockets send too
  if (config.symmetricRtp) return { ingressRtp, ingressRtcp, egressRtp: ingressRtp, egressRtcp: ingressRtcp, legs };
  const egress = egressOf(config);
  if (egress.port === 0) return { ingressRtp, ingressRtcp, legs };
  const egressRtp = await bind(egress.address, egress.port, "egress");
  const egressRtcp = config.rtcpMux ? null : await bind(egress.address, egress.port + 1, "egress RTCP");
  return { ingressRtp, ingressRtcp, egressRtp, egressRtcp, legs };
}

/**
 * The egress ports the kernel picked for a segment where it ran before (its worker restarted, or
 * it moved to another worker). The next hop latched the stream's source port (a strict source
 * gate): a new port would be refused there until the old one had been silent for its idleMs.
 */
export interface EgressPorts {
  readonly segment: string;
  readonly rtp: number;
  readonly rtcp: number | null;
  readonly legs: readonly (number | null)[];
}

/** `port` again if it is free, else one the kernel picks. */
async function bindAgainOrAny(address: string, port: number | null | undefined, receiveBuffer: number): Promise<Socket | null> {
  if (!port) return null;
  try {
    return await bindSocket(address, port, receiveBuffer);
  } catch {
    return null; // taken meanwhile: the caller picks another
  }
}

/** Binds what openFixedSockets left (ephemeral egress, the ports `before` names when free) and connects a single destination; on failure closes everything. */
export async function completeSockets(config: SegmentConfig, receiveBuffer: number, partial: PartialSockets, before?: EgressPorts): Promise<SegmentSockets<Socket>> {
  let egressRtp = partial.egressRtp;
  let egressRtcp = partial.egressRtcp ?? null;
  const opened = [...new Set(allSockets(partial))].filter((x): x is Socket => x !== null && x !== undefined);
  const bind = binder(config, receiveBuffer, opened);
  if (!egressRtp && before && !config.symmetricRtp) {
    const egress = egressOf(config);
    const rtp = await bindAgainOrAny(egress.address, before.rtp, receiveBuffer);
    const rtcp = rtp && !config.rtcpMux ? await bindAgainOrAny(egress.address, before.rtcp, receiveBuffer) : null;
    if (rtp && (config.rtcpMux || rtcp)) {
      [egressRtp, egressRtcp] = [rtp, rtcp];
      opened.push(rtp, ...(rtcp ? [rtcp] : []));
    } else rtp?.close();
  }
  if (!egressRtp) {
    const egress = egressOf(config);
    if (config.rtcpMux) egressRtp = await bind(egress.address, 0, "egress");
    else {
      try {
        [egressRtp, egressRtcp] = await bindPinnedPair(egress.address, receiveBuffer);
      } catch (err) {
        failSegment(config, opened, `cannot bind egress ${egress.address}:0 and its RTCP port: ${(err as Error).message}`);
      }
      opened.push(egressRtp, egressRtcp!);
    }
  }
  for (const [k, l] of config.legs.entries()) {
    const sockets = partial.legs[k]!;
    if (!l.send || sockets.egress) continue;
    const again = await bindAgainOrAny(legEgressOf(config, l).address, before?.legs[k], receiveBuffer);
    if (again) opened.push(again);
    sockets.egress = again ?? (await bind(legEgressOf(config, l).address, 0, `leg '${l.name}' egress`));
  }
  const sockets: SegmentSockets<Socket> = { ingressRtp: partial.ingressRtp, ingressRtcp: partial.ingressRtcp, egressRtp, egressRtcp, connectedTo: -1, legs: partial.legs };
  setMulticastOptions(config, sockets, opened);
  for (const [k, l] of config.legs.entries()) {
    const to = legDestinations(config, l);
    const leg = sockets.legs[k]!;
    if (leg.egress && to.length === 1 && (await connectToOnly(leg.egress, to[0]))) leg.connectedTo = 0;
  }
  const only = config.destinations.length === 1 ? config.destinations[0]! : undefined;
  // a listen socket that sends (symmetricRtp) still hears the sender: never connected
  if (!config.symmetricRtp && (await connectToOnly(egressRtp, only))) sockets.connectedTo = 0;
  return sockets;
}

/** Binds a segment's sockets; on failure closes what it opened and names the port. */
export async function openSegmentSockets(config: SegmentConfig, receiveBuffer: number, before?: EgressPorts, reclaim?: Reclaim): Promise<SegmentSockets<Socket>> {
  return completeSockets(config, receiveBuffer, await openFixedSockets(config, receiveBuffer, reclaim), before);
}

/** Every socket of a segment, legs included. */
export function allSockets<S extends UdpSocket>(s: Pick<SegmentSockets<S>, "ingressRtp" | "ingressRtcp"> & Partial<SegmentSockets<S>>): (S | null | undefined)[] {
  return [s.ingressRtp, s.ingressRtcp, s.egressRtp, s.egressRtcp, ...(s.legs ?? []).flatMap((l) => [l.ingress, l.egress])];
}

/**
 * Replaces every node:dgram socket of a running segment by one taken over for the addon
 * (batched-io.ts, watch "thread"), in place: whoever holds `sockets` sees the new ones. A socket
 * a segment uses twice (symmetricRtp) is taken once.
 */
export function takeOverSockets(sockets: SegmentSockets, take: (s: Socket) => UdpSocket): void {
  const taken = new Map<UdpSocket, UdpSocket>();
  const swap = <T extends UdpSocket | null>(s: T): T => {
    if (s === null || s instanceof TakenSocket) return s; // reclaimed: the addon's already
    let t = taken.get(s);
    if (!t) taken.set(s, (t = take(s as unknown as Socket)));
    return t as T;
  };
  sockets.ingressRtp = swap(sockets.ingressRtp);
  sockets.ingressRtcp = swap(sockets.ingressRtcp);
  sockets.egressRtp = swap(sockets.egressRtp);
  sockets.egressRtcp = swap(sockets.egressRtcp);
  for (const l of sockets.legs) {
    l.ingress = swap(l.ingress);
    l.egress = swap(l.egress);
  }
}

/**
 * Closes a segment's sockets (each at most once). With `handOver` (the segment moves to another
 * worker) its listen sockets are left bound instead, with what they hold, where they can be (TakenSocket.park).
 */
export function closeSockets<S extends UdpSocket>(s: Pick<SegmentSockets<S>, "ingressRtp" | "ingressRtcp"> & Partial<SegmentSockets<S>>, handOver = false): void {
  for (const sock of new Set(allSockets(s))) {
    if (!sock) continue;
    sock.removeAllListeners("message");
    if (handOver && sock instanceof TakenSocket && sock.park()) continue;
    try {
      sock.close();
    } catch {
      // already closed
    }
  }
}

/** Where a segment's listen sockets are bound (placeOf): those a worker may reclaim. */
export function listenPlaces(config: SegmentConfig): string[] {
  const out = [placeOf(config.listen.address, config.listen.port)];
  if (!config.rtcpMux) out.push(placeOf(config.listen.address, config.listen.port + 1));
  for (const l of config.legs) {
    const at = legListen(config, l);
    if (at) out.push(placeOf(at.address, at.port));
  }
  return out;
}
