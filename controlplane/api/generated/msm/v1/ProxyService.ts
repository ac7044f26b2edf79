// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ControlMessage as _msm_v1_ControlMessage, ControlMessage__Output as _msm_v1_ControlMessage__Output } from '../../msm/v1/ControlMessage.js';
import type { FetchFilterRequest as _msm_v1_FetchFilterRequest, FetchFilterRequest__Output as _msm_v1_FetchFilterRequest__Output } from '../../msm/v1/FetchFilterRequest.js';
import type { FilterModule as _msm_v1_FilterModule, FilterModule__Output as _msm_v1_FilterModule__Output } from '../../msm/v1/FilterModule.js';
import type { ProxyMessage as _msm_v1_ProxyMessage, ProxyMessage__Output as _msm_v1_ProxyMessage__Output } from '../../msm/v1/ProxyMessage.js';

export interface ProxyServiceClient extends grpc.Client {
  Connect(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_msm_v1_ProxyMessage, _msm_v1_ControlMessage__Output>;
  Connect(options?: grpc.CallOptions): grpc.ClientDuplexStream<_msm_v1_ProxyMessage, _msm_v1_ControlMessage__Output>;
  connect(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_msm_v1_ProxyMessage, _msm_v1_ControlMessage__Output>;
  connect(options?: grpc.CallOptions): grpc.ClientDuplexStream<_msm_v1_ProxyMessage, _msm_v1_ControlMessage__Output>;
  
  FetchFilter(argument: _msm_v1_FetchFilterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  FetchFilter(argument: _msm_v1_FetchFilterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  FetchFilter(argument: _msm_v1_FetchFilterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  FetchFilter(argument: _msm_v1_FetchFilterRequest, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  fetchFilter(argument: _msm_v1_FetchFilterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  fetchFilter(argument: _msm_v1_FetchFilterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  fetchFilter(argument: _msm_v1_FetchFilterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  fetchFilter(argument: _msm_v1_FetchFilterRequest, callback: grpc.requestCallback<_msm_v1_FilterModule__Output>): grpc.ClientUnaryCall;
  
}

export interface ProxyServiceHandlers extends grpc.UntypedServiceImplementation {
  Connect: grpc.handleBidiStreamingCall<_msm_v1_ProxyMessage__Output, _msm_v1_ControlMessage>;
  
  FetchFilter: grpc.handleUnaryCall<_msm_v1_FetchFilterRequest__Output, _msm_v1_FilterModule>;
  
}

export interface ProxyServiceDefinition extends grpc.ServiceDefinition {
  Connect: MethodDefinition<_msm_v1_ProxyMessage, _msm_v1_ControlMessage, _msm_v1_ProxyMessage__Output, _msm_v1_ControlMessage__Output>
  FetchFilter: MethodDefinition<_msm_v1_FetchFilterRequest, _msm_v1_FilterModule, _msm_v1_FetchFilterRequest__Output, _msm_v1_FilterModule__Output>
}
