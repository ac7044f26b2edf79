// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface ProxyStats {
  'nodeId'?: (string);
  'atMs'?: (number | string | Long);
  'statsJson'?: (string);
  'page'?: (number);
  'pages'?: (number);
}

export interface ProxyStats__Output {
  'nodeId': (string);
  'atMs': (number);
  'statsJson': (string);
  'page': (number);
  'pages': (number);
}
