// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Long } from '@grpc/proto-loader';

export interface ProxyStatus {
  'nodeId'?: (string);
  'connected'?: (boolean);
  'peer'?: (string);
  'desiredVersion'?: (number | string | Long);
  'ackedVersion'?: (number | string | Long);
  'nackedVersion'?: (number | string | Long);
  'nackError'?: (string);
  'lastSeenMs'?: (number | string | Long);
  'capabilities'?: (string)[];
  'abiVersions'?: (string)[];
  'server'?: (string);
  'notRunning'?: (string)[];
  'notRunningError'?: (string);
  'nackRetryAtMs'?: (number | string | Long);
  'statsDropped'?: (string);
  'statsDroppedAtMs'?: (number | string | Long);
}

export interface ProxyStatus__Output {
  'nodeId': (string);
  'connected': (boolean);
  'peer': (string);
  'desiredVersion': (number);
  'ackedVersion': (number);
  'nackedVersion': (number);
  'nackError': (string);
  'lastSeenMs': (number);
  'capabilities': (string)[];
  'abiVersions': (string)[];
  'server': (string);
  'notRunning': (string)[];
  'notRunningError': (string);
  'nackRetryAtMs': (number);
  'statsDropped': (string);
  'statsDroppedAtMs': (number);
}
