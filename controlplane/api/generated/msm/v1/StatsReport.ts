// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface StatsReport {
  'statsJson'?: (string);
  'page'?: (number);
  'pages'?: (number);
}

export interface StatsReport__Output {
  'statsJson': (string);
  'page': (number);
  'pages': (number);
}
