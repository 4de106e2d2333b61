/**
 * The device runtime (`trustroll-agent run`): opens what the configuration
 * names (HAL, trust store, agent), connects out to the broker over the
 * management channel, serves the device's mutual-TLS service (server role)
 * or handshakes with its servers (client role), and reports what it does as
 * JSON log lines until it is stopped. Its handshake counters travel in the
 * retained state message; its health (link, counters, key backend, refused
 * commands, write access to its folders) goes to the health file in its
 * runtime folder that `status` and `selftest` read.
 */
import type { Clock } from '../protocol/clock.ts';
import { commandVerifier } from '../protocol/command-signature.ts';
import type { Logger } from '../protocol/log.ts';
import type { TlsCounters } from '../protocol/messages/device-state.ts';
import { openAgentRuntime, type AgentConfig, type AgentRuntime } from './config.ts';
import { AgentError } from './errors.ts';
import { healthFilePath } from './health-file.ts';
import { HealthReporter, reportFailedStart } from './health-reporter.ts';
import { checkLinkFiles, openLinkTls, readCommandKeys, type LinkTls } from './link-tls.ts';
import { DeviceLink } from './mqtt-link.ts';
import { withLinkRotation } from './link-rotation/link-setup.ts';
import { linkMaterialOf } from './link-rotation/link-store.ts';
import type { RelayPusher } from './relay/relay-pusher.ts';
import type { RelayUplink } from './relay/relay-uplink.ts';
import { linkDirOf } from './state-paths.ts';
import { lostRecordError } from './state-store.ts';
import { DeviceTlsConnector } from './tls/device-tls-connector.ts';
import { DeviceTlsServer } from './tls/device-tls-server.ts';
import type { DeviceTokenTlsServer } from './tls/device-token-tls-server.ts';
import type { Uplink } from './uplink.ts';

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
  /** Resolves true once connected and subscribed to the broker, or a relayed device's first exchange with its relay (false after 30 s; it keeps retrying). */
  readonly linked: Promise<boolean>;
  /** The port of the device's mTLS service (server role), else null. */
  readonly tlsPort: number | null;
  probeTally(): ProbeTally;
  /** The handshake counters the state message carries, or null when the device makes or serves none. */
  tlsCounters(): TlsCounters | null;
  /** Where the agent writes its health file. */
  readonly healthFile: string;
  /** False only while the command channel is down with no reconnect pending or under way (wedged): the systemd watchdog's link check. */
  linkAlive(): boolean;
  /** Be told when the command channel comes up or goes down; returns an unsubscribe function. */
  onLinkChange(listener: (up: boolean) => void): () => void;
  stop(): Promise<void>;
}

/** How the device runs: its clock and logger, and the configuration file it came from (for the health file). */
export interface RunDeps {
  clock: Clock;
  logger: Logger;
  configPath?: string;
}

/**
 * Start the device described by `config`; it must be provisioned and have a
 * `link` (or, relayed, a `via`). A start that fails leaves its reason and
 * the agent's user in the health file before the error is thrown.
 */
export async function runDevice(config: AgentConfig, deps: RunDeps): Promise<RunningDevice> {
  try {
    return await startDevice(config, deps);
  } catch (err) {
    await reportFailedStart(healthFilePath(config), config, deps.configPath ?? null, err, deps.clock.now());
    throw err;
  }
}

