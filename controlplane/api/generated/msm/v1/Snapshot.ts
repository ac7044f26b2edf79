// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Segment as _msm_v1_Segment, Segment__Output as _msm_v1_Segment__Output } from '../../msm/v1/Segment.js';
import type { FilterRef as _msm_v1_FilterRef, FilterRef__Output as _msm_v1_FilterRef__Output } from '../../msm/v1/FilterRef.js';
import type { Long } from '@grpc/proto-loader';

export interface Snapshot {
  'version'?: (number | string | Long);
  'segments'?: (_msm_v1_Segment)[];
  'filters'?: (_msm_v1_FilterRef)[];
}

export interface Snapshot__Output {
  'version': (number);
  'segments': (_msm_v1_Segment__Output)[];
  'filters': (_msm_v1_FilterRef__Output)[];
}
