// scaffoldFilter: a standalone filter project (an AssemblyScript filter on the SDK, its harness
// tests, a proxy config that runs it, a README), made from the real files under
// sdk/scaffold/template/ with the placeholders below filled in. `msm filter new NAME DIR` calls it.
//
// Placeholders, in file contents and file names:
//   __NAME__        the filter's name (my-filter)
//   __NAME_SNAKE__  the name as it appears in Prometheus metric names (my_filter)
//   __MSM_PATH__    absolute path of the msm package the project depends on (`file:` dependency)
//   __SDK_FLAGS__   the asc flags every filter is built with (sdk/build-flags.json)
//   __CHECKED_FLAGS__ what the .checked.wasm adds to them (sdk/checked-build-flags.json): every `unchecked()` bounds-checked again
//                   and debug names in a trap's stack (as scripts/build-filters.mjs builds the checkout's)
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { filterNameProblem } from "./filter-name.js";

export { FILTER_NAME_PATTERN, filterNameProblem } from "./filter-name.js";

export interface ScaffoldOptions {
  /**
   * The msm package the project depends on (`"msm": "file:<sdkPath>"`): a checkout with the SDK
   * sources (sdk/assembly) and a built dist/. Default: the checkout this module belongs to.
   */
  readonly sdkPath?: string;
}

/** Template files whose name differs in the project (npm leaves these out of packages). */
const RENAMES: Readonly<Record<string, string>> = { gitignore: ".gitignore", npmrc: ".npmrc" };
const LEFTOVER_PLACEHOLDER = /__[A-Z][A-Z_]*__/;

/** The root of the msm package this module is part of (from sdk/scaffold/ or dist/sdk/scaffold/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "msm") return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the msm package above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(join(dir, entry.name), rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Refuses a directory that exists and is not an empty directory. */
async function checkTarget(target: string): Promise<void> {
  let info;
  try {
    info = await stat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!info.isDirectory()) throw new Error(`cannot create the filter project in ${target}: it exists and is not a directory`);
  const entries = await readdir(target);
  if (entries.length > 0) {
    const shown = entries.slice(0, 3).join(", ") + (entries.length > 3 ? ", ..." : "");
    throw new Error(`cannot create the filter project in ${target}: the directory is not empty (${shown}); give a new or empty directory`);
  }
}

/**
 * Creates a filter project named `name` in `dir` (created if missing; it must be empty) that
 * builds and tests out of the box: `npm install && npm test`. Returns the files written,
 * relative to `dir`, '/'-separated.
 * Throws TypeError for a bad name (also one the proxy's config would refuse), Error for a
 * directory it will not write into.
 */
export async function scaffoldFilter(name: string, dir: string, options: ScaffoldOptions = {}): Promise<string[]> {
  // the rule msmctl filter push and the proxy's config apply (the proxy would refuse the project's own msm.yaml)
  const problem = typeof name === "string" ? filterNameProblem(name) : `invalid filter name ${JSON.stringify(name)}: not a string`;
  if (problem !== undefined) throw new TypeError(problem);
  const root = packageRoot();
  const msmPath = resolve(options.sdkPath ?? root);
  if (!existsSync(join(msmPath, "sdk", "assembly", "index.ts"))) {
    throw new Error(`${msmPath} is not an MSM checkout: sdk/assembly/index.ts is missing`);
  }
  if (!existsSync(join(msmPath, "dist", "sdk", "harness", "index.js"))) {
    throw new Error(`the MSM checkout ${msmPath} is not built (dist/sdk/harness/index.js is missing): run npm install in it first`);
  }
  const target = resolve(dir);
  if (isInside(target, msmPath)) {
    throw new Error(`cannot create the filter project in ${target}: it is inside the MSM checkout ${msmPath}; choose a directory outside it (for example ../${name})`);
  }
  await checkTarget(target);

  const templateDir = join(root, "sdk", "scaffold", "template");
  const values: [string, string][] = [
    ["__NAME_SNAKE__", name.replace(/-/g, "_")],
    ["__NAME__", name],
    ["__MSM_PATH__", msmPath],
    ["__SDK_FLAGS__", (JSON.parse(await readFile(join(root, "sdk", "build-flags.json"), "utf8")) as string[]).join(" ")],
    ["__CHECKED_FLAGS__", (JSON.parse(await readFile(join(root, "sdk", "checked-build-flags.json"), "utf8")) as string[]).join(" ")],
  ];
  const fill = (text: string, json: boolean): string => {
    let out = text;
    for (const [placeholder, value] of values) out = out.split(placeholder).join(json ? JSON.stringify(value).slice(1, -1) : value);
    return out;
  };

  const planned: { to: string; text: string }[] = [];
  for (const rel of await listFiles(templateDir)) {
    const parts = rel.split("/");
    parts[parts.length - 1] = RENAMES[parts[parts.length - 1]!] ?? parts[parts.length - 1]!;
    const to = fill(parts.join("/"), false);
    const text = fill(await readFile(join(templateDir, rel), "utf8"), rel.endsWith(".json"));
    const leftover = LEFTOVER_PLACEHOLDER.exec(text) ?? LEFTOVER_PLACEHOLDER.exec(to);
    if (leftover) throw new Error(`template ${rel}: unknown placeholder ${leftover[0]}`);
    planned.push({ to, text });
  }

  await mkdir(target, { recursive: true });
  for (const file of planned) {
    const path = join(target, file.to);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.text, { flag: "wx" }); // never overwrite
  }
  return planned.map((f) => f.to).sort();
}
