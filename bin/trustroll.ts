/**
 * `trustroll`: the manager's command line. `demo` runs the fleet demo;
 * `schedule check` validates a custom schedule file against the ordering
 * rules before anyone runs it on a fleet.
 */
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fingerprint } from '../protocol/pem.ts';
import { writeFileAtomic } from '../manager/pki/key-vault.ts';
import { runRotation } from '../manager/rotation/run-rotation.ts';
import { fromDetail, fromStatus, RotateProgress } from './rotate-progress.ts';
import { describeRotationStatus, rotationStatus } from '../manager/rotation/rotation-status.ts';
import { createLogger } from '../protocol/log.ts';
import { join } from 'node:path';
import { CaAuthority } from '../manager/pki/ca-authority.ts';
import { CA_KEY_ALGORITHMS, type CaKeyAlgorithm } from '../manager/ca/keys.ts';
import { canVerify, parseVerifies, rootAlgorithm } from '../manager/rotation/algorithm-plan.ts';
import { FleetDb } from '../manager/fleet/fleet-db.ts';
import { enrollFromCsr } from '../manager/pki/enrollment.ts';
import { ManagerError } from '../manager/errors.ts';
import { ManagementPki } from '../manager/pki/management-pki.ts';
import { Command, Option } from 'commander';
import { stopRequested } from './stop-signal.ts';
import { describeDemo, runInProcessDemo } from '../demo/run-demo.ts';
import { describeFleetDemo, runFleetDemo } from '../demo/fleet-demo.ts';
import { addLinkCommands } from './link-commands.ts';
import { recordLinkCertificate } from '../manager/link-rotation/link-material.ts';
import { DEMO_TOPOLOGIES, type DemoTopology } from '../demo/topology-plan.ts';
import { describeTopology, setRoute, topology } from '../manager/fleet/topology.ts';
import { validateSchedule } from '../protocol/schedule.ts';
import { SCHEDULES, SIDE_SCHEDULES, type Role, type RootSide, type Schedule } from '../protocol/steps.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { OperatorPki, newP12Password } from '../manager/pki/operator-pki.ts';
import { ServiceDb } from '../manager/service/service-db.ts';
import { addAuditCommands } from './audit-commands.ts';
import { liveService, runService } from '../manager/service/run-service.ts';
import { callService } from '../manager/service/service-client.ts';
import { DEFAULT_CHECK_CRON, describeSchedulerView, schedulerConfig } from '../manager/service/scheduler.ts';
import { storedSchedulerView } from '../manager/service/scheduler-host.ts';
import type { RotationDetail, RotationSummary } from '../manager/http/api-types.ts';
import type { LogLevel } from '../protocol/log.ts';

const program = new Command('trustroll').description('Root CA rotation for mutual-TLS device fleets').showHelpAfterError();
const int = (v: string) => {
  const n = Number.parseInt(v, 10);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${v}"`);
  return n;
};

