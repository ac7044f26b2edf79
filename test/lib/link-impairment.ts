// Makes one direction of a lab's link lossy (random or Gilbert-Elliott burst loss), slow (a tbf rate
// limit) or late (delay and jitter), and counts what the link offered and dropped.
//
// Two ways to drop, picked once per process (MSM_IMPAIRMENT=netem|iptables forces one):
// - `tc netem` on the sending end's veth (egress): loss, delay, jitter. Its counters: `tc -s qdisc`.
// - iptables in the receiving end's namespace (raw PREROUTING on its veth), for kernels built
//   without sch_netem: `statistic --mode random` drops at random, and a Gilbert-Elliott chain keeps
//   its good/bad state in an xt_recent list masked to one entry (so one state for the whole link,
//   as netem keeps one per qdisc). It drops on receipt, so the sender never sees an error (a drop in
//   OUTPUT would fail its send with EPERM). IPv4 only; no delay or jitter. Counters: iptables-save -c.
// Neither is seeded: a test reports the loss the link measured, not the loss it asked for.
import { spawnSync } from "node:child_process";
import { NETNS_PREFIX, runSync, type NetnsLab } from "./netns.js";
import { peer } from "./peers.js";

/** Probabilities are fractions (0.05 is 5%). */
export type LossModel =
  | { readonly kind: "random"; readonly p: number }
  /**
   * netem's `loss gemodel p r [1-h [1-k]]`: each packet, a good link turns bad with probability
   * `p`, a bad one good with `r`; a packet is lost with `lossInBad` (1-h, default 1) when the link
   * was bad as it came, with `lossInGood` (1-k, default 0) when good.
   */
  | { readonly kind: "gilbert-elliott"; readonly p: number; readonly r: number; readonly lossInBad?: number; readonly lossInGood?: number };

export interface Impairment {
  readonly loss?: LossModel;
  /** netem only. */
  readonly delayMs?: number;
  /** netem only; needs delayMs. */
  readonly jitterMs?: number;
  /** A tbf rate limit on the sending end, with a queue of 100 ms at that rate. */
  readonly rateKbit?: number;
}

/**
 * The Gilbert-Elliott model whose bursts average `meanBurst` packets and whose loss averages
 * `meanLoss` (every packet lost while bad, none while good): bursts end with r = 1 / meanBurst, and
 * the link is bad for p / (p + r) of the packets, so p = meanLoss * r / (1 - meanLoss).
 */
export function gilbertElliott(meanLoss: number, meanBurst: number): LossModel {
  if (!(meanLoss > 0 && meanLoss < 1)) throw new TypeError(`meanLoss must be in (0, 1), got ${meanLoss}`);
  if (!(meanBurst >= 1)) throw new TypeError(`meanBurst must be at least 1 packet, got ${meanBurst}`);
  const r = 1 / meanBurst;
  return { kind: "gilbert-elliott", p: (meanLoss * r) / (1 - meanLoss), r, lossInBad: 1, lossInGood: 0 };
}

const pct = (x: number): string => `${+(x * 100).toFixed(4)}%`;

/** "random 5%", "GE p 1.316% r 25% (burst 4, loss 5%)", "rate 2000 kbit/s", "none". */
export function describeImpairment(i: Impairment): string {
  const parts: string[] = [];
  const loss = i.loss;
  if (loss?.kind === "random") parts.push(`random ${pct(loss.p)}`);
  if (loss?.kind === "gilbert-elliott") {
    const bad = loss.lossInBad ?? 1;
    const good = loss.lossInGood ?? 0;
    const meanLoss = (loss.p * bad + loss.r * good) / (loss.p + loss.r);
    parts.push(`GE p ${pct(loss.p)} r ${pct(loss.r)}${bad !== 1 || good !== 0 ? ` 1-h ${pct(bad)} 1-k ${pct(good)}` : ` (burst ${+(1 / loss.r).toFixed(2)}, loss ${pct(meanLoss)})`}`);
  }
  if (i.delayMs !== undefined) parts.push(`delay ${i.delayMs} ms${i.jitterMs !== undefined ? ` ± ${i.jitterMs} ms` : ""}`);
  if (i.rateKbit !== undefined) parts.push(`rate ${i.rateKbit} kbit/s`);
  return parts.join(", ") || "none";
}

