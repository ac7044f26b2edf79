// A context's timer armed for a time rather than after a delay: what a filter that waits for
// packets and gives up at a deadline (a jitter buffer, a merge, an FEC decoder) keeps per context.
import { Status } from "../../runtime/abi";
import { nowUs, timerCancel, timerSet } from "./host";

export class Deadline {
  /** When it fires, on the nowUs() clock; 0 while not armed. */
  dueUs: i64 = 0;

  constructor(readonly ctx: u32, readonly timer: i32) {}

  @inline get armed(): bool {
    return this.dueUs != 0;
  }

  /**
   * Fires at `dueUs`, at once if that has passed (a deadline from a packet's arrival can lie before
   * nowUs() after a stall). Arming again for the same time asks the host nothing. False when the
   * host refused the timer: the time it was armed for before, if any, stands.
   */
  arm(dueUs: i64): bool {
    if (this.dueUs == dueUs) return true;
    const delay = dueUs - nowUs();
    if (timerSet(this.ctx, this.timer, delay > 0 ? delay : 0) != Status.Ok) return false;
    this.dueUs = dueUs;
    return true;
  }

  cancel(): void {
    if (this.dueUs == 0) return;
    timerCancel(this.ctx, this.timer);
    this.dueUs = 0;
  }

  /** Call from onTimer when this timer fired: it is no longer armed. */
  @inline fired(): void {
    this.dueUs = 0;
  }
}
