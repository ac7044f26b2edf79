// The few error classes the filter host throws. Each names the filter it concerns.

/** A module was refused at load: bad digest, bad ABI, bad imports or exports, bad arena. */
export class FilterLoadError extends Error {
  override readonly name = "FilterLoadError";
  constructor(readonly filter: string, message: string) {
    super(`filter '${filter}': ${message}`);
  }
}

/** A filter rejected a config (root, context) or a state blob; `reason` is the filter's own message. */
export class FilterConfigError extends Error {
  override readonly name = "FilterConfigError";
  constructor(readonly filter: string, readonly status: number, readonly reason: string) {
    super(`filter '${filter}' rejected its config: ${reason || `status ${status}`}`);
  }
}

/** A filter trapped, aborted or returned a negative count; the instance is no longer usable. */
export class FilterFailure extends Error {
  override readonly name = "FilterFailure";
  constructor(readonly filter: string, readonly during: string, readonly reason: string) {
    super(`filter '${filter}' failed in ${during}: ${reason}`);
  }
}
