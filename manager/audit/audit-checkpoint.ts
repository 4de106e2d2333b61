/**
 * The manager's audit checkpointer: signs the chain head (entry count and
 * last hash, audit-note.ts) with the audit key and publishes it outside the
 * fleet database, as Certificate Transparency logs sign tree heads.
 *
 * When: once when the manager opens (covering what was appended while it
 * was away), right after a rotation or rollback starts and after it ends,
 * and otherwise at most `intervalMs` after an entry was appended (a timer
 * armed by the first entry after a checkpoint; none while nothing is
 * appended); a last one when the manager closes. Where: the data folder
 * (CheckpointStore) and every `publish` sink (the broker's retained
 * message, wired in ../manager.ts).
 *
 * The checkpointer never signs a head that does not extend its previous
 * checkpoint: when the log is shorter than the last checkpoint or the entry
 * at its size has another hash (the database was truncated or rewritten, or
 * restored from an older backup), it logs E_AUDIT_TRUNCATED or
 * E_AUDIT_REWRITTEN and makes no checkpoint until the log extends it again.
 */
import type { KeyObject } from 'node:crypto';
import type { Clock, Timers } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { AuditLog, AuditRow } from './audit-log.ts';
import { CheckpointStore } from './audit-checkpoint-store.ts';
import { openCheckpoint, signCheckpoint, type AuditCheckpoint } from './audit-note.ts';
import { ManagerError, type ManagerErrorCode } from '../errors.ts';

/** Default longest time between an appended entry and the checkpoint that covers it. */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 5 * 60_000;

/** Audit actions after which a checkpoint is made at once: a rotation's (or rollback's) start and end. */
export const CHECKPOINT_NOW_ACTIONS: ReadonlySet<string> = new Set([
  'rotation.started', 'rotation.rollback-started', 'rotation.complete', 'rotation.failed', 'rotation.aborted', 'rotation.rolled-back',
]);

/** What a checkpointer is built from. */
export interface CheckpointerOptions {
  log: AuditLog;
  store: CheckpointStore;
  /** The Ed25519 audit key (audit-checkpoint-store.ts loadOrCreateAuditKey). */
  key: KeyObject;
  clock: Clock;
  timers: Timers;
  logger: Logger;
  intervalMs?: number;
  /** Told of every checkpoint made, and of the newest one at start (the broker's retained copy); a promise is awaited by `published`. */
  publish?: (note: string, checkpoint: AuditCheckpoint) => void | Promise<unknown>;
}

/** Why the log no longer extends the last checkpoint (null when it does). */
export function extendsCheckpoint(log: Pick<AuditLog, 'head' | 'hashAt'>, last: AuditCheckpoint): { code: ManagerErrorCode; message: string } | null {
  const head = log.head();
  if (head.size < last.size) return { code: 'E_AUDIT_TRUNCATED', message: `the log has ${head.size} entries, but ${last.size} were signed at ${last.time}` };
  const hash = log.hashAt(last.size);
  if (hash !== last.head) return { code: 'E_AUDIT_REWRITTEN', message: `entry #${last.size} ${hash ? 'has another hash than' : 'is missing from'} the one signed at ${last.time}` };
  return null;
}

/** Signs and publishes checkpoints of one audit log; `close` stops it. */
export class AuditCheckpointer {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private timer: unknown = null;
  private soon = false;
  private closed = false;
  private last: AuditCheckpoint | null = null;
  private refused: { code: ManagerErrorCode; message: string } | null = null;
  private readonly stop: () => void;
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(private readonly o: CheckpointerOptions) {
    this.log = o.logger.child({ component: 'audit-checkpoint' });
    this.intervalMs = o.intervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    const stored = this.newestStored();
    this.last = stored?.checkpoint ?? null;
    this.stop = o.log.onAppend((row) => this.appended(row));
    // The broker may have lost its retained copy (or never had it): publish the newest again if nothing new is signed.
    if (!this.checkpoint('open') && stored) this.publish(stored.note, stored.checkpoint);
  }

  /** Why the last attempt signed nothing (the log does not extend the last checkpoint), or null. */
  get refusal(): { code: ManagerErrorCode; message: string } | null {
    return this.refused;
  }

