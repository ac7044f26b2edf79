// `msm filter new NAME DIR`
import { resolve } from "node:path";
import { scaffoldFilter } from "../sdk/scaffold/index.js";
import { UsageError } from "./usage.js";

export async function scaffoldCommand(args: readonly string[]): Promise<number> {
  const [sub, name, dir, ...extra] = args;
  if (sub !== "new" || !name || !dir) throw new UsageError("usage: msm filter new NAME DIR");
  if (extra.length > 0) throw new UsageError(`unexpected '${extra[0]}'\nusage: msm filter new NAME DIR`);
  const target = resolve(dir);
  const files = await scaffoldFilter(name, target);
  console.log(`created filter '${name}' in ${target}:`);
  for (const f of files) console.log(`  ${f}`);
  console.log(`\nnext:\n  cd ${dir}\n  npm install\n  npm test`);
  return 0;
}
