// `msm proxy --config FILE --check`: what a start would refuse, found without starting, as
// `nginx -t` does: the file's keys and rules, its secret references, and each filter's answer to
// its module-wide config and to every stage's config (the filters run here, in the harness, with
// its watchdog on every call). Ports are not bound: whether one is free is the start's to find.
import { ConfigError, loadProxyConfigFile, resolveSecrets, type ProxyConfig } from "../runtime/index.js";
import { FilterConfigError, FilterFailure, FilterHarness, FilterLoadError } from "../sdk/harness/index.js";

export interface CheckResult {
  readonly problems: readonly string[];
  readonly config?: ProxyConfig;
}

/** Checks a proxy config file; `problems` name the field, as a start or a reload would. */
export async function checkProxyConfigFile(file: string): Promise<CheckResult> {
  let config: ProxyConfig;
  try {
    config = await loadProxyConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) return { problems: err.issues };
    throw err;
  }
  const secrets = await resolveSecrets(config);
  if (secrets.problems.length > 0) return { problems: secrets.problems, config };
  const problems: string[] = [];
  // the filters a chain uses, as a start loads them (an entry no chain names is not loaded)
  const used = new Set(secrets.config.segments.flatMap((s) => s.chain.map((st) => st.filter)));
  for (const [name, entry] of Object.entries(secrets.config.filters)) if (used.has(name)) problems.push(...await checkFilter(name, entry, secrets.config));
  return { problems, config };
}

/** The filter's answers: to its module and root config, then to each stage's config that names it. */
async function checkFilter(name: string, entry: ProxyConfig["filters"][string], config: ProxyConfig): Promise<string[]> {
  const load = (): Promise<FilterHarness> => FilterHarness.load(entry.path, {
    name, rootConfig: entry.config, maxMemoryPages: entry.maxMemoryPages, ...(entry.sha256 ? { sha256: entry.sha256 } : {}),
  });
  let harness: FilterHarness;
  try {
    harness = await load();
  } catch (err) {
    if (err instanceof FilterConfigError) return [`filters.${name}.config: filter '${name}' rejected its root config: ${err.reason || err.message}`];
    if (err instanceof FilterLoadError || err instanceof FilterFailure) return [`filters.${name}: ${err.message}`];
    throw err;
  }
  const problems: string[] = [];
  for (const [i, seg] of config.segments.entries()) {
    for (const [j, stage] of seg.chain.entries()) {
      if (stage.filter !== name) continue;
      const at = `segments[${i}] (segment '${seg.name}').chain[${j}].config`;
      try {
        harness.destroyContext(harness.createContext(stage.config));
      } catch (err) {
        if (err instanceof FilterConfigError) problems.push(`${at}: ${err.message}`);
        else if (err instanceof FilterFailure) {
          problems.push(`${at}: ${err.message} (while its context was created)`);
          harness = await load(); // the failed instance is done: the next stages get a fresh one
        } else throw err;
      }
    }
  }
  return problems;
}
