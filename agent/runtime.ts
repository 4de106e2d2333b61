/**
 * The device runtime (`trustroll-agent run`): opens what the configuration
 * names (HAL, trust store, agent), connects out to the broker over the
 * management channel, serves the device's mutual-TLS service (server role)
 * or handshakes with its servers (client role), and reports what it does as
 * JSON log lines until it is stopped.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Clock } from '../protocol/clock.ts';
import { commandVerifier } from '../protocol/command-signature.ts';
import type { Logger } from '../protocol/log.ts';
import { openAgentRuntime, type AgentConfig, type AgentRuntime } from './config.ts';
import { AgentError } from './errors.ts';
import net from 'node:net';
import { StunnelTerminator } from '../hal/tls/stunnel.ts';
import { DeviceLink } from './mqtt-link.ts';
import { DeviceTlsConnector } from './tls/device-tls-connector.ts';
import { DeviceTlsServer } from './tls/device-tls-server.ts';
import { DeviceTokenTlsServer } from './tls/device-token-tls-server.ts';

/** Handshake counters of a client-role device's probe loop. */
export interface ProbeTally {
  attempted: number;
  failed: number;
  fallbacks: number;
  failures: string[];
}

/** A running device. */
export interface RunningDevice {
  readonly deviceId: string;
  /** Resolves true once connected and subscribed to the broker (false after 30 s; it keeps retrying). */
  readonly linked: Promise<boolean>;
  /** The port of the device's mTLS service (server role), else null. */
  readonly tlsPort: number | null;
  probeTally(): ProbeTally;
  stop(): Promise<void>;
}

function readPem(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentError('E_AGENT_CONFIG', `setting "${setting}": cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Start the device described by `config`; it must be provisioned and have a `link`. */
export async function runDevice(config: AgentConfig, deps: { clock: Clock; logger: Logger }): Promise<RunningDevice> {
  const link = config.link;
  if (!link) throw new AgentError('E_AGENT_CONFIG', 'setting "link" is required to run the agent');
  const commandKeys = new Map<string, KeyObject>(Object.entries(link.commandKeys).map(([id, file]) => [id, createPublicKey(readPem(file, `link.commandKeys.${id}`))]));
  const rt: AgentRuntime = await openAgentRuntime(config, { ...deps, verifySignature: commandVerifier(commandKeys) });
  const tlsFiles: { ca: string; cert: string; key?: string } = { ca: readPem(link.ca, 'link.ca'), cert: readPem(link.cert, 'link.cert') };
  let terminator: StunnelTerminator | null = null;
  let stream: (() => net.Socket) | undefined;
  if (link.key) tlsFiles.key = readPem(link.key, 'link.key');
  else {
    // The management key lives in the HAL: in memory it goes to Node's TLS, in a token through the terminator.
    const ref = await rt.keys.tlsKey?.(link.keyLabel!);
    if (!ref) {
      await rt.close();
      throw new AgentError('E_AGENT_CONFIG', `setting "link.keyLabel": the HAL has no TLS access to key "${link.keyLabel}"`);
    }
    if (ref.kind === 'pem') tlsFiles.key = ref.keyPem;
    else {
      const url = new URL(link.url);
      terminator = await StunnelTerminator.start(ref, { host: url.hostname, port: Number(url.port || 8883), servername: link.serverName ?? url.hostname, certPem: tlsFiles.cert, caPem: tlsFiles.ca });
      const socketPath = terminator.socketPath;
      stream = () => net.connect(socketPath);
    }
  }
  const logger = deps.logger.child({ deviceId: config.deviceId });
  const agent = rt.agent;
  if (!agent) {
    await rt.close();
    throw new AgentError('E_AGENT_NOT_PROVISIONED', `device ${config.deviceId} is not provisioned; run "trustroll-agent provision" first`);
  }
  let server: { port: number; close(): Promise<void> } | null = null;
  let connector: DeviceTlsConnector | null = null;
  let probing = false;
  let probeLoop: Promise<void> = Promise.resolve();
  const tally: ProbeTally = { attempted: 0, failed: 0, fallbacks: 0, failures: [] };
  if (config.role === 'server' && config.tls) {
    // A key inside a token (PKCS#11, TPM) is served through the HAL's TLS terminator; in-memory keys by Node itself.
    const ref = await rt.keys.tlsKey?.(agent.identities()[0]!.keyLabel);
    const opts = { agent, keys: rt.keys, logger, host: config.tls.host, port: config.tls.port };
    server = ref?.kind === 'pkcs11' ? await DeviceTokenTlsServer.start(opts) : await DeviceTlsServer.start(opts);
    logger.info('mTLS service listening', { host: config.tls.host, port: server.port });
  }
  const mqtt = new DeviceLink({ url: link.url, agent, tls: tlsFiles, clock: deps.clock, logger, stream });
  // A device that cannot reach the broker keeps retrying; it is not a start-up failure.
  const linked = mqtt.ready(30_000).then(() => true, (err: Error) => {
    logger.warn('broker not reachable yet; retrying', { reason: err.message });
    return false;
  });
  if (config.role === 'client' && config.probe && config.probe.targets.length > 0) {
    connector = await DeviceTlsConnector.create({ agent, keys: rt.keys, logger });
    probing = true;
    const probe = config.probe;
    probeLoop = (async () => {
      while (probing) {
        for (const target of probe.targets) {
          if (!probing) break;
          const r = await connector!.check(target);
          tally.attempted++;
          if (!r.ok) {
            tally.failed++;
            if (tally.failures.length < 20) tally.failures.push(`${config.deviceId} -> ${target.serverId}: ${r.error?.code} ${r.error?.message}`);
            logger.warn('handshake failed', { server: target.serverId, code: r.error?.code, reason: r.error?.message });
          } else if (r.fallback) tally.fallbacks++;
        }
        if (probe.intervalMs > 0) await new Promise((r) => setTimeout(r, probe.intervalMs));
      }
    })();
  }
  const report = setInterval(() => logger.info('probe tally', { ...tally, failures: undefined }), 1000);
  report.unref();
  return {
    deviceId: config.deviceId,
    linked,
    tlsPort: server?.port ?? null,
    probeTally: () => ({ ...tally, failures: [...tally.failures] }),
    stop: async () => {
      probing = false;
      clearInterval(report);
      await probeLoop;
      connector?.close();
      await mqtt.close();
      await terminator?.close();
      await server?.close();
      await rt.close();
      logger.info('stopped', { probe: tally });
    },
  };
}
