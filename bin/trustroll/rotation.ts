/**
 * The rotation commands of `trustroll`: `schedule check` validates a custom
 * schedule file against the ordering rules before anyone runs it on a
 * fleet; `rotate` starts, resumes or aborts a rotation (through a running
 * `trustroll serve` when there is one) and follows it with one progress
 * line (rotate-progress.ts); `status` shows where a rotation stands and
 * who waits for whom (manager/rotation/rotation-status.ts), with the
 * topology and the scheduler's view.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { CA_KEY_ALGORITHMS, type CaKeyAlgorithm } from '../../manager/ca/keys.ts';
import { ManagerError } from '../../manager/errors.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { describeTopology, topology } from '../../manager/fleet/topology.ts';
import type { RotationDetail, RotationSummary } from '../../manager/http/api-types.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { describeRotationStatus, rotationStatus } from '../../manager/rotation/rotation-status.ts';
import { runRotation } from '../../manager/rotation/run-rotation.ts';
import { liveService } from '../../manager/service/run-service.ts';
import { storedSchedulerView } from '../../manager/service/scheduler-host.ts';
import { describeSchedulerView } from '../../manager/service/scheduler.ts';
import { callService } from '../../manager/service/service-client.ts';
import { createLogger } from '../../protocol/log.ts';
import { validateSchedule } from '../../protocol/schedule.ts';
import { SCHEDULES, SIDE_SCHEDULES, type RootSide, type Schedule } from '../../protocol/steps.ts';
import { dataOption, int, parseDuration } from './options.ts';
import { fromDetail, fromStatus, RotateProgress } from './rotate-progress.ts';

/** `trustroll schedule check`: a custom schedule checked against the ordering rules before anyone runs it. */
export function addScheduleCommands(program: Command): void {
  program.command('schedule')
    .description('work with rotation schedules')
    .command('check <file>')
    .description('validate a schedule JSON file ({ name, steps: [{ id, role, effects, after }] }) against the ordering rules')
    .action((file: string) => {
      let schedule: Schedule;
      try {
        schedule = JSON.parse(readFileSync(file, 'utf8')) as Schedule;
      } catch (err) {
        throw new Error(`${file}: ${(err as Error).message}`);
      }
      const report = validateSchedule(schedule);
      process.stdout.write(`${schedule.name}: valid\n  server: ${report.sequence.server.join(' -> ')}\n  client: ${report.sequence.client.join(' -> ')}\n`);
      for (const w of report.warnings) process.stdout.write(`  warning: ${w}\n`);
    });
}

