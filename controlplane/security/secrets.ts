// Secret-looking values in chain-stage configs: string values of keys named `key`, `reverseKey`
// or ending in key, secret, password or token (any case), at any depth. The control plane shows
// them only when asked (ListSegments show_secrets, msmctl --show-secrets), as kubectl shows
// Secrets. A reference ({"$file": PATH} or {"$env": NAME}, resolved by the proxy) is not a string,
// so it is neither hidden nor warned about: it is what keeps keys out of the control plane.

/** What a hidden value reads as. Applying it back is refused: it would replace the key. */
export const REDACTED = "<redacted>";

const SECRET_KEY = /(key|secret|password|token)$/i;

export function isSecretKey(name: string): boolean {
  return SECRET_KEY.test(name);
}

/** The secret-looking string values in `value`, each with its path (`.key`, `.peers[1].token`). */
export function secretValues(value: unknown, path = ""): { path: string; value: string }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => secretValues(v, `${path}[${i}]`));
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => (isSecretKey(k) && typeof v === "string" ? [{ path: `${path}.${k}`, value: v }] : secretValues(v, `${path}.${k}`)));
}

/** A copy of `value` with every secret-looking string value replaced by REDACTED. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isSecretKey(k) && typeof v === "string" ? REDACTED : redactSecrets(v)]));
}
