// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface FilterRef {
  'name'?: (string);
  'version'?: (string);
  'sha256'?: (string);
  'size'?: (number | string | Long);
  'pushedAtMs'?: (number | string | Long);
}

export interface FilterRef__Output {
  'name': (string);
  'version': (string);
  'sha256': (string);
  'size': (number);
  'pushedAtMs': (number);
}