  /**
   * Sign the current head now, unless the last checkpoint already covers it.
   * Returns the new note, or null when nothing was made. Never throws: a
   * failure is logged, and the next trigger tries again.
   */
  checkpoint(reason: string): string | null {
    this.clearTimer();
    try {
      const head = this.o.log.head();
      if (this.last && this.last.size === head.size && this.last.head === head.hash) return null;
      const broken = this.last ? extendsCheckpoint(this.o.log, this.last) : null;
      if (broken) {
        if (this.refused?.message !== broken.message) this.log.error('audit log does not extend its last signed checkpoint; no checkpoint made until it does (trustroll audit verify)', { code: broken.code, reason: broken.message });
        this.refused = broken;
        return null;
      }
      this.refused = null;
      const note = signCheckpoint({ size: head.size, head: head.hash, time: this.o.clock.now().toISOString() }, this.o.key);
      const c = openCheckpoint(note, this.o.key);
      this.o.store.save(note, c);
      this.last = c;
      this.log.info('audit checkpoint signed', { size: c.size, reason, origin: c.origin });
      this.publish(note, c);
      return note;
    } catch (err) {
      this.log.warn('audit checkpoint not made', { reason, error: (err as Error).message, code: (err as { code?: string }).code });
      return null;
    }
  }

  /** Stop the timer and listening; sign a last checkpoint if entries were appended since the last one (`published` waits for its broker copy). */
  close(): void {
    if (this.closed) return;
    this.checkpoint('close');
    this.closed = true;
    this.clearTimer();
    this.stop();
  }

  private appended(row: AuditRow): void {
    if (this.closed) return;
    if (CHECKPOINT_NOW_ACTIONS.has(row.action)) {
      // After the caller's transaction: the entry may still be rolled back while we are inside it.
      if (this.soon) return;
      this.soon = true;
      queueMicrotask(() => {
        this.soon = false;
        if (!this.closed) this.checkpoint(row.action);
      });
      return;
    }
    if (this.timer === null) this.timer = this.o.timers.setTimeout(() => { this.timer = null; if (!this.closed) this.checkpoint('interval'); }, this.intervalMs);
  }

  private clearTimer(): void {
    if (this.timer === null) return;
    this.o.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  /** Wait until every publication is confirmed (the broker has the retained copy), at most `timeoutMs`; false on time-out. */
  async published(timeoutMs: number): Promise<boolean> {
    if (this.inflight.size === 0) return true;
    let timer: unknown;
    const timeout = new Promise<false>((resolve) => { timer = this.o.timers.setTimeout(() => resolve(false), timeoutMs); });
    const done = await Promise.race([Promise.allSettled([...this.inflight]).then(() => true), timeout]);
    this.o.timers.clearTimeout(timer);
    if (!done) this.log.warn('audit checkpoint not confirmed by the broker before stopping; the data folder has it', { timeoutMs });
    return done;
  }

  private publish(note: string, c: AuditCheckpoint): void {
    const failed = (err: unknown) => this.log.warn('audit checkpoint not published', { size: c.size, error: (err as Error).message });
    try {
      const p = this.o.publish?.(note, c);
      if (!(p instanceof Promise)) return;
      const tracked: Promise<unknown> = p.catch(failed).finally(() => this.inflight.delete(tracked));
      this.inflight.add(tracked);
    } catch (err) {
      failed(err);
    }
  }

  /** The newest checkpoint in the data folder that this key signed (a forged or damaged one is reported and skipped). */
  private newestStored(): { checkpoint: AuditCheckpoint; note: string } | null {
    let best: { checkpoint: AuditCheckpoint; note: string } | null = null;
    for (const { source, note } of this.o.store.all()) {
      try {
        const c = openCheckpoint(note, this.o.key);
        if (!best || c.size >= best.checkpoint.size) best = { checkpoint: c, note };
      } catch (err) {
        const code = err instanceof ManagerError ? err.code : undefined;
        this.log.error('audit checkpoint file is not one this manager signed; kept as found, not trusted', { file: source, code, reason: (err as Error).message });
      }
    }
    return best;
  }
}
