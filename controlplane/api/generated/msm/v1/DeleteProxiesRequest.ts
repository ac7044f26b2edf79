// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface DeleteProxiesRequest {
  'nodeIds'?: (string)[];
}

export interface DeleteProxiesRequest__Output {
  'nodeIds': (string)[];
}
