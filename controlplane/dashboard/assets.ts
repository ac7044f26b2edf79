// The page's files, read once when the dashboard starts: the page itself (controlplane/dashboard/page/,
// shipped as source: plain HTML, CSS and ES modules, no build step) and uPlot from its npm package.
// Only these names are served: no path from a request ever reaches the file system.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

/** From dist/controlplane/dashboard/ back to the source folder, as controlplane/api/proto.ts finds its .proto. */
const PAGE_DIR = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..", "controlplane", "dashboard", "page");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** URL path -> file: "/" is the page, "/static/NAME" everything else. */
export function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const add = (url: string, file: string): void => {
    const type = TYPES[extname(file)];
    if (type) assets.set(url, { type, body: readFileSync(file) });
  };
  for (const name of readdirSync(PAGE_DIR)) {
    add(name === "index.html" ? "/" : `/static/${name}`, join(PAGE_DIR, name));
  }
  const require = createRequire(import.meta.url);
  add("/static/uplot.esm.js", require.resolve("uplot/dist/uPlot.esm.js"));
  add("/static/uplot.min.css", require.resolve("uplot/dist/uPlot.min.css"));
  if (!assets.has("/")) throw new Error(`the dashboard's page is missing: no index.html in ${PAGE_DIR}`);
  return assets;
}