/** `trustroll rotate`: start, resume or abort a rotation, itself or through a running `trustroll serve`, and follow it to its end. */
export function addRotateCommand(program: Command): void {
  program.command('rotate')
    .description('rotate the fleet root over MQTT (or resume the open rotation) and wait until it completes or stops')
    .option(...dataOption)
    .requiredOption('--mgmt <dir>', 'the management PKI (trustroll mgmt init)')
    .option('--broker <url>', 'mqtts://host:port of the broker (not needed while "trustroll serve" runs on the data folder: it does the rotation)')
    .addOption(new Option('--schedule <name>', 'rotation schedule').choices(['six-step', 'batched']).default('six-step'))
    .option('--resume [rotationId]', 'resume the open (or the given) rotation instead of starting one')
    .option('--exclude-offline-after <duration>', 'offline policy (needs "trustroll serve"): exclude a device offline longer than this (e.g. 90s, 30m, 12h, 3d) so its peers go on; default: wait for it', parseDuration)
    .addOption(new Option('--algorithm <alg>', 'algorithm of the new root key; default: the active root\'s (an RSA fleet stays RSA). Moving between RSA and ECDSA is refused if a device declared it cannot verify the new one').choices([...CA_KEY_ALGORITHMS]))
    .option('--subject <dn>', 'subject of the new root, e.g. "CN=Printer Fleet Root 2027,O=Example"; default: the active root\'s, byte for byte')
    .addOption(new Option('--root <side>', 'separate-roots fleets (ca init --client-subject): which root to rotate, with its own schedule (client-root or server-root; --schedule does not apply); default: the single fleet root').choices(['client', 'server']))
    .option('--old-with-new', 'devices keep OldWithNew (the old root key certified by the new one) when they drop the old root, so peers left behind (excluded, offline, re-imaged) still authenticate until they catch up; leave it off if the old key may be compromised (docs/lifecycle.md)', false)
    .option('--abort [rotationId]', 'abort the open (or the given) rotation: every device returns to its old state while no server has its new certificate yet; after that it stops where it is')
    .option('--ack-timeout <ms>', 'time a device has to acknowledge a step before it is resent', int, 30_000)
    .option('--max-attempts <n>', 'attempts per step before the rotation stops where it is', int, 5)
    .option('--json', 'print the final status as JSON', false)
    .action(async (o: { data: string; mgmt: string; broker?: string; schedule: string; resume?: boolean | string; abort?: boolean | string; excludeOfflineAfter?: number; ackTimeout: number; maxAttempts: number; json: boolean; algorithm?: CaKeyAlgorithm; subject?: string; root?: RootSide; oldWithNew: boolean }) => {
      if ((o.algorithm || o.subject || o.root || o.oldWithNew) && (o.resume || o.abort)) throw new ManagerError('E_SERVICE_CONFIG', '--algorithm, --subject, --root and --old-with-new choose how a rotation that starts goes; they do not apply to --resume or --abort');
      const service = liveService(o.data);
      if (service) {
        process.exitCode = await rotateThroughService(o, service);
        return;
      }
      if (o.excludeOfflineAfter) throw new ManagerError('E_SERVICE_CONFIG', '--exclude-offline-after needs the manager service (it follows which devices are online): start "trustroll serve" on this data folder, then rotate');
      if (!o.broker) throw new ManagerError('E_SERVICE_CONFIG', 'give --broker mqtts://host:port (or start "trustroll serve" on this data folder and rotate through it)');
      const logger = createLogger({ level: 'warn' });
      const progress = new RotateProgress(process.stdout);
      const rotation = await runRotation({
        dataDir: o.data, pki: ManagementPki.load(o.mgmt, new Date()), brokerUrl: o.broker, schedule: o.root ? SIDE_SCHEDULES[o.root] : SCHEDULES[o.schedule], resume: o.resume, abort: o.abort,
        newRoot: { algorithm: o.algorithm, subject: o.subject }, distributeOldWithNew: o.oldWithNew,
        policy: { ackTimeoutMs: o.ackTimeout, maxAttempts: o.maxAttempts }, logger,
        onTick: o.json ? undefined : (db, id, online) => progress.update(fromStatus(rotationStatus(db, id), online)),
      }).finally(() => progress.end());
      const db = new FleetDb(join(o.data, 'manager.db'));
      try {
        const st = rotationStatus(db, rotation.id);
        process.stdout.write((o.json ? JSON.stringify(st, null, 2) : describeRotationStatus(st)) + '\n');
      } finally {
        db.close();
      }
      if (o.abort && rotation.status === 'aborted') process.stderr.write(`rotation ${rotation.id} stopped where it is: ${rotation.error ?? 'a rollback is no longer possible'}\n`);
      process.exitCode = rotation.status === 'complete' || (o.abort && rotation.status === 'rolled-back') ? 0 : 1;
    });

  /** `rotate` while `trustroll serve` runs on the same data folder: the service does it (one MQTT session per manager). */
}

