// What the host makes of a filter's descriptors after a call (docs/abi.md "Descriptor", "Output
// area", "Drop reasons"): each batch packet's verdict and drop reason, and whether it takes each
// output packet. The one judgment for the proxy's chain and the SDK's harness, so that a filter
// bug the proxy punishes fails the author's test as well. Judging allocates nothing; only the
// explanation of a bad descriptor (batchProblem, outputProblem) builds a string.
import { D_CONTEXT, D_DEST, D_LENGTH, D_OFFSET, D_PORT, DESC_SIZE, Dest, DropReason, MAX_FILTER_DROP_REASONS, MAX_LEGS, Verdict } from "../abi.js";
import type { ArenaViews } from "./arena-views.js";

/** judgeBatch's outcomes besides a drop reason (which is >= 0). */
export const PASSED = -1;
export const HELD = -2;

/** Shared reason codes a filter may write (those below 200 that the ABI names); built once. */
const SHARED_REASONS = new Uint8Array(DropReason.HostFilterFailed);
for (const v of Object.values(DropReason)) if (typeof v === "number" && v < DropReason.HostFilterFailed) SHARED_REASONS[v] = 1;

/** A filter's drop reason, or HostBadReason when the code is not the filter's to use (no forged host reasons, bounded labels). */
export function filterReason(code: number): number {
  if (code < DropReason.HostFilterFailed) return SHARED_REASONS[code] === 1 ? code : DropReason.HostBadReason;
  if (code >= DropReason.FilterDefinedBase && code < DropReason.FilterDefinedBase + MAX_FILTER_DROP_REASONS) return code;
  return DropReason.HostBadReason;
}

/** Whether an output's dest and leg are ones the ABI knows (whether the segment has the leg is egress's business). */
export function validOutputTarget(dest: number, leg: number): boolean {
  return (dest === Dest.Forward || dest === Dest.Reverse || dest >= Dest.DestinationIndexBase) && leg < MAX_LEGS;
}

/** Whether an outcome is the host's verdict on a broken descriptor or a forged reason (worth telling the author). */
export function isHostVerdict(outcome: number): boolean {
  return outcome === DropReason.HostBadDescriptor || outcome === DropReason.HostBadReason;
}

/**
 * Batch packet k after msm_on_batch: PASSED (it goes on, inside its slot, on a valid leg), HELD,
 * or the DropReason the host counts it under: the filter's own reason, HostBadReason for a code
 * not the filter's, HostBadDescriptor for an unknown verdict or a passed packet out of its slot.
 */
export function judgeBatch(v: ArenaViews, k: number): number {
  const verdict = v.batchVerdict(k);
  if (verdict === Verdict.Pass) return v.batchOffset(k) < 0 || v.batchLeg(k) >= MAX_LEGS ? DropReason.HostBadDescriptor : PASSED;
  if (verdict === Verdict.Drop) return filterReason(v.batchReason(k));
  if (verdict === Verdict.Hold) return HELD;
  return DropReason.HostBadDescriptor;
}

/**
 * Whether the host takes output j of a call made for context `ctx`: inside its own output slot,
 * naming that context (a shared instance cannot slip one segment's packets into another), with a
 * valid dest and leg, and no ABI 1.1 port offset.
 */
export function acceptOutput(v: ArenaViews, j: number, ctx: number): boolean {
  return v.outputOffset(j) >= 0 && v.outputContext(j) === ctx && validOutputTarget(v.outputDest(j), v.outputLeg(j)) && v.outputPortFieldClear(j);
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** What a reason code the filter may not use is. */
function whoseReason(code: number): string {
  const named = (DropReason as unknown as Record<number, string | undefined>)[code];
  if (code >= DropReason.FilterDefinedBase) return "past the filter's own codes";
  if (code >= DropReason.HostFilterFailed) return named ? `the host's own (DropReason.${named})` : "reserved for the host";
  return "no shared code the ABI names";
}

/** Why judgeBatch gave a host verdict for packet k ("" when it did not), for the author. */
export function batchProblem(v: ArenaViews, k: number): string {
  const outcome = judgeBatch(v, k);
  if (!isHostVerdict(outcome)) return "";
  const head = `the host dropped packet ${k} of the batch as ${outcome === DropReason.HostBadReason ? "host_bad_reason" : "host_bad_descriptor"}: `;
  const verdict = v.batchVerdict(k);
  if (verdict === Verdict.Drop) {
    const code = v.batchReason(k);
    return `${head}drop reason ${code} is ${whoseReason(code)}; a filter drops with a shared DropReason below ${DropReason.HostFilterFailed} ` +
      `or with its own code, ${DropReason.FilterDefinedBase} to ${DropReason.FilterDefinedBase + MAX_FILTER_DROP_REASONS - 1}`;
  }
  if (verdict !== Verdict.Pass) return `${head}verdict ${verdict} is none of Pass (0), Drop (1) and Hold (2)`;
  if (v.batchOffset(k) < 0) {
    const a = v.arena;
    const d = a.descTable + k * DESC_SIZE;
    const start = a.slotBase + k * a.slotSize;
    return `${head}its descriptor (offset ${hex(v.view.getUint32(d + D_OFFSET, true))}, length ${v.view.getUint32(d + D_LENGTH, true)}) leaves its slot ` +
      `[${hex(start)}, ${hex(start + a.slotSize)}); Packet.resize keeps a packet inside it`;
  }
  return `${head}leg ${v.batchLeg(k)} does not exist (legs are 0 to ${MAX_LEGS - 1})`;
}

/** Why acceptOutput refused output j of a call for context `ctx` ("" when it did not), for the author. */
export function outputProblem(v: ArenaViews, j: number, ctx: number): string {
  if (acceptOutput(v, j, ctx)) return "";
  const head = `the host dropped output packet ${j} as host_bad_descriptor: `;
  const a = v.arena;
  const d = a.outTable + j * DESC_SIZE;
  if (v.outputOffset(j) < 0) {
    const start = a.outSlotBase + j * a.slotSize;
    return `${head}its descriptor (offset ${hex(v.view.getUint32(d + D_OFFSET, true))}, length ${v.view.getUint32(d + D_LENGTH, true)}) is not inside ` +
      `its own output slot [${hex(start)}, ${hex(start + a.slotSize)})`;
  }
  const named = v.view.getUint32(d + D_CONTEXT, true);
  if (named !== ctx) return `${head}it names context ${named}, not ${ctx}, the context of the call that made it`;
  const dest = v.view.getUint8(d + D_DEST);
  if (!validOutputTarget(dest, 0)) return `${head}dest ${dest} is none of Dest.Forward (0), Dest.Reverse (1) and Dest.DestinationIndexBase (16) + k`;
  const leg = v.outputLeg(j);
  if (leg >= MAX_LEGS) return `${head}leg ${leg} does not exist (legs are 0 to ${MAX_LEGS - 1})`;
  return `${head}bytes 20-21 hold ${v.view.getUint16(d + D_PORT, true)}, an ABI 1.1 port offset; rebuild the filter with the 1.2 SDK and send on a leg`;
}
