// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface Ack {
  'version'?: (number | string | Long);
  'notRunning'?: (string)[];
  'error'?: (string);
}

export interface Ack__Output {
  'version': (number);
  'notRunning': (string)[];
  'error': (string);
}
