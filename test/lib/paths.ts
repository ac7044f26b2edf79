// Where the built artifacts live, from a compiled test file (dist/test/...).
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..");
export const FIXTURES = join(ROOT, "test", "fixtures", "filters", "build");
export const fixture = (name: string): string => join(FIXTURES, `${name}.wasm`);
export const filterWasm = (name: string, checked = false): string =>
  join(ROOT, "filters", name, "build", `${name}${checked ? ".checked" : ""}.wasm`);
