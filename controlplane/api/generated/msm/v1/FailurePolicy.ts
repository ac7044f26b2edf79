// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface FailurePolicy {
  'mode'?: (string);
  'restartBackoffMs'?: (number);
  'maxBackoffMs'?: (number);
  'maxFailures'?: (number);
}

export interface FailurePolicy__Output {
  'mode': (string);
  'restartBackoffMs': (number);
  'maxBackoffMs': (number);
  'maxFailures': (number);
}