/** "90s", "30m", "12h", "3d" or plain seconds, as whole seconds. */
function parseDuration(v: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(v.trim());
  const n = m ? Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a duration such as 90s, 30m, 12h or 3d, got "${v}"`);
  return n;
}

/** The manager's data folder: CA state and keys under ca/, the fleet database manager.db. */
const dataOption = ['--data <dir>', 'manager data folder', process.env.TRUSTROLL_DATA ?? './trustroll-data'] as const;

program.command('demo')
  .description('rotate the root of a fleet of device processes over MQTT while they keep handshaking over mutual TLS')
  .option('--servers <n>', 'server-role devices (printers)', int, 3)
  .option('--clients <n>', 'client-role devices (management clients)', int, 6)
  .addOption(new Option('--schedule <name>', 'rotation schedule').choices(['six-step', 'batched']).default('six-step'))
  .option('--naive', 'replace everything at once (unsafe, for contrast: shows failures)', false)
  .option('--broker <broker>', 'embedded (aedes, default), mosquitto (a real Mosquitto started for the demo), or mqtts://host:port of a running broker', 'embedded')
  .option('--mgmt <dir>', 'management PKI the external broker trusts (made by "trustroll mgmt init")')
  .option('--pace <ms>', 'hold each acknowledgement this long so traffic flows through every intermediate state', int, 250)
  .option('--min-handshakes <n>', 'keep the devices handshaking until this many connections were made', int, 1000)
  .addOption(new Option('--algorithm <alg>', 'the fleet root\'s algorithm (RSA fleets get RSA-2048 device keys); the rotation keeps it').choices([...CA_KEY_ALGORITHMS]))
  .option('--new-subject <dn>', 'subject of the new root (default: the old root\'s)')
  .addOption(new Option('--topology <name>', 'who reaches whom: direct (every device has a broker session), server-relay (clients reach only their printer, which relays), client-relay (printers reached only through a client), mixed').choices([...DEMO_TOPOLOGIES]).default('direct'))
  .option('--in-process', 'the quick in-process variant: no broker, no processes, path validation instead of handshakes', false)
  .option('--seed <n>', 'seed of the simulated network delays (--in-process)', int, 1)
  .option('--keep', 'keep the demo folder (configs, stores, logs)', false)
  .option('--json', 'print one JSON object instead of the summary', false)
  .action(async (o: { servers: number; clients: number; schedule: string; naive: boolean; broker: string; mgmt?: string; pace: number; minHandshakes: number; inProcess: boolean; seed: number; keep: boolean; json: boolean; algorithm?: CaKeyAlgorithm; newSubject?: string; topology: DemoTopology }) => {
    if (o.inProcess && (o.algorithm || o.newSubject || o.topology !== 'direct')) throw new ManagerError('E_SERVICE_CONFIG', '--algorithm, --new-subject and --topology apply to the process demo, not --in-process');
    if (o.inProcess) {
      const result = await runInProcessDemo(o);
      process.stdout.write((o.json ? JSON.stringify(result, null, 2) : describeDemo(result)) + '\n');
      process.exitCode = result.rotation.status === 'complete' && (o.naive || result.authChecks.failed + result.crossCheck.openssl.failed === 0) ? 0 : 1;
      return;
    }
    const result = await runFleetDemo({ ...o, mgmtDir: o.mgmt, paceMs: o.pace });
    process.stdout.write((o.json ? JSON.stringify(result, null, 2) : describeFleetDemo(result)) + '\n');
    const clean = result.handshakes.failed + result.crossStack.openssl.failed + result.crossStack.gnutls.failed === 0;
    process.exitCode = result.rotation.status === 'complete' && (o.naive || clean) ? 0 : 1;
  });

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

const mgmt = program.command('mgmt')
  .description('the management channel\'s own PKI (broker, manager and device link certificates, command-signing key)');
mgmt.command('init')
  .description('create it in <dir>: keys 0600, broker files, ACL and a Mosquitto listener snippet')
  .requiredOption('--dir <dir>', 'where to keep it')
  .option('--broker-host <name...>', 'DNS names or IP addresses the broker is reached at (besides localhost and loopback; an address becomes an IP subjectAltName)')
  .action(async (o: { dir: string; brokerHost?: string[] }) => {
    if (existsSync(join(o.dir, 'ca-key.pem'))) throw new ManagerError('E_KEY_VAULT', `${o.dir} already holds a management PKI; refusing to overwrite it`);
    const pki = await ManagementPki.create({ now: new Date(), brokerDnsNames: o.brokerHost ?? [] });
    pki.save(o.dir);
    process.stdout.write(`management PKI in ${o.dir}; configure the broker with ${join(o.dir, 'mosquitto-listener.conf')}\n`);
  });

mgmt.command('device')
  .description('issue a device\'s management link certificate (CN = device id) and write its link files')
  .requiredOption('--dir <dir>', 'the management PKI (trustroll mgmt init)')
  .requiredOption('--id <deviceId>', 'device id')
  .requiredOption('--out <dir>', 'where to write ca.pem, device.pem, device.key (0600) and command-key.pem')
  .option('--broker <url>', 'broker URL to put into the printed link settings', 'mqtts://broker:8883')
  .action((o: { dir: string; id: string; out: string; broker: string }) => {
    const pki = ManagementPki.load(o.dir, new Date());
    const identity = pki.device(o.id);
    // Recorded so that a management-root rotation ("trustroll link rotate") can certify the same key under the new root.
    recordLinkCertificate(o.dir, o.id, identity.cert);
    mkdirSync(o.out, { recursive: true, mode: 0o700 });
    const put = (name: string, data: string, mode = 0o644) => { writeFileAtomic(join(o.out, name), data, mode); return join(o.out, name); };
    const link = {
      url: o.broker, ca: put('ca.pem', pki.ca), cert: put('device.pem', identity.cert), key: put('device.key', identity.key, 0o600),
      commandKeys: { [pki.commandKey.keyId]: put('command-key.pem', pki.trustedCommandKeys().get(pki.commandKey.keyId)!.export({ type: 'spki', format: 'pem' }) as string) },
    };
    process.stdout.write(JSON.stringify({ link }, null, 2) + '\n');
  });

mgmt.command('operator')
  .description('issue an operator certificate for the dashboard and API (role in the certificate), with a PKCS#12 file for browsers')
  .requiredOption('--dir <dir>', 'the management PKI (trustroll mgmt init)')
  .requiredOption('--name <name>', 'operator name, e.g. alice')
  .addOption(new Option('--role <role>', 'read sees everything; admin may also start, pause, resume, abort and exclude').choices(['read', 'admin']).default('read'))
  .option('--out <dir>', 'where to write <name>.pem, <name>.key (0600) and <name>.p12 (0600)', '.')
  .option('--days <n>', 'validity in days', int, 365)
  .option('--p12-password-file <file>', 'read the PKCS#12 password from this file (default: a random one, printed once)')
  .action(async (o: { dir: string; name: string; role: 'read' | 'admin'; out: string; days: number; p12PasswordFile?: string }) => {
    const ops = await OperatorPki.openOrCreate(o.dir, new Date());
    const c = await ops.issueOperator({ name: o.name, role: o.role, now: new Date(), lifetimeDays: o.days });
    const password = o.p12PasswordFile ? readFileSync(o.p12PasswordFile, 'utf8').trim() : newP12Password();
    mkdirSync(o.out, { recursive: true, mode: 0o700 });
    writeFileAtomic(join(o.out, `${o.name}.pem`), c.cert, 0o644);
    writeFileAtomic(join(o.out, `${o.name}.key`), c.key, 0o600);
    writeFileAtomic(join(o.out, `${o.name}.p12`), ops.pkcs12(c, password), 0o600);
    process.stdout.write([
      `operator ${o.name} (${o.role}): ${join(o.out, `${o.name}.pem`)}, ${join(o.out, `${o.name}.key`)}, ${join(o.out, `${o.name}.p12`)}`,
      `certificate sha256 ${c.sha256}`,
      ...(o.p12PasswordFile ? [] : [`PKCS#12 password (shown once): ${password}`]),
      `browsers: import the .p12 and trust ${join(o.dir, 'operator-ca.pem')} for the dashboard's HTTPS certificate`, '',
    ].join('\n'));
  });
