// A real H.264 stream through a namespace lab, judged by FFmpeg's decoder. The sender encodes a
// deterministic test pattern (lavfi testsrc, libx264 with one thread, a fixed GOP and bitrate) and
// sends it as RTP (`-re`: in real time, `seconds` long); the receiver reads it from an SDP file and
// decodes to `-f null -`. What counts (FFmpeg 5.1's messages):
// - corruptFrames: "corrupt decoded frame" warnings. FFmpeg prints one for every decoded frame the
//   decoder flagged (error concealment ran in it, or it is otherwise damaged): the measure to
//   compare. Frames that only reference a damaged frame are not flagged, so the visible damage
//   lasts longer (until the next IDR frame) than this count says.
// - decoderErrors: the h264 decoder's [error] lines ("error while decoding MB", "cbp too large"...).
// - rtpMissed: the packets the RTP demuxer saw missing in the sequence numbers ("RTP: missed N packets").
// - framesDecoded: the last `frame=` of `-progress`. Nothing is output before the first IDR frame
//   that arrives whole: a loss at the start shows as fewer frames and as decoderErrors ("non-existing
//   PPS"), not as corruptFrames, so compare both. The last frame or two stay in the receiver when it
//   stops (98 of 100 with no loss here).
// The receiver ends on SIGINT (twice if needed: FFmpeg only breaks a blocking read on the second).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DropWatch } from "./kernel-drops.js";
import type { NetnsLab, NsProcess } from "./netns.js";
import { peer, runsOk } from "./peers.js";

export const ffmpegX264Peer = peer("FFmpeg with libx264", "Debian package ffmpeg", () =>
  runsOk("ffmpeg", ["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=1", "-frames:v", "1", "-c:v", "libx264", "-f", "null", "-"]));

export interface H264Stream {
  readonly seconds: number;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  /** Frames from one IDR frame to the next. */
  readonly gop: number;
  readonly bitrateKbit: number;
  readonly payloadType: number;
  readonly ssrc: number;
  /** B frames between reference frames, all non-reference (b-pyramid off); default none. */
  readonly bFrames?: number;
}

/** 4 s of 640x480 at 25 fps and 2 Mbit/s: about 470 RTP packets of up to 1200 bytes, an IDR frame every second. */
export const DEFAULT_H264: H264Stream = { seconds: 4, width: 640, height: 480, fps: 25, gop: 25, bitrateKbit: 2000, payloadType: 96, ssrc: 0x4d534d32 };

export interface H264Quality {
  readonly framesDecoded: number;
  readonly corruptFrames: number;
  readonly decoderErrors: number;
  readonly rtpMissed: number;
  /** Datagrams the kernel dropped on the receiver's RTP socket. */
  readonly kernelDrops: number;
}

/**
 * Sends the stream from `role`'s namespace to address:port (RTCP to port + 1) and resolves when
 * FFmpeg is done; `to.query` adds options of FFmpeg's rtp:// URL (`ttl=4&localaddr=10.0.0.3`).
 */
export async function sendH264(lab: NetnsLab, role: string, to: { address: string; port: number; query?: string }, stream: H264Stream = DEFAULT_H264): Promise<void> {
  const s = stream;
  const host = to.address.includes(":") ? `[${to.address}]` : to.address;
  const proc = lab.spawn(role, "ffmpeg", [
    "-hide_banner", "-nostdin", "-loglevel", "error",
    "-re", "-f", "lavfi", "-i", `testsrc=size=${s.width}x${s.height}:rate=${s.fps}`, "-t", String(s.seconds),
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-threads", "1",
    "-g", String(s.gop), "-keyint_min", String(s.gop), "-sc_threshold", "0", "-b:v", `${s.bitrateKbit}k`,
    ...(s.bFrames ? ["-bf", String(s.bFrames), "-x264-params", "b-pyramid=none"] : []),
    "-flags", "+bitexact", "-fflags", "+bitexact",
    "-payload_type", String(s.payloadType), "-ssrc", String(s.ssrc),
    "-f", "rtp", `rtp://${host}:${to.port}?pkt_size=1200${to.query ? `&${to.query}` : ""}`,
  ]);
  const backstop = setTimeout(() => proc.kill(), s.seconds * 1000 + 20_000);
  const code = await proc.exited;
  clearTimeout(backstop);
  if (code !== 0) throw new Error(`the FFmpeg sender in ${role} failed (exit ${code}):\n${proc.output().slice(-2000)}`);
}

