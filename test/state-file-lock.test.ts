// The stateFile's lock: one proxy process per file. Holders are real processes (a child of the
// test that takes the lock and waits); the holder that is gone is one killed with SIGKILL; a
// holder of another pid namespace is a lock file whose record says so. The proxy refuses to start
// on a file another `msm proxy` uses, naming it.
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir, hostname } from "node:os";
import { join, relative } from "node:path";
import { LOCK_REFRESH_MS, LOCK_STALE_MS, StateFileLock } from "../runtime/state-file-lock.js";
import { StateFileError } from "../runtime/state-file.js";
import { startCliProxy } from "./lib/cli-proxy.js";
import { startProxy } from "./lib/proxy.js";
import { filterWasm, ROOT } from "./lib/paths.js";
import { suite } from "./lib/suite.js";
import { freePortPair, waitFor } from "./lib/udp.js";

const test = suite("stateFile lock", { timeoutMs: 60_000 });

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "msm-state-lock-"));
  dirs.push(d);
  return d;
};
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A process that takes the lock of `stateFile` and holds it until killed; resolves once it holds it. */
async function holder(stateFile: string): Promise<ChildProcess> {
  const lockModule = join(ROOT, "dist", "runtime", "state-file-lock.js");
  const child = spawn(process.execPath, ["--input-type=module", "-e",
    `const { StateFileLock } = await import(${JSON.stringify(lockModule)});
     await StateFileLock.acquire(${JSON.stringify(stateFile)}, () => {});
     console.log("held");
     setInterval(() => {}, 1000);`], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => d.toString().includes("held") && resolve());
    child.once("exit", (code) => reject(new Error(`the holder exited (${code})`)));
  });
  return child;
}

async function refusal(stateFile: string, waitMs: number): Promise<string> {
  try {
    const lock = await StateFileLock.acquire(stateFile, () => {}, waitMs);
    lock.release();
    return "";
  } catch (err) {
    assert.instance(err, StateFileError);
    return (err as Error).message;
  }
}

test("a live holder keeps it: another process waits, then is refused with the holder named; once the holder is SIGKILLed the lock is taken at once", async () => {
  const stateFile = join(tmp(), "state", "stage-state.json");
  const child = await holder(stateFile);
  try {
    const message = await refusal(stateFile, 600);
    assert.match(message, new RegExp(`stateFile ${stateFile} is in use by another proxy \\(pid ${child.pid} on ${hostname()}, started .*, refreshed \\d+ s ago\\): two proxies on one stateFile overwrite each other's stage states`));
    assert.match(message, /Give each proxy its own stateFile, or stop the other; the lock of a proxy that is gone expires 10 s after its last refresh/);
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
  }
  // its lock file is still there (nobody removed it); its process is gone: no wait
  assert.ok(existsSync(`${stateFile}.lock`));
  const started = Date.now();
  const lock = await StateFileLock.acquire(stateFile, () => {}, 0);
  assert.ok(Date.now() - started < 1000, "taken without waiting for the lock to age");
  assert.is((JSON.parse(readFileSync(`${stateFile}.lock`, "utf8")) as { pid: number }).pid, process.pid);
  // a second proxy in this process on the same file is refused too
  assert.match(await refusal(stateFile, 0), new RegExp(`pid ${process.pid} on `));
  lock.release();
  assert.not.ok(existsSync(`${stateFile}.lock`), "released: removed");
});

