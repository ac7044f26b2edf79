// The arrows of the house, checked by test/architecture.test.ts (npx depcruise -c .dependency-cruiser.cjs .):
//   cli -> controlplane, sdk, runtime      controlplane -> runtime      sdk -> runtime
//   bench -> runtime, sdk, test/lib        filters' AssemblyScript -> sdk/assembly, runtime/abi
// runtime depends on nothing of ours; outside runtime/ only its entry (runtime/index.ts) and the
// ABI's numbers (runtime/abi.ts) are imported. Tests may reach anything.
const OURS = "^(runtime|sdk|controlplane|cli|bench|filters|test)/";
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "a cycle makes two modules one", from: {}, to: { circular: true } },
    {
      name: "runtime-is-the-base", severity: "error",
      comment: "the data plane imports nothing from the layers built on it",
      from: { path: "^runtime/" }, to: { path: "^(sdk|controlplane|cli|bench|filters|test)/" },
    },
    {
      name: "runtime-through-its-entry", severity: "error",
      comment: "outside runtime/, import runtime/index.ts (or the ABI's numbers in runtime/abi.ts), not its internals",
      from: { path: "^(sdk|controlplane|cli|bench|filters)/", pathNot: "^filters/[^/]+/test/" },
      to: { path: "^runtime/", pathNot: "^runtime/(index|abi)\\.ts$" },
    },
    {
      name: "controlplane-above-runtime-only", severity: "error",
      comment: "the control plane serves proxies and CLIs; it does not use the SDK, the CLI, benchmarks or tests",
      from: { path: "^controlplane/" }, to: { path: "^(sdk|cli|bench|test|filters)/" },
    },
    {
      name: "sdk-above-runtime-only", severity: "error",
      comment: "a filter author's SDK needs the runtime (the harness runs filters in the real host) and nothing above it",
      from: { path: "^sdk/" }, to: { path: "^(controlplane|cli|bench|test|filters)/" },
    },
    {
      name: "nothing-imports-the-cli", severity: "error",
      comment: "the CLI is the top: commands are not a library",
      from: { path: OURS, pathNot: "^(cli|test)/" }, to: { path: "^cli/" },
    },
    {
      name: "bench-not-in-the-product", severity: "error",
      comment: "benchmarks and tests are not shipped code's dependencies",
      from: { path: "^(runtime|sdk|controlplane|cli|filters)/", pathNot: "^filters/[^/]+/test/" }, to: { path: "^(bench|test)/" },
    },
    {
      name: "filters-use-the-sdk", severity: "error",
      comment: "a filter is built on the SDK alone (and the ABI's numbers), as an outside author's would be",
      from: { path: "^filters/[^/]+/assembly/" }, to: { path: OURS, pathNot: "^(sdk/assembly/|runtime/abi\\.ts$|filters/)" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|node_modules)/" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: [".ts", ".js", ".mjs"] },
  },
};
