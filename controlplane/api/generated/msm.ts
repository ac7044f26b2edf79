// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Ack as _msm_v1_Ack, Ack__Output as _msm_v1_Ack__Output } from './msm/v1/Ack.js';
import type { AdminServiceClient as _msm_v1_AdminServiceClient, AdminServiceDefinition as _msm_v1_AdminServiceDefinition } from './msm/v1/AdminService.js';
import type { ApplySegmentsRequest as _msm_v1_ApplySegmentsRequest, ApplySegmentsRequest__Output as _msm_v1_ApplySegmentsRequest__Output } from './msm/v1/ApplySegmentsRequest.js';
import type { ApplySegmentsResponse as _msm_v1_ApplySegmentsResponse, ApplySegmentsResponse__Output as _msm_v1_ApplySegmentsResponse__Output } from './msm/v1/ApplySegmentsResponse.js';
import type { ChainStage as _msm_v1_ChainStage, ChainStage__Output as _msm_v1_ChainStage__Output } from './msm/v1/ChainStage.js';
import type { ControlMessage as _msm_v1_ControlMessage, ControlMessage__Output as _msm_v1_ControlMessage__Output } from './msm/v1/ControlMessage.js';
import type { DeleteProxiesRequest as _msm_v1_DeleteProxiesRequest, DeleteProxiesRequest__Output as _msm_v1_DeleteProxiesRequest__Output } from './msm/v1/DeleteProxiesRequest.js';
import type { DeleteProxiesResponse as _msm_v1_DeleteProxiesResponse, DeleteProxiesResponse__Output as _msm_v1_DeleteProxiesResponse__Output } from './msm/v1/DeleteProxiesResponse.js';
import type { DeleteSegmentsRequest as _msm_v1_DeleteSegmentsRequest, DeleteSegmentsRequest__Output as _msm_v1_DeleteSegmentsRequest__Output } from './msm/v1/DeleteSegmentsRequest.js';
import type { DeleteSegmentsResponse as _msm_v1_DeleteSegmentsResponse, DeleteSegmentsResponse__Output as _msm_v1_DeleteSegmentsResponse__Output } from './msm/v1/DeleteSegmentsResponse.js';
import type { DescribeStreamRequest as _msm_v1_DescribeStreamRequest, DescribeStreamRequest__Output as _msm_v1_DescribeStreamRequest__Output } from './msm/v1/DescribeStreamRequest.js';
import type { DescribeStreamResponse as _msm_v1_DescribeStreamResponse, DescribeStreamResponse__Output as _msm_v1_DescribeStreamResponse__Output } from './msm/v1/DescribeStreamResponse.js';
import type { Endpoint as _msm_v1_Endpoint, Endpoint__Output as _msm_v1_Endpoint__Output } from './msm/v1/Endpoint.js';
import type { FailurePolicy as _msm_v1_FailurePolicy, FailurePolicy__Output as _msm_v1_FailurePolicy__Output } from './msm/v1/FailurePolicy.js';
import type { FetchFilterRequest as _msm_v1_FetchFilterRequest, FetchFilterRequest__Output as _msm_v1_FetchFilterRequest__Output } from './msm/v1/FetchFilterRequest.js';
import type { FilterModule as _msm_v1_FilterModule, FilterModule__Output as _msm_v1_FilterModule__Output } from './msm/v1/FilterModule.js';
import type { FilterRef as _msm_v1_FilterRef, FilterRef__Output as _msm_v1_FilterRef__Output } from './msm/v1/FilterRef.js';
import type { GetStatsRequest as _msm_v1_GetStatsRequest, GetStatsRequest__Output as _msm_v1_GetStatsRequest__Output } from './msm/v1/GetStatsRequest.js';
import type { GetStatsResponse as _msm_v1_GetStatsResponse, GetStatsResponse__Output as _msm_v1_GetStatsResponse__Output } from './msm/v1/GetStatsResponse.js';
import type { Leg as _msm_v1_Leg, Leg__Output as _msm_v1_Leg__Output } from './msm/v1/Leg.js';
import type { ListFiltersRequest as _msm_v1_ListFiltersRequest, ListFiltersRequest__Output as _msm_v1_ListFiltersRequest__Output } from './msm/v1/ListFiltersRequest.js';
import type { ListFiltersResponse as _msm_v1_ListFiltersResponse, ListFiltersResponse__Output as _msm_v1_ListFiltersResponse__Output } from './msm/v1/ListFiltersResponse.js';
import type { ListProxiesRequest as _msm_v1_ListProxiesRequest, ListProxiesRequest__Output as _msm_v1_ListProxiesRequest__Output } from './msm/v1/ListProxiesRequest.js';
import type { ListProxiesResponse as _msm_v1_ListProxiesResponse, ListProxiesResponse__Output as _msm_v1_ListProxiesResponse__Output } from './msm/v1/ListProxiesResponse.js';
import type { ListSegmentsRequest as _msm_v1_ListSegmentsRequest, ListSegmentsRequest__Output as _msm_v1_ListSegmentsRequest__Output } from './msm/v1/ListSegmentsRequest.js';
import type { ListSegmentsResponse as _msm_v1_ListSegmentsResponse, ListSegmentsResponse__Output as _msm_v1_ListSegmentsResponse__Output } from './msm/v1/ListSegmentsResponse.js';
import type { ListStreamsRequest as _msm_v1_ListStreamsRequest, ListStreamsRequest__Output as _msm_v1_ListStreamsRequest__Output } from './msm/v1/ListStreamsRequest.js';
import type { ListStreamsResponse as _msm_v1_ListStreamsResponse, ListStreamsResponse__Output as _msm_v1_ListStreamsResponse__Output } from './msm/v1/ListStreamsResponse.js';
import type { Multicast as _msm_v1_Multicast, Multicast__Output as _msm_v1_Multicast__Output } from './msm/v1/Multicast.js';
import type { Nack as _msm_v1_Nack, Nack__Output as _msm_v1_Nack__Output } from './msm/v1/Nack.js';
import type { Notice as _msm_v1_Notice, Notice__Output as _msm_v1_Notice__Output } from './msm/v1/Notice.js';
import type { ProxyMessage as _msm_v1_ProxyMessage, ProxyMessage__Output as _msm_v1_ProxyMessage__Output } from './msm/v1/ProxyMessage.js';
import type { ProxyServiceClient as _msm_v1_ProxyServiceClient, ProxyServiceDefinition as _msm_v1_ProxyServiceDefinition } from './msm/v1/ProxyService.js';
import type { ProxyStats as _msm_v1_ProxyStats, ProxyStats__Output as _msm_v1_ProxyStats__Output } from './msm/v1/ProxyStats.js';
import type { ProxyStatus as _msm_v1_ProxyStatus, ProxyStatus__Output as _msm_v1_ProxyStatus__Output } from './msm/v1/ProxyStatus.js';
import type { PushFilterRequest as _msm_v1_PushFilterRequest, PushFilterRequest__Output as _msm_v1_PushFilterRequest__Output } from './msm/v1/PushFilterRequest.js';
import type { PushFilterResponse as _msm_v1_PushFilterResponse, PushFilterResponse__Output as _msm_v1_PushFilterResponse__Output } from './msm/v1/PushFilterResponse.js';
import type { Register as _msm_v1_Register, Register__Output as _msm_v1_Register__Output } from './msm/v1/Register.js';
import type { Segment as _msm_v1_Segment, Segment__Output as _msm_v1_Segment__Output } from './msm/v1/Segment.js';
import type { Snapshot as _msm_v1_Snapshot, Snapshot__Output as _msm_v1_Snapshot__Output } from './msm/v1/Snapshot.js';
import type { StageLimits as _msm_v1_StageLimits, StageLimits__Output as _msm_v1_StageLimits__Output } from './msm/v1/StageLimits.js';
import type { StatsReport as _msm_v1_StatsReport, StatsReport__Output as _msm_v1_StatsReport__Output } from './msm/v1/StatsReport.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  msm: {
    v1: {
      Ack: MessageTypeDefinition<_msm_v1_Ack, _msm_v1_Ack__Output>
      AdminService: SubtypeConstructor<typeof grpc.Client, _msm_v1_AdminServiceClient> & { service: _msm_v1_AdminServiceDefinition }
      ApplySegmentsRequest: MessageTypeDefinition<_msm_v1_ApplySegmentsRequest, _msm_v1_ApplySegmentsRequest__Output>
      ApplySegmentsResponse: MessageTypeDefinition<_msm_v1_ApplySegmentsResponse, _msm_v1_ApplySegmentsResponse__Output>
      ChainStage: MessageTypeDefinition<_msm_v1_ChainStage, _msm_v1_ChainStage__Output>
      ControlMessage: MessageTypeDefinition<_msm_v1_ControlMessage, _msm_v1_ControlMessage__Output>
      DeleteProxiesRequest: MessageTypeDefinition<_msm_v1_DeleteProxiesRequest, _msm_v1_DeleteProxiesRequest__Output>
      DeleteProxiesResponse: MessageTypeDefinition<_msm_v1_DeleteProxiesResponse, _msm_v1_DeleteProxiesResponse__Output>
      DeleteSegmentsRequest: MessageTypeDefinition<_msm_v1_DeleteSegmentsRequest, _msm_v1_DeleteSegmentsRequest__Output>
      DeleteSegmentsResponse: MessageTypeDefinition<_msm_v1_DeleteSegmentsResponse, _msm_v1_DeleteSegmentsResponse__Output>
      DescribeStreamRequest: MessageTypeDefinition<_msm_v1_DescribeStreamRequest, _msm_v1_DescribeStreamRequest__Output>
      DescribeStreamResponse: MessageTypeDefinition<_msm_v1_DescribeStreamResponse, _msm_v1_DescribeStreamResponse__Output>
      Endpoint: MessageTypeDefinition<_msm_v1_Endpoint, _msm_v1_Endpoint__Output>
      FailurePolicy: MessageTypeDefinition<_msm_v1_FailurePolicy, _msm_v1_FailurePolicy__Output>
      FetchFilterRequest: MessageTypeDefinition<_msm_v1_FetchFilterRequest, _msm_v1_FetchFilterRequest__Output>
      FilterModule: MessageTypeDefinition<_msm_v1_FilterModule, _msm_v1_FilterModule__Output>
      FilterRef: MessageTypeDefinition<_msm_v1_FilterRef, _msm_v1_FilterRef__Output>
      GetStatsRequest: MessageTypeDefinition<_msm_v1_GetStatsRequest, _msm_v1_GetStatsRequest__Output>
      GetStatsResponse: MessageTypeDefinition<_msm_v1_GetStatsResponse, _msm_v1_GetStatsResponse__Output>
      Leg: MessageTypeDefinition<_msm_v1_Leg, _msm_v1_Leg__Output>
      ListFiltersRequest: MessageTypeDefinition<_msm_v1_ListFiltersRequest, _msm_v1_ListFiltersRequest__Output>
      ListFiltersResponse: MessageTypeDefinition<_msm_v1_ListFiltersResponse, _msm_v1_ListFiltersResponse__Output>
      ListProxiesRequest: MessageTypeDefinition<_msm_v1_ListProxiesRequest, _msm_v1_ListProxiesRequest__Output>
      ListProxiesResponse: MessageTypeDefinition<_msm_v1_ListProxiesResponse, _msm_v1_ListProxiesResponse__Output>
      ListSegmentsRequest: MessageTypeDefinition<_msm_v1_ListSegmentsRequest, _msm_v1_ListSegmentsRequest__Output>
      ListSegmentsResponse: MessageTypeDefinition<_msm_v1_ListSegmentsResponse, _msm_v1_ListSegmentsResponse__Output>
      ListStreamsRequest: MessageTypeDefinition<_msm_v1_ListStreamsRequest, _msm_v1_ListStreamsRequest__Output>
      ListStreamsResponse: MessageTypeDefinition<_msm_v1_ListStreamsResponse, _msm_v1_ListStreamsResponse__Output>
      Multicast: MessageTypeDefinition<_msm_v1_Multicast, _msm_v1_Multicast__Output>
      Nack: MessageTypeDefinition<_msm_v1_Nack, _msm_v1_Nack__Output>
      Notice: MessageTypeDefinition<_msm_v1_Notice, _msm_v1_Notice__Output>
      ProxyMessage: MessageTypeDefinition<_msm_v1_ProxyMessage, _msm_v1_ProxyMessage__Output>
      ProxyService: SubtypeConstructor<typeof grpc.Client, _msm_v1_ProxyServiceClient> & { service: _msm_v1_ProxyServiceDefinition }
      ProxyStats: MessageTypeDefinition<_msm_v1_ProxyStats, _msm_v1_ProxyStats__Output>
      ProxyStatus: MessageTypeDefinition<_msm_v1_ProxyStatus, _msm_v1_ProxyStatus__Output>
      PushFilterRequest: MessageTypeDefinition<_msm_v1_PushFilterRequest, _msm_v1_PushFilterRequest__Output>
      PushFilterResponse: MessageTypeDefinition<_msm_v1_PushFilterResponse, _msm_v1_PushFilterResponse__Output>
      Register: MessageTypeDefinition<_msm_v1_Register, _msm_v1_Register__Output>
      Segment: MessageTypeDefinition<_msm_v1_Segment, _msm_v1_Segment__Output>
      Snapshot: MessageTypeDefinition<_msm_v1_Snapshot, _msm_v1_Snapshot__Output>
      StageLimits: MessageTypeDefinition<_msm_v1_StageLimits, _msm_v1_StageLimits__Output>
      StatsReport: MessageTypeDefinition<_msm_v1_StatsReport, _msm_v1_StatsReport__Output>
    }
  }
}

