// Says in the log when SRTP or SRTCP fails authentication. A wrong key, a wrong suite or an MKI
// the key does not have fails every packet, and a drop counter alone leaves an operator guessing
// why a stream is dark; one line every REPORT_US per segment says what fails and how much of it.
// The line names the SSRC and the suite, never the key.
import { LogLevel, log, nowUs } from "../../../sdk/assembly";
import { SrtpContext } from "./context";

/** At most one line per segment this often (the host also rate-limits a filter's lines). */
const REPORT_US: i64 = 10_000_000;

/** Called at the end of a batch for a context that had failures; logs at most once per REPORT_US. */
export function reportAuthFailures(c: SrtpContext): void {
  if (c.authFailed == 0) return;
  const now = nowUs();
  if (c.authReportedUs != i64.MIN_VALUE && now - c.authReportedUs < REPORT_US) return;
  const suite = c.forward.suite;
  const what = c.authPassed == 0 ? "none passed" : c.authPassed.toString() + " passed";
  log(LogLevel.Warn, c.authFailed.toString() + " SRTP/SRTCP packets failed authentication (srtp_auth_failed) since " +
    (c.authReportedUs == i64.MIN_VALUE ? "the stage started" : "the last report") + ", " + what +
    "; the last: SSRC 0x" + c.authFailedSsrc.toString(16) + (c.authFailedRtcp ? ", RTCP" : ", RTP") +
    ". Every packet failing means a wrong key or suite (this stage: " + (suite !== null ? suite.name : "?") +
    "), or a sender using an MKI; a few among good ones, forgeries or damage");
  c.authReportedUs = now;
  c.authFailed = 0;
  c.authPassed = 0;
}
