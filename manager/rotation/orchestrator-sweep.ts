/**
 * The orchestrator's sweep, every `sweepIntervalMs` while it sends: steps
 * in flight whose acknowledgement is overdue or whose retry is due are sent
 * again with their original sequence number (one attempt more), a step
 * whose device is offline is held instead (no attempt counted, nothing
 * sent; presence-gate.ts) and goes out again as soon as the device is
 * back, and a step an online device left unanswered `maxAttempts` times
 * fails (E_ACK_TIMEOUT), which stops the rotation where it is.
 */
import type { Command } from '../../protocol/messages/command.ts';
import type { StepRow } from '../fleet/fleet-db.ts';
import type { OrchestratorContext } from './orchestrator-context.ts';
import { dueAction, heldFields, isHeld } from './presence-gate.ts';

/** Time-outs, retries and holds of the steps in flight. */
export class Sweeper {
  constructor(private readonly c: OrchestratorContext) {}

  /** (Re)start the periodic sweep; it stops by itself once the rotation no longer sends. */
  arm(): void {
    const c = this.c;
    c.disarmSweep();
    const tick = () => {
      this.sweep();
      if (c.sending()) c.sweepTimer = c.o.timers.setTimeout(tick, c.policy.sweepIntervalMs);
    };
    c.sweepTimer = c.o.timers.setTimeout(tick, c.policy.sweepIntervalMs);
  }

  /**
   * Resend in-flight steps whose acknowledgement is overdue or whose retry
   * is due; hold those whose device is offline (no attempt counted) and
   * send held ones again once their device is back (presence-gate.ts).
   */
  sweep(): void {
    const { o, policy } = this.c;
    const st = this.c.state;
    if (!st || !this.c.sending()) return;
    const now = o.clock.now();
    const resend: [StepRow, boolean][] = [];
    const hold: StepRow[] = [];
    for (const row of st.inFlight()) {
      const action = dueAction(row, now.getTime(), policy.maxAttempts, o.presence);
      if (action === 'wait') continue;
      if (action === 'hold') hold.push(row);
      else if (action === 'timeout') {
        this.c.failAttempt(row, 'E_ACK_TIMEOUT', `no acknowledgement after ${row.attempts} attempts of ${policy.ackTimeoutMs} ms; ${o.presence ? 'the device was online (connected to the broker) and did not answer: is its agent working?' : 'is the device online?'}`, now);
        if (!this.c.sending()) return;
      } else resend.push([row, action === 'resend']);
    }
    if (hold.length > 0) this.hold(hold, now);
    if (resend.length > 0) this.resend(resend, now);
  }

  /** A device that was offline is back: the step held for it goes out again now (same seq), not at the next sweep. */
  onDeviceOnline(deviceId: string): void {
    const row = this.c.state?.inFlightOf(deviceId);
    if (this.c.closed || !row || row.status !== 'sent' || !isHeld(row) || !this.c.sending()) return;
    try {
      this.resend([[row, false]], this.c.o.clock.now());
    } catch (err) {
      // The next sweep releases it (the row is still held and due).
      this.c.o.logger.error('held step not resent on the device\'s return; the next sweep retries', { deviceId, rotationId: row.rotationId, step: row.step, reason: (err as Error).message });
    }
  }

  /** Mark steps held for their offline devices: no attempt counted, nothing sent. */
  private hold(rows: readonly StepRow[], now: Date): void {
    const o = this.c.o;
    o.db.tx(() => {
      for (const row of rows) {
        Object.assign(row, heldFields(row, now));
        o.db.updateStep(row);
      }
    });
    for (const row of rows) {
      o.logger.info('step held: device offline, no attempt counted; sent again when it is back', { deviceId: row.deviceId, rotationId: row.rotationId, step: row.step, seq: row.seq, attempts: row.attempts });
      o.events?.held?.(row);
    }
  }

  /** Send in-flight steps again with their original sequence number; `counted` ones spend an attempt. */
  private resend(rows: readonly (readonly [StepRow, boolean])[], now: Date): void {
    const o = this.c.o;
    o.db.tx(() => {
      for (const [row, counted] of rows) {
        Object.assign(row, { attempts: row.attempts + (counted ? 1 : 0), dueAt: now.getTime() + this.c.policy.ackTimeoutMs, errorCode: null, errorMessage: null });
        o.db.updateStep(row);
      }
    });
    for (const [row, counted] of rows) {
      o.logger.info(counted ? 'step resent' : 'step resent: its device is back online', { deviceId: row.deviceId, rotationId: row.rotationId, step: row.step, seq: row.seq, attempts: row.attempts });
      o.transport.send(JSON.parse(row.command!) as Command);
      o.events?.resent?.(row);
    }
  }
}
