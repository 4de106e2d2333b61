/**
 * Rotate the management channel's own root (PROTOCOL.md [0140-0143]) with
 * the same method as the device PKI, broker = server and devices (and the
 * manager) = clients, in the order of protocol/link-schedule.ts:
 *
 *   S    stage K1, D, R1, the broker's Sn, the manager's and every device's
 *        new link certificate (link-material.ts)
 *   LB1  broker cafile R0+R1, restart; the manager reconnects presenting
 *        its new certificate (its old one if the broker refuses it)
 *   LC1  every device: D, R1 and its new link certificate (signed command)
 *   LB2  broker presents Sn, restart: only once every device acknowledged LC1
 *   LC2  every device: trust only R1, drop the old link certificate
 *   LB3  broker cafile R1 alone, restart: the old root goes last
 *
 * Device commands use the device's own sequence numbers (FleetDb), the
 * manager's command key and the device-signed acknowledgement; each ack is
 * also checked against the material the device should now hold. A time-out
 * resends the same command; after `maxAttempts` (or an error ack) the
 * rotation stops where it is (every intermediate state authenticates) and
 * `resume` continues from the journal.
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandKeyId, commandSigner } from '../../protocol/command-signature.ts';
import { systemClock, type Clock } from '../../protocol/clock.ts';
import { LINK_ROTATION } from '../../protocol/link-schedule.ts';
import type { Logger } from '../../protocol/log.ts';
import { assertAck, type Ack } from '../../protocol/messages/ack.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { ackVerifier } from '../transport/ack-verifier.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb } from '../fleet/fleet-db.ts';
import { mqttTransport } from '../manager.ts';
import { openRotation } from '../rotation/orchestrator.ts';
import type { BrokerControl } from './broker-control.ts';
import { both, brokerFilesAfter } from './broker-files.ts';
import { LINK_PHASES, loadLinkJournal, saveLinkJournal, type LinkDeviceStep, type LinkPhase } from './link-journal.ts';
import { promoteLinkMaterial, recordedLinkCertificates, stagedLinkMaterial, stageLinkMaterial } from './link-material.ts';

/** The manager's link while a step runs: send commands, receive acknowledgements. */
export interface LinkTransport {
  send(cmd: Command): void;
  onAck(handler: (raw: Buffer | string | object) => void): void;
  accepted?(deviceId: string, seq: number): void;
  clearDesired?(deviceId: string): void;
  close(): Promise<void>;
}

/** How a management-root rotation runs. */
export interface LinkRotationOptions {
  mgmtDir: string;
  db: FleetDb;
  brokerUrl: string;
  broker: BrokerControl;
  logger: Logger;
  clock?: Clock;
  /** Device id → current link certificate; default: those `trustroll mgmt device` recorded (links/). */
  devices?: ReadonlyMap<string, string>;
  ackTimeoutMs?: number;
  maxAttempts?: number;
  /** DN of the new management root (default: the old one's). */
  subject?: string;
  /** Continue the open rotation in the journal instead of refusing to start. */
  resume?: boolean;
  /** The manager's connection with the given TLS material (default: the MQTT transport, connected). */
  connect?: (tls: { ca: string; cert: string; key: string }) => Promise<LinkTransport>;
  /** Test hook: runs right after a device step's commands were sent. */
  afterSend?: (step: LinkDeviceStep, transport: LinkTransport) => Promise<void>;
}

/** What a finished rotation reports. */
export interface LinkRotationResult {
  id: string;
  devices: number;
  restarts: number;
  commands: number;
  resent: number;
  acks: number;
  /** Acknowledgements dropped: unreadable, unsigned, or for no command in flight. */
  ignored: number;
  seconds: number;
}

