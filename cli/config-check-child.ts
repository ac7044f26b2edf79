// The filters' part of `msm proxy --check` (config-check.ts), in a process of its own: a filter
// that never returns is ended from outside, as the proxy's watchdog ends a worker. It says what it
// calls before each call, so that the parent can name the one that did not return.
import { LogLevel } from "../runtime/abi.js";
import { FilterConfigError, FilterFailure, FilterInstance, FilterLoadError, loadFilterModule, segmentFlags, type FilterHostServices, type ProxyConfig } from "../runtime/index.js";
import { moduleErrorLine } from "./apply-errors.js";

export type CheckRequest = { readonly config: ProxyConfig };
export type CheckMessage =
  | { readonly type: "calling"; readonly at: string; readonly call: string }
  | { readonly type: "done"; readonly problems: string[]; readonly warnings: string[] };

const send = (m: CheckMessage): void => void process.send!(m);
/** Warnings the filters and the host gave while checked (a drop-reason table a proxy would not use): a start would log them. */
const warnings: string[] = [];
const services: FilterHostServices = {
  log: (filter, level, message) => {
    if (level >= LogLevel.Warn) warnings.push(`filters.${filter}: filter ${filter}: ${message}`);
  },
  timerSet: () => {},
  timerCancel: () => {},
};

process.once("message", (req: CheckRequest) => void check(req.config).then((problems) => send({ type: "done", problems, warnings: [...new Set(warnings)] })));

async function check(config: ProxyConfig): Promise<string[]> {
  const used = new Set(config.segments.flatMap((s) => s.chain.map((st) => st.filter)));
  const problems: string[] = [];
  for (const [name, entry] of Object.entries(config.filters)) {
    if (used.has(name)) problems.push(...await checkFilter(name, entry, config));
  }
  return problems;
}

/** The filter's answers: to its module and root config, then to each stage's config that names it. */
async function checkFilter(name: string, entry: ProxyConfig["filters"][string], config: ProxyConfig): Promise<string[]> {
  const start = async (): Promise<FilterInstance> => {
    send({ type: "calling", at: `filters.${name}`, call: "its start (load, _initialize, msm_configure_root)" });
    const module = await loadFilterModule({ name, path: entry.path, maxMemoryPages: entry.maxMemoryPages, ...(entry.sha256 ? { sha256: entry.sha256 } : {}) });
    return FilterInstance.create(module, entry.config, services);
  };
  let instance: FilterInstance;
  try {
    instance = await start();
  } catch (err) {
    if (err instanceof FilterConfigError) return [`filters.${name}.config: ${err.message}`];
    if (err instanceof FilterLoadError || err instanceof FilterFailure) return [moduleErrorLine(err.message, config.filters) ?? `filters.${name}: ${err.message}`];
    throw err;
  }
  const problems: string[] = [];
  let ctx = 1;
  for (const [i, seg] of config.segments.entries()) {
    for (const [j, stage] of seg.chain.entries()) {
      if (stage.filter !== name) continue;
      const at = `segments[${i}] (segment '${seg.name}').chain[${j}].config`;
      try {
        send({ type: "calling", at, call: "msm_context_create" });
        instance.createContext(ctx, stage.config, 1 + seg.legs.length, segmentFlags(seg));
        send({ type: "calling", at, call: "msm_context_destroy" });
        instance.destroyContext(ctx++);
      } catch (err) {
        if (err instanceof FilterConfigError) problems.push(`${at}: ${err.message}`);
        else if (err instanceof FilterFailure) {
          problems.push(`${at}: ${err.message} (while its context was created)`);
          instance = await start(); // the failed instance is done: the next stages get a fresh one
        } else throw err;
      }
    }
  }
  instance.close();
  return problems;
}
