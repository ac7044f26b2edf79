// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { FilterRef as _msm_v1_FilterRef, FilterRef__Output as _msm_v1_FilterRef__Output } from '../../msm/v1/FilterRef.js';
import type { Long } from '@grpc/proto-loader';

export interface ListFiltersResponse {
  'filters'?: (_msm_v1_FilterRef)[];
  'storeUnreachable'?: (string);
  'copyRevision'?: (number | string | Long);
}

export interface ListFiltersResponse__Output {
  'filters': (_msm_v1_FilterRef__Output)[];
  'storeUnreachable': (string);
  'copyRevision': (number);
}
