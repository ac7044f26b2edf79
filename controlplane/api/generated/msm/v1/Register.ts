// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface Register {
  'nodeId'?: (string);
  'capabilities'?: (string)[];
  'abiVersions'?: (string)[];
  'runningVersion'?: (number | string | Long);
}

export interface Register__Output {
  'nodeId': (string);
  'capabilities': (string)[];
  'abiVersions': (string)[];
  'runningVersion': (number);
}
