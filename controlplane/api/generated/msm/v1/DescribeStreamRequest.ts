// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface DescribeStreamRequest {
  'name'?: (string);
}

export interface DescribeStreamRequest__Output {
  'name': (string);
}
