// What every state blob of this filter starts with (docs/abi.md msm_state_export): a magic, the
// format version, and whose state it is.
export const STATE_MAGIC: u32 = 0x4345464d; // "MFEC"
export const STATE_VERSION: u16 = 2; // 2: a decoder place carries its age, not a time on the old worker's clock
export const KIND_ENCODER: u8 = 1;
export const KIND_DECODER: u8 = 2;
