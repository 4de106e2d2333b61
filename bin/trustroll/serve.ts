/**
 * `trustroll serve`: the manager as a service (MQTT session, rotations that
 * survive restarts, the HTTPS API and dashboard, the scheduler), and
 * `trustroll token ...`: the API's bearer tokens for scripts.
 */
import { Option, type Command } from 'commander';
import { ManagerError } from '../../manager/errors.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { runService } from '../../manager/service/run-service.ts';
import { DEFAULT_CHECK_CRON, schedulerConfig } from '../../manager/service/scheduler.ts';
import { createLogger, type LogLevel } from '../../protocol/log.ts';
import { stopRequested } from '../stop-signal.ts';
import { dataOption, int, parseDuration, withServiceDb } from './options.ts';

/** `trustroll serve` and `trustroll token ...`: the manager as a service and its API tokens. */
export function addServeCommands(program: Command): void {
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
}
