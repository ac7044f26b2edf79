// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Snapshot as _msm_v1_Snapshot, Snapshot__Output as _msm_v1_Snapshot__Output } from '../../msm/v1/Snapshot.js';
import type { Notice as _msm_v1_Notice, Notice__Output as _msm_v1_Notice__Output } from '../../msm/v1/Notice.js';

export interface ControlMessage {
  'snapshot'?: (_msm_v1_Snapshot | null);
  'notice'?: (_msm_v1_Notice | null);
  'kind'?: "snapshot"|"notice";
}

export interface ControlMessage__Output {
  'snapshot'?: (_msm_v1_Snapshot__Output | null);
  'notice'?: (_msm_v1_Notice__Output | null);
  'kind'?: "snapshot"|"notice";
}
