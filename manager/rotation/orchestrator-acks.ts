/**
 * The orchestrator's intake of acknowledgements. They are queued and
 * applied in batches: every ack that arrived in one turn of the event loop
 * is written, readiness re-checked once, and the steps it unlocks
 * recorded, all in one transaction (a fleet of 10,000 acks in bursts). An
 * ack counts only with the device's signature (when required), for the
 * loaded rotation (others go to `foreignAck`, a catch-up's), with the
 * sequence number of the step in flight; a device's error counts as a
 * failed attempt.
 */
import { assertAck, type Ack } from '../../protocol/messages/ack.ts';
import type { ProtocolError } from '../../protocol/errors.ts';
import { parseWire } from '../../protocol/validate.ts';
import type { OrchestratorContext } from './orchestrator-context.ts';
import type { Sender } from './orchestrator-send.ts';

/** Queues acknowledgements and applies them in batches. */
export class AckIntake {
  private readonly inbox: (Buffer | string | object)[] = [];

  constructor(private readonly c: OrchestratorContext, private readonly sender: Sender) {}

  /** Queue one acknowledgement (raw from the transport); the batch is applied on the next turn of the event loop. */
  onAck(raw: Buffer | string | object): void {
    if (this.c.closed) return;
    this.inbox.push(raw);
    if (this.inbox.length === 1) setImmediate(() => this.flush());
  }

  /** Drop what is queued (the orchestrator closes; the next resume resends those steps). */
  clear(): void {
    this.inbox.length = 0;
  }

  private flush(): void {
    if (this.c.closed) return;
    const batch = this.inbox.splice(0);
    // One transaction (one fsync) records the batch and the steps it unlocks.
    const commands = this.c.o.db.tx(() => {
      const candidates = new Set<string>();
      for (const raw of batch) this.apply(raw, candidates);
      return candidates.size > 0 ? this.sender.prepareReady(candidates) : [];
    });
    this.sender.send(commands);
  }

  /** Apply one acknowledgement; invalid or stale ones are logged and dropped. Adds devices that may have become ready. */
  private apply(raw: Buffer | string | object, candidates: Set<string>): void {
    const o = this.c.o;
    let ack: Ack;
    try {
      const parsed = typeof raw === 'object' && !Buffer.isBuffer(raw) ? raw : parseWire(raw, 'ack');
      assertAck(parsed);
      ack = parsed;
    } catch (err) {
      o.logger.warn('invalid acknowledgement dropped', { code: (err as ProtocolError).code, reason: (err as Error).message });
      return;
    }
    const st = this.c.state;
    const log = { deviceId: ack.deviceId, rotationId: ack.rotationId, step: ack.step, seq: ack.seq };
    if (o.verifyAck && !o.verifyAck(ack)) {
      o.logger.warn('acknowledgement without a valid device signature dropped', { ...log, code: 'E_ACK_SIGNATURE' });
      o.events?.forgedAck?.(ack);
      return;
    }
    if (this.c.rotation?.id !== ack.rotationId && o.events?.foreignAck) {
      o.events.foreignAck(ack);
      return;
    }
    const row = st && this.c.rotation?.id === ack.rotationId ? st.row(ack.deviceId, ack.step) : undefined;
    if (!st || !row || row.seq !== ack.seq || row.status === 'acked' || row.status === 'pending' || row.status === 'excluded') {
      o.logger.debug('stale or unknown acknowledgement ignored', log);
      return;
    }
    o.transport.accepted?.(ack.deviceId, ack.seq);
    const now = o.clock.now();
    if (ack.ok && ack.state.completed.includes(ack.step)) {
      Object.assign(row, { status: 'acked', ackedAt: now.toISOString(), dueAt: null, errorCode: null, errorMessage: null });
      o.db.updateStep(row);
      st.noteAcked(row.deviceId, row.step);
      o.logger.info('step acknowledged', { ...log, attempts: row.attempts });
      o.events?.acked?.(row, ack);
      candidates.add(row.deviceId);
      // Only peers for which this was the last missing acknowledgement can have become ready.
      for (const p of st.completedPeersBy(row.deviceId, row.step)) candidates.add(p);
      return;
    }
    const code = ack.error?.code ?? 'E_SCHEMA';
    const message = ack.error?.message ?? 'acknowledgement claims success but does not list the step as completed';
    o.logger.warn('step failed on device', { ...log, code, reason: message, attempts: row.attempts });
    o.events?.ackError?.(row, code, message);
    if (this.c.sending()) this.c.failAttempt(row, code, message, now);
  }
}
