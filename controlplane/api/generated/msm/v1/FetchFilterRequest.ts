// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface FetchFilterRequest {
  'sha256'?: (string);
}

export interface FetchFilterRequest__Output {
  'sha256': (string);
}
