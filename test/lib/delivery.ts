// Whether a counted stream got through a proxy, judged so that a busy machine gives a verdict and
// not a flake: every packet missing at the sink must be explained, by the kernel (a socket's
// receive queue overflowed: /proc/net/udp drops of the proxy's listen socket or the sink) or by
// the proxy's own drop counters for reasons a busy machine causes (a send the kernel refused, a
// full egress queue). Any other loss, any proxy drop for another reason, any duplicate: a failure.
import type { Proxy } from "../../runtime/index.js";
import { DropWatch, settled, unexplainedLoss } from "./kernel-drops.js";
import type { Sink } from "./udp.js";

/** Proxy drop reasons a busy machine causes; any other reason is a loss the test must see. */
const LOAD_REASONS = new Set(["host_send_failed", "host_backpressure"]);

async function segmentDrops(proxy: Proxy, segment: string): Promise<Record<string, number>> {
  const snap = await proxy.stats();
  return { ...(snap.segments.find((s) => s.name === segment)?.drops ?? {}) };
}

export interface Delivery {
  /** Packets the kernel dropped per watched port, since the watch began. */
  readonly kernel: { total: number; byPort: Record<number, number> };
  /** Packets the proxy dropped for load reasons (or others the test accepts) since the watch began. */
  readonly proxyLoadDrops: number;
  readonly missing: number;
}

/** Watches one stream: kernel drops on `ports` and the proxy's drop counters of `segment`, from now on. */
export class DeliveryWatch {
  private constructor(
    private readonly proxy: () => Proxy | null,
    private readonly segment: string,
    private readonly kernel: DropWatch,
    private readonly before: Record<string, number>,
    private readonly accepted: ReadonlySet<string>,
  ) {}

  /**
   * `proxy` is read when needed (an agent's proxy exists only once a config runs). `accept` names
   * more drop reasons the test accepts (a filter's consequence of kernel loss, say).
   */
  static async start(proxy: () => Proxy | null, segment: string, ports: readonly number[], accept: readonly string[] = []): Promise<DeliveryWatch> {
    const p = proxy();
    return new DeliveryWatch(proxy, segment, new DropWatch(ports), p ? await segmentDrops(p, segment) : {}, new Set([...LOAD_REASONS, ...accept]));
  }

  /**
   * Waits until the sink has packets from..from+n-1 or stops getting more for a second (at most
   * `timeoutMs`), then throws naming whatever is unexplained. Returns the accounting.
   */
  async expectDelivered(sink: Sink, n: number, from = 0, timeoutMs = 15_000): Promise<Delivery> {
    if (sink.tally(n, from).missing > 0) await settled(() => sink.received, 1000, timeoutMs);
    await new Promise((r) => setTimeout(r, 200)); // a late duplicate would show up here
    const { missing, duplicates } = sink.tally(n, from);
    const proxy = this.proxy();
    const after = proxy ? await segmentDrops(proxy, this.segment) : {};
    let proxyLoadDrops = 0;
    const otherDrops: string[] = [];
    for (const [reason, count] of Object.entries(after)) {
      const delta = count - (this.before[reason] ?? 0);
      if (delta <= 0) continue;
      if (this.accepted.has(reason)) proxyLoadDrops += delta;
      else otherDrops.push(`${reason} ${delta}`);
    }
    const unexplained = unexplainedLoss({ sent: n, received: n - missing, proxyDrops: proxyLoadDrops, kernel: this.kernel, duplicates });
    if (unexplained || otherDrops.length > 0) {
      throw new Error(`stream of ${n} packets: ${unexplained ?? "every loss explained"}${otherDrops.length > 0 ? `; the proxy dropped for reasons a busy machine does not cause: ${otherDrops.join(", ")}` : ""}`);
    }
    return { kernel: this.kernel.since(), proxyLoadDrops, missing };
  }
}
