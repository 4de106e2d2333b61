/**
 * The two retained per-device messages of the MQTT link (PROTOCOL.md "MQTT
 * is not ordered enough on its own"):
 *
 * - `state` (device → everyone, retained on `.../state`): the birth message
 *   with the device's state summary when it connects and after each applied
 *   step; the last will `offline` when it disappears; `behind` when the
 *   retained desired state says it missed a command while away.
 * - `desired` (manager → device, retained on `.../desired`): the rotation,
 *   step and sequence number the manager wants next, so a device that was
 *   away sees where it should be.
 *
 * Both are advisory: they never change a trust store. Only a signed command
 * with a fresh sequence number does.
 */
import { assertSchema } from '../validate.ts';
import { ACK_SCHEMA, type DeviceStateSummary } from './ack.ts';
import type { Command } from './command.ts';

/** Where the manager wants a device to be next. */
export interface DesiredState {
  v: 1;
  kind: 'desired';
  deviceId: string;
  rotationId: string;
  schedule: string;
  step: string;
  seq: number;
  at: string;
}

/**
 * A device's mutual-TLS handshake counters, cumulative since its agent
 * started (`since`): a client-role device counts its outgoing handshakes
 * (`fallbacks`: the new certificate was refused and the old one worked), a
 * server-role device the incoming ones (`fallbacks` stays 0). `failed`
 * counts trust failures (a certificate refused either way, a handshake
 * broken off with an alert); `unreachable` the connections that never got
 * that far (a client: the peer did not answer; a server: the client hung up
 * or timed out). `unreachable` is optional: agents before it counted those
 * in `failed`. The technician's self-test probes count in neither. The
 * manager's metrics read them; they never change a trust store.
 */
export interface TlsCounters {
  attempts: number;
  ok: number;
  failed: number;
  unreachable?: number;
  fallbacks: number;
  since: string;
}

/**
 * A roll-back the device's storage detected (the newest copy lost, an
 * older one loaded): the device runs on the older state until the manager
 * re-sends the acknowledged steps it lost (manager/fleet/reconcile.ts).
 */
export interface RegressionFlag {
  code: 'E_STORE_REGRESSED';
  /** Writes lost at load, and how many are still missing. */
  lostWrites: number;
  missingWrites: number;
  /** Highest command sequence number in the record the device loaded. */
  loadedSeq: number;
  detectedAt: string;
  message: string;
}

/** A device's presence and, when online, its state. */
export interface DeviceState {
  v: 1;
  kind: 'state';
  deviceId: string;
  status: 'online' | 'offline' | 'behind';
  role?: 'server' | 'client';
  /** Highest command sequence number applied (online/behind). */
  lastSeq?: number;
  state?: DeviceStateSummary;
  /** The desired state the device has not reached (status `behind`). */
  desired?: { rotationId: string; step: string; seq: number };
  /** Handshake counters; optional, so messages of older agents stay valid. */
  tls?: TlsCounters;
  /** Present while the device's store is rolled back (optional: older agents never send it). */
  regression?: RegressionFlag;
  /**
   * The optional step payload fields the device's agent applies
   * (OPTIONAL_PAYLOAD_FIELDS, e.g. `oldWithNew`). Agents older than the
   * field send none: an online state without it means "accepts none".
   */
  accepts?: string[];
  at?: string;
}

const id = { type: 'string', minLength: 1, maxLength: 128 };
const seq = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };
const time = { type: 'string', minLength: 20, maxLength: 40 };
const count = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };

/** Schema of the optional `tls` counters of a device-state message. */
export const TLS_COUNTERS_SCHEMA = {
  type: 'object', additionalProperties: false, required: ['attempts', 'ok', 'failed', 'fallbacks', 'since'],
  properties: { attempts: count, ok: count, failed: count, unreachable: count, fallbacks: count, since: time },
} as const;

/** Schema of the optional `regression` flag of a device-state message. */
export const REGRESSION_FLAG_SCHEMA = {
  type: 'object', additionalProperties: false, required: ['code', 'lostWrites', 'missingWrites', 'loadedSeq', 'detectedAt', 'message'],
  properties: { code: { const: 'E_STORE_REGRESSED' }, lostWrites: count, missingWrites: count, loadedSeq: seq, detectedAt: time, message: { type: 'string', maxLength: 1024 } },
} as const;

/** Schema of the optional `accepts` list: field names, including ones a newer agent knows and this manager does not. */
export const ACCEPTS_SCHEMA = {
  type: 'array', maxItems: 32, uniqueItems: true,
  items: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z][A-Za-z0-9]*$' },
} as const;

/** Schema of the desired-state message. */
export const DESIRED_SCHEMA = {
  $id: 'trustroll/desired',
  type: 'object',
  additionalProperties: false,
  required: ['v', 'kind', 'deviceId', 'rotationId', 'schedule', 'step', 'seq', 'at'],
  properties: {
    v: { const: 1 }, kind: { const: 'desired' }, deviceId: id, rotationId: id,
    schedule: { type: 'string', minLength: 1, maxLength: 64 }, step: { type: 'string', minLength: 1, maxLength: 16 }, seq, at: time,
  },
} as const;

/** Schema of the device-state message. */
export const DEVICE_STATE_SCHEMA = {
  $id: 'trustroll/device-state',
  type: 'object',
  additionalProperties: false,
  required: ['v', 'kind', 'deviceId', 'status'],
  properties: {
    v: { const: 1 }, kind: { const: 'state' }, deviceId: id,
    status: { enum: ['online', 'offline', 'behind'] },
    role: { enum: ['server', 'client'] },
    lastSeq: seq,
    state: ACK_SCHEMA.properties.state,
    desired: {
      type: 'object', additionalProperties: false, required: ['rotationId', 'step', 'seq'],
      properties: { rotationId: id, step: { type: 'string', minLength: 1, maxLength: 16 }, seq },
    },
    tls: TLS_COUNTERS_SCHEMA,
    regression: REGRESSION_FLAG_SCHEMA,
    accepts: ACCEPTS_SCHEMA,
    at: time,
  },
} as const;

/** Check a parsed message is a desired-state message. */
export function assertDesiredState(value: unknown): asserts value is DesiredState {
  assertSchema<DesiredState>(DESIRED_SCHEMA, value, 'desired state');
}

/** Check a parsed message is a device-state message. */
export function assertDeviceState(value: unknown): asserts value is DeviceState {
  assertSchema<DeviceState>(DEVICE_STATE_SCHEMA, value, 'device state');
}

/** The desired state a command expresses. */
export function desiredFor(cmd: Command, at: Date): DesiredState {
  return { v: 1, kind: 'desired', deviceId: cmd.deviceId, rotationId: cmd.rotationId, schedule: cmd.schedule, step: cmd.step, seq: cmd.seq, at: at.toISOString() };
}

/** The last-will payload: fixed at connect time, so it carries no timestamp. */
export function offlineState(deviceId: string): DeviceState {
  return { v: 1, kind: 'state', deviceId, status: 'offline' };
}
