/**
 * The self-test's live mutual-TLS checks.
 *
 * Client role: one real handshake per peer (the configured probe targets,
 * or `--peer [name@]host:port`) through the device's own connector, with the
 * material in its store: the new certificate first, the old one as
 * fallback. The report says which one the peer accepted; a peer refusing
 * both fails, naming the peer and the reason.
 *
 * Server role: connect to the device's own TLS port without a client
 * certificate and compare the certificate the service presents (before it
 * refuses us) with the one in the store: exactly the stored one must be
 * served. The service counts that refused connection as a failed handshake.
 */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { systemClock } from '../../protocol/clock.ts';
import { silentLogger } from '../../protocol/log.ts';
import { dn, fingerprint } from '../../protocol/pem.ts';
import { Agent } from '../agent.ts';
import { AgentError } from '../errors.ts';
import { readHealth, healthFilePath } from '../health-file.ts';
import type { ReadOnlyDevice } from '../read-only.ts';
import { DeviceTlsConnector, type ConnectResult } from '../tls/device-tls-connector.ts';
import { TLS_ERRORS, type TlsErrorCode } from '../tls/errors.ts';
import { SELFTEST_SERVERNAME } from '../tls/material.ts';
import { codeOf, plainMessage, type Check } from './report.ts';

/** A peer to handshake with; `serverId` is learnt from its certificate when not given. */
export interface PeerTarget {
  host: string;
  port: number;
  serverId?: string;
}

/** Parse `--peer [name@]host:port` (IPv6 in brackets); E_AGENT_CONFIG when malformed. */
export function parsePeer(spec: string): PeerTarget {
  const m = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) throw new AgentError('E_AGENT_CONFIG', `--peer "${spec}": expected host:port or name@host:port`);
  return { host: m[2]!.replace(/^\[|\]$/g, ''), port, ...(m[1] ? { serverId: m[1] } : {}) };
}

/**
 * The certificate a TLS server presents, read without a client certificate
 * (its refusal comes after). Sent with SELFTEST_SERVERNAME, so a trustroll
 * server counts it as a probe, not as a failed handshake.
 */
