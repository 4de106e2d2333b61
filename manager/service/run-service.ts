/**
 * `trustroll serve` put together: the broker (an operator's Mosquitto, or
 * the embedded one), the manager service, the HTTPS API and dashboard, and
 * `service.json` in the data folder (0600: URL, pid and a per-run local
 * token) through which the `trustroll` CLI on the same machine hands
 * `rotate` to the running service instead of opening a second MQTT session
 * under the manager's identity.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, watchFile, unwatchFile } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../protocol/log.ts';
import { EmbeddedBroker } from '../broker/embedded-broker.ts';
import { ManagerError } from '../errors.ts';
import { buildHttpServer } from '../http/server.ts';
import { writeFileAtomic } from '../pki/key-vault.ts';
import type { ManagementPki } from '../pki/management-pki.ts';
import { OperatorPki } from '../pki/operator-pki.ts';
import type { RotationPolicy } from '../rotation/orchestrator.ts';
import { ManagerService } from './manager-service.ts';
import { Scheduler, schedulerConfig, schedulerEnabled, type SchedulerConfig } from './scheduler.ts';
import { serviceHost } from './scheduler-host.ts';
import { systemClock } from '../../protocol/clock.ts';

/** Settings of `trustroll serve`. */
export interface ServeOptions {
  dataDir: string;
  mgmtDir: string;
  pki: ManagementPki;
  /** mqtts://host:port of the fleet's broker, or `embedded` (aedes in this process, on `embeddedPort`). */
  broker: string;
  embeddedPort?: number;
  /** host:port for the HTTPS API and dashboard (default 127.0.0.1:8443; port 0 = any free port). */
  listen: string;
  /** Extra names (DNS or IP) the HTTPS certificate carries besides localhost, 127.0.0.1 and ::1. */
  httpsNames?: readonly string[];
  brokerSysIntervalMs?: number;
  policy?: Partial<RotationPolicy>;
  /** Scheduled rotation and renewal (scheduler.ts); checks run only when it names --rotate-before or --renew-before. */
  schedule?: SchedulerConfig;
  logger: Logger;
}

/** What `service.json` holds. */
export interface ServiceInfo {
  pid: number;
  url: string;
  token: string;
  startedAt: string;
}

/** A running service. */
export interface RunningService {
  readonly service: ManagerService;
  readonly http: FastifyInstance;
  /** https://host:port of the API. */
  readonly url: string;
  readonly brokerUrl: string;
  readonly operators: OperatorPki;
  stop(): Promise<void>;
}

/** The service.json of a live `trustroll serve` on `dataDir`, or null. */
export function liveService(dataDir: string): ServiceInfo | null {
  const file = join(dataDir, 'service.json');
  if (!existsSync(file)) return null;
  try {
    const info = JSON.parse(readFileSync(file, 'utf8')) as ServiceInfo;
    process.kill(info.pid, 0);
    return info;
  } catch {
    return null;
  }
}

const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+:[0-9a-fA-F:]*)$/;

/** Start everything; resolves once the API listens. */
export async function runService(o: ServeOptions): Promise<RunningService> {
  const log = o.logger.child({ component: 'serve' });
  const other = liveService(o.dataDir);
  if (other && other.pid !== process.pid) throw new ManagerError('E_SERVICE_CONFIG', `another trustroll serve (pid ${other.pid}, ${other.url}) runs on ${o.dataDir}; stop it first`);
  const [host, portText] = splitHostPort(o.listen);
  const now = new Date();
  const operators = await OperatorPki.openOrCreate(o.mgmtDir, now);
  const names = ['localhost', '127.0.0.1', '::1', ...(o.httpsNames ?? []), ...(host !== '0.0.0.0' && host !== '::' ? [host] : [])];
  const tls = operators.httpsIdentity({ dnsNames: unique(names.filter((n) => !IP.test(n))), ipAddresses: unique(names.filter((n) => IP.test(n))), now });

  let embedded: EmbeddedBroker | null = null;
  let brokerUrl = o.broker;
  if (o.broker === 'embedded') {
    embedded = await EmbeddedBroker.start({ ca: o.pki.ca, ...o.pki.broker, logger: o.logger, port: o.embeddedPort ?? 8883, sysIntervalMs: o.brokerSysIntervalMs });
    brokerUrl = embedded.url;
  }
  let service: ManagerService | null = null;
  let http: FastifyInstance | null = null;
  let revoked = operators.revoked();
  const revokedFile = join(o.mgmtDir, 'operators-revoked.json');
  const reloadRevoked = () => {
    try {
      revoked = operators.revoked();
      log.info('operator revocation list reloaded', { revoked: revoked.size });
    } catch (err) {
      log.error('operator revocation list unreadable; keeping the previous one', { reason: (err as Error).message });
    }
  };
  try {
    service = await ManagerService.start({ dataDir: o.dataDir, pki: o.pki, brokerUrl, logger: o.logger, policy: o.policy, brokerSysIntervalMs: o.brokerSysIntervalMs });
    const localToken = randomBytes(24).toString('base64url');
    const svc = service;
    const scheduler = new Scheduler(o.schedule ?? schedulerConfig({}), serviceHost(svc), { clock: systemClock, logger: o.logger });
    svc.scheduler = scheduler;
    if (schedulerEnabled(scheduler.config)) scheduler.start();
    http = await buildHttpServer({
      service, logger: o.logger, tls: { ...tls, operatorCa: operators.ca }, mgmtCa: o.pki.ca,
      auth: { revoked: () => revoked, token: (s) => svc.sdb.token(s), localToken },
      broker: () => svc.brokerView(),
    });
    await http.listen({ host, port: portText });
    const addr = http.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : portText;
    const url = `https://${host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    writeFileAtomic(join(o.dataDir, 'service.json'), JSON.stringify({ pid: process.pid, url, token: localToken, startedAt: now.toISOString() } satisfies ServiceInfo) + '\n', 0o600);
    watchFile(revokedFile, { interval: 2000 }, reloadRevoked);
    log.info('manager service listening', { url, broker: brokerUrl, data: o.dataDir });
    let stopped = false;
    const h = http;
    return {
      service, http, url, brokerUrl, operators,
      async stop() {
        if (stopped) return;
        stopped = true;
        unwatchFile(revokedFile, reloadRevoked);
        rmSync(join(o.dataDir, 'service.json'), { force: true });
        await scheduler.stop();
        await h.close();
        await svc.close();
        await embedded?.close();
        log.info('manager service stopped');
      },
    };
  } catch (err) {
    await service?.scheduler?.stop().catch(() => undefined);
    await http?.close().catch(() => undefined);
    await service?.close().catch(() => undefined);
    await embedded?.close().catch(() => undefined);
    throw err;
  }
}

function splitHostPort(listen: string): [string, number] {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || port > 65535) throw new ManagerError('E_SERVICE_CONFIG', `--listen ${JSON.stringify(listen)}: use host:port, e.g. 127.0.0.1:8443 (0.0.0.0:8443 to listen on every interface)`);
  return [m[1], port];
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}
