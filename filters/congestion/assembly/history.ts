// What the sender remembers of each packet it stamped: when it left and how long it was, by
// extended transport-wide sequence number, for the feedback to match. A ring in budgeted memory
// (records.ts): feedback about a packet older than RING packets finds nothing.
import { Records } from "./records";
export const RING = 4096;
/** Per packet: sent at (i64), sequence tag (ext + 1, 0: empty; u32), size (u16), acknowledged (u8). */
export const RECORD = 16;

export class SendHistory {
  constructor(private readonly records: Records) {}

  @inline record(ext: i64, nowUs: i64, size: i32): void {
    const r = this.records.at(<i32>(ext & (RING - 1)));
    store<i64>(r, nowUs);
    store<u32>(r, <u32>(ext + 1), 8);
    store<u16>(r, <u16>size, 12);
    store<u8>(r, 0, 14);
  }

  @inline has(ext: i64): bool {
    return load<u32>(this.records.at(<i32>(ext & (RING - 1))), 8) == <u32>(ext + 1);
  }
  @inline sentAt(ext: i64): i64 {
    return load<i64>(this.records.at(<i32>(ext & (RING - 1))));
  }
  @inline size(ext: i64): i32 {
    return <i32>load<u16>(this.records.at(<i32>(ext & (RING - 1))), 12);
  }
  @inline isAcked(ext: i64): bool {
    return load<u8>(this.records.at(<i32>(ext & (RING - 1))), 14) != 0;
  }
  @inline markAcked(ext: i64): void {
    store<u8>(this.records.at(<i32>(ext & (RING - 1))), 1, 14);
  }

  free(): void {
    this.records.free();
  }
}

/** Bytes acknowledged over the last WINDOW_US of the receiver's clock, as a rate. */
const WINDOW_US: i64 = 500_000;
const ENTRIES = 512;

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

  private dropOldest(): void {
    this.sum -= unchecked(this.bytes[this.head]);
    this.head = (this.head + 1) % ENTRIES;
    this.count--;
  }
}

/** Bytes over the last 500 ms of our clock, in five 100 ms buckets: what the sender put on the hop. */
const BUCKET_US: i64 = 100_000;
const BUCKETS = 5;

export class SentRate {
  private readonly bytes: StaticArray<i64> = new StaticArray<i64>(BUCKETS);
  private bucketOf: i64 = -1;

  add(nowUs: i64, size: i32): void {
    this.roll(nowUs);
    unchecked((this.bytes[<i32>(this.bucketOf % BUCKETS)] += size));
  }

  /** Bits per second over the last 500 ms. */
  bps(nowUs: i64): f64 {
    this.roll(nowUs);
    let sum: i64 = 0;
    for (let i = 0; i < BUCKETS; i++) sum += unchecked(this.bytes[i]);
    return <f64>sum * 8 / (<f64>(BUCKETS * BUCKET_US) / 1e6);
  }

  /**
   * Bits per second over the four whole 100 ms buckets before the current one: the current bucket
   * has only part of its time behind it, and counted over a whole one it would read low.
   */
  completedBps(nowUs: i64): f64 {
    this.roll(nowUs);
    const current = <i32>(this.bucketOf % BUCKETS);
    let sum: i64 = 0;
    for (let i = 0; i < BUCKETS; i++) if (i != current) sum += unchecked(this.bytes[i]);
    return <f64>sum * 8 / (<f64>((BUCKETS - 1) * BUCKET_US) / 1e6);
  }

  private roll(nowUs: i64): void {
    const b = nowUs / BUCKET_US;
    if (this.bucketOf < 0) this.bucketOf = b;
    const steps = min(b - this.bucketOf, <i64>BUCKETS);
    for (let k: i64 = 1; k <= steps; k++) unchecked((this.bytes[<i32>((this.bucketOf + k) % BUCKETS)] = 0));
    if (b > this.bucketOf) this.bucketOf = b;
  }
}
