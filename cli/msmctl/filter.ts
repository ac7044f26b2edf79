// `msmctl filter push NAME@VERSION FILE.wasm`: puts a module in the control plane's registry.
// Proxies fetch modules by digest, so a version once pushed means these bytes for good.
import { readFile } from "node:fs/promises";
import { CliError } from "./client.js";
import type { Context } from "./context.js";
import { UsageError } from "./flags.js";
import { bytes, render } from "./format.js";
import { splitFilterRef } from "./manifest.js";
import { newestVersion } from "../../controlplane/api/versions.js";
import { filterNameProblem } from "../../sdk/scaffold/filter-name.js";

const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const WASM_MAGIC = Buffer.from([0x00, 0x61, 0x73, 0x6d]);

export async function filterCommand(ctx: Context): Promise<number> {
  const [sub, ref, file, ...extra] = ctx.words;
  if (sub !== "push") throw new UsageError(sub === undefined ? "filter needs a subcommand: push" : `filter: unknown subcommand '${sub}' (push; list with 'msmctl get filters')`);
  if (!ref || !file || extra.length > 0) throw new UsageError("usage: msmctl filter push NAME@VERSION FILE.wasm");
  const { name, version } = splitFilterRef(ref);
  const problem = filterNameProblem(name);
  if (problem !== undefined) throw new UsageError(problem);
  if (!version) throw new UsageError(`'${ref}' has no version: push NAME@VERSION (e.g. ${name}@1.0.0)`);
  if (!VERSION.test(version)) throw new UsageError(`filter version '${version}': letters, digits, '.', '_', '+' and '-'`);
  let wasm: Buffer;
  try {
    wasm = await readFile(file);
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  if (wasm.length < 8 || !wasm.subarray(0, 4).equals(WASM_MAGIC)) throw new CliError(`${file} is not a WebAssembly module (no \\0asm header)`);
  const res = await ctx.api().pushFilter({ name, version, wasm });
  if (ctx.output !== "table") {
    ctx.io.out(render(res, ctx.output));
    return 0;
  }
  const r = res.ref;
  const digest = r ? ` (sha256 ${r.sha256.slice(0, 12)}, ${bytes(r.size)})` : "";
  ctx.io.out(`filter/${name}@${version} ${res.alreadyPresent ? "unchanged, already present" : "pushed"}${digest}\n`);
  if (!res.alreadyPresent) ctx.io.out(await whatMoves(ctx, name, version));
  return 0;
}

/** Which segments a push moves: those that name the filter without a version, if the pushed one is now the newest (api/versions.ts). */
async function whatMoves(ctx: Context, name: string, version: string): Promise<string> {
  const [{ filters }, { segments }] = await Promise.all([ctx.api().listFilters(), ctx.api().listSegments({ proxy: "" })]);
  const newest = newestVersion(filters.filter((f) => f.name === name), (f) => f.version, (f) => f.pushedAtMs);
  const unpinned = segments.filter((s) => s.chain.some((st) => st.filter === name && st.version === "")).map((s) => s.name).sort();
  if (unpinned.length === 0) return "";
  const list = `${unpinned.slice(0, 10).join(", ")}${unpinned.length > 10 ? `, and ${unpinned.length - 10} more` : ""}`;
  if (newest?.version !== version) return `the newest stays ${name}@${newest?.version}: the ${unpinned.length} segment(s) that run ${name} without a version do not move\n`;
  return `${unpinned.length} segment(s) run ${name} without a version and move to ${version} now: ${list} (name ${name}@VERSION in a stage to hold it)\n`;
}
