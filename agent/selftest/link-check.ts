/**
 * The self-test's broker link check.
 *
 * The broker forces the MQTT client id to the certificate's CN
 * (`use_username_as_clientid`), so a second connection as the device would
 * take over the running agent's session and kick it off. Hence:
 * - an agent is running (its health file names a live process): the
 *   link's state is read from the health file, and the broker is left alone;
 * - no agent runs: the broker is probed without disturbing the device's
 *   persistent session: a TLS handshake with the link certificate (the
 *   broker's certificate must chain to link.ca; the broker must accept the
 *   client certificate), then MQTT CONNECT with clean=false (the session and
 *   its queued commands stay), no will (the retained state is not touched),
 *   no SUBSCRIBE, no PUBLISH, and no PUBACK for anything the broker
 *   delivers (handleMessage never acknowledges), so every queued command is
 *   redelivered to the agent when it connects; then DISCONNECT.
 * The link files the configuration on disk names are checked either way
 * (linkFilesCheck): a running agent holds its key in memory and would not
 * start again without the file. After a management-root rotation the link
 * record under the state folder holds the CA and certificate in force
 * (link-rotation/link-store.ts); both the probe and the check use them and
 * say so.
 */
import { connect, MqttClient, type IClientOptions } from 'mqtt';
import type { KeyStore } from '../../hal/key-store.ts';
import { MQTT_PROTOCOL_VERSION } from '../../protocol/topics.ts';
import type { AgentConfig, LinkConfig } from '../config.ts';
import type { HealthView } from '../health-file.ts';
import { linkMaterialOf } from '../link-rotation/link-store.ts';
import { checkLinkFiles, openLinkTls } from '../link-tls.ts';
import { linkDirOf } from '../state-paths.ts';
import { plainMessage, type Check } from './report.ts';

const BROKER_CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_|ALTNAME|HOSTNAME|ERR_TLS_CERT/;
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT']);

/** How a broker probe ended. */
type ProbeResult = { ok: true; protocol: string | null } | { ok: false; message: string; action: string };

/** Why a failed connection failed, in a technician's words, with what to do. */
function explain(link: LinkConfig, err: Error & { code?: string | number }): { message: string; action: string } {
  const code = typeof err.code === 'string' ? err.code : '';
  if (NETWORK_ERRORS.has(code)) {
    return { message: `the broker at ${link.url} does not answer (${code || err.message})`, action: 'check that the broker runs, that link.url names its host and port, and the network between the device and the broker' };
  }
  if (BROKER_CERT_ERRORS.test(code)) {
    return { message: `the broker's certificate is not trusted: ${err.message}`, action: 'check link.ca (the management CA that issued the broker\'s certificate) and that link.url uses a name the broker\'s certificate carries' };
  }
  if (typeof err.code === 'number') {
    return { message: `the broker accepted the TLS handshake but refused the MQTT session: ${err.message}`, action: 'check that link.cert names this device (CN = device id) and that the broker maps it to the username and allows it in its ACL' };
  }
  return {
    message: `the broker refused the device's management certificate during the TLS handshake (${code || err.message})`,
    action: 'check link.cert and link.key: the certificate must come from the management CA the broker trusts (trustroll mgmt device), be unexpired, carry CN = device id, and match the key',
  };
}

