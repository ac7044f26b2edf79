// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto


export interface Multicast {
  'ttl'?: (number);
  'interface'?: (string);
  'loopback'?: (boolean);
  '_ttl'?: "ttl";
  '_loopback'?: "loopback";
}

export interface Multicast__Output {
  'ttl'?: (number);
  'interface': (string);
  'loopback'?: (boolean);
  '_ttl'?: "ttl";
  '_loopback'?: "loopback";
}
