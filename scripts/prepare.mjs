// npm's "prepare": build everything on `npm install` in the checkout. `npx msm ...` run inside the
// checkout installs the checkout into npx's cache too, which runs prepare again on the same, built
// tree (a link to it): half a minute of rebuilding before `msm filter new` did anything. Skip that.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

if (process.env.npm_command === "exec" && existsSync("dist/cli/msm.js") && existsSync("filters/validate/build/validate.wasm")) {
  console.log("msm: already built (npx in the checkout): not rebuilding; `npm run build` does");
} else {
  const r = spawnSync("npm", ["run", "build"], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}
