// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { StageLimits as _msm_v1_StageLimits, StageLimits__Output as _msm_v1_StageLimits__Output } from '../../msm/v1/StageLimits.js';

export interface ChainStage {
  'filter'?: (string);
  'version'?: (string);
  'configJson'?: (string);
  'rootConfigJson'?: (string);
  'limits'?: (_msm_v1_StageLimits | null);
  'maxMemoryPages'?: (number);
  '_maxMemoryPages'?: "maxMemoryPages";
}

export interface ChainStage__Output {
  'filter': (string);
  'version': (string);
  'configJson': (string);
  'rootConfigJson': (string);
  'limits': (_msm_v1_StageLimits__Output | null);
  'maxMemoryPages'?: (number);
  '_maxMemoryPages'?: "maxMemoryPages";
}
