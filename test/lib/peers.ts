// Tests that need a real peer (GStreamer, FFmpeg, rtpengine). Whether the peer is there is decided
// when the test is declared: under CI (the CI environment variable set, as .ci/run does) a missing
// peer makes the test fail; elsewhere the test is not run, a banner says what was not tested, and
// uvu counts it as skipped, which the runner (test/run.ts) reports and never counts as passed.
import { spawnSync } from "node:child_process";
import { suite as uvuSuite } from "uvu";
import * as assert from "uvu/assert";
import type { Suite } from "./suite.js";

export interface Peer {
  /** What the peer is, for messages: "GStreamer with srtpenc/srtpdec". */
  readonly name: string;
  /** How to install it: "Debian package gstreamer1.0-plugins-bad". */
  readonly install: string;
  /** Whether it is usable here; asked once. */
  readonly present: () => boolean;
}

/** True if `cmd args` runs and exits 0 within 15 s. */
export function runsOk(cmd: string, args: readonly string[]): boolean {
  return spawnSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 15_000 }).status === 0;
}

/** A peer whose presence check runs at most once. */
export function peer(name: string, install: string, check: () => boolean): Peer {
  let known: boolean | undefined;
  return { name, install, present: () => (known ??= check()) };
}

/** A peer that is present when every one of `peers` is (a test that needs several). */
export function allOf(...peers: readonly Peer[]): Peer {
  return peer(peers.map((p) => p.name).join(" and "), peers.map((p) => p.install).join("; "), () => peers.every((p) => p.present()));
}

type TestFn = Parameters<Suite>[1];

/** Declares `title` on `test` if `needs` is present; otherwise fails it (CI) or skips it, loudly. */
export function peerTest(test: Suite, needs: Peer, title: string, fn: TestFn, options?: { timeoutMs?: number }): void {
  if (needs.present()) {
    test(title, fn, options);
    return;
  }
  const what = `${needs.name} is not installed (${needs.install}; see /work/shared/peers.md or .ci/run)`;
  if (process.env.CI) {
    test(title, () => assert.unreachable(`${what}: under CI a missing peer fails the test`), options);
    return;
  }
  const bar = "!".repeat(100);
  console.error(`\n${bar}\n!!! SKIPPED: ${title}\n!!! ${what}: this was NOT tested.\n${bar}\n`);
  const skipped = uvuSuite(`SKIPPED (${needs.name} missing): ${title}`);
  skipped.skip(title, () => undefined);
  skipped.run();
}
