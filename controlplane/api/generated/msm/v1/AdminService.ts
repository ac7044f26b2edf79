// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ApplySegmentsRequest as _msm_v1_ApplySegmentsRequest, ApplySegmentsRequest__Output as _msm_v1_ApplySegmentsRequest__Output } from '../../msm/v1/ApplySegmentsRequest.js';
import type { ApplySegmentsResponse as _msm_v1_ApplySegmentsResponse, ApplySegmentsResponse__Output as _msm_v1_ApplySegmentsResponse__Output } from '../../msm/v1/ApplySegmentsResponse.js';
import type { DeleteProxiesRequest as _msm_v1_DeleteProxiesRequest, DeleteProxiesRequest__Output as _msm_v1_DeleteProxiesRequest__Output } from '../../msm/v1/DeleteProxiesRequest.js';
import type { DeleteProxiesResponse as _msm_v1_DeleteProxiesResponse, DeleteProxiesResponse__Output as _msm_v1_DeleteProxiesResponse__Output } from '../../msm/v1/DeleteProxiesResponse.js';
import type { DeleteSegmentsRequest as _msm_v1_DeleteSegmentsRequest, DeleteSegmentsRequest__Output as _msm_v1_DeleteSegmentsRequest__Output } from '../../msm/v1/DeleteSegmentsRequest.js';
import type { DeleteSegmentsResponse as _msm_v1_DeleteSegmentsResponse, DeleteSegmentsResponse__Output as _msm_v1_DeleteSegmentsResponse__Output } from '../../msm/v1/DeleteSegmentsResponse.js';
import type { DescribeStreamRequest as _msm_v1_DescribeStreamRequest, DescribeStreamRequest__Output as _msm_v1_DescribeStreamRequest__Output } from '../../msm/v1/DescribeStreamRequest.js';
import type { DescribeStreamResponse as _msm_v1_DescribeStreamResponse, DescribeStreamResponse__Output as _msm_v1_DescribeStreamResponse__Output } from '../../msm/v1/DescribeStreamResponse.js';
import type { GetStatsRequest as _msm_v1_GetStatsRequest, GetStatsRequest__Output as _msm_v1_GetStatsRequest__Output } from '../../msm/v1/GetStatsRequest.js';
import type { GetStatsResponse as _msm_v1_GetStatsResponse, GetStatsResponse__Output as _msm_v1_GetStatsResponse__Output } from '../../msm/v1/GetStatsResponse.js';
import type { ListFiltersRequest as _msm_v1_ListFiltersRequest, ListFiltersRequest__Output as _msm_v1_ListFiltersRequest__Output } from '../../msm/v1/ListFiltersRequest.js';
import type { ListFiltersResponse as _msm_v1_ListFiltersResponse, ListFiltersResponse__Output as _msm_v1_ListFiltersResponse__Output } from '../../msm/v1/ListFiltersResponse.js';
import type { ListProxiesRequest as _msm_v1_ListProxiesRequest, ListProxiesRequest__Output as _msm_v1_ListProxiesRequest__Output } from '../../msm/v1/ListProxiesRequest.js';
import type { ListProxiesResponse as _msm_v1_ListProxiesResponse, ListProxiesResponse__Output as _msm_v1_ListProxiesResponse__Output } from '../../msm/v1/ListProxiesResponse.js';
import type { ListSegmentsRequest as _msm_v1_ListSegmentsRequest, ListSegmentsRequest__Output as _msm_v1_ListSegmentsRequest__Output } from '../../msm/v1/ListSegmentsRequest.js';
import type { ListSegmentsResponse as _msm_v1_ListSegmentsResponse, ListSegmentsResponse__Output as _msm_v1_ListSegmentsResponse__Output } from '../../msm/v1/ListSegmentsResponse.js';
import type { ListStreamsRequest as _msm_v1_ListStreamsRequest, ListStreamsRequest__Output as _msm_v1_ListStreamsRequest__Output } from '../../msm/v1/ListStreamsRequest.js';
import type { ListStreamsResponse as _msm_v1_ListStreamsResponse, ListStreamsResponse__Output as _msm_v1_ListStreamsResponse__Output } from '../../msm/v1/ListStreamsResponse.js';
import type { PushFilterRequest as _msm_v1_PushFilterRequest, PushFilterRequest__Output as _msm_v1_PushFilterRequest__Output } from '../../msm/v1/PushFilterRequest.js';
import type { PushFilterResponse as _msm_v1_PushFilterResponse, PushFilterResponse__Output as _msm_v1_PushFilterResponse__Output } from '../../msm/v1/PushFilterResponse.js';

