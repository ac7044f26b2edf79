// The fec filter's settings: built-in defaults, overridden key by key by the root config, then by
// each context's config. Every limit is checked here, at config time, never per packet.
import { Config, MAX_LEGS } from "../../../sdk/assembly";

export const MODE_UNSET = 0;
export const MODE_ENCODE = 1;
export const MODE_DECODE = 2;

/** What the decoder does with a FEC packet once it has read it. */
export const FEC_LEGS_STRIP = 0;
export const FEC_LEGS_PASS = 1;

// SMPTE ST 2022-1 matrix limits (README "Limits" cites where they come from).
export const MAX_COLUMNS = 20;
export const MIN_COLUMNS_ROW_FEC = 4;
export const MIN_ROWS = 4;
export const MAX_ROWS = 20;
export const MAX_MATRIX = 100;

const KEYS: string[] = [
  "mode", "columns", "rows", "rowFec", "columnLeg", "rowLeg", "payloadType", "maxDelayMs", "fecLegs",
];
/** Keys only the root config may set: they size what the whole instance shares. */
const ROOT_ONLY_KEYS: string[] = ["bufferBudgetKiB"];
const ROOT_KEYS: string[] = KEYS.concat(ROOT_ONLY_KEYS);

export class Settings {
  mode: i32 = MODE_UNSET;
  /** L: packets per row; 0 until a config sets it. */
  columns: i32 = 0;
  /** D: packets per column; 0 until a config sets it. */
  rows: i32 = 0;
  /** 2-D (row and column FEC) when true, column only (1-D) when false. */
  rowFec: bool = true;
  columnLeg: i32 = 1;
  rowLeg: i32 = 2;
  /** Whether a config named rowLeg: a decoder's default row leg may be absent (it uses what comes). */
  rowLegSet: bool = false;
  /** The RTP payload type of the FEC packets the encoder sends (GStreamer's default). */
  payloadType: i32 = 96;
  /** Decoder: longest a packet waits for a missing one before it (repair or give up). */
  maxDelayMs: i32 = 1000;
  fecLegs: i32 = FEC_LEGS_STRIP;

  copyFrom(o: Settings): void {
    this.mode = o.mode;
    this.columns = o.columns;
    this.rows = o.rows;
    this.rowFec = o.rowFec;
    this.columnLeg = o.columnLeg;
    this.rowLeg = o.rowLeg;
    this.rowLegSet = o.rowLegSet;
    this.payloadType = o.payloadType;
    this.maxDelayMs = o.maxDelayMs;
    this.fecLegs = o.fecLegs;
  }

  /**
   * Overrides the keys `cfg` sets; problems are recorded in `cfg`. `root`: the root config,
   * which may also set ROOT_ONLY_KEYS (read by the caller) and need not be complete.
   */
  apply(cfg: Config, root: bool): void {
    cfg.rootOnly(ROOT_ONLY_KEYS, root);
    cfg.rejectUnknown(root ? ROOT_KEYS : KEYS);
    if (cfg.has("mode")) {
      const mode = cfg.getString("mode", "");
      if (mode == "encode") this.mode = MODE_ENCODE;
      else if (mode == "decode") this.mode = MODE_DECODE;
      else cfg.fail("config key 'mode' must be 'encode' or 'decode'");
    }
    this.columns = <i32>cfg.getInt("columns", this.columns, 1, MAX_COLUMNS);
    this.rows = <i32>cfg.getInt("rows", this.rows, MIN_ROWS, MAX_ROWS);
    this.rowFec = cfg.getBool("rowFec", this.rowFec);
    this.columnLeg = <i32>cfg.getInt("columnLeg", this.columnLeg, 1, MAX_LEGS - 1);
    if (cfg.has("rowLeg")) this.rowLegSet = true;
    this.rowLeg = <i32>cfg.getInt("rowLeg", this.rowLeg, 1, MAX_LEGS - 1);
    this.payloadType = <i32>cfg.getInt("payloadType", this.payloadType, 0, 127);
    if (this.payloadType >= 72 && this.payloadType <= 76) {
      cfg.fail("config key 'payloadType' must not be 72-76 (read as RTCP on the wire, RFC 5761)");
    }
    this.maxDelayMs = <i32>cfg.getInt("maxDelayMs", this.maxDelayMs, 1, 10_000);
    if (cfg.has("fecLegs")) {
      const legs = cfg.getString("fecLegs", "");
      if (legs == "strip") this.fecLegs = FEC_LEGS_STRIP;
      else if (legs == "pass") this.fecLegs = FEC_LEGS_PASS;
      else cfg.fail("config key 'fecLegs' must be 'strip' or 'pass'");
    }
  }

  /** The rules across keys, for a context's merged settings. */
  check(cfg: Config): void {
    if (this.mode == MODE_UNSET) cfg.fail("config key 'mode' is required: 'encode' or 'decode'");
    if (this.columns == 0) cfg.fail("config key 'columns' (L) is required");
    if (this.rows == 0) cfg.fail("config key 'rows' (D) is required");
    if (this.columns == 0 || this.rows == 0) return;
    if (this.rowFec && this.columns < MIN_COLUMNS_ROW_FEC) {
      cfg.fail("config key 'columns' must be at least " + MIN_COLUMNS_ROW_FEC.toString() +
        " with rowFec (SMPTE ST 2022-1, 2-D: 4 <= L <= 20); set rowFec: false for column-only FEC");
    }
    if (this.columns * this.rows > MAX_MATRIX) {
      cfg.fail("config keys 'columns' x 'rows' (L x D = " + this.columns.toString() + " x " + this.rows.toString() +
        " = " + (this.columns * this.rows).toString() + ") must be at most " + MAX_MATRIX.toString() + " (SMPTE ST 2022-1)");
    }
    // the host says how many legs the segment has (ABI 1.7; 0: not said): FEC on a leg it lacks
    // would never be sent (encode) or never come (decode). A decoder's default row leg may be
    // absent: it repairs with the column FEC that comes (configs that ran before 1.7 still do)
    cfg.requireLeg("columnLeg", this.columnLeg);
    if (this.rowFec && (this.mode == MODE_ENCODE || this.rowLegSet)) cfg.requireLeg("rowLeg", this.rowLeg);
  }
}
