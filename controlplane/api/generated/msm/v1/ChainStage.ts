// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface ChainStage {
  'filter'?: (string);
  'version'?: (string);
  'configJson'?: (string);
}

export interface ChainStage__Output {
  'filter': (string);
  'version': (string);
  'configJson': (string);
}
