// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface Endpoint {
  'address'?: (string);
  'port'?: (number);
  'rtcpPort'?: (number);
  'interface'?: (string);
  'ssrc'?: (number);
  'payloadType'?: (number);
  '_ssrc'?: "ssrc";
  '_payloadType'?: "payloadType";
}

export interface Endpoint__Output {
  'address': (string);
  'port': (number);
  'rtcpPort': (number);
  'interface': (string);
  'ssrc'?: (number);
  'payloadType'?: (number);
  '_ssrc'?: "ssrc";
  '_payloadType'?: "payloadType";
}
