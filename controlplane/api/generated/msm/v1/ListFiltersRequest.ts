// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface ListFiltersRequest {
  'allowCopy'?: (boolean);
}

export interface ListFiltersRequest__Output {
  'allowCopy': (boolean);
}
