// Drives a sender-mode congestion context on the harness clock with media, and answers it with
// transport-wide feedback written by the independent codec (test/lib/rtcp-cc.ts), not by the
// filter's receiver mode: a hop modelled as a delay (or a loss) per packet it carries.
import { PacketFlag, buildRtp, type FilterHarness, type OutputPacket } from "../../../sdk/harness/index.js";
import { TwccRecorder, transportSeqOf } from "../../../test/lib/rtcp-cc.js";
import { SSRC, downstreamOf } from "./cc-lib.js";

export interface DriveOptions {
  readonly packets: number;
  /** Media packet spacing, us. */
  readonly intervalUs: number;
  /** RTP payload bytes. */
  readonly size: number;
  /** The hop's one-way delay for the `k`-th stamped packet, us, or null when the hop loses it. */
  readonly delayUs: (k: number) => number | null;
  readonly feedbackEveryUs?: number;
  readonly extensionId?: number;
  /** First RTP sequence number (a second call goes on from where the first stopped). */
  readonly seq0?: number;
}

export interface Driven {
  /** What the sender let go downstream, in order. */
  readonly stamped: Uint8Array[];
  /** What it sent upstream (signals to the origin), with the metric target_bps just after. */
  readonly upstream: { packet: OutputPacket; targetBps: number }[];
  /** Verdicts of the feedback compounds it was given. */
  readonly feedbackVerdicts: string[];
}

/**
 * Runs `o.packets` media packets through context `ctx` of `h`, feedback every 50 ms from
 * `recorder`. A packet the pacer sends from a timer counts as sent at the end of that step (up to
 * `intervalUs` late): keep the media below the target where the timing matters.
 */
export function drive(h: FilterHarness, ctx: number, recorder: TwccRecorder, o: DriveOptions): Driven {
  const id = o.extensionId ?? 5;
  const every = o.feedbackEveryUs ?? 50_000;
  const stamped: Uint8Array[] = [];
  const upstream: Driven["upstream"] = [];
  const feedbackVerdicts: string[] = [];
  const inFlight: { seq: number; arrivalUs: number }[] = [];
  let nextFeedbackUs = h.nowUs + every;
  const target = (): number => (h.metric("target_bps", ctx) as number | undefined) ?? NaN;
  const take = (outputs: readonly OutputPacket[], passed: readonly Uint8Array[]): void => {
    for (const b of passed) {
      stamped.push(b);
      const seq = transportSeqOf(b, id);
      if (seq === undefined) continue;
      const delay = o.delayUs(stamped.length - 1);
      if (delay !== null) inFlight.push({ seq, arrivalUs: h.nowUs + delay });
    }
    for (const out of outputs) if (out.flags & PacketFlag.Upstream) upstream.push({ packet: out, targetBps: target() });
  };
  const feedbackDue = (): void => {
    while (h.nowUs >= nextFeedbackUs) {
      inFlight.sort((a, b) => a.arrivalUs - b.arrivalUs);
      while (inFlight.length > 0 && inFlight[0]!.arrivalUs <= nextFeedbackUs) {
        const p = inFlight.shift()!;
        recorder.record(p.seq, p.arrivalUs);
      }
      const fb = recorder.feedback();
      if (fb) {
        const r = h.runBatch([{ ctx, bytes: fb, flags: PacketFlag.Rtcp | PacketFlag.Upstream }]);
        feedbackVerdicts.push(r.packets[0]!.verdict === "drop" ? r.packets[0]!.reasonName : r.packets[0]!.verdict);
        take(r.outputs, []);
      }
      nextFeedbackUs += every;
    }
  };
  for (let k = 0; k < o.packets; k++) {
    const seq = ((o.seq0 ?? 0) + k) & 0xffff;
    const bytes = buildRtp({ seq, timestamp: (Math.floor(((o.seq0 ?? 0) + k) / 3) * 3000) >>> 0, ssrc: SSRC, payloadSize: o.size, marker: k % 3 === 2 });
    const r = h.runBatch([{ ctx, bytes, leg: 0 }]);
    take(r.outputs.filter((x) => x.flags & PacketFlag.Upstream), downstreamOf(r));
    const timed = h.advanceTime(o.intervalUs);
    take(timed, timed.filter((x) => !(x.flags & PacketFlag.Upstream)).map((x) => x.bytes));
    feedbackDue();
  }
  return { stamped, upstream, feedbackVerdicts };
}
