// The standard gRPC health service (grpc.health.v1.Health: Check and Watch) on the control
// plane's port, so that Kubernetes gRPC probes and grpc_health_probe work. The status follows the
// store: every few seconds the store is asked its revision; an answer means SERVING, an error or
// no answer within the interval (etcd unreachable or without a quorum) means NOT_SERVING, and so
// does a replica that has not listed the desired state yet (it started while etcd was down). The
// service itself is grpc-health-check's, kept by the gRPC authors to the spec.
import type { Server } from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import type { Store } from "../store/index.js";

/** The names a probe may ask about: "" is the whole server. */
export const HEALTH_SERVICES = ["", "msm.v1.AdminService", "msm.v1.ProxyService"] as const;

export class StoreHealth {
  private readonly health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, "NOT_SERVING"])));
  private timer: NodeJS.Timeout | undefined;
  /** "": not probed yet (the service says NOT_SERVING meanwhile). */
  private current: ServingStatus | "" = "";
  private saidNotServing = false;
  private stopped = false;
  private everServing = false;
  /** Probes started, and the newest one that answered: recheck() overlaps the interval's probe, whose older answer must not undo a newer one. */
  private probes = 0;
  private newestAnswered = 0;

  constructor(
    private readonly store: Store,
    private readonly intervalMs: number,
    private readonly log: (message: string) => void,
    /** Why the replica cannot serve although the store answers, or undefined when it can. */
    private readonly notReady: () => string | undefined = () => undefined,
  ) {}

  /** Probes now, unless SERVING already (something that may make it SERVING happened). */
  recheck(): void {
    if (this.current !== "SERVING" && !this.stopped) void this.probe();
  }

  addTo(server: Server): void {
    this.health.addToServer(server);
  }

  /** Probes now, then every intervalMs. */
  async start(): Promise<void> {
    await this.probe();
    if (this.stopped) return;
    this.timer = setInterval(() => void this.probe(), this.intervalMs);
    this.timer.unref();
  }

  /** NOT_SERVING from now on (the replica is shutting down): watchers hear it before the port closes. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.set("NOT_SERVING");
  }

  private async probe(): Promise<void> {
    const n = ++this.probes;
    let timeout: NodeJS.Timeout | undefined;
    const silent = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new Error(`no answer within ${this.intervalMs} ms`)), this.intervalMs);
    });
    try {
      await Promise.race([this.store.revision(), silent]);
      const notReady = this.notReady();
      if (this.stopped || n < this.newestAnswered) return;
      this.newestAnswered = n;
      if (notReady !== undefined) this.set("NOT_SERVING", notReady);
      else this.set("SERVING", this.saidNotServing ? (this.everServing ? "the store answers again" : "the store answers, the desired state is listed") : undefined);
    } catch (err) {
      if (this.stopped || n < this.newestAnswered) return;
      this.newestAnswered = n;
      this.set("NOT_SERVING", `store ${this.store.description}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timeout);
    }
  }

  /** Sets every name's status; a change with a reason is logged. */
  private set(status: ServingStatus, why?: string): void {
    if (status === this.current) return;
    this.current = status;
    if (status === "SERVING") this.everServing = true;
    if (status === "NOT_SERVING" && why !== undefined) this.saidNotServing = true;
    if (why !== undefined) this.log(`health: ${status} (${why})`);
    for (const s of HEALTH_SERVICES) this.health.setStatus(s, status);
  }
}
