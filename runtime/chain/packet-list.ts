// A list of packets between two chain stages: references into the memory that holds each packet
// (a filter's linear memory or a received datagram) plus the descriptor fields that travel with
// it. Struct-of-arrays, preallocated, reused for every batch: nothing here allocates per packet.

export class PacketList {
  count = 0;
  readonly memory: Uint8Array[];
  readonly offset: Uint32Array;
  readonly length: Uint32Array;
  readonly flags: Uint16Array;
  readonly dest: Uint8Array;
  /** UDP source port of a received packet (0 for one a filter made). */
  readonly port: Uint16Array;
  /** The segment leg the packet arrived on or leaves on (0: media). */
  readonly leg: Uint8Array;
  readonly arrivalUs: Float64Array;
  /** 1: a received packet from the source gate's candidate, whom the chain's verdict on it may teach the gate (0: a known sender's, or one a filter made). */
  readonly origin: Uint8Array;

  constructor(readonly capacity: number) {
    const empty = new Uint8Array(0);
    this.memory = new Array<Uint8Array>(capacity).fill(empty);
    this.offset = new Uint32Array(capacity);
    this.length = new Uint32Array(capacity);
    this.flags = new Uint16Array(capacity);
    this.dest = new Uint8Array(capacity);
    this.port = new Uint16Array(capacity);
    this.leg = new Uint8Array(capacity);
    this.arrivalUs = new Float64Array(capacity);
    this.origin = new Uint8Array(capacity);
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  /** Appends a packet; the caller checks `full` first. */
  push(memory: Uint8Array, offset: number, length: number, flags: number, dest: number, port: number, leg: number, arrivalUs: number, origin = 0): void {
    const i = this.count++;
    this.memory[i] = memory;
    this.offset[i] = offset;
    this.length[i] = length;
    this.flags[i] = flags;
    this.dest[i] = dest;
    this.port[i] = port;
    this.leg[i] = leg;
    this.arrivalUs[i] = arrivalUs;
    this.origin[i] = origin;
  }

  copyEntry(from: PacketList, i: number): void {
    this.push(from.memory[i]!, from.offset[i]!, from.length[i]!, from.flags[i]!, from.dest[i]!, from.port[i]!, from.leg[i]!, from.arrivalUs[i]!, from.origin[i]!);
  }

  clear(): void {
    this.count = 0;
  }
}
