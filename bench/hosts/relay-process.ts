// What the end-to-end benchmark needs from a relay under test that runs as its own process(es):
// where to send, whose CPU and memory to charge, and how to stop it.
export interface RelayProcess {
  /** A short name for tables ("gstreamer", "rtpengine", ...). */
  readonly name: string;
  /** The loopback UDP port the generator sends to (may change after beforeTrial). */
  readonly port: number;
  /** Several listen ports (a proxy's segments): the generator spreads its packets evenly over them. */
  readonly ports?: readonly number[];
  /** The processes whose CPU and RSS are the relay's (their descendants are included too). */
  pids(): number[];
  /**
   * Called before every trial. Relays that cannot recover from an overload (rtpengine stops
   * forwarding a stream for good once its receive queue overflows) start afresh here.
   */
  beforeTrial?(): Promise<void>;
  /** Stops every process; resolves when they have exited. */
  close(): Promise<void>;
}