export interface AdminServiceClient extends grpc.Client {
  ApplySegments(argument: _msm_v1_ApplySegmentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  ApplySegments(argument: _msm_v1_ApplySegmentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  ApplySegments(argument: _msm_v1_ApplySegmentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  ApplySegments(argument: _msm_v1_ApplySegmentsRequest, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  applySegments(argument: _msm_v1_ApplySegmentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  applySegments(argument: _msm_v1_ApplySegmentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  applySegments(argument: _msm_v1_ApplySegmentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  applySegments(argument: _msm_v1_ApplySegmentsRequest, callback: grpc.requestCallback<_msm_v1_ApplySegmentsResponse__Output>): grpc.ClientUnaryCall;
  
  DeleteProxies(argument: _msm_v1_DeleteProxiesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  DeleteProxies(argument: _msm_v1_DeleteProxiesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  DeleteProxies(argument: _msm_v1_DeleteProxiesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  DeleteProxies(argument: _msm_v1_DeleteProxiesRequest, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  deleteProxies(argument: _msm_v1_DeleteProxiesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  deleteProxies(argument: _msm_v1_DeleteProxiesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  deleteProxies(argument: _msm_v1_DeleteProxiesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  deleteProxies(argument: _msm_v1_DeleteProxiesRequest, callback: grpc.requestCallback<_msm_v1_DeleteProxiesResponse__Output>): grpc.ClientUnaryCall;
  
  DeleteSegments(argument: _msm_v1_DeleteSegmentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  DeleteSegments(argument: _msm_v1_DeleteSegmentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  DeleteSegments(argument: _msm_v1_DeleteSegmentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  DeleteSegments(argument: _msm_v1_DeleteSegmentsRequest, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  deleteSegments(argument: _msm_v1_DeleteSegmentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  deleteSegments(argument: _msm_v1_DeleteSegmentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  deleteSegments(argument: _msm_v1_DeleteSegmentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  deleteSegments(argument: _msm_v1_DeleteSegmentsRequest, callback: grpc.requestCallback<_msm_v1_DeleteSegmentsResponse__Output>): grpc.ClientUnaryCall;
  
  DescribeStream(argument: _msm_v1_DescribeStreamRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  DescribeStream(argument: _msm_v1_DescribeStreamRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  DescribeStream(argument: _msm_v1_DescribeStreamRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  DescribeStream(argument: _msm_v1_DescribeStreamRequest, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  describeStream(argument: _msm_v1_DescribeStreamRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  describeStream(argument: _msm_v1_DescribeStreamRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  describeStream(argument: _msm_v1_DescribeStreamRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  describeStream(argument: _msm_v1_DescribeStreamRequest, callback: grpc.requestCallback<_msm_v1_DescribeStreamResponse__Output>): grpc.ClientUnaryCall;
  
  GetStats(argument: _msm_v1_GetStatsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  GetStats(argument: _msm_v1_GetStatsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  GetStats(argument: _msm_v1_GetStatsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  GetStats(argument: _msm_v1_GetStatsRequest, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  getStats(argument: _msm_v1_GetStatsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  getStats(argument: _msm_v1_GetStatsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  getStats(argument: _msm_v1_GetStatsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  getStats(argument: _msm_v1_GetStatsRequest, callback: grpc.requestCallback<_msm_v1_GetStatsResponse__Output>): grpc.ClientUnaryCall;
  
  ListFilters(argument: _msm_v1_ListFiltersRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  ListFilters(argument: _msm_v1_ListFiltersRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  ListFilters(argument: _msm_v1_ListFiltersRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  ListFilters(argument: _msm_v1_ListFiltersRequest, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  listFilters(argument: _msm_v1_ListFiltersRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  listFilters(argument: _msm_v1_ListFiltersRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  listFilters(argument: _msm_v1_ListFiltersRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  listFilters(argument: _msm_v1_ListFiltersRequest, callback: grpc.requestCallback<_msm_v1_ListFiltersResponse__Output>): grpc.ClientUnaryCall;
  
  ListProxies(argument: _msm_v1_ListProxiesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  ListProxies(argument: _msm_v1_ListProxiesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  ListProxies(argument: _msm_v1_ListProxiesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  ListProxies(argument: _msm_v1_ListProxiesRequest, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  listProxies(argument: _msm_v1_ListProxiesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  listProxies(argument: _msm_v1_ListProxiesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  listProxies(argument: _msm_v1_ListProxiesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  listProxies(argument: _msm_v1_ListProxiesRequest, callback: grpc.requestCallback<_msm_v1_ListProxiesResponse__Output>): grpc.ClientUnaryCall;
  
  ListSegments(argument: _msm_v1_ListSegmentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  ListSegments(argument: _msm_v1_ListSegmentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  ListSegments(argument: _msm_v1_ListSegmentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  ListSegments(argument: _msm_v1_ListSegmentsRequest, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  listSegments(argument: _msm_v1_ListSegmentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  listSegments(argument: _msm_v1_ListSegmentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  listSegments(argument: _msm_v1_ListSegmentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  listSegments(argument: _msm_v1_ListSegmentsRequest, callback: grpc.requestCallback<_msm_v1_ListSegmentsResponse__Output>): grpc.ClientUnaryCall;
  
  ListStreams(argument: _msm_v1_ListStreamsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  ListStreams(argument: _msm_v1_ListStreamsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  ListStreams(argument: _msm_v1_ListStreamsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  ListStreams(argument: _msm_v1_ListStreamsRequest, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  listStreams(argument: _msm_v1_ListStreamsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  listStreams(argument: _msm_v1_ListStreamsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  listStreams(argument: _msm_v1_ListStreamsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  listStreams(argument: _msm_v1_ListStreamsRequest, callback: grpc.requestCallback<_msm_v1_ListStreamsResponse__Output>): grpc.ClientUnaryCall;
  
  PushFilter(argument: _msm_v1_PushFilterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  PushFilter(argument: _msm_v1_PushFilterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  PushFilter(argument: _msm_v1_PushFilterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  PushFilter(argument: _msm_v1_PushFilterRequest, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  pushFilter(argument: _msm_v1_PushFilterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  pushFilter(argument: _msm_v1_PushFilterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  pushFilter(argument: _msm_v1_PushFilterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  pushFilter(argument: _msm_v1_PushFilterRequest, callback: grpc.requestCallback<_msm_v1_PushFilterResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface AdminServiceHandlers extends grpc.UntypedServiceImplementation {
  ApplySegments: grpc.handleUnaryCall<_msm_v1_ApplySegmentsRequest__Output, _msm_v1_ApplySegmentsResponse>;
  
  DeleteProxies: grpc.handleUnaryCall<_msm_v1_DeleteProxiesRequest__Output, _msm_v1_DeleteProxiesResponse>;
  
  DeleteSegments: grpc.handleUnaryCall<_msm_v1_DeleteSegmentsRequest__Output, _msm_v1_DeleteSegmentsResponse>;
  
  DescribeStream: grpc.handleUnaryCall<_msm_v1_DescribeStreamRequest__Output, _msm_v1_DescribeStreamResponse>;
  
  GetStats: grpc.handleUnaryCall<_msm_v1_GetStatsRequest__Output, _msm_v1_GetStatsResponse>;
  
  ListFilters: grpc.handleUnaryCall<_msm_v1_ListFiltersRequest__Output, _msm_v1_ListFiltersResponse>;
  
  ListProxies: grpc.handleUnaryCall<_msm_v1_ListProxiesRequest__Output, _msm_v1_ListProxiesResponse>;
  
  ListSegments: grpc.handleUnaryCall<_msm_v1_ListSegmentsRequest__Output, _msm_v1_ListSegmentsResponse>;
  
  ListStreams: grpc.handleUnaryCall<_msm_v1_ListStreamsRequest__Output, _msm_v1_ListStreamsResponse>;
  
  PushFilter: grpc.handleUnaryCall<_msm_v1_PushFilterRequest__Output, _msm_v1_PushFilterResponse>;
  
}

export interface AdminServiceDefinition extends grpc.ServiceDefinition {
  ApplySegments: MethodDefinition<_msm_v1_ApplySegmentsRequest, _msm_v1_ApplySegmentsResponse, _msm_v1_ApplySegmentsRequest__Output, _msm_v1_ApplySegmentsResponse__Output>
  DeleteProxies: MethodDefinition<_msm_v1_DeleteProxiesRequest, _msm_v1_DeleteProxiesResponse, _msm_v1_DeleteProxiesRequest__Output, _msm_v1_DeleteProxiesResponse__Output>
  DeleteSegments: MethodDefinition<_msm_v1_DeleteSegmentsRequest, _msm_v1_DeleteSegmentsResponse, _msm_v1_DeleteSegmentsRequest__Output, _msm_v1_DeleteSegmentsResponse__Output>
  DescribeStream: MethodDefinition<_msm_v1_DescribeStreamRequest, _msm_v1_DescribeStreamResponse, _msm_v1_DescribeStreamRequest__Output, _msm_v1_DescribeStreamResponse__Output>
  GetStats: MethodDefinition<_msm_v1_GetStatsRequest, _msm_v1_GetStatsResponse, _msm_v1_GetStatsRequest__Output, _msm_v1_GetStatsResponse__Output>
  ListFilters: MethodDefinition<_msm_v1_ListFiltersRequest, _msm_v1_ListFiltersResponse, _msm_v1_ListFiltersRequest__Output, _msm_v1_ListFiltersResponse__Output>
  ListProxies: MethodDefinition<_msm_v1_ListProxiesRequest, _msm_v1_ListProxiesResponse, _msm_v1_ListProxiesRequest__Output, _msm_v1_ListProxiesResponse__Output>
  ListSegments: MethodDefinition<_msm_v1_ListSegmentsRequest, _msm_v1_ListSegmentsResponse, _msm_v1_ListSegmentsRequest__Output, _msm_v1_ListSegmentsResponse__Output>
  ListStreams: MethodDefinition<_msm_v1_ListStreamsRequest, _msm_v1_ListStreamsResponse, _msm_v1_ListStreamsRequest__Output, _msm_v1_ListStreamsResponse__Output>
  PushFilter: MethodDefinition<_msm_v1_PushFilterRequest, _msm_v1_PushFilterResponse, _msm_v1_PushFilterRequest__Output, _msm_v1_PushFilterResponse__Output>
}
