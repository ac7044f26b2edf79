// A live video stream as IPTV carries it: H.264 in an MPEG transport stream over RTP (RFC 2250,
// static payload type 33, 90 kHz, so every tool knows its clock without an SDP), sent by FFmpeg
// at a constant bitrate, and received by GStreamer's rtpbin, which sends RTCP receiver reports
// back toward the stream's source as a real receiver does.
import { type NetnsLab, type NsProcess } from "./netns.js";
import { peer, runsOk } from "./peers.js";

export const rtpbinPeer = peer("GStreamer with rtpbin and rtpmp2tdepay", "Debian packages gstreamer1.0-tools gstreamer1.0-plugins-good", () =>
  runsOk("gst-inspect-1.0", ["rtpbin"]) && runsOk("gst-inspect-1.0", ["rtpmp2tdepay"]));

/** MP2T over RTP (RFC 3551). */
export const MP2T_PAYLOAD_TYPE = 33;

export interface TsStream {
  readonly seconds: number;
  /** The video's bitrate; the transport stream is padded to a constant 1.2 times it. */
  readonly bitrateKbit: number;
}

/**
 * Sends a test pattern (lavfi testsrc2, 640x360 at 25 fps, libx264 in constant-bitrate mode, an
 * IDR frame every second) from `role`'s namespace to address:port in real time (`-re`), RTCP
 * sender reports to port + 1; resolves when FFmpeg is done. Each frame leaves as a burst of
 * 7-TS-packet RTP packets (1356 bytes), frames 40 ms apart: about bitrate * 1.2 / 10.5 kbit packets a second.
 */
export async function sendTsOverRtp(lab: NetnsLab, role: string, to: { address: string; port: number }, s: TsStream): Promise<void> {
  const kbit = `${s.bitrateKbit}k`;
  const proc = lab.spawn(role, "ffmpeg", [
    "-hide_banner", "-nostdin", "-loglevel", "error",
    "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", String(s.seconds),
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-threads", "1", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
    "-b:v", kbit, "-minrate", kbit, "-maxrate", kbit, "-bufsize", `${Math.round(s.bitrateKbit / 5)}k`, "-x264-params", "nal-hrd=cbr",
    "-muxrate", `${Math.round(s.bitrateKbit * 1.2)}k`,
    "-f", "rtp_mpegts", `rtp://${to.address}:${to.port}?pkt_size=1328`,
  ]);
  const backstop = setTimeout(() => proc.kill(), s.seconds * 1000 + 20_000);
  const code = await proc.exited;
  clearTimeout(backstop);
  if (code !== 0) throw new Error(`the FFmpeg sender in ${role} failed (exit ${code}):\n${proc.output().slice(-2000)}`);
}

export interface RtpbinReceiver {
  readonly process: NsProcess;
  /** Ends it (EOS, then SIGKILL if it lingers). */
  stop(): Promise<void>;
}

/**
 * Receives the stream on `port` (RTCP on port + 1) in `role`'s namespace with rtpbin (its jitter
 * buffer, the TS depayloaded and dropped), and sends its RTCP (receiver reports, SDES) to
 * `rtcpTo`: where the stream comes from (a proxy's egress RTCP port). Resolves once bound.
 */
export async function startRtpbinReceiver(lab: NetnsLab, role: string, opts: { port: number; rtcpTo: { address: string; port: number } }): Promise<RtpbinReceiver> {
  const proc = lab.spawn(role, "gst-launch-1.0", [
    "-e", "rtpbin", "name=rb",
    "udpsrc", `port=${opts.port}`, `caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=MP2T,payload=${MP2T_PAYLOAD_TYPE}`, "!", "rb.recv_rtp_sink_0",
    "udpsrc", `port=${opts.port + 1}`, "!", "rb.recv_rtcp_sink_0",
    "rb.", "!", "rtpmp2tdepay", "!", "fakesink",
    "rb.send_rtcp_src_0", "!", "udpsink", `host=${opts.rtcpTo.address}`, `port=${opts.rtcpTo.port}`, "sync=false", "async=false",
  ]);
  try {
    await lab.waitForUdpPort(role, opts.port);
    await lab.waitForUdpPort(role, opts.port + 1);
  } catch (err) {
    proc.kill();
    throw err;
  }
  return {
    process: proc,
    stop: async () => {
      await proc.stop("SIGINT", 3000);
    },
  };
}