mgmt.command('revoke-operator')
  .description('revoke an operator certificate (a running service reloads the list within seconds)')
  .requiredOption('--dir <dir>', 'the management PKI')
  .requiredOption('--cert <pem>', 'the operator\'s certificate file')
  .action(async (o: { dir: string; cert: string }) => {
    const ops = await OperatorPki.openOrCreate(o.dir, new Date());
    const cert = new X509Certificate(readFileSync(o.cert));
    ops.revoke({ sha256: fingerprint(cert), name: cert.subject.split('\n').find((l) => l.startsWith('CN='))?.slice(3) ?? '?', now: new Date() });
    process.stdout.write(`revoked ${fingerprint(cert)}\n`);
  });

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

program.command('serve')
  .description('run the manager as a service: MQTT session to the broker, rotations that survive restarts, HTTPS API and dashboard (operator mTLS or bearer token)')
  .option(...dataOption)
  .requiredOption('--mgmt <dir>', 'the management PKI (trustroll mgmt init); the operator CA and the HTTPS certificate are kept there too')
  .option('--broker <url>', 'mqtts://host:port of the fleet\'s broker, or "embedded" to run one in this process', 'embedded')
  .option('--embedded-port <port>', 'port of the embedded broker', (v: string) => Number.parseInt(v, 10), 8883)
  .option('--listen <host:port>', 'where the HTTPS API and dashboard listen (loopback unless you say otherwise)', '127.0.0.1:8443')
  .option('--https-name <name...>', 'more DNS names or IP addresses for the HTTPS certificate')
  .option('--sys-interval <s>', 'the broker\'s $SYS interval in seconds (Mosquitto sys_interval)', int, 10)
  .option('--ack-timeout <ms>', 'time a device has to acknowledge a step before it is resent', int, 30_000)
  .option('--max-attempts <n>', 'attempts per step before the rotation stops where it is', int, 5)
  .option('--rotate-before <duration>', 'scheduled root rotation: start one when the fleet root expires within this (e.g. 180d); default: never by itself', parseDuration)
  .option('--renew-before <duration>', 'scheduled renewal: renew device certificates that expire within this (e.g. 30d), one renewal for all due devices; default: never by itself', parseDuration)
  .option('--window <span>', 'maintenance window for scheduled work, e.g. "Sat 01:00-05:00", "Mon-Fri 22:00-02:00" or "daily 02:00-04:00" (repeatable; none: any time)', (v: string, all: string[]) => [...all, v], [] as string[])
  .option('--window-utc', 'read --window and --check-cron in UTC instead of the manager\'s local time', false)
  .option('--check-cron <expr>', 'when the scheduler checks (node-cron expression)', DEFAULT_CHECK_CRON)
  .addOption(new Option('--rotate-schedule <name>', 'schedule of a scheduled root rotation').choices(['six-step', 'batched']).default('six-step'))
  .option('--scheduled-exclude-offline-after <duration>', 'offline policy of scheduled work: exclude a device offline longer than this (default: wait for it)', parseDuration)
  .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
  .action(async (o: { data: string; mgmt: string; broker: string; embeddedPort: number; listen: string; httpsName?: string[]; sysInterval: number; ackTimeout: number; maxAttempts: number; logLevel: LogLevel; rotateBefore?: number; renewBefore?: number; window: string[]; windowUtc: boolean; checkCron: string; rotateSchedule: string; scheduledExcludeOfflineAfter?: number }) => {
    const stop = stopRequested();
    const logger = createLogger({ level: o.logLevel, sink: (l) => process.stdout.write(l + '\n') });
    const schedule = schedulerConfig({
      checkCron: o.checkCron, rotateBeforeS: o.rotateBefore, renewBeforeS: o.renewBefore, windows: o.window, utc: o.windowUtc,
      rotateSchedule: o.rotateSchedule, excludeOfflineAfterS: o.scheduledExcludeOfflineAfter,
    });
    const running = await runService({
      dataDir: o.data, mgmtDir: o.mgmt, pki: ManagementPki.load(o.mgmt, new Date()), broker: o.broker, embeddedPort: o.embeddedPort,
      listen: o.listen, httpsNames: o.httpsName, brokerSysIntervalMs: o.sysInterval * 1000,
      policy: { ackTimeoutMs: o.ackTimeout, maxAttempts: o.maxAttempts }, schedule, logger,
    });
    logger.info('ready', { url: running.url, broker: running.brokerUrl });
    logger.info('shutting down', { signal: await stop });
    await running.stop();
  });