function checkImpairment(i: Impairment): void {
  const prob = (field: string, v: number | undefined): void => {
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new TypeError(`${field}: a probability in [0, 1], got ${v}`);
  };
  if (i.loss?.kind === "random") prob("loss.p", i.loss.p);
  if (i.loss?.kind === "gilbert-elliott") {
    prob("loss.p", i.loss.p);
    prob("loss.r", i.loss.r);
    prob("loss.lossInBad", i.loss.lossInBad);
    prob("loss.lossInGood", i.loss.lossInGood);
  }
  for (const [field, v] of [["delayMs", i.delayMs], ["jitterMs", i.jitterMs], ["rateKbit", i.rateKbit]] as const) {
    if (v !== undefined && !(v >= 0 && Number.isFinite(v))) throw new TypeError(`${field}: a number >= 0, got ${v}`);
  }
  if (i.jitterMs !== undefined && i.delayMs === undefined) throw new TypeError("jitterMs needs delayMs");
}

export type ImpairmentBackend = "netem" | "iptables";

/** Which backend works here: netem if the kernel has it, else iptables; null if neither (or not root). */
function probeBackend(): ImpairmentBackend | null {
  if (process.getuid?.() !== 0) return null;
  const ns = `${NETNS_PREFIX}${process.pid}-probe`;
  if (spawnSync("ip", ["netns", "add", ns]).status !== 0) return null;
  try {
    const ok = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: "ignore", timeout: 15_000 }).status === 0;
    const forced = process.env.MSM_IMPAIRMENT;
    const netem = forced !== "iptables" && ok("tc", ["-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "loss", "1%"]);
    if (netem) return "netem";
    const iptables = forced !== "netem" && ok("ip", ["netns", "exec", ns, "iptables", "-t", "raw", "-A", "PREROUTING", "-m", "statistic", "--mode", "random", "--probability", "0.5", "-m", "recent", "--name", "probe", "--mask", "0.0.0.0", "--rcheck"]);
    return iptables ? "iptables" : null;
  } finally {
    spawnSync("ip", ["netns", "del", ns]);
  }
}

let backend: ImpairmentBackend | null | undefined;
export function impairmentBackend(): ImpairmentBackend | null {
  return (backend ??= probeBackend());
}

export const impairmentPeer = peer(
  "a lossy link (tc netem, or iptables statistic and recent matches, in network namespaces, as root)",
  "run as root; Debian packages iproute2 and iptables; a kernel with sch_netem or xt_statistic and xt_recent",
  () => impairmentBackend() !== null,
);

const chainName = (dev: string): string => `MSM_IMPAIR_${dev}`;

/** Applies `impairment` to what `from` sends to `to` (its neighbour; `path` 1 for a second link), replacing any earlier one. */
export function impair(lab: NetnsLab, from: string, to: string, impairment: Impairment, path = 0): void {
  checkImpairment(impairment);
  const which = impairmentBackend();
  if (which === null) throw new Error(`no way to impair a link here: ${impairmentPeer.install}`);
  clearImpairment(lab, from, to, path);
  const link = lab.link(from, to, path);
  const tc = (...args: string[]): string => runSync("tc", ["-n", link.from.ns, ...args]);
  const tbf = (parent: string[]): void => {
    const bytesPerSecond = (impairment.rateKbit! * 1000) / 8;
    const burst = Math.max(3000, Math.round(bytesPerSecond / 100)); // 10 ms at the rate, at least two packets
    const limit = Math.max(15_000, Math.round(bytesPerSecond / 10)); // 100 ms of queue
    tc("qdisc", "add", "dev", link.from.dev, ...parent, "tbf", "rate", `${impairment.rateKbit}kbit`, "burst", String(burst), "limit", String(limit));
  };
  if (which === "netem") {
    netemOf.set(`${link.from.ns}/${link.from.dev}`, netemArgs(impairment));
    tc("qdisc", "add", "dev", link.from.dev, "root", "handle", "1:", "netem", "limit", "100000", ...netemArgs(impairment));
    if (impairment.rateKbit !== undefined) tbf(["parent", "1:1", "handle", "10:"]);
    return;
  }
  if (impairment.delayMs !== undefined) {
    throw new Error("delay and jitter need tc netem, which this kernel lacks (CONFIG_NET_SCH_NETEM); the iptables fallback only drops");
  }
  if (impairment.rateKbit !== undefined) tbf(["root", "handle", "1:"]);
  const ipt = (...args: string[]): string => lab.execSync(to, "iptables", ["-w", "-t", "raw", ...args]);
  const chain = chainName(link.to.dev);
  ipt("-N", chain);
  // the cut (cutLink): dormant until its xt_recent list holds the (masked, so single) address
  ipt("-A", chain, "-m", "recent", "--name", cutList(link.to.dev), "--mask", "0.0.0.0", "--rsource", "--rcheck", "-m", "comment", "--comment", `msm-lost-${link.to.dev}`, "-j", "DROP");
  for (const rule of iptablesRules(chain, link.to.dev, impairment.loss)) ipt(...rule);
  ipt("-A", "PREROUTING", "-i", link.to.dev, "-m", "comment", "--comment", `msm-offered-${link.to.dev}`, "-j", chain);
}

