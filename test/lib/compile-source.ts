// Compiles an AssemblyScript filter given as text, in memory, with the SDK's flags: for tests of
// code that lives in a doc or in the test itself. The source stands at
// filters/<name>/assembly/index.ts, so its imports of "../../../sdk/assembly" resolve.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ROOT } from "./paths.js";

const SDK_FLAGS = JSON.parse(await readFile(join(ROOT, "sdk", "build-flags.json"), "utf8")) as string[];
/** What a checked build (<name>.checked.wasm) adds to them. */
export const CHECKED_FLAGS = JSON.parse(await readFile(join(ROOT, "sdk", "checked-build-flags.json"), "utf8")) as string[];

/** `extraFlags`: CHECKED_FLAGS for a checked build. */
export async function compileFilterSource(source: string, name: string, extraFlags: readonly string[] = []): Promise<Uint8Array> {
  const { default: asc } = await import("assemblyscript/asc");
  const entry = join(ROOT, "filters", name, "assembly", "index.ts");
  let binary: Uint8Array | undefined;
  const result = await asc.main([entry, "--outFile", `${name}.wasm`, ...SDK_FLAGS, ...extraFlags], {
    readFile: async (file: string, baseDir: string) => {
      const path = resolve(baseDir, file);
      return path === entry ? source : readFile(path, "utf8").catch(() => null);
    },
    writeFile: (file: string, contents: Uint8Array | string) => {
      if (file.endsWith(".wasm") && typeof contents !== "string") binary = contents;
    },
  });
  if (result.error || !binary) throw new Error(`${result.error?.message ?? "no output"}\n${result.stderr.toString()}\n---\n${source}`);
  return binary;
}
