// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface DeleteProxiesResponse {
  'deleted'?: (string)[];
}

export interface DeleteProxiesResponse__Output {
  'deleted': (string)[];
}
