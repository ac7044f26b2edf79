// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface StageLimits {
  'generatedPerSecond'?: (number);
  'timerFiresPerSecond'?: (number);
  '_generatedPerSecond'?: "generatedPerSecond";
  '_timerFiresPerSecond'?: "timerFiresPerSecond";
}

export interface StageLimits__Output {
  'generatedPerSecond'?: (number);
  'timerFiresPerSecond'?: (number);
  '_generatedPerSecond'?: "generatedPerSecond";
  '_timerFiresPerSecond'?: "timerFiresPerSecond";
}
