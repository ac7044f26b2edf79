// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { FilterRef as _msm_v1_FilterRef, FilterRef__Output as _msm_v1_FilterRef__Output } from '../../msm/v1/FilterRef.js';

export interface FilterModule {
  'ref'?: (_msm_v1_FilterRef | null);
  'wasm'?: (Buffer | Uint8Array | string);
}

export interface FilterModule__Output {
  'ref': (_msm_v1_FilterRef__Output | null);
  'wasm': (Buffer);
}
