// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { ProxyStatus as _msm_v1_ProxyStatus, ProxyStatus__Output as _msm_v1_ProxyStatus__Output } from '../../msm/v1/ProxyStatus.js';

export interface ListProxiesResponse {
  'proxies'?: (_msm_v1_ProxyStatus)[];
}

export interface ListProxiesResponse__Output {
  'proxies': (_msm_v1_ProxyStatus__Output)[];
}