export function presentedCertificate(host: string, port: number, timeoutMs: number): Promise<{ cert: X509Certificate } | { error: string; code: string }> {
  return new Promise((resolve) => {
    let done = false;
    const sock = tls.connect({ host, port, servername: SELFTEST_SERVERNAME, rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    const finish = (r: { cert: X509Certificate } | { error: string; code: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const grab = () => {
      const raw = sock.getPeerCertificate()?.raw;
      return raw ? { cert: new X509Certificate(raw) } : null;
    };
    const timer = setTimeout(() => finish({ error: `no TLS answer within ${timeoutMs} ms`, code: 'ETIMEDOUT' }), timeoutMs);
    sock.once('secureConnect', () => finish(grab() ?? { error: 'the server presented no certificate', code: 'ENOCERT' }));
    sock.on('error', (err: Error & { code?: string }) => finish(grab() ?? { error: err.message, code: err.code ?? 'ERROR' }));
    sock.once('close', () => finish(grab() ?? { error: 'the connection closed before the server presented a certificate', code: 'ECONNRESET' }));
  });
}

const ACTION: Partial<Record<TlsErrorCode, string>> = {
  E_TLS_REJECTED: 'the peer does not trust the root that issued this device\'s certificates: check on the manager (trustroll status) that the server received its rotation steps, or, for a peer outside the rotation, that it trusts the issuer named above',
  E_TLS_SERVER_UNTRUSTED: 'this device does not trust the peer\'s certificate: a step reached the server before this device trusted the new root, or the peer belongs to another fleet; check trustroll status',
  E_TLS_CONNECT: 'check that the peer\'s service runs and the address (probe.targets or --peer)',
};

function peerCheck(name: string, where: string, r: ConnectResult, slots: string[]): Check {
  const presented = (i: number) => `${slots[i] ?? 'certificate'} (sha256 ${r.attempts[i]?.fingerprint ?? '?'}…)`;
  const details = { peer: where, identity: r.identity, fingerprint: r.fingerprint, fallback: r.fallback, protocol: r.protocol, attempts: r.attempts };
  if (r.ok && !r.fallback) return { name, status: 'ok', message: `${where} accepted the ${presented(0)} over ${r.protocol}, and this device trusts its certificate`, details };
  if (r.ok) {
    return {
      name, status: 'warn', code: 'E_TLS_REJECTED', details,
      message: `${where} refused the ${presented(0)} and accepted the ${presented(r.attempts.length - 1)}: every connection pays one failed handshake`,
      action: 'expected until the server trusts the new root (its P1, or B2 in the batched schedule); if it lasts after the rotation, check that server on the manager (trustroll status)',
    };
  }
  const code = r.error?.code;
  const tried = r.attempts.map((a, i) => `${presented(i)}: ${a.error?.message ?? 'ok'}`).join('; ');
  return {
    name, status: 'fail', code, details,
    message: code === 'E_TLS_REJECTED' ? `${where} refused every certificate this device holds (${tried})` : `${where}: ${r.error?.message ?? 'failed'}`,
    action: (code && ACTION[code]) ?? (code ? TLS_ERRORS[code] : 'check the peer'),
  };
}

/** Client role: one mutual-TLS connection per peer with the stored material, new certificate first. */
export async function clientPeerChecks(dev: ReadOnlyDevice, peers: PeerTarget[], timeoutMs: number): Promise<Check[]> {
  if (peers.length === 0) return [{ name: 'peers', status: 'skipped', message: 'no peers to handshake with: none configured (probe.targets) and none given (--peer host:port)' }];
  if (!dev.hal || !dev.record || !dev.store) return [{ name: 'peers', status: 'skipped', message: 'the handshakes need the device key and trust store (see the key and store checks)' }];
  const agent = await Agent.open({ deviceId: dev.config.deviceId, role: dev.config.role, store: dev.store, keys: dev.hal.keys, clock: systemClock, logger: silentLogger });
  let connector: DeviceTlsConnector;
  try {
    connector = await DeviceTlsConnector.create({ agent, keys: dev.hal.keys, logger: silentLogger, timeoutMs });
  } catch (err) {
    return [{ name: 'peers', status: 'skipped', code: codeOf(err), message: `the device's connector cannot use this key here: ${plainMessage(err)}` }];
  }
  const ids = agent.identities();
  const slots = ids.length > 1 ? ['new certificate', 'old certificate'] : ['device certificate'];
  const out: Check[] = [];
  try {
    for (const p of peers) {
      let serverId = p.serverId;
      const addr = `${p.host}:${p.port}`;
      if (!serverId) {
        const got = await presentedCertificate(p.host, p.port, timeoutMs);
        if ('error' in got) {
          out.push({ name: `peer ${addr}`, status: 'fail', code: 'E_TLS_CONNECT', message: `peer ${addr}: ${got.error}`, action: ACTION.E_TLS_CONNECT! });
          continue;
        }
        serverId = /(?:^|\n)CN=([^\n]+)/.exec(got.cert.subject)?.[1] ?? addr;
      }
      const r = await connector.check({ host: p.host, port: p.port, serverId });
      out.push(peerCheck(`peer ${serverId}`, `peer ${serverId} (${addr})`, r, slots));
    }
  } finally {
    connector.close();
  }
  return out;
}

/** Server role: the own TLS port must present exactly the stored certificate. */
export async function serverServiceCheck(dev: ReadOnlyDevice, now: Date, timeoutMs: number): Promise<Check> {
  const name = 'tls service';
  const cfg = dev.config.tls;
  if (!cfg) return { name, status: 'skipped', message: 'no "tls" in the configuration: this device serves no mutual-TLS port here' };
  if (!dev.record) return { name, status: 'skipped', message: 'no readable trust store to compare with (see the store check)' };
  const view = readHealth(healthFilePath(dev.config), now);
  const port = cfg.port !== 0 ? cfg.port : view.state === 'running' ? view.health.tlsPort ?? 0 : 0;
  const host = cfg.host === '0.0.0.0' || cfg.host === '::' ? '127.0.0.1' : cfg.host;
  const action = 'start the agent (trustroll-agent run) or restart it; check that no other program holds the port named in tls.port';
  if (port === 0) return { name, status: 'fail', code: 'E_AGENT_TLS_SERVICE', message: 'tls.port is 0 (any free port) and no running agent reports the port it chose', action };
  const got = await presentedCertificate(host, port, timeoutMs);
  if ('error' in got) return { name, status: 'fail', code: 'E_AGENT_TLS_SERVICE', message: `nothing serves TLS on ${host}:${port} (${got.code}: ${got.error})`, action };
  const stored = new X509Certificate(dev.record.identity.active.cert);
  const served = fingerprint(got.cert);
  if (served !== fingerprint(stored)) {
    return {
      name, status: 'fail', code: 'E_AGENT_TLS_SERVICE',
      message: `${host}:${port} presents ${dn(got.cert.subject)} (sha256 ${served.slice(0, 16)}…), not the stored certificate (sha256 ${fingerprint(stored).slice(0, 16)}…)`,
      action: 'the service did not pick up the stored certificate, or another program holds the port: restart the agent and check tls.port',
    };
  }
  return { name, status: 'ok', message: `${host}:${port} presents exactly the stored certificate (${dn(stored.subject)}, sha256 ${served.slice(0, 16)}…)` };
}