test("a holder in another pid namespace (another container) is judged by the lock's age: refused while it is refreshed, taken once it is older than the limit", async () => {
  const stateFile = join(tmp(), "stage-state.json");
  const lockFile = `${stateFile}.lock`;
  writeFileSync(lockFile, JSON.stringify({ pid: 1, host: "other-pod", pidNamespace: "pid:[1]", startedAtMs: Date.now(), token: "theirs" }));
  assert.match(await refusal(stateFile, 300), /in use by another proxy \(pid 1 on other-pod/);
  const old = new Date(Date.now() - LOCK_STALE_MS - 1000);
  utimesSync(lockFile, old, old);
  const lock = await StateFileLock.acquire(stateFile, () => {}, 0);
  assert.is((JSON.parse(readFileSync(lockFile, "utf8")) as { token: string }).token === "theirs", false);
  lock.release();
});

test("a lock taken over while its holder was frozen: the holder hears who took it and does not remove the other's lock at release", async () => {
  const stateFile = join(tmp(), "stage-state.json");
  const lockFile = `${stateFile}.lock`;
  let lost = "";
  const lock = await StateFileLock.acquire(stateFile, (who) => (lost = who), 0);
  // what a takeover after LOCK_STALE_MS leaves: another process's record in the file
  writeFileSync(lockFile, JSON.stringify({ pid: 4242, host: "elsewhere", pidNamespace: "pid:[2]", startedAtMs: Date.now(), token: "taker" }));
  await waitFor(() => lost !== "", 3 * LOCK_REFRESH_MS, "the holder to notice");
  assert.match(lost, /^pid 4242 on elsewhere, started /);
  lock.release();
  assert.is((JSON.parse(readFileSync(lockFile, "utf8")) as { token: string }).token, "taker", "the taker's lock is left alone");
});

test("a lock file removed by hand while its holder runs is made again by the holder (it is still the only one), which goes on holding it", async () => {
  const stateFile = join(tmp(), "stage-state.json");
  const lockFile = `${stateFile}.lock`;
  let lost = "";
  const lock = await StateFileLock.acquire(stateFile, (who) => (lost = who), 0);
  rmSync(lockFile);
  await waitFor(() => existsSync(lockFile), 3 * LOCK_REFRESH_MS, "the lock file made again");
  assert.is((JSON.parse(readFileSync(lockFile, "utf8")) as { pid: number }).pid, process.pid);
  assert.is(lock.check(), undefined, "still this process's");
  assert.is(lost, "", "never lost");
  lock.release();
  assert.not.ok(existsSync(lockFile));
});

test("a second lock in this process on the same file spelled otherwise (relative, through a symlink) is refused, not taken over as an earlier run's", async () => {
  const dir = tmp();
  mkdirSync(join(dir, "real"));
  symlinkSync(join(dir, "real"), join(dir, "link"));
  const stateFile = join(dir, "real", "stage-state.json");
  let lost = "";
  const lock = await StateFileLock.acquire(stateFile, (who) => (lost = who), 0);
  try {
    for (const other of [relative(process.cwd(), stateFile), join(dir, "link", "stage-state.json")]) {
      assert.match(await refusal(other, 0), new RegExp(`in use by another proxy \\(pid ${process.pid} on `), other);
    }
    assert.is(lock.check(), undefined, "still this lock's");
    assert.is(lost, "");
  } finally {
    lock.release();
  }
});

test("a proxy whose lock was taken over writes no more stage state, even before its refresh timer has noticed (a frozen process resumed)", async () => {
  const stateFile = join(tmp(), "stage-state.json");
  const lockFile = `${stateFile}.lock`;
  const port = await freePortPair();
  const { proxy, events } = await startProxy({
    // no periodic checkpoint meanwhile: one begun before the takeover may land after it (checked, then written)
    workers: 1, stateFile, stateCheckpointMs: 600_000,
    filters: { validate: { path: filterWasm("validate") } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: port + 2 }], chain: [{ filter: "validate" }] }],
  });
  let closed = false;
  try {
    // right after a refresh of the lock (its mtime moves), so that the next is a second away, and
    // with no write of the stateFile in the second before nor under way (one in flight would land
    // after: on a busy disk the start's checkpoint was still being synced once, its file's mtime
    // unchanged yet): another process takes the lock over
    const mtime = (file: string): number => (existsSync(file) ? statSync(file).mtimeMs : -1);
    const writing = (): number => (proxy as unknown as { stateWritesRunning: number }).stateWritesRunning;
    for (let settled = false, round = 0; !settled; round++) {
      assert.ok(round < 20, "the stateFile settles");
      const [lockBefore, stateBefore] = [mtime(lockFile), mtime(stateFile)];
      await waitFor(() => mtime(lockFile) !== lockBefore, 3 * LOCK_REFRESH_MS, "a refresh of the lock");
      settled = stateBefore !== -1 && mtime(stateFile) === stateBefore && writing() === 0;
    }
    writeFileSync(lockFile, JSON.stringify({ pid: 4242, host: "elsewhere", pidNamespace: "pid:[2]", startedAtMs: Date.now(), token: "taker" }));
    const written = existsSync(stateFile) ? statSync(stateFile).mtimeMs : -1;
    await proxy.close(); // its final save
    closed = true;
    assert.is(existsSync(stateFile) ? statSync(stateFile).mtimeMs : -1, written, "the taker's stateFile is not written over");
    assert.ok(events.some((e) => e.type === "error" && /another proxy took its lock \(pid 4242 on elsewhere/.test(e.message)), JSON.stringify(events));
    assert.is((JSON.parse(readFileSync(lockFile, "utf8")) as { token: string }).token, "taker");
  } finally {
    if (!closed) await proxy.close();
  }
});

test("msm proxy on a stateFile another msm proxy uses says at once that it waits for it, then does not start, naming the file and the other proxy; the first runs on", async () => {
  const stateFile = join(tmp(), "stage-state.json");
  const config = async () => ({
    stateFile,
    filters: { validate: { path: filterWasm("validate") } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port: await freePortPair() }, destinations: [{ address: "127.0.0.1", port: await freePortPair() }], chain: [{ filter: "validate" }] }],
  });
  const first = startCliProxy(await config());
  try {
    await waitFor(() => existsSync(`${stateFile}.lock`) && /proxy running|started/.test(first.output()), 20_000, `the first proxy to start\n${first.output()}`);
    const second = startCliProxy(await config());
    try {
      // said as the wait begins, not 12 s of silence and then a refusal
      await waitFor(() => /waiting up to/.test(second.output()), 8_000, `the second proxy to say it waits\n${second.output()}`);
      assert.match(second.output(), new RegExp(`warning: stateFile ${stateFile} is in use by another proxy \\(pid ${first.pid} on .*\\): waiting up to ${(LOCK_STALE_MS + 2 * LOCK_REFRESH_MS) / 1000} s for it to stop`));
      assert.not.match(second.output(), /did not start/, "said before it gives up");
      await waitFor(() => /did not start/.test(second.output()), LOCK_STALE_MS + 15_000, `the second proxy to give up\n${second.output()}`);
    } finally {
      await second.stop();
    }
    assert.match(second.output(), new RegExp(`stateFile ${stateFile} is in use by another proxy \\(pid ${first.pid} on `));
    assert.is((JSON.parse(readFileSync(`${stateFile}.lock`, "utf8")) as { pid: number }).pid, first.pid, "the first keeps it");
  } finally {
    await first.stop();
  }
  assert.not.ok(existsSync(`${stateFile}.lock`), "removed at the first's stop");
});

test.run();