/** Connect as the device without touching its session (see the module comment); never throws. */
async function probeBroker(config: AgentConfig & { link: LinkConfig }, keys: KeyStore | null, timeoutMs: number): Promise<ProbeResult> {
  const link = config.link;
  if (!link.key && !keys) return { ok: false, message: 'the link key lives in the HAL, which did not open (see the key check)', action: 'fix the key backend first' };
  let linkTls;
  try {
    linkTls = await openLinkTls(link, keys!, checkLinkFiles(link, linkMaterialOf({ dir: linkDirOf(config), link })));
  } catch (err) {
    return { ok: false, message: plainMessage(err), action: 'fix the file or key named in the message (the link settings come from "trustroll mgmt device")' };
  }
  const session: IClientOptions = {
    clientId: config.deviceId, clean: false, protocolVersion: MQTT_PROTOCOL_VERSION, reconnectPeriod: 0, resubscribe: false,
    keepalive: 30, connectTimeout: timeoutMs,
    // No 6 MB table of pre-built two-byte Buffers for one short check (see mqtt-link.ts).
    writeCache: false,
  };
  const stream = linkTls.stream;
  // Host and port as options, not the URL string MQTT.js would parse with url.parse (DEP0169 on Node 24).
  const u = new URL(link.url);
  const broker = { protocol: 'mqtts' as const, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 8883) };
  const client = stream ? new MqttClient(() => stream(), { ...session, protocol: 'mqtt' }) : connect({ ...broker, ...linkTls.tls, rejectUnauthorized: true, ...session });
  // Never acknowledge a delivery: the command stays queued for the agent.
  client.handleMessage = () => undefined;
  try {
    return await new Promise<ProbeResult>((resolve) => {
      const timer = setTimeout(() => resolve({ ok: false, message: `no answer to MQTT CONNECT from ${link.url} within ${timeoutMs} ms`, action: 'check that link.url points at the MQTT broker and that it is not overloaded' }), timeoutMs + 1_000);
      client.once('connect', () => {
        clearTimeout(timer);
        const s = client.stream as { getProtocol?: () => string | null };
        resolve({ ok: true, protocol: s.getProtocol?.() ?? null });
      });
      client.once('error', (err) => { clearTimeout(timer); resolve({ ok: false, ...explain(link, err as Error & { code?: string | number }) }); });
      client.once('close', () => {
        clearTimeout(timer);
        resolve({ ok: false, message: `the broker at ${link.url} closed the connection before answering CONNECT`, action: 'check link.cert and link.key (from the management CA the broker trusts, CN = device id) and the broker\'s log' });
      });
    });
  } finally {
    await client.endAsync(true).catch(() => undefined);
    await linkTls.close();
  }
}

/** The running agent's link as its health file tells it: fails while it is not connected (the broker unreachable or refusing). */
export function runningLinkCheck(view: Extract<HealthView, { state: 'running' }>, path: string): Check {
  const { health } = view;
  const l = health.link!;
  if (l.connected) {
    return { name: 'link', status: 'ok', message: `the running agent (pid ${health.pid}) is connected to ${l.url} since ${l.since} (${l.connects} connect(s), ${l.disconnects} lost)`, details: { source: 'health file', path } };
  }
  return {
    name: 'link', status: 'fail', code: 'E_AGENT_LINK',
    message: `the running agent (pid ${health.pid}) is not connected to the broker ${l.url}${l.lastError ? `: ${l.lastError}` : ''}; it keeps retrying`,
    action: 'check that the broker runs and is reachable from the device at the host and port of link.url; if the broker refuses the device, check link.cert (CN = device id, from the management CA) and the broker ACL; the agent reconnects by itself',
    details: { source: 'health file', path },
  };
}

/** The link check: the running agent's link from its health file, else a non-disturbing probe of the broker. */
export async function linkCheck(config: AgentConfig, keys: KeyStore | null, view: HealthView, path: string, timeoutMs: number): Promise<Check> {
  if (config.via) return relayCheck(config, view, path);
  if (!config.link) return { name: 'link', status: 'skipped', message: 'no "link" in the configuration: this device is not managed over MQTT' };
  if (view.state === 'running' && view.health.link) return runningLinkCheck(view, path);
  const r = await probeBroker(config as AgentConfig & { link: LinkConfig }, keys, timeoutMs);
  if (!r.ok) return { name: 'link', status: 'fail', code: 'E_AGENT_LINK', message: `no agent is running, and ${r.message}`, action: r.action };
  return {
    name: 'link', status: 'ok',
    message: `no agent is running (see the agent check); the broker at ${config.link.url} accepted the device's management certificate${r.protocol ? ` (${r.protocol})` : ''} and its MQTT session (probed with clean=false and no will; nothing subscribed, published or acknowledged)`,
  };
}

