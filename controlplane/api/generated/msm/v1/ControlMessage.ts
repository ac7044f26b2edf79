// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Snapshot as _msm_v1_Snapshot, Snapshot__Output as _msm_v1_Snapshot__Output } from '../../msm/v1/Snapshot.js';

export interface ControlMessage {
  'snapshot'?: (_msm_v1_Snapshot | null);
  'kind'?: "snapshot";
}

export interface ControlMessage__Output {
  'snapshot'?: (_msm_v1_Snapshot__Output | null);
  'kind'?: "snapshot";
}
