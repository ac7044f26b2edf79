// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface DeleteSegmentsResponse {
  'deleted'?: (string)[];
  'revision'?: (number | string | Long);
}

export interface DeleteSegmentsResponse__Output {
  'deleted': (string)[];
  'revision': (number);
}
