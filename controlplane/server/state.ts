// The desired state (segments, per-proxy sets, filter registry) as read from the store, and the
// snapshot each proxy should run, computed from it.
//
// Snapshot versions: a proxy's version is the largest of
//   - the modification revision of its /desired/proxies/<node> key (every apply or delete that
//     changes the node's set rewrites that key in the same transaction), and
//   - the modification revision of every filter its chains resolve to, and for a stage that names
//     no version, of the last version of that filter pushed (a push of a newer version changes what
//     the proxy runs; one of a lower version does not, but counting it keeps versions growing
//     whichever version is the newest: api/versions.ts).
// Each is a store revision, so the version is the same on every replica, and it grows with every
// change of the snapshot's content: the change is written at a revision above all earlier ones.
import { unknownSegmentRecordFields, type FilterRef, type Segment, type Snapshot } from "../api/proto.js";
import { newestVersion } from "../api/versions.js";
import type { KeyValue } from "../store/index.js";
import { FILTERS, PROXIES, SEGMENTS } from "./keys.js";

export interface StoredSegment {
  /** As applied, with `revision` set to the key's modification revision. */
  readonly segment: Segment;
  readonly modRevision: number;
  /** Keys of the record this build does not define: a newer control plane stored them (see newerSettingsFor). */
  readonly newerFields: readonly string[];
}

export interface StoredFilter {
  readonly ref: FilterRef;
  readonly modRevision: number;
}

export class DesiredState {
  readonly segments = new Map<string, StoredSegment>();
  /** node id -> modification revision of its set key. */
  readonly proxies = new Map<string, number>();
  /** filter name -> version -> entry. */
  readonly filters = new Map<string, Map<string, StoredFilter>>();
  /** node id -> names of its segments. */
  readonly byProxy = new Map<string, Set<string>>();

  constructor(public revision = 0) {}

  /** Keys whose values could not be read (see put). */
  readonly malformed: string[] = [];

  static from(items: readonly KeyValue[], revision: number): DesiredState {
    const state = new DesiredState(revision);
    for (const kv of items) {
      const bad = state.put(kv);
      if (bad) state.malformed.push(bad);
    }
    return state;
  }

  /**
   * Applies one key's new value (a put). Keys outside the desired prefixes are ignored; a value
   * that does not parse (written by hand, or by a newer format) is skipped and its key returned.
   */
  put(kv: KeyValue): string | undefined {
    try {
      this.apply(kv);
      return undefined;
    } catch {
      return kv.key;
    }
  }

  private apply(kv: KeyValue): void {
    if (kv.key.startsWith(SEGMENTS)) {
      const name = kv.key.slice(SEGMENTS.length);
      const stored = JSON.parse(kv.value.toString()) as Segment;
      // a segment stored before legs existed has none (segments.ts puts `legs` last in a record, as here)
      const segment = { ...stored, legs: stored.legs ?? [], revision: kv.modRevision };
      this.removeSegment(name);
      this.segments.set(name, { segment, modRevision: kv.modRevision, newerFields: unknownSegmentRecordFields(stored) });
      let set = this.byProxy.get(segment.proxy);
      if (!set) this.byProxy.set(segment.proxy, (set = new Set()));
      set.add(name);
    } else if (kv.key.startsWith(PROXIES)) {
      this.proxies.set(kv.key.slice(PROXIES.length), kv.modRevision);
    } else if (kv.key.startsWith(FILTERS)) {
      const ref = JSON.parse(kv.value.toString()) as FilterRef;
      let versions = this.filters.get(ref.name);
      if (!versions) this.filters.set(ref.name, (versions = new Map()));
      versions.set(ref.version, { ref, modRevision: kv.modRevision });
    }
  }

  delete(key: string): void {
    if (key.startsWith(SEGMENTS)) this.removeSegment(key.slice(SEGMENTS.length));
    else if (key.startsWith(PROXIES)) this.proxies.delete(key.slice(PROXIES.length));
    else if (key.startsWith(FILTERS)) {
      const [name, version] = key.slice(FILTERS.length).split("/");
      this.filters.get(name!)?.delete(version!);
    }
  }

  private removeSegment(name: string): void {
    const old = this.segments.get(name);
    if (!old) return;
    this.segments.delete(name);
    const set = this.byProxy.get(old.segment.proxy);
    set?.delete(name);
    if (set?.size === 0) this.byProxy.delete(old.segment.proxy);
  }

  /**
   * The registry entry a chain stage means: that version, or with version "" the newest, i.e. the
   * highest version (api/versions.ts), else the one pushed last (the largest modification revision).
   */
  resolve(name: string, version: string): StoredFilter | undefined {
    const versions = this.filters.get(name);
    if (!versions) return undefined;
    if (version !== "") return versions.get(version);
    return newestVersion(versions.values(), (f) => f.ref.version, (f) => f.modRevision);
  }

  /** The modification revision of the last version of `name` pushed. */
  private lastPushed(name: string): number {
    let last = 0;
    for (const f of this.filters.get(name)?.values() ?? []) last = Math.max(last, f.modRevision);
    return last;
  }

  /** Every node id the state knows: with segments now, or with a set key (it had some). */
  nodes(): Set<string> {
    return new Set([...this.proxies.keys(), ...this.byProxy.keys()]);
  }

  /** The segments `node` is meant to run now, by name. */
  segmentsOn(node: string): string[] {
    return [...(this.byProxy.get(node) ?? [])].sort();
  }

  /** Whether `node` is meant to run any segment now. */
  hasSegments(node: string): boolean {
    return this.byProxy.has(node);
  }

  /**
   * The segments of `node` stored by a newer control plane with settings this build does not know,
   * and which: a snapshot built here would run them without those settings (see ProxyConnection.push).
   */
  newerSettingsFor(node: string): { segment: string; fields: readonly string[] }[] {
    const out: { segment: string; fields: readonly string[] }[] = [];
    for (const name of this.byProxy.get(node) ?? []) {
      const fields = this.segments.get(name)!.newerFields;
      if (fields.length > 0) out.push({ segment: name, fields });
    }
    return out.sort((a, b) => a.segment.localeCompare(b.segment));
  }

  /**
   * What `node` should run: its segments sorted by name (each stage's version resolved to the
   * registry version it means), the FilterRefs they use, and the version (see the file's header).
   */
  snapshotFor(node: string): Snapshot {
    let version = this.proxies.get(node) ?? 0;
    const refs = new Map<string, FilterRef>();
    const names = [...(this.byProxy.get(node) ?? [])].sort();
    const segments = names.map((name) => {
      const { segment } = this.segments.get(name)!;
      const chain = segment.chain.map((stage) => {
        const found = this.resolve(stage.filter, stage.version);
        if (!found) return stage; // cannot happen (filters are never removed); the proxy will NACK
        version = Math.max(version, found.modRevision, stage.version === "" ? this.lastPushed(stage.filter) : 0);
        refs.set(`${found.ref.name}@${found.ref.version}`, found.ref);
        return { ...stage, version: found.ref.version };
      });
      return { ...segment, chain };
    });
    const filters = [...refs.values()].sort((a, b) => (a.name === b.name ? a.version.localeCompare(b.version) : a.name.localeCompare(b.name)));
    return { version, segments, filters };
  }
}
