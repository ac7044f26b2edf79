// A filter's name: one rule, and one message, for every tool that names a filter (`msm filter new`,
// `msmctl filter push`, a manifest's stage). It is the proxy's own rule for `filters.<name>`
// (runtime/config), so that a name one tool takes the proxy and the others take too.
import { hostFamilyClash } from "../../runtime/index.js";

/** What a filter name may be: it names the filter in a proxy's config, the registry, a project's package and .wasm. */
export const FILTER_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;

/** Why `name` cannot name a filter, naming it; undefined when it can. */
export function filterNameProblem(name: string): string | undefined {
  const shown = JSON.stringify(name);
  if (!FILTER_NAME_PATTERN.test(name)) return `invalid filter name ${shown}: use 1-63 lower-case letters, digits, '_' and '-', starting with a letter (for example my-filter)`;
  // the proxy's config refuses a name whose metrics would take a host family's name
  const clash = hostFamilyClash(name);
  return clash === undefined ? undefined : `invalid filter name ${shown}: ${clash}`;
}
