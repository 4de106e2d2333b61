/**
 * Regression repair on the manager. A device's state message carries the
 * highest command sequence number in its record (`lastSeq`) and, when its
 * storage detected a roll-back, a `regression` flag. If a device reports a
 * `lastSeq` below a step the manager has recorded as acknowledged by it,
 * the device lost acknowledged state (a damaged EEPROM slot, a restored
 * backup, a file system that went back in time): the manager re-sends the
 * acknowledged commands it lost, one at a time and in sequence order, as
 * stored (same signed command, same sequence number), and the device
 * applies them again through its normal checks. The orchestrator's rows are
 * not touched: those steps stay acknowledged, and the device's answers to
 * re-sent commands are stale acknowledgements it ignores.
 *
 * Hook: `attachReconciler(transport, { db, logger })` once per manager
 * (../manager.ts does it); it listens to the transport's `state` events. The
 * same object answers `regressions()` for a dashboard, and
 * `setBaseline(db, deviceId, seq)` voids a device's earlier acknowledgements
 * when it is re-enrolled with a new store.
 */
import type { Clock } from '../../protocol/clock.ts';
import { systemClock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Command } from '../../protocol/messages/command.ts';
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import type { FleetDb } from './fleet-db.ts';

/** A device known to be behind what it acknowledged. */
export interface Regression {
  deviceId: string;
  detectedAt: string;
  /** The device's lastSeq when detected, and the highest acknowledged seq it lacked. */
  fromSeq: number;
  toSeq: number;
  /** The device detected it itself (its storage reported a roll-back). */
  selfReported: boolean;
  /** Commands re-sent so far. */
  resent: number;
  repairedAt: string | null;
}

/** How the reconciler is wired. */
export interface ReconcilerOptions {
  db: FleetDb;
  /** Publish a command to its device (the transport's `send`). */
  send: (cmd: Command) => void;
  logger: Logger;
  clock?: Clock;
  /** A state below an acknowledgement is acted on only if it is still the device's latest after this long (ms), unless the device flags the roll-back itself; default 2000. */
  graceMs?: number;
  /** Re-send the same command again if the device has not moved on after this long (ms); default 5000. */
  resendMs?: number;
  events?: { detected?: (r: Regression) => void; repaired?: (r: Regression) => void };
}

interface Missing { rotationId: string; step: string; seq: number; command: string }

/** Watches device states and re-sends acknowledged steps a device lost. */
export class Reconciler {
  private readonly latest = new Map<string, DeviceState>();
  private readonly open = new Map<string, Regression>();
  private readonly done: Regression[] = [];
  private readonly sent = new Map<string, { seq: number; at: number }>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly clock: Clock;
  private readonly missingQuery;
  private readonly baselineQuery;
  private closed = false;

  constructor(private readonly o: ReconcilerOptions) {
    this.clock = o.clock ?? systemClock;
    ensureTables(o.db);
    this.missingQuery = o.db.db.prepare(`SELECT rotation_id AS rotationId, step, seq, command FROM steps
      WHERE device_id = ? AND status = 'acked' AND seq > ? AND command IS NOT NULL ORDER BY seq`);
    this.baselineQuery = o.db.db.prepare('SELECT seq FROM reconcile_baseline WHERE device_id = ?');
  }

  /** Feed one device state message (every one the transport receives). */
  onState(state: DeviceState): void {
    if (this.closed || state.status === 'offline' || state.lastSeq === undefined) return;
    this.latest.set(state.deviceId, state);
    const missing = this.missing(state.deviceId, state.lastSeq);
    const log = { deviceId: state.deviceId, lastSeq: state.lastSeq };
    if (missing.length === 0) {
      const r = this.open.get(state.deviceId);
      if (r) {
        r.repairedAt = this.clock.now().toISOString();
        this.open.delete(state.deviceId);
        this.done.push(r);
        this.sent.delete(state.deviceId);
        this.o.logger.info('device regression repaired: it holds every acknowledged step again', { ...log, fromSeq: r.fromSeq, toSeq: r.toSeq, resent: r.resent });
        this.o.events?.repaired?.(r);
      } else if (state.regression) {
        this.o.logger.warn('device reports a storage roll-back but holds every step the manager recorded as acknowledged', { ...log, code: state.regression.code, detail: state.regression.message });
      }
      return;
    }
    if (!this.open.has(state.deviceId) && !state.regression) {
      // Possibly a state message overtaken by an acknowledgement: act only if it is still the latest after the grace period.
      if (!this.timers.has(state.deviceId)) {
        const t = setTimeout(() => {
          this.timers.delete(state.deviceId);
          const now = this.latest.get(state.deviceId);
          if (now && now.lastSeq !== undefined && this.missing(state.deviceId, now.lastSeq).length > 0) this.act(now, true);
        }, this.o.graceMs ?? 2000);
        t.unref();
        this.timers.set(state.deviceId, t);
      }
      return;
    }
    this.act(state, false);
  }

