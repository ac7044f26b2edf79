// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface ListSegmentsRequest {
  'proxy'?: (string);
  'showSecrets'?: (boolean);
  'allowCopy'?: (boolean);
}

export interface ListSegmentsRequest__Output {
  'proxy': (string);
  'showSecrets': (boolean);
  'allowCopy': (boolean);
}
