// The runtime parts the harness drives, through the runtime's public entry point only.
export {
  compileFilterModule, dropReasonName, FilterInstance, FilterLoadError, FilterConfigError, FilterFailure, hostCryptoUnavailable,
  batchProblem, outputProblem, PASSED, HELD,
  type FilterHostServices, type HistogramValue, type LoadedFilterModule,
} from "../../runtime/index.js";

