// "Your first filter in five minutes" (the README section of that name), done the way a user does
// it, in a temp dir: scaffold a project, npm install, npm test, make the edit the walkthrough
// shows, npm test again, run the project's msm.yaml in a proxy and drive it with the
// walkthrough's own receiver and sender one-liners, then read the metrics as its curl | grep
// does. Commands, snippets and one-liners are taken from the walkthrough's text, so the
// document cannot drift from what works. The ports are the only thing changed (free ones
// instead of 5004/5006/8090, so that the test never collides with something on the machine).
//
// Step 5 does the same for docs/sdk.md's "Testing": its test, in a project made by the CLI whose
// entry file is the guide's PtMap, passes under the project's own `npm test` (both builds).
//
// A second suite covers what scaffoldFilter refuses.
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  Proxy, loadProxyConfigFile, startAdminServer, validateProxyConfig, type AdminServer, type ProxyEvent, type ProxySnapshot, type StageSnapshot,
} from "../runtime/index.js";
import { FILTER_NAME_PATTERN, scaffoldFilter } from "../sdk/scaffold/index.js";
import { suite } from "./lib/suite.js";
import { rejects } from "./lib/expect.js";
import { ROOT } from "./lib/paths.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { freePortPair } from "./lib/udp.js";

const README = join(ROOT, "README.md");
const SECTION = "## Your first filter in five minutes";

/** The walkthrough section of the README: from its heading to the next second-level heading. */
function walkthroughSection(readme: string): string {
  const start = readme.indexOf(SECTION);
  if (start < 0) throw new Error(`README.md has no '${SECTION}' section`);
  const next = readme.indexOf("\n## ", start + SECTION.length);
  return next < 0 ? readme.slice(start) : readme.slice(start, next);
}
const CLI = join(ROOT, "dist", "cli", "msm.js");
const STEP_MS = 240_000;
/** Step 4: packets the walkthrough's sender sends into the proxy, and the bound on that (50 a second, on a busy machine). */
const SENT = 60;
const SENDER_MS = 20_000;
/** Step 4: time for what the proxy passed to reach the receiver. */
const SETTLE_MS = 10_000;

// ---- the walkthrough's text ----

interface Block {
  lang: string;
  body: string;
}

function codeBlocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].map((m) => ({ lang: m[1]!, body: m[2]! }));
}

function shellLines(markdown: string): string[] {
  return codeBlocks(markdown).filter((b) => b.lang === "sh").flatMap((b) => b.body.split("\n")).filter((l) => l.trim() !== "");
}

function command(lines: readonly string[], match: (line: string) => boolean, what: string): string {
  const found = lines.filter(match);
  assert.is(found.length, 1, `the README walkthrough should have exactly one ${what} command, has ${found.length}`);
  return found[0]!;
}

/** The JavaScript of a `node -e '...'` one-liner. */
function oneLinerScript(line: string): string {
  const m = /^node -e '([^']*)'$/.exec(line);
  assert.ok(m, `not a node -e '...' one-liner: ${line}`);
  return m![1]!;
}

/** "below `ANCHOR` ... ```ts|js BODY```": the insertions step 3 makes, in order. */
function edits(markdown: string): { anchor: string; lang: string; body: string }[] {
  return [...markdown.matchAll(/below\s+(?:the line\s+)?`([^`]+)`[^`]*?(?:`[^`]*`[^`]*?)*?\n```(ts|js)\n([\s\S]*?)^```/gm)].map((m) => ({
    anchor: m[1]!,
    lang: m[2]!,
    body: m[3]!.replace(/\n$/, ""),
  }));
}

// ---- processes ----

/** The environment without what a parent npm put there (npm test): the child npm is a user's. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== "INIT_CWD") env[k] = v;
  env.FORCE_COLOR = "0";
  env.NO_COLOR = "1";
  return env;
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, output }));
  });
}

async function mustRun(cmd: string, args: readonly string[], cwd: string): Promise<string> {
  const { code, output } = await run(cmd, args, cwd);
  assert.is(code, 0, `\`${[cmd, ...args].join(" ")}\` in ${cwd} exited with ${code}:\n${output}`);
  return output;
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once("exit", () => done());
    child.kill("SIGTERM");
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the receiver one-liner prints for PROBE (sequence 65535, which the sender never reaches here). */
const PROBE = Buffer.from([0x80, 0, 0xff, 0xff]);
const PROBE_LINE = "got seq 65535 pt 0";

