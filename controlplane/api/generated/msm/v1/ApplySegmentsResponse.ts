// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface ApplySegmentsResponse {
  'created'?: (string)[];
  'configured'?: (string)[];
  'unchanged'?: (string)[];
  'revision'?: (number | string | Long);
  'maxTxnOps'?: (number);
}

export interface ApplySegmentsResponse__Output {
  'created': (string)[];
  'configured': (string)[];
  'unchanged': (string)[];
  'revision': (number);
  'maxTxnOps': (number);
}
