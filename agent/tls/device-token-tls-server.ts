/**
 * The server-role device's mutual-TLS service when its key lives in a
 * token (PKCS#11 secure element, or the TPM through tpm2-pkcs11): the
 * handshake is done by the HAL's stunnel terminator with the key inside
 * the token; this class feeds it the agent's certificate and trust store,
 * reloads it on every durable change (before the step's acknowledgement
 * leaves the device), and speaks the same greeting/echo protocol as
 * DeviceTlsServer on the authenticated plain streams.
 */
import type net from 'node:net';
import type { KeyStore } from '../../hal/key-store.ts';
import { StunnelServerTerminator } from '../../hal/tls/stunnel-server.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Agent } from '../agent.ts';
import { anchorsOf, identitiesOf, type DeviceRecord } from '../device-record.ts';
import { TlsError } from './errors.ts';
import { greetingLine, LineSplitter, shortFingerprint } from './material.ts';

/** How a token-key TLS service is wired. */
export interface DeviceTokenTlsServerOptions {
  agent: Agent;
  keys: KeyStore;
  logger: Logger;
  host?: string;
  port?: number;
}

/** A device TLS service whose private key never leaves the token. */
export class DeviceTokenTlsServer {
  private readonly counts = { accepted: 0, reloads: 0 };
  private applied = '';
  private unsubscribe: () => void = () => {};

  private constructor(private readonly o: DeviceTokenTlsServerOptions, private readonly terminator: StunnelServerTerminator) {}

  /** Start the terminator with the agent's current material. E_TLS_KEY_UNSUPPORTED if the key is not a token key. */
  static async start(o: DeviceTokenTlsServerOptions): Promise<DeviceTokenTlsServer> {
    if (o.agent.role !== 'server') throw new TlsError('E_TLS_ROLE', `${o.agent.deviceId} is a ${o.agent.role}; only a server-role device serves mTLS`);
    const identity = o.agent.identities()[0]!;
    const ref = await o.keys.tlsKey?.(identity.keyLabel);
    if (ref?.kind !== 'pkcs11') throw new TlsError('E_TLS_KEY_UNSUPPORTED', `key "${identity.keyLabel}" is not a token key; use DeviceTlsServer`);
    const self: { server?: DeviceTokenTlsServer } = {};
    const terminator = await StunnelServerTerminator.start(ref, {
      host: o.host ?? '127.0.0.1', port: o.port ?? 0, certPem: identity.cert, caPem: o.agent.trustAnchors().join(''),
      onConnection: (plain) => self.server?.onPlain(plain),
    });
    const server = new DeviceTokenTlsServer(o, terminator);
    self.server = server;
    server.applied = material(o.agent.snapshot());
    server.unsubscribe = o.agent.onChange((record) => server.reload(record));
    o.logger.info('token-key mTLS service listening', { deviceId: o.agent.deviceId, port: terminator.port, identity: shortFingerprint(identity.cert) });
    return server;
  }

  get port(): number {
    return this.terminator.port;
  }

  /** Authenticated connections served, and reloads applied. */
  stats(): { accepted: number; reloads: number } {
    return { ...this.counts };
  }

  private async reload(record: DeviceRecord): Promise<void> {
    const next = material(record);
    if (next === this.applied) return;
    const identity = identitiesOf(record)[0]!;
    await this.terminator.reload(identity.cert, anchorsOf(record).join(''));
    this.applied = next;
    this.counts.reloads++;
    this.o.logger.info('token-key mTLS service reloaded', { deviceId: this.o.agent.deviceId, identity: shortFingerprint(identity.cert) });
  }

  private onPlain(sock: net.Socket): void {
    this.counts.accepted++;
    // stunnel verified the client certificate before connecting; it does not pass the client's name on.
    sock.write(greetingLine(this.o.agent.deviceId, '-'));
    const lines = new LineSplitter();
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: Buffer) => {
      const got = lines.push(chunk);
      if (got === null) return void sock.destroy();
      for (const line of got) sock.write(`echo ${line}\n`);
    });
  }

  /** Stop the service. */
  async close(): Promise<void> {
    this.unsubscribe();
    await this.terminator.close();
  }
}

function material(record: DeviceRecord): string {
  return `${identitiesOf(record)[0]!.cert}\n${anchorsOf(record).join('')}`;
}