/** Sends PROBE to the receiver until it prints it: then it is listening. */
async function waitReceiving(port: number, output: () => string, ms: number): Promise<void> {
  const s = createSocket("udp4");
  try {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(25)) {
      if (output().includes(PROBE_LINE)) return;
      s.send(PROBE, port, "127.0.0.1");
    }
  } finally {
    s.close();
  }
  throw new Error(`the receiver on 127.0.0.1:${port} printed nothing within ${ms} ms`);
}

// ---- the walkthrough ----

const walk = suite("sdk walkthrough", { timeoutMs: STEP_MS });

const state = {
  tmp: "",
  project: "",
  name: "",
  dirArg: "",
  doc: "",
  lines: [] as string[],
  scaffolded: false,
  installed: false,
  tested: false,
  edited: false,
};

function needs(step: keyof typeof state, what: string): void {
  if (!state[step]) assert.unreachable(`skipped: the ${what} step failed`);
}

walk.before(async () => {
  state.doc = walkthroughSection(await readFile(README, "utf8"));
  state.lines = shellLines(state.doc);
  state.tmp = await mkdtemp(join(tmpdir(), "msm-walkthrough-"));
});

walk.after(async () => {
  if (!state.tmp) return;
  // node_modules/msm links to this checkout: unlink it first, whatever rm does with links.
  for (const link of [join(state.tmp, "ptmap", "node_modules"), join(state.project, "node_modules", "msm")]) {
    if (state.project && (await lstat(link).catch(() => null))?.isSymbolicLink()) await unlink(link);
  }
  await rm(state.tmp, { recursive: true, force: true });
});

