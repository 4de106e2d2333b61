/**
 * Manager-side failures with stable codes, for the CLI and dashboard. Codes
 * that a device reports come from protocol/errors.ts.
 */

/** Manager error codes with the action to take. */
export const MANAGER_ERRORS = {
  E_ROUTE_INVALID: 'A device can be routed only through an enrolled peer it has mutual TLS with (a printer for its clients, a client for its printers) that itself reaches the broker (one hop); fix --via, or route the device --direct.',
  E_DEVICE_UNKNOWN: 'No device with that id is enrolled; enroll it first or check the id.',
  E_DEVICE_EXISTS: 'A device with that id is already enrolled; pick another id, or re-enrol it with its new key ("trustroll enroll --replace"; refused while a rotation is open).',
  E_ROTATION_ACTIVE: 'A rotation is still open (running, paused, stopped or aborted part-way) and devices may be part-way through it; resume it to completion before starting another.',
  E_ROTATION_STATE: 'The rotation is not in a state that allows this action (e.g. pausing a rotation that is not running); check its status first.',
  E_ROLLBACK_IMPOSSIBLE: 'A rollback is no longer possible: a server may already present its new certificate or a device may have dropped the old root. Every intermediate state authenticates, so the rotation stops where it is; resume it to finish.',
  E_RENEWAL_NOT_LONGER: 'A renewed certificate would not outlive the device\'s current one because the active root expires first; nothing was started. Rotate the root ("trustroll rotate"): the rotation gives every device a new certificate under the new root.',
  E_DEVICE_DONE: 'The device has already acknowledged every step of the rotation; there is nothing to exclude.',
  E_AUTH_REQUIRED: 'The request carries no valid operator certificate or API token; present an operator certificate ("trustroll mgmt operator") or an Authorization: Bearer token ("trustroll token create").',
  E_FORBIDDEN: 'The operator is read-only; this action needs an admin operator certificate or token.',
  E_BAD_REQUEST: 'The request does not match the API\'s schema; the message names the field to fix.',
  E_NOT_FOUND: 'No such API resource.',
  E_CROSS_SITE: 'A state-changing request came from another site (its Origin or Sec-Fetch-Site is not this service) and was refused; nothing was changed. Act from the dashboard itself, or from a script that sends no Origin header.',
  E_MEDIA_TYPE: 'A state-changing request must send Content-Type: application/json with a JSON object body ({} when there is nothing to say); nothing was changed.',
  E_API_INTERNAL: 'The manager could not answer the request; nothing about the cause is sent to the client. Look up the reference the message gives in the service log.',
  E_SERVICE_CONFIG: 'The manager service configuration is unusable (listen address, TLS files, broker); the message names the setting to fix.',
  E_ROTATION_UNKNOWN: 'No rotation with that id exists in this manager database.',
  E_ROTATION_FAILED: 'The rotation stopped after a device failed too often; every device still authenticates. Fix the cause named in the step error, then resume.',
  E_ACK_TIMEOUT: 'A device did not acknowledge a step in time, repeatedly; check that it is online and connected to the broker, then resume.',
  E_DEVICE_OFFLINE: 'Not a failure: the device is offline (its last will is its retained state), so the step sent to it is held; no attempt is counted while it is away, the command goes out again (same sequence number) when it is back, and the rotation waits for it. To let its peers go on without it, exclude it (or start with --exclude-offline-after).',
  E_CSR_IDENTITY: 'The certification request names another device than the one that sent it; nothing was changed. Check the device id configured on the device.',
  E_BROKER_CONNECT: 'The manager cannot connect to the MQTT broker (unreachable, TLS refused, or its management certificate not accepted); check the broker URL, that the broker trusts the management CA, and the manager certificate (CN trustroll-manager).',
  E_BROKER_SUBSCRIBE: 'The broker refused the manager\'s subscriptions to device acknowledgements or state (SUBACK 0x80); grant trustroll-manager read access to trustroll/v1/dev/+/ack and trustroll/v1/dev/+/state in the broker ACL.',
  E_BROKER_START: 'The embedded broker could not start (port in use, or unusable management certificates); free the port or choose another, or re-create the management PKI.',
  E_ACK_SIGNATURE: 'An acknowledgement was not signed by the device\'s key and was ignored; if it repeats, the broker or the network path is injecting messages.',
  E_NO_ROOT: 'The manager has no active root CA; initialise it first.',
  E_ALGORITHM_UNVERIFIABLE: 'The new root\'s algorithm is one some devices declared they cannot verify (at enrolment, "trustroll enroll --verifies", or later, "trustroll verifies --set"); nothing was started. Keep the fleet\'s algorithm (rotate without --algorithm), replace or update those devices first, or re-declare them once their firmware verifies it.',
  E_ROOT_SIDE: 'The rotation names a root the fleet does not keep apart, or names none in a fleet that does: a fleet made with separate client and server roots ("trustroll ca init --client-subject") rotates one of them at a time ("trustroll rotate --root client" or "--root server"); a single-root fleet rotates without --root. Nothing was started.',
  E_AGENT_OUTDATED: 'Some devices run an agent older than what this rotation sends (they reported the step fields they apply, without this one) and would refuse a step part-way; nothing was started. Upgrade the agents the message names, or start the rotation without the option (e.g. without --old-with-new).',
  E_FLEET_EMPTY: 'The fleet has no devices of one role; a rotation needs servers and clients.',
  E_MANAGER_DB: 'The manager database is unreadable or from an incompatible version; restore it from backup.',
  E_KEY_VAULT: 'A CA key file is missing, unreadable or has unsafe permissions; restore it (0600, owned by the manager user).',
  E_AUDIT_TRUNCATED: 'The audit log is shorter than a checkpoint the manager signed says it was: entries were deleted from its end (or manager.db was restored from an older backup). Keep the database and the checkpoints as evidence, and compare with an earlier export (docs/audit.md).',
  E_AUDIT_REWRITTEN: 'An audit entry covered by a signed checkpoint has another hash than the manager signed: the log was edited and its hash chain recomputed (or replaced by another log). Keep the database and the checkpoints as evidence, and compare with an earlier export (docs/audit.md).',
  E_AUDIT_CHECKPOINT_KEY: 'A checkpoint is not signed by the audit key it was checked with: it was replaced by one made with another key, or the public key file given is not this manager\'s (get it with "trustroll audit public-key").',
  E_AUDIT_CHECKPOINT_INVALID: 'A checkpoint is malformed or its signature does not verify: it was altered after the manager signed it. Do not trust it; check against the broker\'s retained copy or an earlier export.',
  E_AUDIT_NO_CHECKPOINT: 'There is no signed checkpoint to check the audit log against, so a deleted tail or a recomputed chain could not be detected. Export from a manager that has made checkpoints, or give one with --checkpoint (docs/audit.md).',
  E_AUDIT_INPUT: 'A file given to "trustroll audit verify" (export, public key or checkpoint) is missing or not in the expected format; the message names the file and line.',
} as const;

/** A stable manager error code. */
export type ManagerErrorCode = keyof typeof MANAGER_ERRORS;

/** A typed manager error. */
export class ManagerError extends Error {
  readonly code: ManagerErrorCode;
  constructor(code: ManagerErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'ManagerError';
    this.code = code;
  }
}
