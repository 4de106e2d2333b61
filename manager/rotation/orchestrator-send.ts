/**
 * The orchestrator's sending: every step whose prerequisites are all
 * acknowledged (protocol/schedule.ts decides) is built, signed and recorded
 * as sent inside one transaction, and published only after it commits, so
 * a command is never on the wire before its sequence number is durable;
 * one step in flight per device. Once every step is acknowledged the
 * rotation is finished: the CA activates the new root (a renewal has
 * none), or a rollback is closed.
 */
import type { Command } from '../../protocol/messages/command.ts';
import { isReady } from '../../protocol/schedule.ts';
import { buildCommand } from './commands.ts';
import type { OrchestratorContext } from './orchestrator-context.ts';
import { changesRoot } from './phase.ts';

/** Sends ready steps and finishes the rotation. */
export class Sender {
  constructor(private readonly c: OrchestratorContext) {}

  /** Send every step whose prerequisites are all acknowledged (restricted to `candidates` if given). */
  pump(candidates?: Iterable<string>): void {
    this.send(this.c.o.db.tx(() => this.prepareReady(candidates)));
  }

  /**
   * Inside the caller's transaction: build, sign and record as sent every
   * step whose prerequisites are all acknowledged. The commands go out only
   * after that transaction commits (`send`), so a command is never on the
   * wire before its sequence number is durable.
   */
  prepareReady(candidates?: Iterable<string>): Command[] {
    const { o, state: st, rotation: rot } = this.c;
    if (!st || !rot || !this.c.sending()) return [];
    const now = o.clock.now();
    const commands: Command[] = [];
    for (const deviceId of candidates ?? st.roles.keys()) {
      if (st.inFlightOf(deviceId)) continue;
      const row = st.nextStep(deviceId);
      if (!row || row.status !== 'pending') continue;
      const ok = isReady(st.schedule, row.step, (step) => st.isAcked(deviceId, step), (step) => st.allPeersAcked(deviceId, step), { honourPreferred: this.c.policy.honourPreferred });
      if (!ok) continue;
      let cmd = buildCommand(st.schedule, rot, row, o.db.allocateSeq(row.deviceId), o.db.leaf(rot.id, row.deviceId), now, this.c.pushedOldWithNew);
      if (o.sign) cmd = o.sign(cmd);
      Object.assign(row, { status: 'sent', seq: cmd.seq, attempts: 1, command: JSON.stringify(cmd), sentAt: now.toISOString(), dueAt: now.getTime() + this.c.policy.ackTimeoutMs });
      o.db.updateStep(row);
      st.noteInFlight(row);
      commands.push(cmd);
    }
    return commands;
  }

  /** Publish committed commands; finish the rotation once every step is acknowledged. */
  send(commands: readonly Command[]): void {
    const { o, state: st, rotation: rot } = this.c;
    if (!st || !rot) return;
    for (const cmd of commands) {
      o.logger.debug('step sent', { deviceId: cmd.deviceId, rotationId: cmd.rotationId, step: cmd.step, seq: cmd.seq });
      o.transport.send(cmd);
    }
    if (commands.length > 0) o.events?.sent?.(commands);
    if (this.c.sending() && st.complete()) {
      this.finish().catch((err: Error) => o.logger.error('rotation finished on every device but the CA could not activate the new root; run resume to retry', { rotationId: rot.id, reason: err.message }));
    }
  }

  private async finish(): Promise<void> {
    const o = this.c.o;
    const rot = this.c.rotation!;
    if (rot.status === 'rolling-back') return this.finishRollback();
    if (rot.status !== 'running') return;
    rot.status = 'complete';
    this.c.disarmSweep();
    // A renewal issued under the active root: there is no new root to activate.
    if (!rot.unsafe && changesRoot(rot)) await o.authority.activate(rot.id);
    const at = o.clock.now().toISOString();
    o.db.tx(() => {
      // An excluded device still presents its old certificate.
      for (const [deviceId, pem] of o.db.leaves(rot.id)) if (!this.c.state?.excluded.has(deviceId)) o.db.setDeviceCertificate(deviceId, pem, o.db.device(deviceId).spki);
      o.db.setRotationStatus(rot.id, 'complete', at);
    });
    this.c.rotation = o.db.rotation(rot.id);
    o.logger.info('rotation complete', { rotationId: rot.id });
    o.events?.status?.(this.c.rotation!, 'complete');
    o.events?.complete?.(this.c.rotation!);
  }

  /** Every device is back where it was: the rotation is closed; the CA never activates its new root. */
  private finishRollback(): void {
    const o = this.c.o;
    const rot = this.c.rotation!;
    rot.status = 'rolled-back';
    this.c.disarmSweep();
    o.db.setRotationStatus(rot.id, 'rolled-back', o.clock.now().toISOString());
    this.c.rotation = o.db.rotation(rot.id);
    o.logger.info('rotation rolled back: every device holds its old trust store and identity', { rotationId: rot.id });
    o.events?.status?.(this.c.rotation!, 'rolled-back');
    o.events?.complete?.(this.c.rotation!);
  }
}