async function startDevice(config: AgentConfig, deps: RunDeps): Promise<RunningDevice> {
  const { link, via, relay } = config;
  if (!link && !via) throw new AgentError('E_AGENT_CONFIG', 'setting "link" is required to run the agent (or "via" for a device whose commands come through a relay)');
  const r = relay || via ? await relayModules() : null;
  // Every file the link names is parsed and matched before anything is opened, listens or connects.
  // The link record under the state folder, once a management-root rotation wrote one, wins over the configured (factory) files.
  const linkPlace = link ? { dir: linkDirOf(config), link } : null;
  const checked = link ? checkLinkFiles(link, linkMaterialOf(linkPlace!)) : null;
  const commandKeys = checked ? checked.commandKeys : readCommandKeys(via!.commandKeys, 'via.commandKeys');
  const rt: AgentRuntime = await openAgentRuntime(config, { clock: deps.clock, logger: deps.logger, verifySignature: commandVerifier(commandKeys), keepRefusals: true });
  let linkTls: LinkTls | null = null;
  try {
    if (link) linkTls = await openLinkTls(link, rt.keys, checked!);
  } catch (err) {
    await rt.close();
    throw err;
  }
  const logger = deps.logger.child({ deviceId: config.deviceId });
  const agent = rt.agent;
  if (!agent) {
    const integrity = rt.store.integrity?.();
    await linkTls?.close();
    await rt.close();
    if (integrity?.rolledBack) throw lostRecordError(integrity, config.deviceId);
    throw new AgentError('E_AGENT_NOT_PROVISIONED', `device ${config.deviceId} is not provisioned; run "trustroll-agent provision" first`);
  }
  const since = deps.clock.now().toISOString();
  let server: DeviceTlsServer | DeviceTokenTlsServer | null = null;
  let connector: DeviceTlsConnector | null = null;
  let mqtt: DeviceLink | null = null;
  // Server role: incoming handshakes (the token terminator reports accepted ones only); client role: the connector's.
  const tlsCounters = (): TlsCounters | null => {
    // `failed` counts trust failures only; a peer that never got to a handshake is `unreachable`; self-test probes count in neither.
    if (server instanceof DeviceTlsServer) {
      const s = server.stats();
      return { attempts: s.accepted + s.rejected + s.alerted + s.aborted, ok: s.accepted, failed: s.rejected + s.alerted, unreachable: s.aborted, fallbacks: 0, since };
    }
    if (server) {
      const s = server.stats();
      return { attempts: s.accepted, ok: s.accepted, failed: 0, unreachable: 0, fallbacks: 0, since };
    }
    if (connector) {
      const s = connector.stats();
      return { attempts: s.attempted, ok: s.ok, failed: s.failed, unreachable: s.unreachable, fallbacks: s.fallbacks, since };
    }
    return null;
  };
  // A relay publishes for the devices behind it on its own session (bound once the link exists).
  const hub = relay && link ? new r!.RelayHub({
    relayId: config.deviceId, downstream: relay.for, clock: deps.clock, logger,
    offlineAfterMs: 5 * Math.max(relay.intervalMs ?? 2_000, 2_000),
    publish: (topic, payload, retain) => mqtt!.publishConfirmed(topic, payload, retain),
  }) : null;
  const inbound = via && config.role === 'server'
    ? new r!.RelayInbound({ agent, relayId: via.relay, clock: deps.clock, logger, tlsCounters, staleAfterMs: 5 * (via.pollMs ?? 2_000) })
    : null;
  if (config.role === 'server' && config.tls) {
    // A key inside a token (PKCS#11, TPM) is served through the HAL's TLS terminator; in-memory keys by Node itself.
    const ref = await rt.keys.tlsKey?.(agent.identities()[0]!.keyLabel);
    const relayHandler = inbound?.handler ?? (hub ? r!.relayServerHandler(hub, logger) : undefined);
    const opts = { agent, keys: rt.keys, logger, host: config.tls.host, port: config.tls.port, relay: relayHandler };
    if (ref?.kind === 'pkcs11' && relayHandler) {
      await linkTls?.close();
      await rt.close();
      throw new AgentError('E_AGENT_CONFIG', 'setting "relay"/"via": relaying runs on the device\'s own mutual-TLS service, which needs its key in memory (file or EEPROM backend); a token key is served by the HAL\'s terminator, which carries no relay requests');
    }
    // The token terminator (stunnel) is loaded only for a key inside a token.
    server = ref?.kind === 'pkcs11' ? await (await import('./tls/device-token-tls-server.ts')).DeviceTokenTlsServer.start(opts) : await DeviceTlsServer.start(opts);
    logger.info('mTLS service listening', { host: config.tls.host, port: server.port });
  }
  if (config.role === 'client' && ((config.probe?.targets.length ?? 0) > 0 || via || relay)) {
    connector = await DeviceTlsConnector.create({ agent, keys: rt.keys, logger });
  }
  let uplink: Uplink;
  let uplinkUrl: string;
  let pusher: RelayPusher | null = null;
  let poller: RelayUplink | null = null;
  if (link) {
    // The management root rotates too (agent/link-rotation): link commands, and the link material each connection presents.
    mqtt = new DeviceLink(withLinkRotation({
      url: link.url, agent, tls: linkTls!.tls, clock: deps.clock, logger, stream: linkTls!.stream,
      tlsCounters, stateIntervalMs: link.stateIntervalMs, onRefused: (ack, raw) => rt.refusals!.record(ack, raw),
      ...(hub ? { extra: { filters: hub.filters(), onMessage: (topic: string, payload: Buffer, retained: boolean) => hub.fromBroker(topic, payload, retained) } } : {}),
    }, { link, linkDir: linkPlace!.dir, checked: checked!, linkTls: linkTls!, keys: rt.keys }));
    uplink = mqtt;
    uplinkUrl = relay ? `${link.url} (relay for ${relay.for.join(', ')})` : link.url;
    if (hub && config.role === 'client') {
      const targets = (config.probe?.targets ?? []).filter((t) => relay!.for.includes(t.serverId));
      pusher = new r!.RelayPusher({ hub, connector: connector!, targets, intervalMs: relay!.intervalMs ?? 2_000, logger });
    }
  } else if (config.role === 'client') {
    poller = new r!.RelayUplink({ agent, connector: connector!, relay: { host: via!.host!, port: via!.port!, serverId: via!.relay }, pollMs: via!.pollMs ?? 2_000, clock: deps.clock, logger, tlsCounters });
    poller.start();
    uplink = poller;
    uplinkUrl = `mtls://${via!.host}:${via!.port} (relay ${via!.relay})`;
  } else {
    uplink = inbound!;
    uplinkUrl = `relay ${via!.relay} (pushes to this device)`;
  }
  // A device that cannot reach the broker (or its relay) keeps retrying; it is not a start-up failure.
  let stopping = false;
  const linked = (mqtt ? mqtt.ready(30_000) : firstUp(uplink, 30_000, uplinkUrl)).then(() => true, (err: Error) => {
    if (stopping) return false;
    logger.warn(mqtt ? 'broker not reachable yet; retrying' : 'relay not reachable yet; retrying', { reason: err.message });
    return false;
  });
  let probing = false;
  let probeLoop: Promise<void> = Promise.resolve();
  const tally: ProbeTally = { attempted: 0, failed: 0, fallbacks: 0, failures: [] };
  if (config.role === 'client' && config.probe && config.probe.targets.length > 0) {
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
  // The probe loop's counts, logged at most once a second and only when they moved: an idle device writes no log lines.
  let reported = '';
  const report = setInterval(() => {
    const line = `${tally.attempted}/${tally.failed}/${tally.fallbacks}`;
    if (line === reported) return;
    reported = line;
    logger.info('probe tally', { ...tally, failures: undefined });
  }, 1000);
  report.unref();
  const healthFile = healthFilePath(config);
  const health = await HealthReporter.start({
    path: healthFile, config, configPath: deps.configPath ?? null, url: uplinkUrl, link: uplink, keys: rt.keys,
    tls: tlsCounters, refused: () => rt.refusals!.summary(), tlsPort: server?.port ?? null, clock: deps.clock, logger,
  });
  return {
    deviceId: config.deviceId,
    linked,
    tlsPort: server?.port ?? null,
    healthFile,
    linkAlive: () => mqtt?.alive ?? true,
    onLinkChange: (listener) => uplink.onLinkChange(listener),
    probeTally: () => ({ ...tally, failures: [...tally.failures] }),
    tlsCounters,
    stop: async () => {
      stopping = true;
      probing = false;
      clearInterval(report);
      await probeLoop;
      await pusher?.close();
      await poller?.close();
      inbound?.close();
      await hub?.close();
      connector?.close();
      await mqtt?.close();
      await health.stop();
      await linkTls?.close();
      await server?.close();
      await rt.close();
      logger.info('stopped', { probe: tally });
    },
  };
}

/** The relay's code (agent/relay/), imported only by a device that relays or is relayed. */
async function relayModules() {
  const [{ RelayHub }, { RelayInbound }, { RelayPusher }, { relayServerHandler }, { RelayUplink }] = await Promise.all([
    import('./relay/relay-hub.ts'), import('./relay/relay-inbound.ts'), import('./relay/relay-pusher.ts'), import('./relay/relay-server.ts'), import('./relay/relay-uplink.ts'),
  ]);
  return { RelayHub, RelayInbound, RelayPusher, relayServerHandler, RelayUplink };
}

/** Resolves once `uplink` is up; rejects with E_AGENT_RELAY after `timeoutMs`. */
function firstUp(uplink: Uplink, timeoutMs: number, where: string): Promise<void> {
  if (uplink.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new AgentError('E_AGENT_RELAY', `${where}: no exchange with the relay within ${timeoutMs} ms (${uplink.stats.lastError ?? 'no answer'})`)); }, timeoutMs);
    timer.unref(); // a device stopped before its relay answered exits at once
    const off = uplink.onLinkChange((up) => {
      if (!up) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}