/** Run (or resume) a management-root rotation to completion; throws E_ACK_TIMEOUT / E_ROTATION_FAILED / E_ROTATION_ACTIVE. */
export async function rotateManagementRoot(o: LinkRotationOptions): Promise<LinkRotationResult> {
  const clock = o.clock ?? systemClock;
  const started = Date.now();
  const log = o.logger.child({ component: 'link-rotation' });
  let journal = loadLinkJournal(o.mgmtDir);
  let material = stagedLinkMaterial(o.mgmtDir);
  const open = journal !== null && journal.finishedAt === null;
  if (open && !o.resume) throw new ManagerError('E_ROTATION_ACTIVE', `management-root rotation ${journal!.id} is open (done: ${journal!.done.join(', ') || 'none'}); resume it ("trustroll link rotate --resume")`);
  if (!open && o.resume) throw new ManagerError('E_ROTATION_UNKNOWN', 'no open management-root rotation to resume');
  // One rotation at a time per device: the link and the fleet PKI share each device's sequence numbers.
  const fleet = openRotation(o.db);
  if (fleet) throw new ManagerError('E_ROTATION_ACTIVE', `fleet rotation ${fleet.id} is ${fleet.status}; finish it ("trustroll rotate --resume ${fleet.id}") before rotating the management root`);
  if (!open || !material) {
    // A device behind a relay has no management link of its own (its relay's link carries its commands): nothing to rotate.
    const devices = new Map([...(o.devices ?? recordedLinkCertificates(o.mgmtDir))].filter(([id]) => o.db.deviceVia(id) === null));
    if (devices.size === 0) throw new ManagerError('E_FLEET_EMPTY', `no device link certificates recorded in ${join(o.mgmtDir, 'links')}; issue them with "trustroll mgmt device" (or record them) first`);
    for (const id of devices.keys()) o.db.device(id);
    material = await stageLinkMaterial(o.mgmtDir, devices, { now: clock.now(), subject: o.subject });
    journal = { id: `link-${clock.now().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`, startedAt: clock.now().toISOString(), done: [], commands: {}, acked: {}, restarts: 0, finishedAt: null };
    saveLinkJournal(o.mgmtDir, journal);
    log.info('management-root rotation staged', { rotationId: journal.id, devices: devices.size, newRoot: fingerprintPem(material.newRoot) });
  }
  const j = journal!;
  const m = material!;
  // Fleet rotations and renewals refuse to start until this one finishes.
  o.db.setOpenLinkRotation(j.id);
  let saveTimer: NodeJS.Timeout | null = null;
  const save = () => {
    if (saveTimer) clearTimeout(saveTimer);
    saveTimer = null;
    saveLinkJournal(o.mgmtDir, j);
  };
  // Acknowledgements are journalled in batches: one lost in a crash only makes a resume send that command again,
  // which the device answers from its stored result.
  const saveSoon = () => { saveTimer ??= setTimeout(save, 250); };
  const managerKey = readFileSync(join(o.mgmtDir, 'manager-key.pem'), 'utf8');
  const oldManager = readFileSync(join(o.mgmtDir, 'manager.pem'), 'utf8');
  const commandKey = createPrivateKey(readFileSync(join(o.mgmtDir, 'command-key.pem'), 'utf8'));
  const sign = commandSigner({ keyId: commandKeyId(createPublicKey(commandKey)), privateKey: commandKey });
  const verify = ackVerifier(o.db);
  const connect = o.connect ?? (async (tls) => {
    const t = mqttTransport({ url: o.brokerUrl, pki: { ca: tls.ca, manager: { cert: tls.cert, key: tls.key } }, logger: o.logger, db: o.db });
    try {
      await t.ready(15_000);
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  });
  const stats = { commands: 0, resent: 0, acks: 0, ignored: 0 };
  const ids = Object.keys(m.devices).sort();

  /** The broker's files for a step (cafile, certificate) and the restart. */
  const brokerStep = async (phase: LinkPhase) => {
    log.info('broker step: new files, restart', { rotationId: j.id, step: phase });
    await o.broker.install(brokerFilesAfter(o.mgmtDir, phase, m));
    await o.broker.restart();
    j.restarts++;
  };

  /** Connect presenting the new manager certificate, or the old one if the broker refuses it [0075-0076]. */
  const managerLink = async (ca: string): Promise<LinkTransport> => {
    try {
      return await connect({ ca, cert: m.manager, key: managerKey });
    } catch (err) {
      log.warn('broker refused the manager\'s new certificate; connecting with the old one', { rotationId: j.id, reason: (err as Error).message });
      return connect({ ca, cert: oldManager, key: managerKey });
    }
  };

  const expectState = (step: LinkDeviceStep, id: string, ack: Ack): string | null => {
    const s = ack.state;
    const want = step === 'LC1'
      ? { next: fingerprintPem(m.newRoot), active: fingerprintPem(m.devices[id]!) }
      : { current: fingerprintPem(m.newRoot), active: fingerprintPem(m.devices[id]!) };
    if ('next' in want && s.trust.next !== want.next) return `holds no R1 (${s.trust.next ?? 'none'})`;
    if ('current' in want && (s.trust.current !== want.current || s.trust.distribution !== null || s.trust.next !== null)) return 'still trusts more than R1';
    if (s.identity.active !== want.active) return 'does not present its new link certificate first';
    if (step === 'LC2' && s.identity.fallback !== null) return 'still keeps its old link certificate';
    return null;
  };

  /** Send one device step to every device that has not acknowledged it, and wait for every acknowledgement. */
  const deviceStep = async (step: LinkDeviceStep, t: LinkTransport) => {
    const pending = new Map<string, Command>();
    for (const id of ids) {
      if ((j.acked[id] ?? []).includes(step)) continue;
      let cmd = j.commands[id]?.[step];
      if (!cmd) {
        cmd = sign({
          v: 1, kind: 'command', deviceId: id, rotationId: j.id, schedule: LINK_ROTATION.name, seq: o.db.allocateSeq(id), step,
          issuedAt: clock.now().toISOString(), payload: step === 'LC1' ? { distribution: m.distribution, newRoot: m.newRoot, certificate: m.devices[id]! } : {},
        });
        j.commands[id] = { ...j.commands[id], [step]: cmd };
      }
      pending.set(id, cmd);
    }
    // Durable before anything is sent: a resumed rotation resends exactly these commands.
    save();
    const max = o.maxAttempts ?? 5;
    const attempts = new Map([...pending.keys()].map((id) => [id, 1]));
    let failure: Error | null = null;
    let wake: () => void = () => {};
    t.onAck((raw) => {
      try {
        if (typeof raw !== 'object' || Buffer.isBuffer(raw)) throw new Error('not parsed');
        assertAck(raw);
      } catch {
        stats.ignored++;
        return;
      }
      const ack = raw;
      const cmd = pending.get(ack.deviceId);
      if (!cmd || ack.seq !== cmd.seq || ack.rotationId !== j.id || ack.step !== step || !verify(ack)) {
        stats.ignored++;
        log.debug('acknowledgement for no link command in flight ignored', { deviceId: ack.deviceId, rotationId: ack.rotationId, step: ack.step, seq: ack.seq });
        return;
      }
      stats.acks++;
      t.accepted?.(ack.deviceId, ack.seq);
      if (!ack.ok) {
        // A refusal changed nothing on the device (nothing stored): the same command is tried again, up to --max-attempts.
        const n = attempts.get(ack.deviceId) ?? 1;
        const reason = `${ack.error?.code}: ${ack.error?.message}`;
        if (n >= max) failure ??= new ManagerError('E_ROTATION_FAILED', `device ${ack.deviceId} refused link step ${step} of ${j.id} ${n} times: ${reason}`);
        else {
          log.warn('device refused a link step; sending it again', { deviceId: ack.deviceId, rotationId: j.id, step, seq: ack.seq, code: ack.error?.code, attempt: n });
          attempts.set(ack.deviceId, n + 1);
          t.send(cmd);
          stats.resent++;
        }
        return wake();
      }
      const wrong = expectState(step, ack.deviceId, ack);
      if (wrong) {
        // Its stored result would answer every resend the same way: stop where it is.
        failure ??= new ManagerError('E_ROTATION_FAILED', `device ${ack.deviceId} acknowledged link step ${step} of ${j.id} but ${wrong}`);
      } else {
        pending.delete(ack.deviceId);
        j.acked[ack.deviceId] = [...(j.acked[ack.deviceId] ?? []), step];
        saveSoon();
        log.info('link step acknowledged', { deviceId: ack.deviceId, rotationId: j.id, step, seq: ack.seq });
      }
      wake();
    });
    for (const cmd of pending.values()) { t.send(cmd); stats.commands++; }
    await o.afterSend?.(step, t);
    const timeout = o.ackTimeoutMs ?? 10_000;
    try {
      while (pending.size > 0 && failure === null) {
        const deadline = Date.now() + timeout;
        while (pending.size > 0 && failure === null && Date.now() < deadline) {
          await new Promise<void>((r) => { wake = r; setTimeout(r, Math.min(200, Math.max(1, deadline - Date.now()))); });
        }
        if (pending.size === 0 || failure !== null) break;
        const given = [...pending.keys()].filter((id) => (attempts.get(id) ?? 1) >= max);
        if (given.length > 0) {
          throw new ManagerError('E_ACK_TIMEOUT', `link step ${step} of ${j.id}: no acknowledgement from ${given.join(', ')} after ${max} attempts of ${timeout} ms; every device still authenticates: check them, then "trustroll link rotate --resume"`);
        }
        log.warn('link step not acknowledged in time; sending the same command again', { rotationId: j.id, step, devices: pending.size });
        for (const [id, cmd] of pending) { attempts.set(id, (attempts.get(id) ?? 1) + 1); t.send(cmd); stats.resent++; }
      }
      if (failure) throw failure;
    } finally {
      save();
    }
  };

  let transport: LinkTransport | null = null;
  try {
    for (const phase of LINK_PHASES) {
      if (j.done.includes(phase)) continue;
      if (phase === 'LB1' || phase === 'LB2' || phase === 'LB3') {
        if (transport) await transport.close();
        transport = null;
        await brokerStep(phase);
      } else {
        transport ??= await managerLink(both(m.oldRoot, m.newRoot));
        await deviceStep(phase, transport);
      }
      j.done.push(phase);
      save();
      log.info('link rotation step complete', { rotationId: j.id, step: phase });
    }
    // The manager trusts only R1 from now on; the retained desired states of the link commands are cleared.
    transport ??= await managerLink(m.newRoot);
    for (const id of ids) transport.clearDesired?.(id);
    // Best effort: give the broker a moment to take the clears before the connection is dropped.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    await transport?.close();
  }
  promoteLinkMaterial(o.mgmtDir, m);
  j.finishedAt = clock.now().toISOString();
  save();
  o.db.setOpenLinkRotation(null);
  log.info('management-root rotation complete', { rotationId: j.id, devices: ids.length, restarts: j.restarts });
  return { id: j.id, devices: ids.length, restarts: j.restarts, ...stats, seconds: (Date.now() - started) / 1000 };
}
