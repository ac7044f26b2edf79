// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Endpoint as _msm_v1_Endpoint, Endpoint__Output as _msm_v1_Endpoint__Output } from '../../msm/v1/Endpoint.js';
import type { Multicast as _msm_v1_Multicast, Multicast__Output as _msm_v1_Multicast__Output } from '../../msm/v1/Multicast.js';

export interface Leg {
  'name'?: (string);
  'portOffset'?: (number);
  'listen'?: (_msm_v1_Endpoint | null);
  'receive'?: (boolean);
  'destinations'?: (_msm_v1_Endpoint)[];
  'egress'?: (_msm_v1_Endpoint | null);
  'send'?: (boolean);
  'sourceAddress'?: (string);
  'redundant'?: (boolean);
  'multicast'?: (_msm_v1_Multicast | null);
  '_portOffset'?: "portOffset";
  '_receive'?: "receive";
  '_send'?: "send";
}

export interface Leg__Output {
  'name': (string);
  'portOffset'?: (number);
  'listen': (_msm_v1_Endpoint__Output | null);
  'receive'?: (boolean);
  'destinations': (_msm_v1_Endpoint__Output)[];
  'egress': (_msm_v1_Endpoint__Output | null);
  'send'?: (boolean);
  'sourceAddress': (string);
  'redundant': (boolean);
  'multicast': (_msm_v1_Multicast__Output | null);
  '_portOffset'?: "portOffset";
  '_receive'?: "receive";
  '_send'?: "send";
}
