// A key keeps the role it had: one that unprotected (a remote sender encrypts with it) may not
// protect, and one that protected may not unprotect. A config that swapped `direction`, or moved a
// key between `key` and `reverseKey`, under the same key would otherwise carry on from the blob:
// protect would encrypt with a keystream the remote sender used (SRTCP from index 0, RTP at the
// sender's own indexes: RFC 3711 section 9.1, one key per sender), and unprotect would accept, as
// if from the sender, the packets this proxy had sent under it.
import { blobKeys } from "./state-blob";

/**
 * Why the blob just read forbids using `fingerprint` (config key `name`) to unprotect
 * (`receives`) or protect, or "" when it does not. The blob knows the roles of its keys and of the
 * keys before them (KeyRoles, up to ROLE_MEMORY): a key's role outlives configs under other keys in
 * between. A blob without roles (version 1, 2) says nothing.
 */
export function keyRoleConflict(fingerprint: u64, receives: bool, name: string): string {
  if (fingerprint == 0 || !blobKeys.rolesKnown) return "";
  const roles = blobKeys.roles;
  let usedToReceive = false;
  let usedToSend = false;
  for (let i = 0; i < roles.count; i++) {
    if (unchecked(roles.keys[i]) != fingerprint) continue;
    if (unchecked(roles.receives[i])) usedToReceive = true;
    else usedToSend = true;
  }
  if (!receives && usedToReceive) {
    return "config key '" + name + "' unprotected packets before this change and would now protect: the sender that " +
      "encrypts with it would share its keystream (RFC 3711 section 9.1)";
  }
  if (receives && usedToSend) {
    return "config key '" + name + "' protected packets before this change and would now unprotect: what this proxy " +
      "sent under it would be accepted back as if from the sender";
  }
  return "";
}

/**
 * Why the blob just read forbids protecting with `fingerprint` (config key `name`) in the table
 * the new config protects with (`forward`: downstream), or "": the key protected in the other
 * direction's table, whose sources' indexes this one does not have; they would start again at ROC
 * 0 and encrypt indexes already used (a `direction` swapped with `key` and `reverseKey` exchanged).
 */
export function keyChangedTable(fingerprint: u64, forward: bool, name: string): string {
  if (fingerprint == 0 || !blobKeys.rolesKnown) return "";
  const other = forward ? blobKeys.reverse : blobKeys.forward;
  const otherReceives = forward ? blobKeys.reverseReceives : blobKeys.forwardReceives;
  if (other != fingerprint || otherReceives) return "";
  return "config key '" + name + "' protected packets in the other direction before this change: the indexes it used are in " +
    "that direction's state, and this one would encrypt them again (RFC 3711 section 9.1)";
}
