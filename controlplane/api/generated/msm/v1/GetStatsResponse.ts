// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { ProxyStats as _msm_v1_ProxyStats, ProxyStats__Output as _msm_v1_ProxyStats__Output } from '../../msm/v1/ProxyStats.js';

export interface GetStatsResponse {
  'proxies'?: (_msm_v1_ProxyStats)[];
  'nextPageToken'?: (string);
}

export interface GetStatsResponse__Output {
  'proxies': (_msm_v1_ProxyStats__Output)[];
  'nextPageToken': (string);
}
