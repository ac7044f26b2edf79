// Bun's node:dgram turns IP_RECVERR (IPV6_RECVERR) on for every socket it makes. The proxy never
// reads the error queue, and with the option on, every ICMP error (a receiver's port
// unreachable) sets the socket's pending error, which fails its next send, whatever that send's
// destination: one receiver that is gone made a segment's sends to every live receiver on the
// same socket fail in turn (host_send_failed). Node leaves the option off, and the batched-I/O
// addon turns it off when it takes a socket (msm_udp.c drop_ancillary_options); under Bun on
// node:dgram I/O nothing did. Here it is turned off through Bun's FFI and libc's setsockopt,
// once per socket, when it is bound. Linux only (the option numbers are Linux's); where libc
// cannot be opened (a libc by another name), the socket keeps Bun's default (docs/batched-io.md).
import type { Socket } from "node:dgram";
import { socketHandle } from "./dgram-handle.js";

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

const IPPROTO_IP = 0;
const IP_RECVERR = 11;
const IPPROTO_IPV6 = 41;
const IPV6_RECVERR = 25;

/** The Int32Array the pointer points into, kept alive for the process's life. */
const keep: Int32Array[] = [];

type SetSockOpt = (fd: number, level: number, name: number, value: unknown, length: number) => number;

interface Ffi {
  setsockopt: SetSockOpt;
  off: unknown; // a pointer to an int 0
}

let ffi: Ffi | null | undefined;

async function loadFfi(): Promise<Ffi | null> {
  if (ffi !== undefined) return ffi;
  ffi = null;
  try {
    const specifier = "bun:ffi"; // not a module tsc or Node knows
    const mod = (await import(specifier)) as {
      dlopen: (path: string, symbols: Record<string, { args: string[]; returns: string }>) => { symbols: { setsockopt: SetSockOpt } };
      ptr: (view: ArrayBufferView) => unknown;
    };
    const off = new Int32Array(1);
    for (const path of ["libc.so.6", "libc.so"]) {
      try {
        const lib = mod.dlopen(path, { setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" } });
        ffi = { setsockopt: lib.symbols.setsockopt, off: mod.ptr(off) };
        keep.push(off);
        break;
      } catch {
        // the next name
      }
    }
  } catch {
    // no FFI: the default stays
  }
  return ffi;
}


/** The descriptor behind a node:dgram socket, or -1. */
function descriptorOf(socket: Socket): number {
  try {
    return socketHandle(socket).fd;
  } catch {
    return -1;
  }
}

/**
 * Under Bun, turns IP_RECVERR and IPV6_RECVERR off on a bound socket (both: a dual-stack socket
 * takes either; a call that does not apply to its family fails harmlessly). Elsewhere nothing.
 */
export async function dropRecvErr(socket: Socket): Promise<void> {
  if (!isBun || process.platform !== "linux") return;
  const f = await loadFfi();
  const fd = descriptorOf(socket);
  if (!f || fd < 0) return;
  f.setsockopt(fd, IPPROTO_IP, IP_RECVERR, f.off, 4);
  f.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, f.off, 4);
}
