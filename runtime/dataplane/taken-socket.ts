// A socket a worker took over from Bun's node:dgram (batched-io.ts, watch "thread"): Bun's
// node:dgram cannot stop reading a socket, so the worker keeps a duplicate of its descriptor for
// the addon and closes node:dgram's socket. What the data plane still asks of a socket once its
// segment runs (its address, a disconnect, a close) is answered here; the rest was set before the
// take-over (bind, buffer sizes, groups joined, a connected peer) and stays with the socket.
import type { Socket } from "node:dgram";
import { EventEmitter } from "node:events";
import type { AddressInfo } from "node:net";
import { socketHandle, type UdpAddon } from "./batched-io.js";

export class TakenSocket extends EventEmitter {
  private closed = false;

  private constructor(readonly fd: number, private readonly local: AddressInfo, private readonly addon: UdpAddon) {
    super();
  }

  /** Takes `socket` over: its descriptor duplicated, node:dgram's socket closed. */
  static take(socket: Socket, addon: UdpAddon): TakenSocket {
    const local = socket.address();
    const fd = addon.takeSocket(socketHandle(socket).fd);
    socket.removeAllListeners("message");
    socket.close();
    return new TakenSocket(fd, local, addon);
  }

  address(): AddressInfo {
    return this.local;
  }

  disconnect(): void {
    if (!this.closed) this.addon.disconnectSocket(this.fd);
  }

  /** After every port of the addon on it is closed (segment-runtime.ts close()). */
  close(): this {
    if (!this.closed) {
      this.closed = true;
      this.addon.closeSocket(this.fd);
    }
    return this;
  }

  /** Never called: a worker takes sockets over only when the addon sends. */
  send(..._args: unknown[]): never {
    throw new Error("a socket taken over by the batched-I/O addon sends through it only");
  }
}
