// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Segment as _msm_v1_Segment, Segment__Output as _msm_v1_Segment__Output } from '../../msm/v1/Segment.js';
import type { Long } from '@grpc/proto-loader';

export interface ListSegmentsResponse {
  'segments'?: (_msm_v1_Segment)[];
  'storeUnreachable'?: (string);
  'copyRevision'?: (number | string | Long);
}

export interface ListSegmentsResponse__Output {
  'segments': (_msm_v1_Segment__Output)[];
  'storeUnreachable': (string);
  'copyRevision': (number);
}
