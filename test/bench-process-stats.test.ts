// bench/hosts/process-stats.ts on a real child process whose threads come and go, as a Bun
// proxy's JavaScriptCore helpers do: the CPU account of a process tree never goes backwards.
import { spawn } from "node:child_process";
import * as assert from "uvu/assert";
import { processTree, treeCpuUs } from "../bench/hosts/process-stats.js";
import { suite } from "./lib/suite.js";

const test = suite("bench process stats", { timeoutMs: 30_000 });

// four worker threads each burn about 100 ms of CPU and exit, one after another
const CHILD = `
const { Worker } = require("node:worker_threads");
const burn = "const t = Date.now(); while (Date.now() - t < 100) {}";
(async () => {
  for (let i = 0; i < 4; i++) await new Promise((r) => new Worker(burn, { eval: true }).on("exit", r));
  process.stdout.write("done\\n");
  setTimeout(() => {}, 10_000);
})();
`;

test("a thread's CPU stays in its process's account after the thread exits", async () => {
  const child = spawn(process.execPath, ["-e", CHILD], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const readings: number[] = [];
    let done = false;
    child.stdout.on("data", (d: Buffer) => (done ||= d.toString().includes("done")));
    const deadline = Date.now() + 20_000;
    while (!done && Date.now() < deadline) {
      readings.push(treeCpuUs([child.pid!]));
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(done, "the child did not finish its threads");
    readings.push(treeCpuUs([child.pid!]));
    for (let i = 1; i < readings.length; i++) assert.ok(readings[i]! >= readings[i - 1]!, `reading ${i} went back: ${readings[i - 1]} -> ${readings[i]}`);
    // the four threads' 400 ms, less what each burned between the last reading and its exit (20 ms apart)
    assert.ok(readings.at(-1)! >= 300_000, `only ${readings.at(-1)} us counted`);
    assert.equal(processTree([child.pid!]), [child.pid!]);
  } finally {
    child.kill();
  }
});

test.run();
