/**
 * Writes the orchestrator's events into the audit log: the fleet a
 * rotation covers (roles and peering, so the order can be re-checked from
 * the log alone), every command sent and resent with its hash, every
 * acknowledgement with the device's apply time and signature, every error
 * acknowledgement, exclusions and status changes. Acknowledgements are
 * recorded inside the transaction that records them in the step table, so
 * an acknowledgement's entry always precedes the commands it unlocks.
 */
import { createHash } from 'node:crypto';
import { leadingCode } from '../../protocol/errors.ts';
import type { Clock } from '../../protocol/clock.ts';
import type { AuditInput, AuditLog, AuditRow } from './audit-log.ts';
import type { FleetDb } from '../fleet/fleet-db.ts';
import type { OrchestratorEvents } from '../rotation/orchestrator.ts';
import { ROLLBACK_OF } from '../../protocol/steps.ts';

/** SHA-256 of a command as sent (its JSON text). */
function commandHash(json: string): string {
  return createHash('sha256').update(json).digest('hex');
}

/** Orchestrator events that record to `log`, then call `inner`'s. `onAppend` sees every new entry. */
export function auditedEvents(log: AuditLog, db: FleetDb, clock: Clock, inner: OrchestratorEvents = {}, onAppend?: (row: AuditRow) => void): OrchestratorEvents {
  const put = (e: AuditInput) => {
    const row = log.append(e, clock.now());
    onAppend?.(row);
  };
  return {
    ...inner,
    status(rot, reason) {
      const rollback = rot.status === 'rolling-back' && reason?.startsWith('rollback-started');
      if (reason === 'started' || rollback) {
        const rows = db.steps(rot.id);
        const inRotation = new Set(rows.map((r) => r.deviceId));
        const devices = Object.fromEntries(db.devices().filter((d) => inRotation.has(d.id)).map((d) => [d.id, d.role]));
        const schedule = rollback ? ROLLBACK_OF[rot.schedule]?.name ?? rot.schedule : rot.schedule;
        put({ actor: 'manager', action: rollback ? 'rotation.rollback-started' : 'rotation.started', rotationId: rot.id, detail: { schedule, devices, peering: db.peering(), ...(rollback ? { reason } : {}) } });
      } else {
        // A reason that starts with a code (an abort whose rollback was refused: E_ROLLBACK_IMPOSSIBLE) records it as the entry's code.
        const code = reason ? leadingCode(reason) : null;
        put({ actor: 'manager', action: `rotation.${rot.status}`, rotationId: rot.id, code, detail: reason ? { reason, schedule: rot.schedule } : { schedule: rot.schedule } });
      }
      inner.status?.(rot, reason);
    },
    sent(commands) {
      db.tx(() => {
        for (const c of commands) put({ actor: 'manager', action: 'step.sent', rotationId: c.rotationId, deviceId: c.deviceId, step: c.step, detail: { seq: c.seq, attempt: 1, schedule: c.schedule, command: commandHash(JSON.stringify(c)) } });
      });
      inner.sent?.(commands);
    },
    resent(row) {
      put({ actor: 'manager', action: 'step.resent', rotationId: row.rotationId, deviceId: row.deviceId, step: row.step, detail: { seq: row.seq, attempt: row.attempts, command: row.command ? commandHash(row.command) : null } });
      inner.resent?.(row);
    },
    held(row) {
      // No attempt is spent while the device is away; the release is the step.resent that follows (same seq and attempt count).
      put({ actor: 'manager', action: 'step.held', rotationId: row.rotationId, deviceId: row.deviceId, step: row.step, code: row.errorCode, detail: { seq: row.seq, attempts: row.attempts } });
      inner.held?.(row);
    },
    acked(row, ack) {
      put({
        actor: `device:${row.deviceId}`, action: 'step.acked', rotationId: row.rotationId, deviceId: row.deviceId, step: row.step,
        detail: { seq: row.seq, attempts: row.attempts, deviceAt: ack.at, storeHash: ack.state.storeHash, sig: ack.sig ?? null },
      });
      inner.acked?.(row, ack);
    },
    ackError(row, code, message) {
      put({ actor: `device:${row.deviceId}`, action: 'step.error', rotationId: row.rotationId, deviceId: row.deviceId, step: row.step, code, detail: { message, seq: row.seq, attempts: row.attempts } });
      inner.ackError?.(row, code, message);
    },
    forgedAck(ack) {
      // The claimed device did not sign it: recorded against the manager's view, never as the device's act.
      put({ actor: 'manager', action: 'ack.forged', rotationId: ack.rotationId, deviceId: ack.deviceId, step: ack.step, code: 'E_ACK_SIGNATURE', detail: { seq: ack.seq, ok: ack.ok } });
      inner.forgedAck?.(ack);
    },
    excluded(rotationId, deviceId, steps) {
      put({ actor: 'manager', action: 'device.excluded', rotationId, deviceId, detail: { steps } });
      inner.excluded?.(rotationId, deviceId, steps);
    },
  };
}
