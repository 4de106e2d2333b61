/**
 * The server-role device's live mutual-TLS service (PROTOCOL.md "Roles":
 * a printer serving IPPS/HTTPS). A real `tls.Server` with `requestCert` and
 * `rejectUnauthorized`, presenting the device's one server certificate with
 * its HAL key and trusting the agent's current roots (R0, D, R1 as held).
 *
 * Every durable trust-store change is applied with `setSecureContext`, inside
 * the agent's change notification (so before the step is acknowledged) when
 * the key is already cached: no restart, established connections keep their
 * session, only new handshakes see the new store. Each reload also installs
 * fresh session-ticket keys (explicitly: Node keeps configured ticket keys
 * across setSecureContext), so no session from before a trust change can be
 * resumed to skip the new verification. The context must hold the roots to
 * verify clients, so between P4 and P5 OpenSSL auto-chains D after Sn: harmless
 * (every client trusts K1 by then), and trustroll clients judge the leaf alone.
 *
 * Keys: `pem` keys are used in process. A token-resident key (PKCS#11,
 * TPM) cannot sign inside Node's OpenSSL; it would be served by a terminator
 * in server mode (stunnel + libp11, like hal/tls for clients) forwarding
 * plaintext over a 0700 Unix socket, with the CA file rewritten and the
 * terminator sent SIGHUP on each change. Here that case fails with
 * E_TLS_KEY_UNSUPPORTED.
 */
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { KeyStore } from '../../hal/key-store.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Agent } from '../agent.ts';
import { TlsError } from './errors.ts';
import { greetingLine, LineSplitter, SELFTEST_SERVERNAME, shortFingerprint, tlsStateHash, TlsKeyCache } from './material.ts';
import type { RelayHandler } from '../relay/relay-server.ts';
import { MAX_RELAY_LINE, parseRelayRequest, RELAY_PREFIX, relayLine } from '../relay/wire.ts';

/** How a device TLS service is wired. */
export interface DeviceTlsServerOptions {
  agent: Agent;
  keys: KeyStore;
  logger: Logger;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; default 0 (a free port, read it from `port`). */
  port?: number;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  /** Abort handshakes that take longer (ms); default 10 000. */
  handshakeTimeoutMs?: number;
  /** Refuse TCP connections beyond this many open ones (a printer's budget); default unlimited. */
  maxConnections?: number;
  /** Answers `relay ...` lines (relay/wire.ts) from authenticated peers: a relay for its clients, or a relayed server. */
  relay?: RelayHandler;
}

/** Counters of a running service. */
export interface DeviceTlsServerStats {
  /** Handshakes that authenticated a client (greeting sent). */
  accepted: number;
  /** Handshakes refused because the client certificate did not verify. */
  rejected: number;
  /** Handshakes the client broke off with an alert (it refused this device's certificate, or the protocol). */
  alerted: number;
  /** Handshakes that ended before trust was judged (the client hung up, reset, or timed out): a peer gone, not a trust failure. */
  aborted: number;
  /** The technician's self-test probes (SELFTEST_SERVERNAME): counted apart, never as failures. */
  probes: number;
  /** Secure contexts applied after start. */
  reloads: number;
  /** Connections currently open. */
  open: number;
}

/** A running server-role TLS service; see the module comment. */
export class DeviceTlsServer {
  private readonly sockets = new Set<tls.TLSSocket>();
  private readonly counts = { accepted: 0, rejected: 0, alerted: 0, aborted: 0, probes: 0, reloads: 0 };
  private readonly keyCache: TlsKeyCache;
  private readonly log: Logger;
  private appliedHash = '';
  private pending: Promise<void> = Promise.resolve();
  private unsubscribe: () => void = () => undefined;
  private closed = false;

  private constructor(private readonly o: DeviceTlsServerOptions, private readonly server: tls.Server) {
    this.keyCache = new TlsKeyCache(o.keys);
    this.log = o.logger.child({ deviceId: o.agent.deviceId, component: 'tls-server' });
  }

  /** Start listening. E_TLS_ROLE for a client-role agent, E_TLS_KEY_UNSUPPORTED for a token key. */
  static async start(o: DeviceTlsServerOptions): Promise<DeviceTlsServer> {
    if (o.agent.role !== 'server') throw new TlsError('E_TLS_ROLE', `device ${o.agent.deviceId} is a ${o.agent.role}-role device; a TLS service needs a server-role agent`);
    const server = tls.createServer({ requestCert: true, rejectUnauthorized: true, handshakeTimeout: o.handshakeTimeoutMs ?? 10_000 });
    if (o.maxConnections !== undefined) server.maxConnections = o.maxConnections;
    const svc = new DeviceTlsServer(o, server);
    await svc.keyCache.load(o.agent.identities().map((i) => i.keyLabel));
    svc.applyNow();
    server.on('secureConnection', (sock) => svc.onSecure(sock));
    server.on('tlsClientError', (err, sock) => svc.onHandshakeError(err, sock));
    svc.unsubscribe = o.agent.onChange(() => svc.reload());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    svc.log.info('tls service listening', { port: svc.port, identity: shortFingerprint(o.agent.identities()[0]!.cert) });
    return svc;
  }

