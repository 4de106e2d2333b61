/**
 * Bringing forward a device that slept through one or more rotations (or
 * was excluded from one): when its retained state says it still trusts an
 * older root and no rotation is open, the manager sends it one signed
 * catch-up command carrying every missed root key update (D, R) oldest
 * first and a new certificate under the current root. The device verifies
 * each link from what it already trusts (never trust on first use); the
 * manager records the command, resends it on time-out, and records the
 * device's new certificate once the signed acknowledgement arrives. A
 * device whose root is not in the chain (keys lost, another fleet) is
 * reported for re-enrolment instead. A device of a separate-roots fleet
 * gets both histories in one command: its peers' root (the other side's
 * rotations) and its issuer root (its own side's), either of which may
 * have moved.
 */
import { changesRoot } from '../rotation/phase.ts';
import { createHash } from 'node:crypto';
import type { Clock } from '../../protocol/clock.ts';
import { commandSigner } from '../../protocol/command-signature.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { Command } from '../../protocol/messages/command.ts';
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { MAX_CHAIN_LINKS } from '../../protocol/messages/command.ts';
import { SCHEDULES, type RootSide } from '../../protocol/steps.ts';
import type { AuditInput } from '../audit/audit-log.ts';
import { buildCatchUpCommand } from '../rotation/commands.ts';
import type { Manager } from '../manager.ts';
import type { ManagementPki } from '../pki/management-pki.ts';
import { openRotation } from '../rotation/orchestrator.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS catch_ups (
  id TEXT PRIMARY KEY, device_id TEXT NOT NULL, seq INTEGER NOT NULL, command TEXT NOT NULL, from_root TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('sent','acked','failed')), attempts INTEGER NOT NULL, sent_at TEXT NOT NULL,
  due_at INTEGER, acked_at TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS catch_ups_device ON catch_ups (device_id, status);