async function rotateThroughService(o: { data: string; mgmt: string; schedule: string; resume?: boolean | string; abort?: boolean | string; excludeOfflineAfter?: number; json: boolean; algorithm?: CaKeyAlgorithm; subject?: string; root?: RootSide; oldWithNew?: boolean }, info: NonNullable<ReturnType<typeof liveService>>): Promise<number> {
  const operatorCa = readFileSync(join(o.mgmt, 'operator-ca.pem'), 'utf8');
  let summary: RotationSummary & Partial<Pick<RotationDetail, 'blockers'>>;
  /** The given rotation, or the newest one the service has open (not complete, not rolled back). */
  const target = async (given: string | true, verb: string): Promise<string> => {
    if (typeof given === 'string') return given;
    const open = (await callService<{ rotations: RotationSummary[] }>(info, operatorCa, 'GET', '/api/rotations')).rotations.find((r) => r.status !== 'complete' && r.status !== 'rolled-back');
    if (!open) throw new ManagerError('E_ROTATION_UNKNOWN', `no open rotation to ${verb}`);
    return open.id;
  };
  if (o.abort) {
    const id = await target(o.abort, 'abort');
    summary = await callService<RotationSummary>(info, operatorCa, 'POST', `/api/rotations/${encodeURIComponent(id)}/abort`, {});
    if (summary.status === 'aborted') process.stderr.write(`rotation ${id} stopped where it is: ${summary.rollback.reason ?? 'stopped sending'}\n`);
  } else if (o.resume) {
    const id = await target(o.resume, 'resume');
    summary = await callService<RotationSummary>(info, operatorCa, 'POST', `/api/rotations/${encodeURIComponent(id)}/resume`, {});
  } else {
    summary = await callService<RotationSummary>(info, operatorCa, 'POST', '/api/rotations', {
      schedule: o.schedule, excludeOfflineAfterS: o.excludeOfflineAfter ?? null, ...(o.algorithm ? { algorithm: o.algorithm } : {}), ...(o.subject ? { subject: o.subject } : {}), ...(o.root ? { root: o.root } : {}),
      ...(o.oldWithNew ? { distributeOldWithNew: true } : {}),
    });
    for (const w of summary.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
  }
  process.stderr.write(`trustroll serve (pid ${info.pid}) runs rotation ${summary.id}; following it at ${info.url}\n`);
  const progress = new RotateProgress(process.stdout);
  try {
    for (;;) {
      if (!['running', 'rolling-back'].includes(summary.status)) break;
      if (!o.json) progress.update(fromDetail(summary));
      await new Promise((r) => setTimeout(r, 1000));
      summary = await callService<RotationDetail>(info, operatorCa, 'GET', `/api/rotations/${encodeURIComponent(summary.id)}`);
    }
  } finally {
    progress.end();
  }
  const db = new FleetDb(join(o.data, 'manager.db'));
  try {
    const st = rotationStatus(db, summary.id);
    process.stdout.write((o.json ? JSON.stringify(st, null, 2) : describeRotationStatus(st)) + '\n');
  } finally {
    db.close();
  }
  return summary.status === 'complete' || (o.abort && summary.status === 'rolled-back') ? 0 : 1;
}

/** `trustroll status`: where a rotation stands, who waits for whom, the topology and the scheduler, from the manager database. */
export function addStatusCommand(program: Command): void {
  program.command('status')
    .description('where a rotation stands, per device, and who each next step waits for; and the scheduled rotation and renewal (from the manager database)')
    .option(...dataOption)
    .option('--rotation <id>', 'a rotation id (default: the most recent)')
    .option('--json', 'print JSON', false)
    .action((o: { data: string; rotation?: string; json: boolean }) => {
      const db = new FleetDb(join(o.data, 'manager.db'));
      try {
        const schedule = storedSchedulerView(db);
        const scheduleText = describeSchedulerView(schedule, liveService(o.data) !== null);
        if (!o.rotation && db.rotations().length === 0 && schedule) {
          process.stdout.write((o.json ? JSON.stringify({ rotation: null, schedule }, null, 2) : `no rotation has been started yet\n${scheduleText}`) + '\n');
          return;
        }
        const st = rotationStatus(db, o.rotation);
        const topo = topology(db);
        process.stdout.write((o.json ? JSON.stringify({ ...st, schedule, topology: topo }, null, 2) : `${describeRotationStatus(st)}\n${describeTopology(topo)}\n${scheduleText}`) + '\n');
      } finally {
        db.close();
      }
    });
}
