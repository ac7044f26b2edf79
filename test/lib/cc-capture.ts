// The RTP packets of a capture (test/lib/tshark.ts startCapture), as test/lib/h264-frames.ts reads
// them: tshark prints each UDP payload to `port`, parsed here (so a header extension or padding
// is handled the same whatever tshark's RTP dissector makes of it).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseRtp, type RtpPacket } from "./h264-frames.js";

const execFileAsync = promisify(execFile);

/** Every UDP datagram to `port` in the capture `file`, in capture order, as RTP of SSRC `ssrc` (others are left out). */
export async function capturedRtp(file: string, port: number, ssrc: number): Promise<RtpPacket[]> {
  const { stdout } = await execFileAsync("tshark", ["-r", file, "-Y", `udp.dstport == ${port}`, "-T", "fields", "-e", "udp.payload"], { maxBuffer: 256 << 20, timeout: 60_000 });
  const packets: RtpPacket[] = [];
  for (const line of stdout.split("\n")) {
    if (line.trim() === "") continue;
    const p = parseRtp(Buffer.from(line.trim().replace(/:/g, ""), "hex"));
    if (p.ssrc === ssrc >>> 0) packets.push(p);
  }
  return packets;
}