walk("1. `npx msm filter new my-filter ../my-filter` makes the project", async () => {
  const line = command(state.lines, (l) => l.startsWith("npx msm filter new "), "`msm filter new`");
  const words = line.split(/\s+/);
  assert.is(words.length, 6, line);
  const [, , , , name, dirArg] = words as [string, string, string, string, string, string];
  assert.ok(FILTER_NAME_PATTERN.test(name), name);
  // Run from a directory next to where the project goes, so "../my-filter" means what it says.
  const cwd = join(state.tmp, "checkout");
  await mkdir(cwd);
  state.name = name;
  state.dirArg = dirArg;
  state.project = resolve(cwd, dirArg);
  // the command the README shows, run as npx runs it: the package's msm bin
  await mustRun(process.execPath, [CLI, "filter", "new", name, dirArg], cwd);
  for (const f of ["package.json", "assembly/index.ts", `test/${name}.test.mjs`, "msm.yaml", "README.md"]) {
    assert.ok(existsSync(join(state.project, f)), `the project has no ${f}`);
  }
  const pkg = JSON.parse(await readFile(join(state.project, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
  assert.is(pkg.devDependencies.msm, `file:${ROOT}`);
  state.scaffolded = true;
});

walk("2. `npm install` then `npm test` pass in the new project", async () => {
  needs("scaffolded", "scaffold");
  command(state.lines, (l) => l === `cd ${state.dirArg}`, "cd");
  command(state.lines, (l) => l === "npm install", "npm install");
  assert.ok(state.lines.filter((l) => l === "npm test").length >= 1, "the README walkthrough has no `npm test`");
  await mustRun("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], state.project);
  state.installed = true;
  const out = await mustRun("npm", ["test"], state.project);
  assert.match(out, /Passed:\s+6\b/);
  assert.ok(existsSync(join(state.project, "build", `${state.name}.wasm`)), "npm test did not build the .wasm");
  assert.ok(existsSync(join(state.project, "build", `${state.name}.checked.wasm`)), "npm test did not build the .checked.wasm the tests run");
  state.tested = true;
});

walk("3. the walkthrough's edit builds and its test passes", async () => {
  needs("tested", "npm test");
  const steps = edits(state.doc);
  assert.is(steps.length, 4, `expected 4 insertions in step 3, found ${steps.length}`);
  for (const step of steps) {
    const file = join(state.project, step.lang === "ts" ? "assembly/index.ts" : `test/${state.name}.test.mjs`);
    const lines = (await readFile(file, "utf8")).split("\n");
    const at = lines.flatMap((l, i) => (l.trim() === step.anchor ? [i] : []));
    assert.is(at.length, 1, `\`${step.anchor}\` should be exactly one line of ${file}, found ${at.length}`);
    lines.splice(at[0]! + 1, 0, ...step.body.split("\n"));
    await writeFile(file, lines.join("\n"));
  }
  const out = await mustRun("npm", ["test"], state.project);
  assert.match(out, /Passed:\s+6\b/);
  state.edited = true;
});

walk("4. the proxy runs msm.yaml: the receiver gets payload type 96 only, the drops are counted", async () => {
  needs("edited", "edit");
  command(state.lines, (l) => l === "npx msm proxy --config msm.yaml", "msm proxy");
  const receiverLine = command(state.lines, (l) => l.startsWith("node -e") && l.includes(".bind(5006"), "receiver");
  const senderLine = command(state.lines, (l) => l.startsWith("node -e") && l.includes("s.send("), "sender");
  const curlLine = command(state.lines, (l) => l.startsWith("curl "), "curl");
  const grep = /grep -E '([^']+)'/.exec(curlLine);
  assert.ok(grep, curlLine);
  const sample = codeBlocks(state.doc).filter((b) => b.lang === "" && b.body.includes("msm_filter_"))[0];
  assert.ok(sample, "the README walkthrough shows no metrics output");

  const config = await loadProxyConfigFile(join(state.project, "msm.yaml"));
  const seg = config.segments[0]!;
  assert.is(config.segments.length, 1);
  assert.equal([seg.listen.address, seg.listen.port], ["127.0.0.1", 5004]);
  assert.equal([seg.destinations[0]!.address, seg.destinations[0]!.port], ["127.0.0.1", 5006]);
  assert.equal(config.admin, { address: "127.0.0.1", port: 8090 });
  assert.equal(seg.chain, [{ filter: state.name, config: { payloadTypes: [96] } }]);
  assert.is(config.filters[state.name]!.path, join(state.project, "build", `${state.name}.wasm`));
  assert.ok(curlLine.includes("127.0.0.1:8090"), curlLine);

  const listenPort = await freePortPair();
  const receivePort = await freePortPair();
  seg.listen.port = listenPort;
  seg.destinations[0]!.port = receivePort;

  const events: ProxyEvent[] = [];
  let proxy: Proxy | undefined;
  let admin: AdminServer | undefined;
  let receiver: ChildProcess | undefined;
  let sender: ChildProcess | undefined;
  try {
    proxy = await Proxy.start(config);
    proxy.on("event", (e) => events.push(e));
    admin = await startAdminServer(proxy, config.admin!.address, 0);

    let received = "";
    receiver = spawn(process.execPath, ["-e", oneLinerScript(receiverLine).replace("5006", String(receivePort))], { env: cleanEnv(), stdio: ["ignore", "pipe", "inherit"] });
    receiver.stdout!.on("data", (d: Buffer) => (received += d.toString()));
    await waitReceiving(receivePort, () => received, 10_000);

    // the sender runs until the proxy has seen SENT packets (1.2 s at its 50 a second; bounded for a busy machine)
    const toProxy = new DropWatch([listenPort]);
    const toReceiver = new DropWatch([receivePort]);
    sender = spawn(process.execPath, ["-e", oneLinerScript(senderLine).replace("5004", String(listenPort))], { env: cleanEnv(), stdio: "ignore" });
    const segIn = async (): Promise<number> => (await proxy!.stats()).segments.find((s) => s.name === seg.name)?.packetsIn ?? 0;
    for (const end = Date.now() + SENDER_MS; (await segIn()) + toProxy.since().total < SENT && Date.now() < end;) await sleep(50);
    await stop(sender);

    // Wait until everything the proxy passed has reached the receiver (or the kernel dropped it
    // there: a busy machine; bounded).
    const segName = seg.name;
    let stage: StageSnapshot | undefined;
    let snapSeg: ProxySnapshot["segments"][number] | undefined;
    const metric = (name: string): number | undefined => stage?.metrics.find((m) => m.name === name)?.value;
    const gotLines = (): string[] => received.split("\n").filter((l) => l !== "" && l !== PROBE_LINE);
    for (const end = Date.now() + SETTLE_MS; Date.now() < end; await sleep(50)) {
      snapSeg = (await proxy.stats()).segments.find((s) => s.name === segName);
      stage = snapSeg?.stages[0];
      if (stage && metric("passed")! > 0 && gotLines().length + toReceiver.since().total >= metric("passed")!) break;
    }
    await sleep(200); // a packet that should not arrive would have by now
    assert.ok(snapSeg && stage, `no segment ${segName} in the proxy's stats`);
    const lines = gotLines();
    const passed = metric("passed")!;
    const dropped = metric("dropped")!;
    const lostAtReceiver = toReceiver.since().total;
    assert.ok(stage!.packetsIn >= 20, `the proxy saw only ${stage!.packetsIn} packets from the sender (${toProxy.since().total} dropped by the kernel before it)`);
    assert.is(passed + dropped, stage!.packetsIn, "every packet is either passed or dropped");
    assert.ok(Math.abs(passed - dropped) <= 1, `the sender alternates payload types: passed ${passed}, dropped ${dropped}`);
    assert.is(lines.length + lostAtReceiver, passed, `the receiver got ${lines.length} packets (the kernel dropped ${lostAtReceiver} at its socket), the filter passed ${passed}`);
    for (const l of lines) assert.match(l, /^got seq \d*[02468] pt 96$/);
    assert.equal(stage!.drops, { payload_type_not_allowed: dropped });
    assert.is(snapSeg!.drops.payload_type_not_allowed, dropped);
    assert.is(metric("bytes_passed"), 172 * passed, "the edit of step 3 runs in the proxy");
    assert.is(events.filter((e) => e.type === "error" || e.type === "watchdog" || e.type === "worker-exit").length, 0, JSON.stringify(events));

    // The walkthrough's `curl ... | grep -E '...'` shows the lines it says it shows.
    const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
    const pattern = new RegExp(grep![1]!);
    const shown = text.split("\n").filter((l) => pattern.test(l));
    const shape = (l: string): string => l.replace(/ [0-9.e+-]+$/, "");
    assert.equal(shown.map(shape).sort(), sample!.body.trim().split("\n").map(shape).sort());
    assert.ok(shown.includes(`msm_filter_${state.name.replace(/-/g, "_")}_passed_total{segment="${segName}",stage="0"} ${passed}`), shown.join("\n"));
  } finally {
    await stop(sender);
    await stop(receiver);
    await admin?.close();
    await proxy?.close();
  }
});

walk("5. docs/sdk.md \"Testing\": the guide's test of its PtMap filter passes in a project made by `msm filter new`", async () => {
  needs("installed", "npm install");
  const guide = await readFile(join(ROOT, "docs", "sdk.md"), "utf8");
  const testing = guide.slice(guide.indexOf("## Testing\n"));
  const entry = codeBlocks(guide).filter((b) => b.lang === "ts" && b.body.includes("class PtMap extends Filter"));
  const tests = codeBlocks(testing).filter((b) => b.lang === "js");
  assert.is(entry.length, 1, "docs/sdk.md has one PtMap entry file");
  assert.is(tests.length, 1, "docs/sdk.md \"Testing\" has one test file");
  assert.not.match(tests[0]!.body, /\.\.\/\.\.\/|test\/lib/, "the guide's test imports only what a project has");

  const project = join(state.tmp, "ptmap");
  await mustRun(process.execPath, [CLI, "filter", "new", "ptmap", project], state.tmp);
  // the same dependencies as the first project: share its node_modules instead of a second install
  await symlink(join(state.project, "node_modules"), join(project, "node_modules"), "dir");
  // the guide's imports are those of filters/<name>/assembly/index.ts; a project's file reaches the SDK through node_modules
  await writeFile(join(project, "assembly", "index.ts"), entry[0]!.body.replaceAll('"../../../sdk/assembly', '"../node_modules/msm/sdk/assembly'));
  await writeFile(join(project, "test", "ptmap.test.mjs"), tests[0]!.body);
  const out = await mustRun("npm", ["test"], project);
  assert.match(out, /Passed:\s+3\b/);
  assert.match(out, /Total:\s+3\b/);
  for (const f of ["ptmap.wasm", "ptmap.checked.wasm"]) assert.ok(existsSync(join(project, "build", f)), `npm test did not build ${f}`);
});

walk.run();

// ---- scaffoldFilter's refusals ----

const refuse = suite("scaffoldFilter");
let scratch = "";
refuse.before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "msm-scaffold-"));
});
refuse.after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});


