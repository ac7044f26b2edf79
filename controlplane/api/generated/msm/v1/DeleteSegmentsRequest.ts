// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface DeleteSegmentsRequest {
  'names'?: (string)[];
}

export interface DeleteSegmentsRequest__Output {
  'names': (string)[];
}
