/**
 * Acknowledgement: device → manager, the result of one command. Sent only
 * after the result is durable on the device; a redelivered command gets the
 * stored acknowledgement again, byte for byte in meaning.
 */
import { assertSchema } from '../validate.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import { PROTOCOL_ERRORS } from '../errors.ts';

/** Fingerprints (SHA-256 of DER, hex) of what the device holds after the step. */
export interface DeviceStateSummary {
  storeHash: string;
  rotationId: string | null;
  completed: string[];
  trust: { current: string; distribution: string | null; next: string | null; oldWithNew?: string };
  /** Separate-roots fleets only: the slots of the root that issues the device's own certificate. */
  issuer?: { current: string; distribution: string | null; next: string | null };
  identity: { active: string; fallback: string | null };
}

/** The acknowledgement envelope. */
export interface Ack {
  v: 1;
  kind: 'ack';
  deviceId: string;
  rotationId: string;
  seq: number;
  step: string;
  ok: boolean;
  error?: { code: ProtocolErrorCode; message: string };
  state: DeviceStateSummary;
  at: string;
  /** The device's signature over the canonical ack without `sig` (protocol/ack-signature.ts). */
  sig?: { alg: 'ES256' | 'RS256'; value: string };
}

const fp = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const fpOrNull = { anyOf: [fp, { type: 'null' }] };

/** Schema of an acknowledgement. */
export const ACK_SCHEMA = {
  $id: 'trustroll/ack',
  type: 'object',
  additionalProperties: false,
  required: ['v', 'kind', 'deviceId', 'rotationId', 'seq', 'step', 'ok', 'state', 'at'],
  properties: {
    v: { const: 1 },
    kind: { const: 'ack' },
    deviceId: { type: 'string', minLength: 1, maxLength: 128 },
    rotationId: { type: 'string', minLength: 1, maxLength: 128 },
    seq: { type: 'integer', minimum: 0 },
    step: { type: 'string', minLength: 1, maxLength: 16 },
    ok: { type: 'boolean' },
    error: {
      type: 'object', additionalProperties: false, required: ['code', 'message'],
      properties: { code: { enum: Object.keys(PROTOCOL_ERRORS) }, message: { type: 'string', maxLength: 2048 } },
    },
    state: {
      type: 'object', additionalProperties: false, required: ['storeHash', 'rotationId', 'completed', 'trust', 'identity'],
      properties: {
        storeHash: fp,
        rotationId: { anyOf: [{ type: 'string', maxLength: 128 }, { type: 'null' }] },
        completed: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 16 } },
        trust: {
          type: 'object', additionalProperties: false, required: ['current', 'distribution', 'next'],
          properties: { current: fp, distribution: fpOrNull, next: fpOrNull, oldWithNew: fp },
        },
        issuer: {
          type: 'object', additionalProperties: false, required: ['current', 'distribution', 'next'],
          properties: { current: fp, distribution: fpOrNull, next: fpOrNull },
        },
        identity: {
          type: 'object', additionalProperties: false, required: ['active', 'fallback'],
          properties: { active: fp, fallback: fpOrNull },
        },
      },
    },
    at: { type: 'string', minLength: 20, maxLength: 40 },
    sig: {
      type: 'object', additionalProperties: false, required: ['alg', 'value'],
      properties: { alg: { enum: ['ES256', 'RS256'] }, value: { type: 'string', minLength: 16, maxLength: 1024 } },
    },
  },
} as const;

/** Check a parsed message is a well-formed acknowledgement. */
export function assertAck(value: unknown): asserts value is Ack {
  assertSchema<Ack>(ACK_SCHEMA, value, 'ack');
}