refuse("bad names are refused before anything is written", async () => {
  const bad = ["", "My-filter", "1filter", "-filter", "_filter", "my filter", "../x", "a".repeat(64), "fïlter"];
  for (const name of bad) {
    const dir = join(scratch, `bad-${bad.indexOf(name)}`);
    await rejects(scaffoldFilter(name, dir), TypeError, /^invalid filter name .*: use 1-63 lower-case letters, digits, '_' and '-', starting with a letter \(for example my-filter\)$/);
    assert.not.ok(existsSync(dir), `${dir} was created for the bad name ${JSON.stringify(name)}`);
  }
});

refuse("names whose metrics would take a host family's name are refused as the proxy's config refuses them", async () => {
  for (const [name, family] of [["drops", "drops_total"], ["busy", "busy_seconds_total"], ["memory", "memory_bytes"], ["memory-max", "memory_max_bytes"], ["packets-in", "packets_in_total"]] as const) {
    const dir = join(scratch, `clash-${name}`);
    const why = `its metrics could take the name of the host's msm_filter_${family}; choose another filter name`;
    await rejects(scaffoldFilter(name, dir), TypeError, new RegExp(`^invalid filter name "${name}": ${why.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
    assert.not.ok(existsSync(dir), `${dir} was created for ${name}`);
    assert.throws(() => validateProxyConfig({ filters: { [name]: { path: "x.wasm" } } }), (err: Error) => err.message.includes(`filters.${name}: ${why}`));
  }
});

refuse("the longest allowed name works, and every placeholder is filled", async () => {
  const name = `a${"b-".repeat(20)}`;
  assert.is(name.length, 41);
  const dir = join(scratch, "long");
  const files = await scaffoldFilter(name, dir);
  assert.equal(files, [".gitignore", ".npmrc", "README.md", "assembly/index.ts", "assembly/tsconfig.json", "msm.yaml", "package.json", `test/${name}.test.mjs`]);
  for (const f of files) {
    const text = await readFile(join(dir, f), "utf8");
    assert.not.match(text, /__[A-Z][A-Z_]*__/, `${f} still has a placeholder`);
  }
  const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { name: string; type: string; scripts: Record<string, string> };
  assert.is(pkg.name, name);
  assert.is(pkg.type, "module");
  const sdkFlags = ["--runtime minimal", "--importMemory", "--initialMemory 4", "--maximumMemory 256", "--exportStart _initialize", "--enable simd", "--optimizeLevel 3"];
  for (const flag of [...sdkFlags, `--outFile build/${name}.wasm`]) assert.ok(pkg.scripts["build:release"]!.includes(flag), `build:release lacks ${flag}`);
  for (const flag of [...sdkFlags, "--uncheckedBehavior never --debug --optimizeLevel 0", `--outFile build/${name}.checked.wasm`]) {
    assert.ok(pkg.scripts["build:checked"]!.includes(flag), `build:checked lacks ${flag}`);
  }
  // asc takes the last --optimizeLevel: the checked build's 0 comes after the SDK's 3
  assert.ok(pkg.scripts["build:checked"]!.lastIndexOf("--optimizeLevel 0") > pkg.scripts["build:checked"]!.lastIndexOf("--optimizeLevel 3"));
  assert.is(pkg.scripts.build, "npm run build:release && npm run build:checked");
  const yaml = await readFile(join(dir, "msm.yaml"), "utf8");
  assert.match(yaml, new RegExp(`path: build/${name}\\.wasm`));
});

refuse("a directory that is not empty is refused and left alone", async () => {
  const dir = join(scratch, "full");
  await mkdir(dir);
  await writeFile(join(dir, "notes.txt"), "mine");
  await rejects(scaffoldFilter("my-filter", dir), Error, /is not empty \(notes\.txt\)/);
  assert.equal(await readdir(dir), ["notes.txt"]);
  // an empty one is fine
  const empty = join(scratch, "empty");
  await mkdir(empty);
  assert.ok((await scaffoldFilter("my-filter", empty)).includes("package.json"));
});

refuse("a file, a folder inside the checkout, or a checkout that is not one are refused", async () => {
  const file = join(scratch, "a-file");
  await writeFile(file, "");
  await rejects(scaffoldFilter("my-filter", file), Error, /exists and is not a directory/);
  const inside = join(ROOT, "tmp-scaffold-refused");
  await rejects(scaffoldFilter("my-filter", inside), Error, /inside the MSM checkout .*for example \.\.\/my-filter/);
  assert.not.ok(existsSync(inside));
  await rejects(scaffoldFilter("my-filter", join(scratch, "x"), { sdkPath: scratch }), Error, /is not an MSM checkout/);
});

refuse.run();