const token = program.command('token').description('API tokens for scripts and monitoring (Authorization: Bearer)');
token.command('create')
  .description('create a token; the secret is printed once (only its hash is kept)')
  .option(...dataOption)
  .requiredOption('--name <name>', 'what uses it, e.g. prometheus')
  .addOption(new Option('--role <role>', 'read sees everything; admin may also act').choices(['read', 'admin']).default('read'))
  .action((o: { data: string; name: string; role: 'read' | 'admin' }) => {
    withServiceDb(o.data, (sdb) => process.stdout.write(sdb.createToken(o.name, o.role, new Date()) + '\n'));
  });
token.command('revoke')
  .description('revoke a token by name')
  .option(...dataOption)
  .requiredOption('--name <name>', 'token name')
  .action((o: { data: string; name: string }) => {
    withServiceDb(o.data, (sdb) => {
      if (!sdb.revokeToken(o.name)) throw new ManagerError('E_BAD_REQUEST', `no token named ${o.name}; "trustroll token list" shows them`);
      process.stdout.write(`token ${o.name} revoked\n`);
    });
  });
token.command('list')
  .description('list token names and roles (never the secrets)')
  .option(...dataOption)
  .action((o: { data: string }) => {
    withServiceDb(o.data, (sdb) => { for (const t of sdb.tokens()) process.stdout.write(`${t.name}\t${t.role}\t${t.createdAt}\n`); });
  });

