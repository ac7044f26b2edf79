// A deterministic lossy link for FEC tests, in this process: it listens on a media, a column FEC
// and a row FEC port and forwards every datagram it keeps to the same leg of each target (so
// several decoders get the identical lossy stream), dropping by one of:
//   - an explicit list: media or FEC packets by RTP sequence number, FEC packets also by SNBase;
//   - seeded Bernoulli loss with probability p;
//   - seeded Gilbert-Elliott bursts (netem's gemodel parameters: p good->bad, r bad->good, loss
//     in bad 1-h, loss in good 1-k).
// A random decision is a pure function of (seed, leg, RTP sequence number), drawn once per leg
// for all 65536 sequence numbers (a Gilbert-Elliott chain runs over them in order, from 0), so it
// does not depend on arrival order or timing: the same seed drops the same packets every run,
// and `wouldDrop` tells a test in advance. The relay records what it dropped (leg, sequence
// number, and a FEC packet's SNBase and row/column bit) and which FEC packets it forwarded, so a
// test can work out what a decoder could rebuild (test/lib/fec-recovery.ts). Memory is bounded:
// 64 KiB of decisions per leg, and at most `maxRecords` records (then `truncated` counts).
import { createHash } from "node:crypto";
import type { Socket } from "node:dgram";
import type { FecGroup } from "./fec-recovery.js";
import { freeLegBase, legPorts, LEGS, parseFecPacket, type Leg, type LegPorts } from "./fec-wire.js";
import { bindUdp } from "./udp.js";

export type DropSpec =
  | { readonly leg: Leg; readonly seq: number }
  | { readonly leg: "row" | "column"; readonly snBase: number };

export type LossModel =
  | { readonly kind: "none" }
  | { readonly kind: "list"; readonly drops: readonly DropSpec[] }
  | { readonly kind: "bernoulli"; readonly p: number; readonly seed: number }
  | {
    readonly kind: "gilbert-elliott";
    /** Probability of going from the good state to the bad one, per packet. */
    readonly p: number;
    /** Probability of going back from bad to good, per packet (mean burst length 1/r). */
    readonly r: number;
    /** Loss probability in the bad state (netem's 1-h; default 1). */
    readonly lossInBad?: number;
    /** Loss probability in the good state (netem's 1-k; default 0). */
    readonly lossInGood?: number;
    readonly seed: number;
  };

/** A packet the relay dropped or forwarded. `snBase` and `row` only for a FEC packet that parses. */
export interface PacketRecord {
  readonly leg: Leg;
  readonly seq: number;
  readonly snBase?: number;
  /** The FEC header's D bit: row (true) or column (false) FEC. */
  readonly row?: boolean;
}

export interface LegCounts {
  received: number;
  forwarded: number;
  dropped: number;
}

const LO = "127.0.0.1";

/** Uniform numbers in [0, 1), a pure function of (seed, stream): SHA-256 in counter mode. */
function uniforms(seed: number, stream: string, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let block = 0; block * 8 < n; block++) {
    const h = createHash("sha256").update(`${seed}:${stream}:${block}`).digest();
    for (let k = 0; k < 8 && block * 8 + k < n; k++) out[block * 8 + k] = h.readUInt32BE(4 * k) / 2 ** 32;
  }
  return out;
}

const probability = (name: string, v: number): number => {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`loss model: ${name} must be a probability in [0, 1], got ${v}`);
  return v;
};

/** The drop decision for each of the 65536 sequence numbers of one leg (1: drop). */
function decisions(model: LossModel, leg: Leg): Uint8Array | null {
  const drop = new Uint8Array(65536);
  if (model.kind === "bernoulli") {
    const p = probability("p", model.p);
    const u = uniforms(model.seed, leg, 65536);
    for (let s = 0; s < 65536; s++) drop[s] = u[s]! < p ? 1 : 0;
    return drop;
  }
  if (model.kind === "gilbert-elliott") {
    const [p, r] = [probability("p", model.p), probability("r", model.r)];
    const [inBad, inGood] = [probability("lossInBad", model.lossInBad ?? 1), probability("lossInGood", model.lossInGood ?? 0)];
    const u = uniforms(model.seed, leg, 2 * 65536);
    let bad = false;
    for (let s = 0; s < 65536; s++) {
      drop[s] = u[2 * s]! < (bad ? inBad : inGood) ? 1 : 0;
      const move = u[2 * s + 1]!;
      bad = bad ? move >= r : move < p;
    }
    return drop;
  }
  return null;
}

