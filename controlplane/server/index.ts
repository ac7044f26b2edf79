// The control plane's server side: startControlPlane runs one replica (AdminService +
// ProxyService on one gRPC port, state in a FileStore or a shared etcd).
export { startControlPlane, DEFAULT_TIMING, type ControlPlane, type ControlPlaneOptions, type ControlPlaneTiming } from "./server.js";
export { MAX_MODULE_BYTES } from "./registry.js";
