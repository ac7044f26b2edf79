// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface Nack {
  'version'?: (number | string | Long);
  'error'?: (string);
  'retryInMs'?: (number);
}

export interface Nack__Output {
  'version': (number);
  'error': (string);
  'retryInMs': (number);
}
