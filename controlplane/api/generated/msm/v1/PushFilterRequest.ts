// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface PushFilterRequest {
  'name'?: (string);
  'version'?: (string);
  'wasm'?: (Buffer | Uint8Array | string);
}

export interface PushFilterRequest__Output {
  'name': (string);
  'version': (string);
  'wasm': (Buffer);
}
