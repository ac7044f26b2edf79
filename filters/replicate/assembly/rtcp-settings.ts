// The feedback part's settings: the `feedback` object of a context's config (README.md
// "Config"), every limit checked here, at config time.
import { Config, randomU32 } from "../../../sdk/assembly";

const KEYS: string[] = [
  "keyframeIntervalMs", "nackIntervalMs", "maxNacksPerSecond", "reportIntervalMs", "receiverTimeoutMs",
  "maxReceivers", "maxMediaSources", "reporterSsrc", "reporterCname",
];

/** One RR carries at most 31 report blocks (a 5-bit count): one per media source. */
export const MAX_MEDIA_SOURCES = 31;
/** The SDES item length is one octet; a CNAME this long keeps the filter's packets small. */
export const MAX_CNAME_BYTES = 64;

export class FeedbackSettings {
  keyframeIntervalUs: i64 = 500_000;
  nackIntervalUs: i64 = 100_000;
  maxNacksPerSecond: i32 = 1000;
  reportIntervalUs: i64 = 1_000_000;
  /** RFC 3550 6.3.5: a participant is timed out after 5 reporting intervals of at least 5 s. */
  receiverTimeoutUs: i64 = 25_000_000;
  maxReceivers: i32 = 1024;
  maxMediaSources: i32 = 16;
  reporterSsrc: u32 = 0;
  reporterCname: string = "";

  /** The settings `cfg`'s `feedback` object asks for (absent: the defaults); null after a problem. */
  static read(cfg: Config): FeedbackSettings | null {
    const s = new FeedbackSettings();
    const fb = cfg.getObject("feedback");
    if (fb !== null) {
      fb.rejectUnknown(KEYS);
      s.keyframeIntervalUs = fb.getInt("keyframeIntervalMs", s.keyframeIntervalUs / 1000, 0, 60_000) * 1000;
      s.nackIntervalUs = fb.getInt("nackIntervalMs", s.nackIntervalUs / 1000, 0, 10_000) * 1000;
      s.maxNacksPerSecond = <i32>fb.getInt("maxNacksPerSecond", s.maxNacksPerSecond, 0, 1_000_000);
      s.reportIntervalUs = fb.getInt("reportIntervalMs", s.reportIntervalUs / 1000, 100, 60_000) * 1000;
      s.receiverTimeoutUs = fb.getInt("receiverTimeoutMs", s.receiverTimeoutUs / 1000, 1000, 3_600_000) * 1000;
      s.maxReceivers = <i32>fb.getInt("maxReceivers", s.maxReceivers, 1, 65_536);
      s.maxMediaSources = <i32>fb.getInt("maxMediaSources", s.maxMediaSources, 1, MAX_MEDIA_SOURCES);
      s.reporterSsrc = <u32>fb.getInt("reporterSsrc", 0, 0, 0xffff_ffff);
      s.reporterCname = fb.getString("reporterCname", "");
      const cnameBytes = String.UTF8.byteLength(s.reporterCname);
      if (fb.has("reporterCname") && (cnameBytes < 1 || cnameBytes > MAX_CNAME_BYTES)) {
        fb.fail("config key 'feedback.reporterCname' must be 1 to " + MAX_CNAME_BYTES.toString() + " bytes of UTF-8");
      }
      if (s.receiverTimeoutUs < s.reportIntervalUs) {
        fb.fail("config key 'feedback.receiverTimeoutMs' must be at least 'feedback.reportIntervalMs'");
      }
    }
    if (!cfg.ok) return null;
    if (fb === null || !fb.has("reporterSsrc")) s.reporterSsrc = randomU32();
    if (s.reporterCname.length == 0) s.reporterCname = "msm-replicate-" + hex8(s.reporterSsrc);
    return s;
  }
}

function hex8(v: u32): string {
  const digits = v.toString(16);
  return "00000000".substring(digits.length) + digits;
}
