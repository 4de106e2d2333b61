/**
 * Command: manager → device, one rotation step (PROTOCOL.md "Steps").
 * Carries a per-device sequence number so the device can apply each step
 * exactly once and in order even when the transport redelivers
 * (PROTOCOL.md "MQTT is not ordered enough on its own").
 */
import type { Effect, Schedule } from '../steps.ts';
import { stepOf } from '../schedule.ts';
import { assertSchema, type IdentifiedSchema } from '../validate.ts';
import { MAX_PEM_BYTES } from '../limits.ts';
import { ProtocolError } from '../errors.ts';

/** Certificates a step may carry; which are required follows from its effects. */
export interface StepPayload {
  /** D = NewWithOld: K1 certified by K0. */
  distribution?: string;
  /** R1 = NewWithNew: K1 self-signed. */
  newRoot?: string;
  /** Cn or Sn, issued by K1 for this device's key (catch-up: by the last link's root; renewal: by the current root). */
  certificate?: string;
  /**
   * Catch-up only: the root key updates the device missed, oldest first.
   * Link 0's D is signed by the device's current root, each R by its own D,
   * and each later D by the previous link's R. Empty only beside a
   * non-empty `issuerChain` (a separate-roots device whose peers' root did
   * not move).
   */
  chain?: ChainLink[];
  /**
   * Catch-up of a separate-roots device only: the missed updates of the
   * root that issues its own certificate (its issuer slots), the same way
   * from its current issuer root; `certificate` is under the last of them.
   * Optional: a device that keeps one fleet root never gets it.
   */
  issuerChain?: ChainLink[];
  /**
   * Optional with the old-root clean-up (P5, P6, B2, B3): OldWithNew (K0
   * certified by K1), kept after R0 is dropped so peers that have not
   * switched yet still verify. The manager sends it only when the rotation
   * was started to distribute it.
   */
  oldWithNew?: string;
}

/** One missed root key update: D (NewWithOld) and R (NewWithNew) of one rotation. */
export interface ChainLink {
  distribution: string;
  newRoot: string;
}

/** Most missed rotations one catch-up may span. */
export const MAX_CHAIN_LINKS = 8;

/** A signature over the canonical command without `sig` (manager's command key). */
export interface CommandSignature {
  alg: 'ES256';
  keyId: string;
  value: string;
}

/** The command envelope. */
export interface Command {
  v: 1;
  kind: 'command';
  deviceId: string;
  rotationId: string;
  schedule: string;
  seq: number;
  step: string;
  issuedAt: string;
  payload: StepPayload;
  sig?: CommandSignature;
}

const pem = { type: 'string', minLength: 64, maxLength: MAX_PEM_BYTES, pattern: '^-----BEGIN CERTIFICATE-----' };
const id = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$' };

/** Schema of the envelope (payload checked per step by `payloadSchema`). */
export const COMMAND_SCHEMA = {
  $id: 'trustroll/command',
  type: 'object',
  additionalProperties: false,
  required: ['v', 'kind', 'deviceId', 'rotationId', 'schedule', 'seq', 'step', 'issuedAt', 'payload'],
  properties: {
    v: { const: 1 },
    kind: { const: 'command' },
    deviceId: id,
    rotationId: id,
    schedule: { type: 'string', minLength: 1, maxLength: 64 },
    seq: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    step: { type: 'string', minLength: 1, maxLength: 16 },
    issuedAt: { type: 'string', minLength: 20, maxLength: 40, pattern: '^\\d{4}-\\d\\d-\\d\\dT' },
    payload: { type: 'object' },
    sig: {
      type: 'object', additionalProperties: false, required: ['alg', 'keyId', 'value'],
      properties: { alg: { const: 'ES256' }, keyId: { type: 'string', maxLength: 128 }, value: { type: 'string', maxLength: 512 } },
    },
  },
} as const;

