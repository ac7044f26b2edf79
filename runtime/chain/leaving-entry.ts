// Where the packets a stage hands over as it leaves a chain (a reload removed it, or its successor
// refused its state) enter the new chain. The chain is a stack whose stage 0 faces the sender: an
// upstream packet must pass every new stage between the leaving stage's place and the sender, a
// downstream one every new stage between that place and the receivers, stages the same reload
// added included (an srtp stage added at the head must protect what a removed stage hands back to
// the sender). docs/proxy.md, "Hot swap", states the rule.

/** Downstream packets run stages[downFrom..]; upstream ones stages[upFrom], stages[upFrom - 1] .. stages[0]. */
export interface LeavingEntry {
  readonly downFrom: number;
  readonly upFrom: number;
}

/**
 * The entry points in `next` for what old[k] hands over. `predecessor` maps a new stage to the old
 * stage it continues (kept), as the reload matched them.
 *
 * With a successor (old[k] itself kept, at new index s, which refused its state) the place is s,
 * as the new chain puts it: downstream from s + 1, upstream from s - 1. The successor is not
 * passed: it would handle the packets a second time, and it may run on the very instance whose
 * output area holds them. Without one, kept stages from old[0 .. k-1] are the removed stage's
 * sender side, those from old[k+1 ..] its receivers' side, and the place is the gap between the
 * last of the sender side (new index a, -1 if none) and the first of the receivers' side (new index
 * b, n if none): downstream from a + 1, upstream from b - 1, so stages the reload put in that gap
 * are passed either way (which side of the removed stage they stand is not known; passing one that
 * protects is what keeps a packet from leaving in plaintext). Where the reload also reordered kept
 * stages across the gap, each way's span widens to take in every kept stage of its side.
 */
export function leavingEntry<T>(old: readonly T[], next: readonly T[], predecessor: ReadonlyMap<T, T>, k: number): LeavingEntry {
  let lastSender = -1;
  let firstReceiver = next.length;
  let successor = -1;
  next.forEach((st, j) => {
    const was = predecessor.get(st);
    const at = was === undefined ? -1 : old.indexOf(was);
    if (at < 0) return; // added by the reload
    if (at < k) lastSender = Math.max(lastSender, j);
    else if (at > k) firstReceiver = Math.min(firstReceiver, j);
    else successor = j;
  });
  if (successor >= 0) return { downFrom: successor + 1, upFrom: successor - 1 };
  return { downFrom: Math.min(lastSender + 1, firstReceiver), upFrom: Math.max(firstReceiver - 1, lastSender) };
}
