// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface GetStatsRequest {
  'proxy'?: (string);
  'pageToken'?: (string);
}

export interface GetStatsRequest__Output {
  'proxy': (string);
  'pageToken': (string);
}
