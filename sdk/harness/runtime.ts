// The runtime parts the harness drives, through the runtime's public entry point only.
export {
  compileFilterModule, dropReasonName, FilterInstance, FilterLoadError, FilterConfigError, FilterFailure, hostCryptoUnavailable,
  batchProblem, outputProblem, PASSED, HELD, DEFAULT_STAGE_LIMITS, stageBudgets, type TokenBucket,
  type FilterHostServices, type HistogramValue, type LoadedFilterModule,
} from "../../runtime/index.js";