export interface H264Receiver {
  readonly process: NsProcess;
  /** Ends the receiver and reads what it decoded. */
  stop(): Promise<H264Quality>;
}

/**
 * Starts a receiver on `port` (RTCP on port + 1) in `role`'s namespace; resolves once its socket
 * is bound. `address`: the SDP's c= address: a multicast group FFmpeg joins (on the interface of
 * the namespace's route to it), ::1 to receive IPv6; default 127.0.0.1 (IPv4 unicast).
 */
export async function startH264Receiver(lab: NetnsLab, role: string, port: number, stream: H264Stream = DEFAULT_H264, address = "127.0.0.1"): Promise<H264Receiver> {
  const dir = mkdtempSync(join(tmpdir(), "msm-h264-"));
  const sdp = join(dir, "receive.sdp");
  // the receiver's own RTCP reports go to the c= address: its own loopback, or the group
  const family = address.includes(":") ? "IP6" : "IP4";
  writeFileSync(sdp, [
    "v=0", `o=- 0 0 IN ${family} ${address}`, "s=msm h264 quality", `c=IN ${family} ${address}`, "t=0 0",
    `m=video ${port} RTP/AVP ${stream.payloadType}`, `a=rtpmap:${stream.payloadType} H264/90000`, `a=fmtp:${stream.payloadType} packetization-mode=1`, "",
  ].join("\n"));
  const proc = lab.spawn(role, "ffmpeg", [
    "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
    "-protocol_whitelist", "file,udp,rtp", "-listen_timeout", "2", "-buffer_size", String(4 << 20),
    "-i", sdp, "-progress", "pipe:1", "-f", "null", "-",
  ]);
  let watch: DropWatch;
  try {
    await lab.waitForUdpPort(role, port);
    watch = new DropWatch([port], lab.procNet(role));
  } catch (err) {
    proc.kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    process: proc,
    stop: async () => {
      const kernelDrops = watch.since().total;
      for (let i = 0; i < 2 && proc.running; i++) {
        proc.signalGroup("SIGINT");
        await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 2000))]);
      }
      await proc.stop("SIGKILL", 0);
      rmSync(dir, { recursive: true, force: true });
      const log = proc.stderr();
      const frames = [...proc.stdout().matchAll(/^frame=(\d+)$/gm)].at(-1);
      if (!frames) throw new Error(`the FFmpeg receiver in ${role} decoded nothing:\n${proc.output().slice(-2000)}`);
      return {
        framesDecoded: Number(frames[1]),
        corruptFrames: (log.match(/corrupt decoded frame/g) ?? []).length,
        decoderErrors: (log.match(/^\[h264 @ [^\]]*\] \[error\]/gm) ?? []).length,
        rtpMissed: [...log.matchAll(/RTP: missed (\d+) packets/g)].reduce((sum, m) => sum + Number(m[1]), 0),
        kernelDrops,
      };
    },
  };
}

/**
 * Sends the stream from `from` to `to` (an address:port in the path, e.g. the first proxy) and
 * decodes it in `receiver`'s namespace on `port`; whatever sits between (proxies, an impaired
 * link) the caller sets up.
 */
export async function runH264Trial(
  lab: NetnsLab, opts: { from: string; to: { address: string; port: number; query?: string }; receiver: string; port: number; receiverAddress?: string; stream?: H264Stream },
): Promise<H264Quality> {
  const rx = await startH264Receiver(lab, opts.receiver, opts.port, opts.stream, opts.receiverAddress);
  try {
    await sendH264(lab, opts.from, opts.to, opts.stream);
    await new Promise((r) => setTimeout(r, 1000)); // the last packets through the proxies and the receiver's jitter buffer
  } catch (err) {
    rx.process.kill();
    throw err;
  }
  return rx.stop();
}
