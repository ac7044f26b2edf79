// Generated from controlplane/proto/msm.proto by npm run build:proto: do not edit.
// Original file: controlplane/proto/msm.proto

import type { Register as _msm_v1_Register, Register__Output as _msm_v1_Register__Output } from '../../msm/v1/Register.js';
import type { Ack as _msm_v1_Ack, Ack__Output as _msm_v1_Ack__Output } from '../../msm/v1/Ack.js';
import type { Nack as _msm_v1_Nack, Nack__Output as _msm_v1_Nack__Output } from '../../msm/v1/Nack.js';
import type { StatsReport as _msm_v1_StatsReport, StatsReport__Output as _msm_v1_StatsReport__Output } from '../../msm/v1/StatsReport.js';

export interface ProxyMessage {
  'register'?: (_msm_v1_Register | null);
  'ack'?: (_msm_v1_Ack | null);
  'nack'?: (_msm_v1_Nack | null);
  'stats'?: (_msm_v1_StatsReport | null);
  'kind'?: "register"|"ack"|"nack"|"stats";
}

export interface ProxyMessage__Output {
  'register'?: (_msm_v1_Register__Output | null);
  'ack'?: (_msm_v1_Ack__Output | null);
  'nack'?: (_msm_v1_Nack__Output | null);
  'stats'?: (_msm_v1_StatsReport__Output | null);
  'kind'?: "register"|"ack"|"nack"|"stats";
}
