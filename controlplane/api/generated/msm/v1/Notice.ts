// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface Notice {
  'text'?: (string);
}

export interface Notice__Output {
  'text': (string);
}
