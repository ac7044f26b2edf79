// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface ListStreamsRequest {
  'proxy'?: (string);
  'badOnly'?: (boolean);
  'pageToken'?: (string);
}

export interface ListStreamsRequest__Output {
  'proxy': (string);
  'badOnly': (boolean);
  'pageToken': (string);
}
