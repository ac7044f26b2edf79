// What the sender remembers of each packet it stamped: when it left and how long it was, by
// extended transport-wide sequence number, for the feedback to match. A ring: feedback about a
// packet older than RING packets finds nothing.
export const RING = 8192;

export class SendHistory {
  private readonly sentUs: StaticArray<i64> = new StaticArray<i64>(RING);
  private readonly sizes: StaticArray<i32> = new StaticArray<i32>(RING);
  private readonly seqOf: StaticArray<i64> = new StaticArray<i64>(RING);
  /** Whether feedback already said the packet arrived (its bytes are counted once). */
  private readonly acked: StaticArray<bool> = new StaticArray<bool>(RING);

  constructor() {
    for (let i = 0; i < RING; i++) unchecked((this.seqOf[i] = -1));
  }

  @inline record(ext: i64, nowUs: i64, size: i32): void {
    const i = <i32>(ext & (RING - 1));
    unchecked((this.seqOf[i] = ext));
    unchecked((this.sentUs[i] = nowUs));
    unchecked((this.sizes[i] = size));
    unchecked((this.acked[i] = false));
  }

  @inline has(ext: i64): bool {
    return unchecked(this.seqOf[<i32>(ext & (RING - 1))]) == ext;
  }
  @inline sentAt(ext: i64): i64 {
    return unchecked(this.sentUs[<i32>(ext & (RING - 1))]);
  }
  @inline size(ext: i64): i32 {
    return unchecked(this.sizes[<i32>(ext & (RING - 1))]);
  }
  @inline isAcked(ext: i64): bool {
    return unchecked(this.acked[<i32>(ext & (RING - 1))]);
  }
  @inline markAcked(ext: i64): void {
    unchecked((this.acked[<i32>(ext & (RING - 1))] = true));
  }
}

/** Bytes acknowledged over the last WINDOW_US of the receiver's clock, as a rate. */
const WINDOW_US: i64 = 500_000;
const ENTRIES = 2048;

export class AckedRate {
  private readonly at: StaticArray<i64> = new StaticArray<i64>(ENTRIES);
  private readonly bytes: StaticArray<i32> = new StaticArray<i32>(ENTRIES);
  private head: i32 = 0;
  private count: i32 = 0;
  private sum: i64 = 0;
  private newest: i64 = i64.MIN_VALUE;

  add(arrivalUs: i64, size: i32): void {
    if (this.count == ENTRIES) this.dropOldest();
    const i = (this.head + this.count) % ENTRIES;
    unchecked((this.at[i] = arrivalUs));
    unchecked((this.bytes[i] = size));
    this.count++;
    this.sum += size;
    if (arrivalUs > this.newest) this.newest = arrivalUs;
    while (this.count > 0 && unchecked(this.at[this.head]) < this.newest - WINDOW_US) this.dropOldest();
  }

  /** Bits per second over the window (0 until it spans 100 ms). */
  get bps(): f64 {
    if (this.count < 2) return 0;
    const span = this.newest - unchecked(this.at[this.head]);
    if (span < 100_000) return 0;
    return <f64>this.sum * 8 / (<f64>span / 1e6);
  }

  reset(): void {
    this.head = 0;
    this.count = 0;
    this.sum = 0;
    this.newest = i64.MIN_VALUE;
  }

  private dropOldest(): void {
    this.sum -= unchecked(this.bytes[this.head]);
    this.head = (this.head + 1) % ENTRIES;
    this.count--;
  }
}
