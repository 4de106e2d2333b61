/**
 * Command signatures (issue 3, "management channel security"): the manager
 * signs every command with an ECDSA P-256 key of the management PKI over
 * `canonicalJson(command without sig)`; the device verifies it against the
 * keys it was provisioned to trust before anything else happens. Together
 * with the per-device sequence number this rejects commands injected or
 * replayed through a compromised broker: a forged command fails here, a
 * replayed genuine one fails the device's sequence check (E_REPLAY) or is
 * answered with its stored acknowledgement and changes nothing.
 *
 * The signature is `{ alg: 'ES256', keyId, value }`, value = base64 of the
 * DER ECDSA-Sig-Value. keyId names the key, so the manager's signing key can
 * be rolled over by provisioning the next key before using it.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';
import { ProtocolError } from './errors.ts';
import type { Command } from './messages/command.ts';

/** A command-signing key: the private key never leaves the manager. */
export interface CommandSigningKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
}

function assertP256(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ProtocolError('E_SIGNATURE', `${what} is not an ECDSA P-256 key (ES256 needs P-256)`);
  }
}

/** Key id of a command-signing key: "cmd-" + the first 16 hex digits of SHA-256 over its SPKI. */
export function commandKeyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `cmd-${createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16)}`;
}

/** The exact bytes a command signature covers: the canonical command without `sig`. */
export function signedBytes(cmd: Command): Buffer {
  const { sig: _sig, ...rest } = cmd;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

/** A copy of `cmd` carrying the manager's signature (any previous `sig` is replaced). */
export function signCommand(cmd: Command, key: CommandSigningKey): Command {
  assertP256(key.privateKey, `signing key ${key.keyId}`);
  const value = sign('sha256', signedBytes(cmd), key.privateKey).toString('base64');
  return { ...cmd, sig: { alg: 'ES256', keyId: key.keyId, value } };
}

/**
 * Verify the signature of `cmd` against the trusted keys (keyId → public
 * key). Throws ProtocolError E_SIGNATURE when the command is unsigned, names
 * an unknown key, or does not verify.
 */
export function verifyCommandSignature(cmd: Command, trustedKeys: ReadonlyMap<string, KeyObject>, bytes: Buffer = signedBytes(cmd)): void {
  const where = `command seq ${cmd.seq} step ${cmd.step} for ${cmd.deviceId}`;
  const sig = cmd.sig;
  if (!sig) throw new ProtocolError('E_SIGNATURE', `${where} is not signed; this device accepts signed commands only`);
  if (sig.alg !== 'ES256') throw new ProtocolError('E_SIGNATURE', `${where}: unsupported signature algorithm ${JSON.stringify(sig.alg)}`);
  const key = trustedKeys.get(sig.keyId);
  if (!key) throw new ProtocolError('E_SIGNATURE', `${where} is signed by unknown key ${JSON.stringify(sig.keyId)}`, { keyId: sig.keyId });
  let ok = false;
  try {
    ok = verify('sha256', bytes, key, Buffer.from(sig.value, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new ProtocolError('E_SIGNATURE', `${where}: signature by ${sig.keyId} does not verify; the command was altered or forged`, { keyId: sig.keyId });
}

/** The Orchestrator's `sign` option for `key`. */
export function commandSigner(key: CommandSigningKey): (cmd: Command) => Command {
  assertP256(key.privateKey, `signing key ${key.keyId}`);
  return (cmd) => signCommand(cmd, key);
}

/** The Agent's `verifySignature` option, trusting `trustedKeys` (keyId → P-256 public key). */
export function commandVerifier(trustedKeys: ReadonlyMap<string, KeyObject>): (cmd: Command, bytes?: Buffer) => void {
  const map = new Map<string, KeyObject>();
  for (const [keyId, key] of trustedKeys) {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    assertP256(pub, `trusted command key ${keyId}`);
    map.set(keyId, pub);
  }
  return (cmd, bytes) => verifyCommandSignature(cmd, map, bytes);
}