const cutList = (dev: string): string => `msm_cut_${dev}`;
/** The netem arguments each impaired link end runs with, to restore after a cut. */
const netemOf = new Map<string, string[]>();

/**
 * Cuts an impaired link (every packet lost, counted as the link's loss) or restores it, without
 * replacing the impairment: its counters go on (replacing it would lose what it counted meanwhile).
 */
export function cutLink(lab: NetnsLab, from: string, to: string, cut: boolean, path = 0): void {
  const link = lab.link(from, to, path);
  if (impairmentBackend() === "netem") {
    const args = cut ? ["loss", "100%"] : netemOf.get(`${link.from.ns}/${link.from.dev}`) ?? [];
    runSync("tc", ["-n", link.from.ns, "qdisc", "change", "dev", link.from.dev, "root", "handle", "1:", "netem", "limit", "100000", ...args]);
    return;
  }
  lab.execSync(to, "sh", ["-c", `echo ${cut ? "+0.0.0.0" : "/"} > /proc/net/xt_recent/${cutList(link.to.dev)}`]);
}

/** netem's arguments for an impairment (without the rate limit, which a tbf child gives). */
export function netemArgs(i: Impairment): string[] {
  const args: string[] = [];
  const p = (x: number): string => `${+(x * 100).toFixed(6)}%`;
  if (i.loss?.kind === "random") args.push("loss", "random", p(i.loss.p));
  if (i.loss?.kind === "gilbert-elliott") args.push("loss", "gemodel", p(i.loss.p), p(i.loss.r), p(i.loss.lossInBad ?? 1), p(i.loss.lossInGood ?? 0));
  if (i.delayMs !== undefined) args.push("delay", `${i.delayMs}ms`, ...(i.jitterMs !== undefined ? [`${i.jitterMs}ms`] : []));
  return args;
}

/**
 * The rules of the iptables backend's chain (arguments after `iptables -t raw`). Every rule that
 * drops carries the comment msm-lost-<dev>, which linkCounters sums.
 */
export function iptablesRules(chain: string, dev: string, loss: LossModel | undefined): string[][] {
  const lost = ["-m", "comment", "--comment", `msm-lost-${dev}`, "-j", "DROP"];
  const chance = (p: number): string[] => (p >= 1 ? [] : ["-m", "statistic", "--mode", "random", "--probability", String(p)]);
  if (loss === undefined) return [];
  if (loss.kind === "random") return loss.p > 0 ? [["-A", chain, ...chance(loss.p), ...lost]] : [];
  // the state is "bad" while the list holds the (masked, so single) address
  const list = ["-m", "recent", "--name", `msm_ge_${dev}`, "--mask", "0.0.0.0", "--rsource"];
  const bad = `${chain}_BAD`;
  const rules: string[][] = [["-N", bad]];
  // bad as it came: maybe turn good, then lose with 1-h; ACCEPT ends the walk so it is not judged good too
  if (loss.r > 0) rules.push(["-A", bad, ...chance(loss.r), ...list, "--remove"]);
  if ((loss.lossInBad ?? 1) > 0) rules.push(["-A", bad, ...chance(loss.lossInBad ?? 1), ...lost]);
  rules.push(["-A", bad, "-j", "ACCEPT"]);
  rules.push(["-A", chain, ...list, "--rcheck", "-j", bad]);
  // good as it came: maybe turn bad, then lose with 1-k
  if (loss.p > 0) rules.push(["-A", chain, ...chance(loss.p), ...list, "--set"]);
  if ((loss.lossInGood ?? 0) > 0) rules.push(["-A", chain, ...chance(loss.lossInGood!), ...lost]);
  return rules;
}