/** What to do when a link file is missing, unreadable or does not match. */
function linkFilesAction(config: AgentConfig, message: string): string {
  const reissue = `issue the link files again on the manager ("trustroll mgmt device --dir <mgmt dir> --id ${config.deviceId} --out <folder>") and put ca.pem, device.pem, device.key and command-key.pem where link.ca, link.cert, link.key and link.commandKeys point`;
  if (/\(EACCES\)|\(EPERM\)/.test(message)) return 'the file exists but cannot be read by this user: run the check as root or as the agent\'s user, or give the agent\'s user read access to it';
  if (/"link\.key(Label)?"/.test(message)) return `the management link's key is gone or does not match its certificate: restore it from a backup, or ${reissue}; then restart the agent`;
  return `${reissue}; then restart the agent`;
}

/** The link files the configuration on disk names: each readable, parsed, and matching (the certificate issued by link.ca, the key its key). */
export async function linkFilesCheck(config: AgentConfig, keys: KeyStore | null, view: HealthView): Promise<Check> {
  const name = 'link files';
  const link = config.link;
  if (!link) return { name, status: 'skipped', message: 'no "link" in the configuration' };
  const still = view.state === 'running' ? ' (the running agent still holds them in memory, but would not start again)' : '';
  try {
    const rotated = linkMaterialOf({ dir: linkDirOf(config), link });
    const checked = checkLinkFiles(link, rotated);
    if (link.keyLabel !== undefined) {
      const info = keys ? await keys.get(link.keyLabel) : null;
      if (keys && !info) throw new Error(`setting "link.keyLabel": the HAL has no key "${link.keyLabel}"`);
      if (info && !info.spki.equals(checked.certSpki)) throw new Error(`setting "link.keyLabel": HAL key "${link.keyLabel}" does not match the certificate in "link.cert" (${link.cert})`);
    }
    const [caCert, from] = rotated
      ? ['the link CA and certificate of the management-root rotation', `in use: ${rotated.path}${rotated.source === 'legacy' ? ' (beside link.cert, where earlier versions kept it; the agent moves it on its next start)' : ''}, newer than the configured ${link.ca} and ${link.cert} (the factory's first material)`]
      : ['link.ca, link.cert', `in use: the configured ${link.ca} and ${link.cert} (no management-root rotation recorded in ${linkDirOf(config)})`];
    return { name, status: 'ok', message: `${caCert}, ${link.key !== undefined ? 'link.key' : `the HAL key "${link.keyLabel}"`} and the command key(s) ${Object.keys(link.commandKeys).map((k) => `"${k}"`).join(', ')} read and match; ${from}` };
  } catch (err) {
    const message = plainMessage(err);
    return { name, status: 'fail', code: 'E_AGENT_CONFIG', message: `the management link cannot be used: ${message}${still}`, action: linkFilesAction(config, message) };
  }
}

/** A relayed device's channel (config `via`): what the running agent reports about its exchanges with the relay. */
function relayCheck(config: AgentConfig, view: HealthView, path: string): Check {
  const via = config.via!;
  const how = config.role === 'client' ? `polls relay ${via.relay} at ${via.host}:${via.port}` : `takes pushes from relay ${via.relay} on its mutual-TLS service`;
  if (view.state !== 'running' || !view.health.link) {
    const seeAlso = config.role === 'client' ? `; the peer check "peer ${via.relay}" below is a handshake with the relay` : '';
    return { name: 'link', status: 'skipped', message: `this device ${how}, and no agent is running (see the agent check)${seeAlso}` };
  }
  const l = view.health.link;
  if (l.connected) return { name: 'link', status: 'ok', message: `the running agent (pid ${view.health.pid}) ${how}; last good exchange since ${l.since} (${l.connects} up, ${l.disconnects} lost)`, details: { source: 'health file', path } };
  return {
    name: 'link', status: 'fail', code: 'E_AGENT_RELAY',
    message: `the running agent (pid ${view.health.pid}) ${how}, but the exchange fails${l.lastError ? `: ${l.lastError}` : ''}; it keeps trying`,
    action: `check that ${via.relay} runs with this device in its "relay.for", that the manager routes this device via ${via.relay} ("trustroll route"), and the mutual TLS between the two (the tls check)`,
    details: { source: 'health file', path },
  };
}
