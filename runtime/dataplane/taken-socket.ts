// A socket a worker took over from node:dgram for the batched-I/O addon (batched-io.ts take():
// Bun's node:dgram cannot stop reading a socket, and Node's closes its descriptor under the
// addon's poll handle when a worker thread ends): the worker keeps a duplicate of its descriptor
// for the addon and closes node:dgram's socket. What the data plane still asks of a socket once its
// segment runs (its address, a disconnect, a close) is answered here; the rest was set before the
// take-over (bind, buffer sizes, groups joined, a connected peer) and stays with the socket.
import { EventEmitter } from "node:events";
import type { AddressInfo } from "node:net";

/** What a taken socket needs of the addon that holds its descriptor. */
export interface DescriptorOwner {
  disconnectSocket(fd: number): void;
  closeSocket(fd: number): void;
  /** Leaves a listen socket bound for another worker to take over (a segment that moves): false when it cannot. */
  parkSocket?(fd: number): boolean;
}

export class TakenSocket extends EventEmitter {
  private closed = false;

  /** `fd`: the addon's duplicate (BatchedIo.take made it and closed node:dgram's socket). */
  constructor(readonly fd: number, private readonly local: AddressInfo, private readonly addon: DescriptorOwner) {
    super();
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

  /**
   * Instead of closing it, leaves the socket bound, with what it holds, for the worker a segment
   * moves to (after every port of the addon on it is closed); false when it cannot be (not a
   * listen socket of a worker thread): the caller closes it then.
   */
  park(): boolean {
    if (this.closed || !this.addon.parkSocket?.(this.fd)) return false;
    this.closed = true;
    return true;
  }

  /** Never called: a worker takes sockets over only when the addon sends. */
  send(..._args: unknown[]): never {
    throw new Error("a socket taken over by the batched-I/O addon sends through it only");
  }
}