  /** The device id this service authenticates as. */
  get deviceId(): string {
    return this.o.agent.deviceId;
  }

  /** The bound port. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The bound address. */
  get host(): string {
    return (this.server.address() as AddressInfo).address;
  }

  /** A copy of the counters. */
  stats(): DeviceTlsServerStats {
    return { ...this.counts, open: this.sockets.size };
  }

  /**
   * Apply the agent's current trust store and identity. Synchronous when the
   * key is cached (the usual case: a leaf change keeps the key); otherwise
   * the key is fetched first and the returned promise settles once applied.
   */
  reload(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const labels = this.o.agent.identities().map((i) => i.keyLabel);
    if (this.keyCache.hasAll(labels)) {
      this.applyNow();
      return Promise.resolve();
    }
    this.pending = this.pending
      .then(() => this.keyCache.load(labels))
      .then(() => this.applyNow())
      .catch((err: unknown) => this.log.error('tls reload failed; keeping the previous context', { code: (err as { code?: string }).code, reason: (err as Error).message }));
    return this.pending;
  }

  private applyNow(): void {
    const hash = tlsStateHash(this.o.agent);
    if (hash === this.appliedHash || this.closed) return;
    const anchors = this.o.agent.trustAnchors();
    const identity = this.o.agent.identities()[0]!;
    const options: tls.SecureContextOptions = {
      key: this.keyCache.get(identity.keyLabel)!,
      cert: identity.cert,
      ca: anchors,
      minVersion: this.o.minVersion ?? 'TLSv1.2',
      maxVersion: this.o.maxVersion ?? 'TLSv1.3',
      ticketKeys: randomBytes(48),
    };
    this.server.setSecureContext(options);
    const first = this.appliedHash === '';
    this.appliedHash = hash;
    this.keyCache.retain([identity.keyLabel]);
    if (!first) this.counts.reloads++;
    this.log.info(first ? 'tls context loaded' : 'tls context reloaded', {
      anchors: anchors.map(shortFingerprint), identity: shortFingerprint(identity.cert), open: this.sockets.size,
    });
  }

  private onSecure(sock: tls.TLSSocket): void {
    if (!sock.authorized) {
      // Not reachable with rejectUnauthorized; kept as a second lock.
      this.counts.rejected++;
      sock.destroy();
      return;
    }
    this.counts.accepted++;
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', (err) => this.log.debug('tls connection error', { code: (err as { code?: string }).code }));
    const cn = String(sock.getPeerCertificate().subject?.CN ?? '-');
    sock.write(greetingLine(this.deviceId, cn));
    const relay = this.o.relay;
    const lines = new LineSplitter(relay ? MAX_RELAY_LINE : undefined);
    // Answers leave in request order: a relay request may wait for the broker or the agent.
    let answered: Promise<void> = Promise.resolve();
    sock.on('data', (chunk: Buffer) => {
      const got = lines.push(chunk);
      if (got === null) return void sock.destroy();
      for (const line of got) {
        answered = answered.then(async () => {
          if (!relay || !line.startsWith(RELAY_PREFIX)) return void sock.write(`echo ${line}\n`);
          const req = parseRelayRequest(line.slice(RELAY_PREFIX.length));
          const reply = req ? await relay(cn, req) : { t: 'error' as const, code: 'E_AGENT_RELAY', message: 'not a well-formed relay request' };
          if (!sock.destroyed) sock.write(relayLine(reply));
        });
      }
    });
  }

  private onHandshakeError(err: Error, sock: tls.TLSSocket): void {
    if ((sock as tls.TLSSocket & { servername?: string | false }).servername === SELFTEST_SERVERNAME) {
      this.counts.probes++;
      return;
    }
    if (sock.authorizationError) {
      this.counts.rejected++;
      this.log.warn('client certificate rejected', { reason: String(sock.authorizationError) });
    } else if (/ALERT/.test(String((err as { code?: string }).code ?? ''))) {
      this.counts.alerted++;
      this.log.warn('client broke off the handshake with an alert', { code: (err as { code?: string }).code });
    } else {
      this.counts.aborted++;
      this.log.debug('handshake aborted', { code: (err as { code?: string }).code, reason: err.message });
    }
  }

  /** Stop listening, close open connections and detach from the agent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await done;
    this.log.info('tls service stopped', { ...this.counts });
  }
}
