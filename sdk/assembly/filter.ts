// The filter skeleton. A filter extends Filter, overrides what it needs, and registers one
// instance at top level; exports.ts turns the ABI calls into calls on that instance.
import { Status } from "../../runtime/abi";
import { Config } from "./config";
import { Packet } from "./packet";
import { StateReader, StateWriter } from "./state";

export class Filter {
  /** HostFeature bits the filter cannot work without (the host refuses it if one is missing). */
  requiredFeatures(): i32 {
    return 0;
  }

  /**
   * FilterPolicy bits the host must honour whatever the config says: return
   * FilterPolicy.MustFailClosed if passing packets on without this filter would do harm
   * (an encryption filter would leak plaintext).
   */
  policy(): i32 {
    return 0;
  }

  /**
   * The module-wide config (called once, before any context). Define metrics here.
   * The default accepts only an empty object.
   */
  configureRoot(cfg: Config): Status {
    cfg.rejectUnknown([]);
    return cfg.finish();
  }

  /**
   * A segment starts using the filter with config `cfg`. Return Status.Ok, Status.BadConfig
   * (after cfg.finish() or setError), or Status.NoSpace. The default accepts only {}.
   */
  createContext(ctx: u32, cfg: Config): Status {
    cfg.rejectUnknown([]);
    return cfg.finish();
  }

  /**
   * The segment is going away (removed, or the proxy is shutting down): emit into Output what
   * you hold for it (held packets, pending repair) so that nothing is lost. destroyContext follows.
   */
  drainContext(ctx: u32): void {}

  /** The segment stopped using the filter; its timers are already gone. */
  destroyContext(ctx: u32): void {}

  /**
   * A batch of `count` packets (Packet.at(0 .. count-1)), possibly of several contexts and both
   * directions. The default calls onPacket for each.
   */
  onBatch(count: i32): void {
    for (let i = 0; i < count; i++) this.onPacket(Packet.at(i));
  }

  /** One packet of a batch. The default passes it. */
  onPacket(pkt: Packet): void {}

  /** Timer `timer` of `ctx` fired (one-shot). The batch is not valid here; Output is. */
  onTimer(ctx: u32, timer: i32): void {}

  /**
   * Hot swap: write the context's state (start with your own format version). Writing nothing
   * carries nothing. Return a non-Ok Status to make the swap go on without state.
   */
  exportState(ctx: u32, out: StateWriter): Status {
    return Status.Ok;
  }

  /**
   * Hot swap: the new instance reads what exportState wrote, right after createContext.
   * Return Status.BadState for a blob this version does not understand. The default accepts
   * only an empty blob.
   */
  importState(ctx: u32, blob: StateReader): Status {
    return blob.length == 0 ? Status.Ok : Status.BadState;
  }
}

let registered: Filter | null = null;

/** Registers the filter instance the ABI exports call. Call once, at top level: a second call aborts. */
export function register(filter: Filter): void {
  if (registered !== null) {
    abort("register() was called twice: a module serves one filter; call register(new YourFilter()) once, at top level");
  }
  registered = filter;
}

/** The registered filter, or null. */
export function registeredFilter(): Filter | null {
  return registered;
}