/** Removes what impair() set on from -> to; nothing if there was none. */
export function clearImpairment(lab: NetnsLab, from: string, to: string, path = 0): void {
  const link = lab.link(from, to, path);
  spawnSync("tc", ["-n", link.from.ns, "qdisc", "del", "dev", link.from.dev, "root"], { stdio: "ignore" });
  if (impairmentBackend() !== "iptables") return;
  const ipt = (...args: string[]): void => {
    spawnSync("ip", ["netns", "exec", link.to.ns, "iptables", "-w", "-t", "raw", ...args], { stdio: "ignore" });
  };
  const chain = chainName(link.to.dev);
  ipt("-D", "PREROUTING", "-i", link.to.dev, "-m", "comment", "--comment", `msm-offered-${link.to.dev}`, "-j", chain);
  for (const c of [chain, `${chain}_BAD`]) ipt("-F", c);
  for (const c of [chain, `${chain}_BAD`]) ipt("-X", c);
}

/** Packets on one direction of a link since impair() (interface drops: since the link was made). */
export interface LinkCounters {
  /** Packets that reached the impairment (netem: every packet; iptables: every IPv4 packet). */
  readonly offered: number;
  /** Dropped by the loss model. */
  readonly lost: number;
  /** Dropped by a full queue: the tbf rate limit's, or netem's own. */
  readonly queueDrops: number;
  /** The veth's own drops: the sender's tx and the receiver's rx (a full backlog on a busy machine). */
  readonly interfaceDrops: number;
}

interface QdiscStats {
  kind: string;
  packets: number;
  drops: number;
  qlen?: number;
}

interface LinkStats {
  stats64: { rx: { dropped: number }; tx: { dropped: number } };
}

export function linkCounters(lab: NetnsLab, from: string, to: string, path = 0): LinkCounters {
  const link = lab.link(from, to, path);
  const qdiscs = JSON.parse(runSync("tc", ["-n", link.from.ns, "-s", "-j", "qdisc", "show", "dev", link.from.dev])) as QdiscStats[];
  const netem = qdiscs.find((q) => q.kind === "netem");
  const tbfDrops = qdiscs.filter((q) => q.kind === "tbf").reduce((sum, q) => sum + q.drops, 0);
  const linkStats = (ns: string, dev: string): LinkStats => (JSON.parse(runSync("ip", ["-n", ns, "-s", "-j", "link", "show", "dev", dev])) as LinkStats[])[0]!;
  const interfaceDrops = linkStats(link.from.ns, link.from.dev).stats64.tx.dropped + linkStats(link.to.ns, link.to.dev).stats64.rx.dropped;
  if (netem) {
    // netem's drops hold its loss, its own full queue (its limit, 100000, keeps that away) and
    // what its tbf child refused; the root's packets and queue length cover the child's too
    return { offered: netem.packets + netem.drops + (netem.qlen ?? 0), lost: netem.drops - tbfDrops, queueDrops: tbfDrops, interfaceDrops };
  }
  let offered = 0;
  let lost = 0;
  if (impairmentBackend() === "iptables") {
    const rules = lab.execSync(to, "iptables-save", ["-c", "-t", "raw"]);
    for (const m of rules.matchAll(/^\[(\d+):\d+\] .*--comment "?msm-(offered|lost)-(\S+?)"? /gm)) {
      if (m[3] !== link.to.dev) continue;
      if (m[2] === "offered") offered += Number(m[1]);
      else lost += Number(m[1]);
    }
  }
  return { offered, lost, queueDrops: tbfDrops, interfaceDrops };
}
