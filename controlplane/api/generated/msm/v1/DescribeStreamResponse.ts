// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface DescribeStreamResponse {
  'pathsJson'?: (string);
  'omitted'?: (number);
  'badLoss'?: (number | string);
  'badJitterMs'?: (number | string);
}

export interface DescribeStreamResponse__Output {
  'pathsJson': (string);
  'omitted': (number);
  'badLoss': (number);
  'badJitterMs': (number);
}
