// PLACEHOLDER until the native crypto addon lands (branch host-crypto): no host crypto.
export enum CryptoAlg { AesCtr = 1, HmacSha1 = 2, AesGcm = 3 }
export function hostCryptoUnavailable(): string {
  return "not built";
}
export function hostCryptoDescription(): string {
  return "host crypto: not built";
}
export interface CryptoKeyTable {
  create(alg: number, mem: ArrayBuffer, keyPtr: number, keyLen: number): number;
  drop(key: number): number;
  ctrXor(key: number, mem: ArrayBuffer, ivPtr: number, dataPtr: number, len: number): number;
  hmacSha1(key: number, mem: ArrayBuffer, msgPtr: number, msgLen: number, suffixPtr: number, suffixLen: number, outPtr: number): number;
  gcmSeal(key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number;
  gcmOpen(key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number;
  readonly size: number;
  close(): void;
}
export function createCryptoKeyTable(_maxKeys?: number): CryptoKeyTable | null {
  return null;
}
