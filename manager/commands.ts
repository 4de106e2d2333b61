/**
 * Builds the command for one step of one device from the rotation's stored
 * material. Deterministic for a given sequence number, so a resend after a
 * crash carries the same content.
 */
import { payloadFields, type Command, type StepPayload } from '../protocol/messages/command.ts';
import type { Schedule } from '../protocol/steps.ts';
import type { RotationRow, StepRow } from './fleet-db.ts';

/** The command for `row`, carrying exactly the certificates its step needs. */
export function buildCommand(schedule: Schedule, rotation: RotationRow, row: StepRow, seq: number, leaf: string | undefined, now: Date): Command {
  const payload: StepPayload = {};
  for (const field of payloadFields(schedule, row.step)) {
    if (field === 'distribution') payload.distribution = rotation.distribution;
    else if (field === 'newRoot') payload.newRoot = rotation.newRoot;
    else if (leaf === undefined) throw new Error(`rotation ${rotation.id} has no new certificate for ${row.deviceId}`);
    else payload.certificate = leaf;
  }
  return {
    v: 1, kind: 'command', deviceId: row.deviceId, rotationId: rotation.id, schedule: schedule.name,
    seq, step: row.step, issuedAt: now.toISOString(), payload,
  };
}
