// What the filter holds per segment: an encoder or a decoder, behind one interface, so that the
// entry file dispatches without knowing which.
import { SegmentContext } from "../../../sdk/assembly/context-filter";
import { Counts } from "./metrics";

export { PASS, TAKE, currentCall } from "../../../sdk/assembly/context-filter";

export class FecContext extends SegmentContext {
  readonly counts: Counts = new Counts();

  flush(): void {
    this.counts.flush(this.id);
  }
}
