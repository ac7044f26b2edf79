// The control plane's live dashboard (docs/dashboard.md): startDashboard serves the page, its
// live updates, the stream paths as JSON and per-hop Prometheus metrics.
export { startDashboard, parseListen, DEFAULT_DASHBOARD_LIMITS, type Dashboard, type DashboardLimits, type DashboardOptions } from "./server.js";
export { dashboardState, worstFirst, type DashboardState, type StreamView, type HopView, type MeshNode, type MeshEdge } from "./view.js";
