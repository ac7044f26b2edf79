// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Endpoint as _msm_v1_Endpoint, Endpoint__Output as _msm_v1_Endpoint__Output } from '../../msm/v1/Endpoint.js';
import type { ChainStage as _msm_v1_ChainStage, ChainStage__Output as _msm_v1_ChainStage__Output } from '../../msm/v1/ChainStage.js';
import type { FailurePolicy as _msm_v1_FailurePolicy, FailurePolicy__Output as _msm_v1_FailurePolicy__Output } from '../../msm/v1/FailurePolicy.js';
import type { Leg as _msm_v1_Leg, Leg__Output as _msm_v1_Leg__Output } from '../../msm/v1/Leg.js';
import type { Multicast as _msm_v1_Multicast, Multicast__Output as _msm_v1_Multicast__Output } from '../../msm/v1/Multicast.js';
import type { Long } from '@grpc/proto-loader';

export interface Segment {
  'name'?: (string);
  'proxy'?: (string);
  'listen'?: (_msm_v1_Endpoint | null);
  'rtcpMux'?: (boolean);
  'egress'?: (_msm_v1_Endpoint | null);
  'destinations'?: (_msm_v1_Endpoint)[];
  'source'?: (_msm_v1_Endpoint | null);
  'chain'?: (_msm_v1_ChainStage)[];
  'failure'?: (_msm_v1_FailurePolicy | null);
  'revision'?: (number | string | Long);
  'legs'?: (_msm_v1_Leg)[];
  'multicast'?: (_msm_v1_Multicast | null);
  'clockRates'?: ({[key: number]: number});
  'sourceStrict'?: (boolean);
  'sourceLearnMs'?: (number);
  'sourceIdleMs'?: (number);
  'feedbackFrom'?: (string);
  'symmetricRtp'?: (boolean);
  '_sourceStrict'?: "sourceStrict";
  '_sourceLearnMs'?: "sourceLearnMs";
  '_sourceIdleMs'?: "sourceIdleMs";
}

export interface Segment__Output {
  'name': (string);
  'proxy': (string);
  'listen': (_msm_v1_Endpoint__Output | null);
  'rtcpMux': (boolean);
  'egress': (_msm_v1_Endpoint__Output | null);
  'destinations': (_msm_v1_Endpoint__Output)[];
  'source': (_msm_v1_Endpoint__Output | null);
  'chain': (_msm_v1_ChainStage__Output)[];
  'failure': (_msm_v1_FailurePolicy__Output | null);
  'revision': (number);
  'legs': (_msm_v1_Leg__Output)[];
  'multicast': (_msm_v1_Multicast__Output | null);
  'clockRates': ({[key: number]: number});
  'sourceStrict'?: (boolean);
  'sourceLearnMs'?: (number);
  'sourceIdleMs'?: (number);
  'feedbackFrom': (string);
  'symmetricRtp': (boolean);
  '_sourceStrict'?: "sourceStrict";
  '_sourceLearnMs'?: "sourceLearnMs";
  '_sourceIdleMs'?: "sourceIdleMs";
}
