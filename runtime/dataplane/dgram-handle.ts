// The libuv (Node) or Bun handle behind a node:dgram socket, reached through its state symbol:
// its descriptor, for the batched-I/O addon and for socket options node:dgram does not offer.

/** The descriptor behind a node:dgram socket, and its handle (Node's can stop reading). */
export interface DgramHandle {
  fd: number;
  recvStop?: () => number;
  recvStart?: () => number;
}

export function socketHandle(socket: object): DgramHandle {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === "state symbol");
  const handle = state && (socket as Record<symbol, { handle?: DgramHandle }>)[state]?.handle;
  if (!handle || typeof handle.fd !== "number" || handle.fd < 0) throw new Error("cannot reach the node:dgram socket's descriptor");
  return handle;
}
