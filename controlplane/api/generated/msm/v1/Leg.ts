// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Endpoint as _msm_v1_Endpoint, Endpoint__Output as _msm_v1_Endpoint__Output } from '../../msm/v1/Endpoint.js';

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
  '_portOffset'?: "portOffset";
  '_receive'?: "receive";
  '_send'?: "send";
}
