// Benchmark baseline: the emptiest filter the SDK makes. It passes every packet through the
// SDK's default batch loop (Filter.onBatch -> onPacket, which does nothing), so the difference
// between a real filter and this one is the real filter's own work. Compiled in memory by
// bench/micro.ts with the SDK's flags; never shipped.
import { Filter, register } from "../../sdk/assembly";
export * from "../../sdk/assembly/exports";

class Noop extends Filter {}

register(new Noop());
