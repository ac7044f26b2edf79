// Compiles every AssemblyScript filter (filters/<name>/assembly/index.ts) and the test
// fixture filters (test/fixtures/filters/assembly/*.ts) to .wasm with the SDK's flags, and the
// hand-written WebAssembly text fixtures (test/fixtures/filters/wat/*.wat) with binaryen.
// Each filter gets both builds: <name>.wasm (what the proxy runs) and <name>.checked.wasm (what
// the tests run: sdk/checked-build-flags.json added); the fixtures only the first.
// Usage: node scripts/build-filters.mjs
import { readdirSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, dirname, basename } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// The SDK's flags, one list for every build of a filter (sdk/build-flags.json, docs/abi.md appendix)
const sdkFlags = JSON.parse(readFileSync(join(root, "sdk", "build-flags.json"), "utf8"));
// What a test build (<name>.checked.wasm) adds: every unchecked() bounds-checked again, debug names,
// and --optimizeLevel 0 (asc takes the last) so that nothing is inlined: a trap names the author's functions
const checkedFlags = JSON.parse(readFileSync(join(root, "sdk", "checked-build-flags.json"), "utf8"));

async function compile(entry, outFile, extra = []) {
  mkdirSync(dirname(outFile), { recursive: true });
  const { error, stderr } = await asc.main([entry, "--outFile", outFile, ...sdkFlags, ...extra]);
  if (error) {
    process.stderr.write(stderr.toString());
    throw new Error(`asc failed for ${entry}: ${error.message}`);
  }
}

/** Assembles a .wat file as it stands (no optimization: the fixture is what its author wrote). */
async function assembleWat(file, outFile) {
  // binaryen comes with assemblyscript; loaded only here, since only the WAT fixtures need it
  const { default: binaryen } = await import("binaryen");
  let module;
  try {
    module = binaryen.parseText(readFileSync(file, "utf8"));
  } catch (err) {
    // binaryen throws a plain object whose message is "line:column: error: ..."
    throw new Error(`${file}:${err?.message ?? err}`);
  }
  try {
    if (!module.validate()) throw new Error(`binaryen found ${file} invalid (see above)`);
    mkdirSync(dirname(outFile), { recursive: true });
    writeFileSync(outFile, module.emitBinary());
  } finally {
    module.dispose();
  }
}

const jobs = [];
const filtersDir = join(root, "filters");
for (const name of existsSync(filtersDir) ? readdirSync(filtersDir) : []) {
  const entry = join(filtersDir, name, "assembly", "index.ts");
  if (!existsSync(entry)) continue;
  const out = join(filtersDir, name, "build");
  jobs.push(compile(entry, join(out, `${name}.wasm`)));
  jobs.push(compile(entry, join(out, `${name}.checked.wasm`), checkedFlags));
}
const fixturesDir = join(root, "test", "fixtures", "filters");
const fixtureSources = join(fixturesDir, "assembly");
for (const file of existsSync(fixtureSources) ? readdirSync(fixtureSources) : []) {
  if (!file.endsWith(".ts")) continue;
  jobs.push(compile(join(fixtureSources, file), join(fixturesDir, "build", basename(file, ".ts") + ".wasm")));
}
const watSources = join(fixturesDir, "wat");
for (const file of existsSync(watSources) ? readdirSync(watSources) : []) {
  if (!file.endsWith(".wat")) continue;
  jobs.push(assembleWat(join(watSources, file), join(fixturesDir, "build", basename(file, ".wat") + ".wasm")));
}
await Promise.all(jobs);
console.log(`built ${jobs.length} wasm modules`);
