// The runtime's own chain code, driven in process for the in-process benchmarks (bench/micro.ts,
// bench/srtp.ts): a FilterPool holds the instances and a ChainRunner runs a batch through a
// chain's stages exactly as a data-plane worker does. The benchmarks only fill the input list
// and time the calls; there is no second copy of the packet loop.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ChainRunner, type EgressFn, DEFAULT_FAILURE_POLICY, FilterPool, type ChainStage, type FilterSpec, type InstanceSlot, PacketList, SegmentStats } from "../runtime/index.js";
import { ROOT, progress } from "./common.js";

export type { ChainStage, InstanceSlot };

/** The SDK's build flags, as every filter is built with them. */
const SDK_FLAGS = JSON.parse(readFileSync(join(ROOT, "sdk", "build-flags.json"), "utf8")) as string[];

/**
 * Compiles bench/assembly/noop.ts, the SDK's batch loop with an empty onPacket, in memory
 * (nothing is written to the repository): the stage that costs the host only its own work.
 */
export async function compileNoop(): Promise<Uint8Array> {
  const { default: asc } = await import("assemblyscript/asc");
  let binary: Uint8Array | undefined;
  const entry = join(ROOT, "bench", "assembly", "noop.ts");
  const result = await asc.main([entry, "--outFile", "noop.wasm", ...SDK_FLAGS], {
    writeFile: (name: string, contents: Uint8Array | string) => {
      if (name.endsWith(".wasm") && typeof contents !== "string") binary = contents;
    },
  });
  if (result.error || !binary) throw new Error(`cannot compile ${entry}: ${result.error?.message ?? "no output"}\n${result.stderr.toString()}`);
  return binary;
}

export class ChainBench {
  /** Packets that left the chain so far (the default egress counts them). */
  out = 0;
  private clockUs = 1_000_000;
  private nextCtx = 1;
  private readonly pool: FilterPool;
  private readonly runner = new ChainRunner();
  private readonly segment = new SegmentStats();
  private readonly countOut: EgressFn = (list) => {
    this.out += list.count;
  };

  /** `hostCrypto: false`: the filters get no host crypto (ABI 1.4), as on a host without the addon. */
  constructor(options: { readonly hostCrypto?: boolean } = {}) {
    this.pool = new FilterPool({
      log: (filter, _level, message) => progress(`${filter}: ${message}`),
      timerSet: () => {},
      timerCancel: () => {},
      timerCancelAll: () => {},
      ...(options.hostCrypto === false && { hostCrypto: false }),
    });
  }

  /**
   * The instance of a filter. It holds one idle context of its own, so that it stays up while
   * stages come and go (the pool drops an instance with its last stage).
   */
  async acquire(spec: FilterSpec, idleConfig: unknown = {}): Promise<InstanceSlot> {
    const slot = await this.pool.acquire(spec);
    if (slot.users.size === 0) this.attach(slot, idleConfig);
    return slot;
  }

  /** A stage with a fresh context in the slot's instance (as a segment's chain would have). */
  attach(slot: InstanceSlot, config: unknown): ChainStage {
    return this.pool.attach(slot, this.nextCtx++, config, DEFAULT_FAILURE_POLICY, "bench");
  }

  detach(stage: ChainStage): void {
    this.pool.detach(stage);
  }

  close(): void {
    this.pool.close();
  }

  /** Runs input[0..count) through the stages: each packet arrives one microsecond after the last. */
  runBatch(stages: readonly ChainStage[], input: PacketList, count: number, egress: EgressFn = this.countOut): void {
    for (let k = 0; k < count; k++) input.arrivalUs[k] = this.clockUs++;
    input.count = count;
    this.runner.setClock(this.clockUs, this.clockUs);
    this.runner.run(stages, 0, input, this.segment, egress);
  }
}

/**
 * An input list of `count` packets, each a copy of `template` in a buffer of its own, as
 * datagrams arrive from a socket; `stampSequence` gives them fresh RTP sequence numbers.
 */
export function packetRow(template: Uint8Array, count: number): PacketRow {
  const packets: Uint8Array[] = [];
  const input = new PacketList(count);
  for (let k = 0; k < count; k++) {
    const p = Uint8Array.from(template);
    packets.push(p);
    input.push(p, 0, p.length, 0, 0, 5004, 0, 0);
  }
  return { packets, input };
}

export interface PacketRow {
  readonly packets: readonly Uint8Array[];
  readonly input: PacketList;
}

/** Writes sequence numbers seq, seq+1, ... into the first `count` packets of a row; returns the next. */
export function stampSequence(row: PacketRow, count: number, seq: number): number {
  for (let k = 0; k < count; k++) {
    const p = row.packets[k]!;
    p[2] = (seq >>> 8) & 0xff;
    p[3] = seq & 0xff;
    seq = (seq + 1) & 0xffff;
  }
  return seq;
}