const FIELDS_FOR: Partial<Record<Effect, readonly (keyof StepPayload)[]>> = {
  'store-distribution': ['distribution'],
  'store-new-root': ['newRoot'],
  'store-issuer-distribution': ['distribution'],
  'store-issuer-new-root': ['newRoot'],
  'install-client-cert': ['certificate'],
  'install-server-cert': ['certificate'],
  'catch-up': ['chain', 'certificate'],
  'renew-cert': ['certificate'],
};

/** Fields a step may carry besides the ones its effects require. */
const OPTIONAL_FOR: Partial<Record<Effect, readonly (keyof StepPayload)[]>> = {
  'drop-old-roots': ['oldWithNew'],
  'catch-up': ['issuerChain'],
};

/** A list of missed root key updates (the effects check that a catch-up carries at least one). */
const chainSchema = {
  type: 'array', minItems: 0, maxItems: MAX_CHAIN_LINKS,
  items: { type: 'object', additionalProperties: false, required: ['distribution', 'newRoot'], properties: { distribution: pem, newRoot: pem } },
} as const;

const FIELD_SCHEMA: Readonly<Record<keyof StepPayload, object>> = {
  oldWithNew: pem,
  distribution: pem,
  newRoot: pem,
  certificate: pem,
  chain: chainSchema,
  issuerChain: chainSchema,
};

/**
 * Every optional payload field this version of the protocol defines. An
 * agent reports them in its state message (`accepts`), so the manager
 * sends one only to devices whose agent applies it: an older agent refuses
 * a step carrying a field it does not know (E_SCHEMA).
 */
export const OPTIONAL_PAYLOAD_FIELDS: readonly (keyof StepPayload)[] = [...new Set(Object.values(OPTIONAL_FOR).flat())];

/** The payload fields a step requires, derived from its effects (rollback steps need none). */
export function payloadFields(schedule: Schedule, stepId: string): (keyof StepPayload)[] {
  const fields = new Set<keyof StepPayload>();
  for (const effect of stepOf(schedule, stepId).effects) {
    for (const f of FIELDS_FOR[effect] ?? []) fields.add(f);
  }
  return [...fields];
}

/** The payload fields a step may carry without requiring them. */
export function optionalPayloadFields(schedule: Schedule, stepId: string): (keyof StepPayload)[] {
  const fields = new Set<keyof StepPayload>();
  for (const effect of stepOf(schedule, stepId).effects) {
    for (const f of OPTIONAL_FOR[effect] ?? []) fields.add(f);
  }
  return [...fields];
}

/** The JSON Schema of one step's payload: exactly the certificates it needs, and the optional ones it may carry. */
export function payloadSchema(schedule: Schedule, stepId: string): IdentifiedSchema {
  const fields = payloadFields(schedule, stepId);
  const all = [...fields, ...optionalPayloadFields(schedule, stepId)];
  return {
    $id: `trustroll/payload/${schedule.name}/${stepId}`,
    type: 'object',
    additionalProperties: false,
    required: fields,
    properties: Object.fromEntries(all.map((f) => [f, FIELD_SCHEMA[f]])),
  };
}

/** Check a parsed message is a well-formed command for a known step. */
export function assertCommand(value: unknown, schedules: Readonly<Record<string, Schedule>>): asserts value is Command {
  assertSchema<Command>(COMMAND_SCHEMA, value, 'command');
  const schedule = schedules[value.schedule];
  if (!schedule) {
    throw new ProtocolError('E_SCHEMA', `command: unknown schedule "${value.schedule}"; this agent knows ${Object.keys(schedules).join(', ')}`);
  }
  if (!schedule.steps.some((s) => s.id === value.step)) {
    throw new ProtocolError('E_SCHEMA', `command: schedule "${schedule.name}" has no step "${value.step}"`);
  }
  assertSchema(payloadSchema(schedule, value.step), value.payload, `command ${value.step} payload`);
}