function withServiceDb(data: string, fn: (sdb: ServiceDb) => void): void {
  withFleetDb(data, (db) => fn(new ServiceDb(db)));
}

function withFleetDb(data: string, fn: (db: FleetDb) => void): void {
  if (!existsSync(join(data, 'manager.db'))) throw new ManagerError('E_MANAGER_DB', `no manager database in ${data}; check --data`);
  const db = new FleetDb(join(data, 'manager.db'));
  try {
    fn(db);
  } finally {
    db.close();
  }
}

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


const ca = program.command('ca').description('the manager\'s certificate authority');
ca.command('init')
  .description('create the fleet root (once); prints its certificate')
  .option(...dataOption)
  .requiredOption('--subject <dn>', 'root subject, e.g. "CN=Printer Fleet Root,O=Example" (with --client-subject: the server root\'s)')
  .option('--client-subject <dn>', 'keep separate roots: a client root with this subject signs client certificates (servers trust it), the --subject root signs server certificates (clients trust it); each is rotated on its own (rotate --root)')
  .addOption(new Option('--algorithm <alg>', 'root key algorithm').choices([...CA_KEY_ALGORITHMS]).default('P-256'))
  .action(async (o: { data: string; subject: string; clientSubject?: string; algorithm: CaKeyAlgorithm }) => {
    const authority = await CaAuthority.openOrInit(join(o.data, 'ca'), { subject: o.subject, clientSubject: o.clientSubject, now: new Date(), policy: { algorithm: o.algorithm } });
    process.stdout.write(authority.activeRoot().cert + (authority.separateRoots() ? authority.activeRoot('client').cert : ''));
  });
ca.command('root')
  .description('print the root certificate devices are provisioned with (separate roots: --root client or server)')
  .option(...dataOption)
  .addOption(new Option('--root <side>', 'separate-roots fleets: the client root (a server verifies clients with it) or the server root (a client verifies servers with it)').choices(['client', 'server']))
  .action(async (o: { data: string; root?: RootSide }) => {
    const authority = await openCa(o.data);
    if (authority.separateRoots() && !o.root) throw new ManagerError('E_ROOT_SIDE', 'this fleet keeps separate client and server roots; name one with --root client or --root server');
    if (!authority.separateRoots() && o.root) throw new ManagerError('E_ROOT_SIDE', `this fleet has one root for both sides; there is no separate ${o.root} root (omit --root)`);
    process.stdout.write(authority.activeRoot(o.root).cert);
  });

ca.command('old-with-new')
  .description('print the newest root rotation\'s OldWithNew (old root key certified by the new one): append it to the chain of a device still presenting an old-root certificate so peers that trust only the new root accept it (docs/lifecycle.md)')
  .option(...dataOption)
  .action((o: { data: string }) => {
    const db = new FleetDb(join(o.data, 'manager.db'));
    try {
      const own = db.latestOldWithNew();
      if (!own) throw new ManagerError('E_ROTATION_UNKNOWN', `no root rotation in ${o.data} has an OldWithNew yet (it is made at the start of a root rotation)`);
      process.stdout.write(own.pem);
    } finally {
      db.close();
    }
  });

program.command('enroll')
  .description('enroll a device from its CSR (trustroll-agent init); prints its certificate')
  .option(...dataOption)
  .requiredOption('--id <deviceId>', 'device id (must equal the CSR common name)')
  .addOption(new Option('--role <role>', 'mTLS role of the device').choices(['server', 'client']).makeOptionMandatory())
  .requiredOption('--csr <file>', 'the device\'s certification request (PEM)')
  .option('--replace', 're-enrol a device that is already enrolled (new board or a key lost with its storage); provision it again afterwards', false)
  .option('--verifies <list>', 'signature algorithms the device can verify, comma-separated: RSA, ECDSA (or RSA-2048, RSA-3072, P-256, P-384); a rotation to a root it cannot verify is refused. Default: both', parseVerifies)
  .option('--via <relay>', 'the device reaches the manager only through this enrolled peer (see "trustroll route")')
  .action(async (o: { data: string; id: string; role: Role; csr: string; replace: boolean; verifies?: string[]; via?: string }) => {
    const authority = await openCa(o.data);
    const db = new FleetDb(join(o.data, 'manager.db'));
    try {
      process.stdout.write(enrollFromCsr(db, authority, { deviceId: o.id, role: o.role, csrPem: readFileSync(o.csr, 'utf8'), now: new Date(), replace: o.replace, verifies: o.verifies }));
      if (o.via) setRoute(db, o.id, o.via);
    } finally {
      db.close();
    }
  });

