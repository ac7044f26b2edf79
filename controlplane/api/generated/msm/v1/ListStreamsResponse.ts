// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface ListStreamsResponse {
  'pathsJson'?: (string);
  'nextPageToken'?: (string);
  'badLoss'?: (number | string);
  'badJitterMs'?: (number | string);
}

export interface ListStreamsResponse__Output {
  'pathsJson': (string);
  'nextPageToken': (string);
  'badLoss': (number);
  'badJitterMs': (number);
}