  private missing(deviceId: string, lastSeq: number): Missing[] {
    const base = (this.baselineQuery.get(deviceId) as { seq: number } | undefined)?.seq ?? 0;
    return this.missingQuery.all(deviceId, Math.max(lastSeq, base)) as Missing[];
  }

  private act(state: DeviceState, confirmed: boolean): void {
    const missing = this.missing(state.deviceId, state.lastSeq!);
    if (missing.length === 0) return;
    let r = this.open.get(state.deviceId);
    if (!r) {
      r = {
        deviceId: state.deviceId, detectedAt: this.clock.now().toISOString(), fromSeq: state.lastSeq!, toSeq: missing.at(-1)!.seq,
        selfReported: !!state.regression, resent: 0, repairedAt: null,
      };
      this.open.set(state.deviceId, r);
      this.o.logger.error('device lost acknowledged steps; re-sending them from the stored signed commands', {
        deviceId: state.deviceId, rotationId: missing[0]!.rotationId, step: missing[0]!.step, code: 'E_STORE_REGRESSED',
        lastSeq: state.lastSeq, acknowledgedSeq: r.toSeq, steps: missing.map((m) => `${m.rotationId}/${m.step}#${m.seq}`), selfReported: r.selfReported, confirmedAfterGrace: confirmed,
      });
      this.o.events?.detected?.(r);
    }
    r.toSeq = Math.max(r.toSeq, missing.at(-1)!.seq);
    const next = missing[0]!;
    const prev = this.sent.get(state.deviceId);
    const now = this.clock.now().getTime();
    if (prev && prev.seq === next.seq && now - prev.at < (this.o.resendMs ?? 5000)) return;
    this.sent.set(state.deviceId, { seq: next.seq, at: now });
    r.resent++;
    this.o.logger.info('acknowledged step re-sent to a regressed device', { deviceId: state.deviceId, rotationId: next.rotationId, step: next.step, seq: next.seq });
    this.o.send(JSON.parse(next.command) as Command);
    if (missing.length > 0) this.armRetry(state.deviceId);
  }

  /** A re-sent command lost on the way (device offline) is sent again once `resendMs` passed, if no newer state came. */
  private armRetry(deviceId: string): void {
    const key = `retry:${deviceId}`;
    if (this.timers.has(key)) return;
    const t = setTimeout(() => {
      this.timers.delete(key);
      const st = this.latest.get(deviceId);
      if (st && this.open.has(deviceId)) this.act(st, true);
    }, (this.o.resendMs ?? 5000) + 50);
    t.unref();
    this.timers.set(key, t);
  }

  /** Devices currently behind what they acknowledged, then the repaired ones (newest last). */
  regressions(): { open: Regression[]; repaired: Regression[] } {
    return { open: [...this.open.values()].map((r) => ({ ...r })), repaired: this.done.map((r) => ({ ...r })) };
  }

  /** Stop timers. */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

function ensureTables(db: FleetDb): void {
  db.db.exec(`CREATE INDEX IF NOT EXISTS steps_by_device_seq ON steps (device_id, seq);
    CREATE TABLE IF NOT EXISTS reconcile_baseline (device_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);`);
}

/**
 * A device re-enrolled with a new store: acknowledgements up to `seq` (its
 * sequence counter at re-enrolment) belong to the old store and are never
 * re-sent.
 */
export function setBaseline(db: FleetDb, deviceId: string, seq: number): void {
  ensureTables(db);
  db.db.prepare('INSERT INTO reconcile_baseline (device_id, seq) VALUES (?, ?) ON CONFLICT(device_id) DO UPDATE SET seq = excluded.seq').run(deviceId, seq);
}

/** Something that emits device `state` events and sends commands (MqttManagerTransport). */
export interface StateSource {
  on(event: 'state', listener: (state: DeviceState) => void): unknown;
  send(cmd: Command): void;
}

/** Build a reconciler fed by `transport`'s state events, re-sending through it. */
export function attachReconciler(transport: StateSource, o: Omit<ReconcilerOptions, 'send'> & { send?: (cmd: Command) => void }): Reconciler {
  const r = new Reconciler({ ...o, send: o.send ?? ((cmd) => transport.send(cmd)) });
  transport.on('state', (s) => {
    try {
      r.onState(s);
    } catch (err) {
      o.logger.error('regression check failed for a device state', { deviceId: s.deviceId, reason: (err as Error).message });
    }
  });
  return r;
}