`;

/** One catch-up as stored. */
export interface CatchUpRow {
  id: string;
  deviceId: string;
  seq: number;
  fromRoot: string;
  status: 'sent' | 'acked' | 'failed';
  attempts: number;
  sentAt: string;
  ackedAt: string | null;
  error: string | null;
}

/** How catch-ups are sent and retried. */
export interface CatchUpOptions {
  m: Manager;
  pki: Pick<ManagementPki, 'commandKey'>;
  clock: Clock;
  logger: Logger;
  audit: (e: AuditInput) => void;
  ackTimeoutMs: number;
  maxAttempts: number;
  onChange?: (deviceId: string) => void;
}

/** Sends, tracks and retries catch-up commands. */
export class CatchUps {
  private readonly sign: (cmd: Command) => Command;
  private readonly timer: NodeJS.Timeout;
  private readonly log: Logger;

  constructor(private readonly o: CatchUpOptions) {
    o.m.db.db.exec(SCHEMA);
    this.sign = commandSigner(o.pki.commandKey);
    this.log = o.logger.child({ component: 'catch-up' });
    this.timer = setInterval(() => this.sweep(), Math.min(1000, o.ackTimeoutMs)).unref();
  }

  /** Catch-ups, newest first (API and status). */
  list(): CatchUpRow[] {
    return this.o.m.db.db.prepare('SELECT id, device_id AS deviceId, seq, from_root AS fromRoot, status, attempts, sent_at AS sentAt, acked_at AS ackedAt, error FROM catch_ups ORDER BY sent_at DESC').all() as CatchUpRow[];
  }

  /**
   * A device reported its state: if it trusts an older root than the fleet's
   * and nothing is open, send it the missed updates (once per root it reports).
   */
  consider(state: DeviceState): void {
    const current = state.state?.trust.current;
    if (state.status === 'offline' || !current) return;
    const db = this.o.m.db;
    let device;
    try {
      device = db.device(state.deviceId);
    } catch {
      return;
    }
    const ca = this.o.m.ca;
    // A separate-roots fleet has two histories: the peers' root (the other side's) and the device's issuer root (its own side's).
    const separate = ca.separateRoots();
    const peerSide: RootSide | undefined = separate ? (device.role === 'server' ? 'client' : 'server') : undefined;
    const ownSide: RootSide | undefined = separate ? device.role : undefined;
    const issuerCurrent = separate ? state.state?.issuer?.current : undefined;
    if (separate && !issuerCurrent) return; // a device that never kept an issuer root is not one of this fleet's layout
    const behind = current !== fingerprintPem(ca.activeRoot(peerSide).cert) || (separate && issuerCurrent !== fingerprintPem(ca.activeRoot(ownSide).cert));
    if (!behind || openRotation(db)) return;
    // Once per root (pair of roots) the device reports: in flight, done, or failed (reported; not retried on every state message).
    const fromRoot = separate ? `${current}/${issuerCurrent}` : current;
    if (db.db.prepare('SELECT id FROM catch_ups WHERE device_id = ? AND from_root = ?').get(device.id, fromRoot)) return;
    if (separate && !db.deviceAccepts().get(device.id)?.includes('issuerChain')) {
      this.log.warn('device of a separate-roots fleet is behind, but its agent has not reported that it applies a two-chain catch-up; upgrade its agent (or re-provision the device)', { deviceId: device.id });
      return;
    }
    const chain = this.chainFrom(current, peerSide);
    const issuerChain = separate ? this.chainFrom(issuerCurrent!, ownSide) : undefined;
    if (!chain || issuerChain === null) {
      this.o.audit({ actor: 'manager', action: 'catchup.impossible', deviceId: device.id, detail: { fromRoot: current, reason: 'the device trusts a root that is not in this manager\'s history; re-enrol it (trustroll enroll) or re-provision it' } });
      db.db.prepare("INSERT INTO catch_ups (id, device_id, seq, command, from_root, status, attempts, sent_at, error) VALUES (?, ?, 0, '', ?, 'failed', 0, ?, ?)")
        .run(`catchup-none-${createHash('sha256').update(`${device.id}\u0000${fromRoot}`).digest('hex').slice(0, 16)}`, device.id, fromRoot, this.o.clock.now().toISOString(), 'E_CATCHUP_NO_PATH: its root is not one this manager rotated from');
      this.o.onChange?.(device.id);
      return;
    }
    if (chain.length > MAX_CHAIN_LINKS || (issuerChain?.length ?? 0) > MAX_CHAIN_LINKS) {
      this.log.error('device is too many rotations behind for one catch-up; re-enrol it', { deviceId: device.id, missed: chain.length + (issuerChain?.length ?? 0) });
      return;
    }
    const now = this.o.clock.now();
    // The command names the device; the id only has to be unique and short (ids are at most 128 characters).
    const id = `catchup-${now.toISOString().slice(0, 10)}-${createHash('sha256').update(`${device.id}\u0000${fromRoot}`).digest('hex').slice(0, 16)}`;
    const certificate = ca.issueLeaf({ commonName: device.commonName, spki: device.spki, role: device.role }, now);
    const cmd = db.tx(() => {
      const seq = db.allocateSeq(device.id);
      const c = this.sign(buildCatchUpCommand(device.id, id, seq, chain, certificate, now, device.role, issuerChain));
      db.db.prepare("INSERT INTO catch_ups (id, device_id, seq, command, from_root, status, attempts, sent_at, due_at) VALUES (?, ?, ?, ?, ?, 'sent', 1, ?, ?)")
        .run(id, device.id, seq, JSON.stringify(c), fromRoot, now.toISOString(), now.getTime() + this.o.ackTimeoutMs);
      return c;
    });
    const links = chain.length + (issuerChain?.length ?? 0);
    this.o.audit({ actor: 'manager', action: 'catchup.sent', rotationId: id, deviceId: device.id, step: cmd.step, detail: { seq: cmd.seq, links, ...(issuerChain ? { peerLinks: chain.length, issuerLinks: issuerChain.length } : {}), fromRoot, attempt: 1 } });
    this.log.info('bringing a device forward', { deviceId: device.id, rotationId: id, step: cmd.step, links });
    this.o.m.transport.send(cmd);
    this.o.onChange?.(device.id);
  }

  /**
   * The missed (D, R) links from the root with fingerprint `from` to the
   * active root (of `side` in a separate-roots fleet; [] when `from` is
   * it), or null when `from` is not in the history.
   */
  private chainFrom(from: string, side?: RootSide): { distribution: string; newRoot: string }[] | null {
    if (from === fingerprintPem(this.o.m.ca.activeRoot(side).cert)) return [];
    // A renewal changes no root (its D/R1 columns hold the active root): it is no link. Each side's rotations are its own history.
    const done = this.o.m.db.rotations().filter((r) => r.status === 'complete' && !r.unsafe && changesRoot(r) && SCHEDULES[r.schedule]?.root === side);
    // Each completed rotation moved the fleet from the previous one's R1 (the first: from the initial root) to its own R1.
    const start = done.findIndex((r, i) => (i === 0 ? !done.some((x) => fingerprintPem(x.newRoot) === from) : fingerprintPem(done[i - 1]!.newRoot) === from));
    if (start < 0) return null;
    return done.slice(start).map((r) => ({ distribution: r.distribution, newRoot: r.newRoot }));
  }

  /** An acknowledgement for a rotation id the orchestrator does not run: ours if it names a catch-up. */
  onAck(ack: Ack): boolean {
    const db = this.o.m.db;
    const row = db.db.prepare("SELECT id, device_id AS deviceId, seq, command, status FROM catch_ups WHERE id = ? AND device_id = ? AND seq = ?").get(ack.rotationId, ack.deviceId, ack.seq) as { id: string; deviceId: string; seq: number; command: string; status: string } | undefined;
    if (!row) return false;
    if (row.status !== 'sent') return true;
    const now = this.o.clock.now();
    if (ack.ok) {
      const cmd = JSON.parse(row.command) as Command;
      const device = db.device(row.deviceId);
      db.tx(() => {
        db.db.prepare("UPDATE catch_ups SET status = 'acked', acked_at = ?, due_at = NULL WHERE id = ?").run(now.toISOString(), row.id);
        db.setDeviceCertificate(row.deviceId, cmd.payload.certificate!, device.spki);
      });
      this.o.audit({ actor: `device:${row.deviceId}`, action: 'catchup.acked', rotationId: row.id, deviceId: row.deviceId, step: ack.step, detail: { seq: ack.seq, deviceAt: ack.at, storeHash: ack.state.storeHash, sig: ack.sig ?? null } });
      this.log.info('device brought forward', { deviceId: row.deviceId, rotationId: row.id });
    } else {
      const error = `${ack.error?.code ?? 'E_SCHEMA'}: ${ack.error?.message ?? ''}`;
      db.db.prepare("UPDATE catch_ups SET status = 'failed', due_at = NULL, error = ? WHERE id = ?").run(error, row.id);
      this.o.audit({ actor: `device:${row.deviceId}`, action: 'catchup.error', rotationId: row.id, deviceId: row.deviceId, step: ack.step, code: ack.error?.code ?? null, detail: { message: ack.error?.message ?? null } });
      this.log.error('device refused its catch-up; nothing changed on it; re-enrol it if its keys are lost', { deviceId: row.deviceId, rotationId: row.id, code: ack.error?.code });
    }
    this.o.m.transport.accepted?.(ack.deviceId, ack.seq);
    this.o.onChange?.(row.deviceId);
    return true;
  }

  /** Resend overdue catch-ups; give up after `maxAttempts` (reported, resumable by the device's next state). */
  private sweep(): void {
    const now = this.o.clock.now().getTime();
    const due = this.o.m.db.db.prepare("SELECT id, device_id AS deviceId, command, attempts FROM catch_ups WHERE status = 'sent' AND due_at <= ?").all(now) as { id: string; deviceId: string; command: string; attempts: number }[];
    for (const r of due) {
      if (r.attempts >= this.o.maxAttempts) {
        this.o.m.db.db.prepare("UPDATE catch_ups SET status = 'failed', due_at = NULL, error = ? WHERE id = ?").run(`E_ACK_TIMEOUT: no acknowledgement after ${r.attempts} attempts`, r.id);
        this.o.onChange?.(r.deviceId);
        continue;
      }
      this.o.m.db.db.prepare('UPDATE catch_ups SET attempts = attempts + 1, due_at = ? WHERE id = ?').run(now + this.o.ackTimeoutMs, r.id);
      this.o.audit({ actor: 'manager', action: 'catchup.resent', rotationId: r.id, deviceId: r.deviceId, detail: { attempt: r.attempts + 1 } });
      this.o.m.transport.send(JSON.parse(r.command) as Command);
    }
  }

  /** Stop the resend timer. */
  close(): void {
    clearInterval(this.timer);
  }
}
