/**
 * Error codes that cross the wire: a device puts one of these in a failed
 * acknowledgement, and the manager and the technician's tools match on it.
 * Codes are stable: never renamed, never reused (test/protocol/errors.test.ts
 * checks that each is documented in docs/errors.md and unique across rooms).
 */

/** Every wire error code with the action a technician or operator should take. */
export const PROTOCOL_ERRORS = {
  E_SCHEMA: 'The message does not match the protocol schema; check that manager and agent run compatible versions.',
  E_PAYLOAD_TOO_LARGE: 'The message exceeds the size limit; a certificate bundle this large is not produced by trustroll, so its origin is suspect.',
  E_PEM: 'A certificate could not be parsed as PEM/DER X.509; the payload was damaged or forged.',
  E_VERIFY_D: 'The distribution root (NewWithOld) does not verify against the old root this device trusts; do not force it: the manager may be talking to a different fleet, or the message was forged.',
  E_VERIFY_OLD_WITH_NEW: 'The OldWithNew certificate sent with the old-root clean-up does not certify the old root\'s key under the new root (key, subject, signature or validity); nothing was dropped. The manager must resend the rotation\'s own OldWithNew, or start the clean-up without it.',
  E_VERIFY_R1: 'The new root (NewWithNew) does not match the distribution root already stored (key, subject or signature); the manager must resend the rotation\'s own R1.',
  E_VERIFY_LEAF: 'The new device certificate does not chain to the new root key, is expired, or has the wrong profile; reissue it from the rotation\'s CA.',
  E_LEAF_KEY_MISMATCH: 'The new device certificate carries a public key that is not this device\'s own key; it was issued for another device.',
  E_CA_CONSTRAINTS: 'A root certificate lacks CA:true or keyCertSign; it cannot act as a root and was rejected.',
  E_VALIDITY: 'A certificate is outside its validity period or breaks the RFC 9810 validity rules for root key update; check the manager clock and the certificate dates.',
  E_OUT_OF_ORDER: 'The step arrived before the steps it depends on completed on this device; the manager resends the missing step first.',
  E_REPLAY: 'The command carries a sequence number this device already used for a different command, or belongs to an older rotation; it was ignored.',
  E_WRONG_DEVICE: 'The command is addressed to another device; check topic routing and device identity.',
  E_WRONG_ROLE: 'The step is for the other mTLS role (server vs client) than this device plays.',
  E_ROTATION_IN_PROGRESS: 'A different rotation is still open on this device; finish or abandon it on the manager before starting another.',
  E_STORE_CORRUPT: 'The device trust store failed its integrity check at start; restore it from the manager (re-provision) rather than editing it.',
  E_STORE_IO: 'The device could not write its trust store durably; check storage health. Nothing was acknowledged.',
  E_STORE_FULL: 'The result of this step would not fit the device\'s record store (EEPROM slot); nothing was changed. Use smaller certificates (e.g. P-256 instead of RSA-4096) or a larger part (eeprom.size).',
  E_STORE_REGRESSED: 'The device\'s trust store is older than what it acknowledged (e.g. the newest EEPROM copy was damaged and an older one loaded). The device keeps authenticating with the older state; the manager re-sends the acknowledged steps, which the device applies again from the same signed commands. If it persists, check the storage part.',
  E_SCHEDULE_ORDER: 'The rotation schedule breaks the ordering rules (claim 16: P4 after every client\'s P2, P3 not before P2, P4 not before P1); fix the schedule definition.',
  E_SCHEDULE_INVALID: 'The rotation schedule is malformed (unknown step, cycle, wrong role); fix the schedule definition.',
  E_CSR_BUILD: 'The device could not build a certification request for a re-key (unusable key, name or signature from the HAL); nothing was sent. Check the HAL key and the agent log.',
  E_INTERNAL: 'The device hit an unexpected error and changed nothing; collect the agent log (JSON lines) and report it.',
  E_SIGNATURE: 'The command signature does not verify against the manager key this device trusts; it was ignored.',
  E_ROLLBACK_TOO_LATE: 'The rollback arrived after this device already replaced its server certificate or dropped its old root, so its old state cannot be restored safely; nothing was changed. Leave the rotation where it is (every intermediate state authenticates) or resume it.',
  E_ROOT_LAYOUT: 'The step belongs to a schedule for another root layout than this device holds (one fleet root, or separate client and server roots); nothing was changed. Rotate a separate-roots fleet with "trustroll rotate --root client|server" and a single-root fleet without --root.',
  E_ROTATION_ROLLED_BACK: 'The command belongs to a rotation that was rolled back on this device; it was ignored. Start a new rotation instead of resuming the rolled-back one.',
} as const;

/** A stable, machine-matchable protocol error code. */
export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;

/**
 * A failure that a device reports in its acknowledgement, or that a protocol
 * check raises. `code` is for programs, `message` for people.
 */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** The message without the code prefix (what goes into an acknowledgement). */
  readonly reason: string;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ProtocolErrorCode, reason: string, details: Record<string, unknown> = {}) {
    super(`${code}: ${reason}`);
    this.name = 'ProtocolError';
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  /** The action text documented for this code. */
  get hint(): string {
    return PROTOCOL_ERRORS[this.code];
  }
}

/** Every typed error's message starts `E_CODE: `; this finds that code. */
const LEADING_CODE = /^(E_[A-Z0-9_]+): /;

/** The stable code a message starts with (`E_CODE: text`), or null. */
export function leadingCode(message: string): string | null {
  return LEADING_CODE.exec(message)?.[1] ?? null;
}

/** A message without the `E_CODE: ` it starts with (where the code is reported apart). */
export function withoutCode(message: string): string {
  return message.replace(LEADING_CODE, '');
}

/** True when `value` is a ProtocolError, optionally with the given code. */
export function isProtocolError(value: unknown, code?: ProtocolErrorCode): value is ProtocolError {
  return value instanceof ProtocolError && (code === undefined || value.code === code);
}
