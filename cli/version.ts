// The version a CLI prints (`msm version`, `msmctl version`): the package's, and the filter ABI
// the proxy hosts, which is what decides whether a filter build runs on it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ABI_VERSION_MAJOR, ABI_VERSION_MINOR } from "../runtime/abi.js";

/** The package's version, from the package.json beside dist/ (or beside the sources under Bun). */
function packageVersion(): string {
  for (const up of ["../../package.json", "../package.json"]) {
    try {
      const json = JSON.parse(readFileSync(fileURLToPath(new URL(up, import.meta.url)), "utf8")) as { name?: string; version?: string };
      if (json.name === "msm" && json.version) return json.version;
    } catch {
      // not there: the next
    }
  }
  return "unknown";
}

/** What `version` says, as fields: `-o json` and `-o yaml` print them. */
export function versionInfo(): { version: string; filterAbi: string; runtime: { name: "bun" | "node"; version: string } } {
  const runtime = process.versions.bun ? { name: "bun" as const, version: process.versions.bun } : { name: "node" as const, version: process.versions.node };
  return { version: packageVersion(), filterAbi: `${ABI_VERSION_MAJOR}.${ABI_VERSION_MINOR}`, runtime };
}

export function versionLine(program: string): string {
  const v = versionInfo();
  return `${program} ${v.version} (filter ABI ${v.filterAbi}, ${v.runtime.name === "bun" ? "Bun" : "Node.js"} ${v.runtime.version})`;
}
