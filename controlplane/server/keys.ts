// Where the control plane keeps things in its store. Everything a proxy's snapshot is computed
// from lives under DESIRED, so that one watch of that prefix tells every replica about every
// change that matters to its proxies (and stats writes, which are frequent, do not).
//
//   /msm/v1/desired/segments/<name>            a Segment as applied (JSON, proto field names in
//                                              camelCase, `revision` left out: it is the key's
//                                              modification revision)
//   /msm/v1/desired/proxies/<node-id>          {"segments":[names]}: rewritten by every change to
//                                              the node's set, so its modification revision is
//                                              the revision of that change (also after a delete)
//   /msm/v1/desired/filters/<name>/<version>   a FilterRef (JSON); written once, never changed
//   /msm/v1/blobs/<sha256>/meta                {"size","chunks","name","version","pushedAtMs"}
//   /msm/v1/blobs/<sha256>/<nnnn>              module bytes in chunks of 512 KiB
//   /msm/v1/status/<node-id>                   a proxy's connection and ACK/NACK record (JSON)
//   /msm/v1/stats/<node-id>/<nnnn>             "<atMs>\n<pages>\n<stats JSON>": page nnnn of its
//                                              latest stats report (api/stats-pages.ts)

export const ROOT = "/msm/v1/";
export const DESIRED = `${ROOT}desired/`;
export const SEGMENTS = `${DESIRED}segments/`;
export const PROXIES = `${DESIRED}proxies/`;
export const FILTERS = `${DESIRED}filters/`;
export const BLOBS = `${ROOT}blobs/`;
export const STATUS = `${ROOT}status/`;
export const STATS = `${ROOT}stats/`;

export const BLOB_CHUNK_BYTES = 512 * 1024;

export const segmentKey = (name: string): string => `${SEGMENTS}${name}`;
export const proxyKey = (node: string): string => `${PROXIES}${node}`;
export const filterKey = (name: string, version: string): string => `${FILTERS}${name}/${version}`;
export const blobMetaKey = (sha256: string): string => `${BLOBS}${sha256}/meta`;
export const blobChunkKey = (sha256: string, i: number): string => `${BLOBS}${sha256}/${String(i).padStart(4, "0")}`;
export const statusKey = (node: string): string => `${STATUS}${node}`;
/** The single stats key of an older version (deleted when the node next reports). */
export const statsKey = (node: string): string => `${STATS}${node}`;
export const statsPageKey = (node: string, page: number): string => `${STATS}${node}/${String(page).padStart(4, "0")}`;
