// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Segment as _msm_v1_Segment, Segment__Output as _msm_v1_Segment__Output } from '../../msm/v1/Segment.js';

export interface ApplySegmentsRequest {
  'segments'?: (_msm_v1_Segment)[];
  'dryRun'?: (boolean);
  'clientSplits'?: (boolean);
}

export interface ApplySegmentsRequest__Output {
  'segments': (_msm_v1_Segment__Output)[];
  'dryRun': (boolean);
  'clientSplits': (boolean);
}