export class LossyRelay {
  readonly dropped: PacketRecord[] = [];
  /** FEC packets forwarded (what reached the targets' FEC legs). */
  readonly forwardedFec: PacketRecord[] = [];
  readonly counts: Record<Leg, LegCounts> = {
    media: { received: 0, forwarded: 0, dropped: 0 },
    column: { received: 0, forwarded: 0, dropped: 0 },
    row: { received: 0, forwarded: 0, dropped: 0 },
  };
  /** Datagrams too short for RTP: forwarded, never dropped. */
  notRtp = 0;
  /** Records not kept because `maxRecords` was reached. */
  truncated = 0;
  /** Sends the kernel refused (reported by the send callback). */
  sendErrors = 0;
  private readonly listed: Set<string>;

  private constructor(
    readonly listen: LegPorts,
    private readonly sockets: Record<Leg, Socket>,
    readonly targets: readonly LegPorts[],
    private readonly tables: Record<Leg, Uint8Array | null>,
    model: LossModel,
    private readonly maxRecords: number,
  ) {
    this.listed = new Set(model.kind === "list" ? model.drops.map((d) => ("seq" in d ? `${d.leg}:seq:${d.seq & 0xffff}` : `${d.leg}:sn:${d.snBase & 0xffff}`)) : []);
    for (const leg of LEGS) sockets[leg].on("message", (msg) => this.relay(leg, msg));
  }

  /**
   * Listens on `listen` (media P, column P+2, row P+4; a free P if not given) and forwards to the
   * same legs of every target. `legs`: the legs a random model applies to (default all).
   */
  static async start(o: { targets: readonly LegPorts[]; loss: LossModel; listen?: LegPorts; legs?: readonly Leg[]; maxRecords?: number }): Promise<LossyRelay> {
    if (o.targets.length === 0) throw new RangeError("lossy relay: at least one target");
    const randomLegs = o.legs ?? LEGS;
    const table = (leg: Leg): Uint8Array | null => (randomLegs.includes(leg) ? decisions(o.loss, leg) : null);
    const tables = { media: table("media"), column: table("column"), row: table("row") }; // checks the model first
    for (let attempt = 1; ; attempt++) {
      const listen = o.listen ?? legPorts(await freeLegBase());
      const bound: Partial<Record<Leg, Socket>> = {};
      try {
        for (const leg of LEGS) bound[leg] = await bindUdp(listen[leg], LO);
      } catch (err) {
        for (const s of Object.values(bound)) s.close();
        if (o.listen !== undefined || attempt >= 3) throw err;
        continue; // taken meanwhile: another base
      }
      return new LossyRelay(listen, bound as Record<Leg, Socket>, o.targets, tables, o.loss, o.maxRecords ?? 100_000);
    }
  }

  /** Whether the relay drops (or dropped) the packet `seq` of `leg` (a FEC packet: also by `snBase`). */
  wouldDrop(leg: Leg, seq: number, snBase?: number): boolean {
    if (this.tables[leg]?.[seq & 0xffff] === 1) return true;
    return this.listed.has(`${leg}:seq:${seq & 0xffff}`) || (snBase !== undefined && this.listed.has(`${leg}:sn:${snBase & 0xffff}`));
  }

  private record(into: PacketRecord[], r: PacketRecord): void {
    if (into.length < this.maxRecords) into.push(r);
    else this.truncated++;
  }

  private relay(leg: Leg, msg: Buffer): void {
    const counts = this.counts[leg];
    counts.received++;
    let record: PacketRecord | null = null;
    if (msg.length < 12) {
      this.notRtp++;
    } else {
      const fec = leg === "media" ? null : parseFecPacket(msg);
      record = fec ? { leg, seq: msg.readUInt16BE(2), snBase: fec.snBase, row: fec.d === 1 } : { leg, seq: msg.readUInt16BE(2) };
      if (this.wouldDrop(leg, record.seq, record.snBase)) {
        counts.dropped++;
        this.record(this.dropped, record);
        return;
      }
      if (fec) this.record(this.forwardedFec, record);
    }
    counts.forwarded++;
    for (const target of this.targets) {
      this.sockets[leg].send(msg, target[leg], LO, (err) => {
        if (err) this.sendErrors++;
      });
    }
  }

  /** Media packets dropped, as stream indexes from `seq0` (see test/lib/rtp-stream.ts). */
  lostMedia(seq0: number): number[] {
    return this.dropped.filter((r) => r.leg === "media").map((r) => (r.seq - seq0) & 0xffff);
  }

  /** The FEC groups that reached the targets, by stream index from `seq0` (fec-recovery's input). */
  fecGroups(seq0: number): FecGroup[] {
    return this.forwardedFec.map((r) => ({ kind: r.row ? "row" : "column", base: (r.snBase! - seq0) & 0xffff }));
  }

  /** The ports the relay listens on (for kernel drop accounting). */
  get ports(): number[] {
    return LEGS.map((leg) => this.listen[leg]);
  }

  close(): void {
    for (const leg of LEGS) this.sockets[leg].close();
  }
}
