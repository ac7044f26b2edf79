// Per-context state made once per segment: the SDK side of createContext. A filter names its
// context class C and its parsed-config class S and writes two methods, readConfig (config ->
// S) and newContext (S -> C); the factory does the rest the same way for every filter: the
// config's verdict, the duplicate check, the refusal when there is no room, the context map,
// and the dispatch of destroy and hot-swap state to the context object. Packets are not
// dispatched here (ContextFilter does that), so a hot filter can keep its own batch loop and
// look its contexts up in `contexts` directly.
import { Status } from "../../runtime/abi";
import { noRoomMessage } from "./chunks";
import { Config } from "./config";
import { ContextMap } from "./contexts";
import { Filter } from "./filter";
import { nowUs, setError } from "./host";
import { Packet } from "./packet";
import { StateReader, StateWriter } from "./state";

/** onPacket's answer: pass in place, or take the packet (held, copied); else a drop reason. */
export const PASS: u32 = 0;
export const TAKE: u32 = 0x10000; // above every drop reason (u16 range)

/** One segment's state. Override what the filter does; the defaults pass and hold nothing. */
export class SegmentContext {
  /** The call in which the context was last queued for flushing its counts (ContextFilter). */
  touchedCall: u32 = 0;
  /** The next context in a ContextPool's free list. */
  pooledNext: SegmentContext | null = null;

  /** `id` is set again when a pooled context is reused (ContextPool.take). */
  constructor(public id: u32) {}

  /** The verdict for one packet of this context: PASS, TAKE or a drop reason. */
  onPacket(p: Packet, nowUs: i64): u32 {
    return PASS;
  }

  onTimer(timer: i32, nowUs: i64): void {}

  /** The segment goes: emit what is held (called again while it emits). */
  drain(nowUs: i64): void {}

  exportState(out: StateWriter, nowUs: i64): Status {
    return Status.Ok;
  }

  importState(blob: StateReader, nowUs: i64): Status {
    return blob.length == 0 ? Status.Ok : Status.BadState;
  }

  /** Sends the counts gathered since the last flush to the host. */
  flush(): void {}

  /** The segment is gone: free the context's buffers, or give it back to its pool. */
  free(): void {}
}

/**
 * A Filter with one C per context, made from a config parsed into an S. Override readConfig and
 * newContext; createContext, destroyContext, exportState and importState are done here.
 */
export abstract class ContextFactory<C extends SegmentContext, S> extends Filter {
  /** The live contexts by id: look them up here in your own batch loop. */
  protected contexts: ContextMap<C> = new ContextMap<C>(64);

  /**
   * Reads one context's config into an S (start from your root defaults). Report a bad value
   * with cfg.fail, naming the key: the factory then refuses the context with that message, and
   * newContext is not called. Allocate nothing that must be freed here.
   */
  protected abstract readConfig(cfg: Config): S;

  /**
   * Makes context `id` from a config that passed. Return null only after this.noRoom(...) (the
   * context is refused with NoSpace) or after cfg.fail(...) (refused with BadConfig): free what
   * you took before returning null.
   */
  protected abstract newContext(id: u32, s: S, cfg: Config): C | null;

  createContext(ctx: u32, cfg: Config): Status {
    const s = this.readConfig(cfg);
    const status = cfg.finish();
    if (status != Status.Ok) return status;
    if (this.contexts.get(ctx) !== null) {
      setError("context " + ctx.toString() + " already exists");
      return Status.BadArgument;
    }
    const c = this.newContext(ctx, s, cfg);
    if (c === null) return cfg.ok ? Status.NoSpace : cfg.finish();
    this.contexts.set(ctx, c);
    return Status.Ok;
  }

  /**
   * For newContext when a buffer could not be taken: sets the error "no room for another `what`:
   * it needs N KiB, and ..." (what ran out, what to raise; `orLower` adds ", or lower X").
   */
  protected noRoom(what: string, needBytes: i64, orLower: string = ""): C | null {
    setError(noRoomMessage(what, needBytes, orLower));
    return null;
  }

  destroyContext(ctx: u32): void {
    const c = this.contexts.delete(ctx);
    if (c !== null) c.free();
  }

  exportState(ctx: u32, out: StateWriter): Status {
    const c = this.contexts.get(ctx);
    return c === null ? Status.BadArgument : c.exportState(out, nowUs());
  }

  importState(ctx: u32, blob: StateReader): Status {
    const c = this.contexts.get(ctx);
    return c === null ? Status.BadArgument : c.importState(blob, nowUs());
  }
}