program.command('route')
  .description('who reaches whom: show every device\'s route, or route one device through a relay (a peer over mutual TLS that reaches the broker) or directly')
  .option(...dataOption)
  .option('--id <deviceId>', 'the device to route')
  .option('--via <relay>', 'its relay: a printer for a client behind a firewall, a client for a printer the manager cannot reach; the relay\'s agent lists the device in "relay.for", the device\'s agent names the relay in "via"')
  .option('--direct', 'the device reaches the broker itself', false)
  .option('--json', 'print JSON', false)
  .action((o: { data: string; id?: string; via?: string; direct: boolean; json: boolean }) => {
    if ((o.via || o.direct) && !o.id) throw new ManagerError('E_SERVICE_CONFIG', 'give --id with --via or --direct');
    if (o.via && o.direct) throw new ManagerError('E_SERVICE_CONFIG', 'give --via or --direct, not both');
    if (o.id && !o.via && !o.direct) throw new ManagerError('E_SERVICE_CONFIG', 'give --via <relay> or --direct for --id');
    const db = new FleetDb(join(o.data, 'manager.db'));
    try {
      if (o.id) setRoute(db, o.id, o.direct ? null : o.via!);
      const topo = topology(db);
      process.stdout.write((o.json ? JSON.stringify(topo, null, 2) : describeTopology(topo)) + '\n');
    } finally {
      db.close();
    }
  });

program.command('verifies')
  .description('show, or declare after enrolment, which signature algorithms an enrolled device can verify (a rotation to a root it cannot verify is refused)')
  .option(...dataOption)
  .requiredOption('--id <deviceId>', 'the enrolled device')
  .option('--set <list>', 'declare: comma-separated RSA, ECDSA (or RSA-2048, RSA-3072, P-256, P-384)', parseVerifies)
  .option('--undeclare', 'forget the declaration: the device is taken to verify RSA and ECDSA', false)
  .action(async (o: { data: string; id: string; set?: string[]; undeclare: boolean }) => {
    if (o.set && o.undeclare) throw new ManagerError('E_SERVICE_CONFIG', 'give --set or --undeclare, not both');
    const authority = await openCa(o.data);
    const db = new FleetDb(join(o.data, 'manager.db'));
    try {
      if (o.set || o.undeclare) db.setDeviceVerifies(o.id, o.set ?? null);
      else db.device(o.id);
      const declared = db.deviceVerifies().get(o.id);
      process.stdout.write(`${o.id} verifies ${declared ? declared.join(',') : 'RSA,ECDSA (not declared)'}\n`);
      const active = rootAlgorithm(authority.activeRoot().cert);
      if (declared && !canVerify(declared, active)) process.stderr.write(`warning: ${o.id} cannot verify the fleet root (${active}); it cannot authenticate its peers until the fleet root is one it verifies\n`);
    } finally {
      db.close();
    }
  });

async function openCa(data: string): Promise<CaAuthority> {
  if (!existsSync(join(data, 'ca', 'ca.json'))) throw new ManagerError('E_NO_ROOT', `no CA in ${data}; run "trustroll ca init --data ${data} --subject ..." first`);
  return CaAuthority.openOrInit(join(data, 'ca'), { subject: 'unused', now: new Date() });
}

try {
  addLinkCommands(program, dataOption);
  addAuditCommands(program, dataOption);
  await program.parseAsync();
} catch (err) {
  const code = err instanceof ProtocolError ? err.code : (err as { code?: string }).code;
  process.stderr.write(`trustroll: ${(err as Error).message}${code && !(err as Error).message.startsWith(code) ? ` (${code})` : ''}\n`);
  process.exitCode = 2;
}
