/**
 * The client-role device's mutual-TLS connector (PROTOCOL.md P3, [0075-0076]):
 * it presents the new client certificate first and, when the server refuses
 * it, retries once with the old one, counting such fallbacks.
 *
 * "Authenticated" means the server's greeting line arrived (material.ts): a
 * Node server verifies the client certificate only after its side of the
 * handshake, and under TLS 1.3 the client's 'secureConnect' always precedes
 * the server's verdict, so neither 'secureConnect' nor a session ticket
 * proves acceptance. Outcomes of one attempt:
 * - greeting from the expected server: authenticated;
 * - this client rejected the server certificate (X.509 or name check):
 *   E_TLS_SERVER_UNTRUSTED, no fallback (the old certificate would not help);
 * - TCP connect failed: E_TLS_CONNECT, no fallback;
 * - alert, reset or close after TCP connect but before the greeting: the
 *   server refused the certificate, E_TLS_REJECTED, fall back;
 * - nothing within the timeout: E_TLS_TIMEOUT, no fallback.
 *
 * One secure context per identity (key, certificate, trust anchors) is built
 * and reused; contexts are rebuilt only when the agent reports a change, and
 * synchronously inside that notification when the keys are cached.
 */
import tls from 'node:tls';
import type { KeyStore } from '../../hal/key-store.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Agent } from '../agent.ts';
import { TlsError, type TlsErrorCode } from './errors.ts';
import { LineSplitter, parseGreeting, shortFingerprint, TlsKeyCache } from './material.ts';

/** Where to connect: the server's address and the device id its certificate names. */
export interface TlsTarget {
  host: string;
  port: number;
  serverId: string;
}

/** Which of the client's identities an attempt presented. */
export type IdentitySlot = 'active' | 'fallback';

/** One handshake attempt. */
export interface ConnectAttempt {
  identity: IdentitySlot;
  fingerprint: string;
  ok: boolean;
  error: { code: TlsErrorCode; message: string } | null;
  protocol: string | null;
  ms: number;
}

/** The report for one logical connection. */
export interface ConnectResult {
  ok: boolean;
  serverId: string;
  /** The identity that authenticated, or null when none did. */
  identity: IdentitySlot | null;
  fingerprint: string | null;
  /** True when the new certificate was refused and the old one authenticated. */
  fallback: boolean;
  /** Why the connection failed (the last attempt's error), or null. */
  error: { code: TlsErrorCode; message: string } | null;
  attempts: ConnectAttempt[];
  protocol: string | null;
  ms: number;
}

/** How a connector is wired. */
export interface DeviceTlsConnectorOptions {
  agent: Agent;
  keys: KeyStore;
  logger: Logger;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  /** Per attempt: TCP connect + handshake + greeting (ms); default 5 000. */
  timeoutMs?: number;
}

/** Counters of a connector. */
export interface DeviceTlsConnectorStats {
  attempted: number;
  ok: number;
  failed: number;
  fallbacks: number;
  /** TLS handshakes started (a fallback costs two). */
  handshakes: number;
  /** Secure contexts built (reused ones not counted). */
  contextsBuilt: number;
}

type Kind = 'ok' | 'refused' | 'untrusted' | 'connect' | 'timeout' | 'protocol';
const CODE: Record<Exclude<Kind, 'ok'>, TlsErrorCode> = {
  refused: 'E_TLS_REJECTED', untrusted: 'E_TLS_SERVER_UNTRUSTED', connect: 'E_TLS_CONNECT', timeout: 'E_TLS_TIMEOUT', protocol: 'E_TLS_PROTOCOL',
};
/** OpenSSL X.509 verification codes and Node's name check: this client refused the server. */
const LOCAL_VERIFY = /^(UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|INVALID_(CA|PURPOSE)|PATH_LENGTH_|HOSTNAME_MISMATCH|ERROR_IN_CERT_|ERR_TLS_CERT_ALTNAME_INVALID)/;

interface Slot { identity: IdentitySlot; fingerprint: string; context: tls.SecureContext }
interface Outcome { kind: Kind; message: string; socket: tls.TLSSocket | null; protocol: string | null; ms: number }

/** A client-role connector; see the module comment. */
export class DeviceTlsConnector {
  private slots: Slot[] = [];
  private contexts = new Map<string, tls.SecureContext>();
  private dirty = true;
  private readonly keyCache: TlsKeyCache;
  private readonly log: Logger;
  private readonly counts: DeviceTlsConnectorStats = { attempted: 0, ok: 0, failed: 0, fallbacks: 0, handshakes: 0, contextsBuilt: 0 };
  private unsubscribe: () => void = () => undefined;
  private closed = false;

  private constructor(private readonly o: DeviceTlsConnectorOptions) {
    this.keyCache = new TlsKeyCache(o.keys);
    this.log = o.logger.child({ deviceId: o.agent.deviceId, component: 'tls-connector' });
  }

  /** Build the connector. E_TLS_ROLE for a server-role agent, E_TLS_KEY_UNSUPPORTED for a token key. */
  static async create(o: DeviceTlsConnectorOptions): Promise<DeviceTlsConnector> {
    if (o.agent.role !== 'client') throw new TlsError('E_TLS_ROLE', `device ${o.agent.deviceId} is a ${o.agent.role}-role device; a connector needs a client-role agent`);
    const c = new DeviceTlsConnector(o);
    await c.refresh();
    c.unsubscribe = o.agent.onChange(() => {
      c.dirty = true;
      c.refresh().catch((err: unknown) => c.log.error('tls identity reload failed; keeping the previous contexts', { code: (err as { code?: string }).code, reason: (err as Error).message }));
    });
    return c;
  }

  /** A copy of the counters. */
  stats(): DeviceTlsConnectorStats {
    return { ...this.counts };
  }

  /** Connect, authenticate and close; the report says how it went. */
  async check(target: TlsTarget): Promise<ConnectResult> {
    const { result, socket } = await this.open(target);
    socket?.destroy();
    return result;
  }

  /**
   * Connect and authenticate, falling back to the old certificate when the
   * server refuses the new one. On success `socket` is open, paused, and
   * positioned after the greeting; the caller owns it.
   */
  async open(target: TlsTarget): Promise<{ result: ConnectResult; socket: tls.TLSSocket | null }> {
    if (this.closed) throw new TlsError('E_TLS_CLOSED', `connector of ${this.o.agent.deviceId}`);
    if (this.dirty) await this.refresh();
    const slots = this.slots;
    const t0 = performance.now();
    this.counts.attempted++;
    const attempts: ConnectAttempt[] = [];
    let won: { slot: Slot; out: Outcome } | null = null;
    for (const slot of slots) {
      this.counts.handshakes++;
      const out = await this.attempt(slot, target);
      attempts.push({ identity: slot.identity, fingerprint: slot.fingerprint, ok: out.kind === 'ok', error: out.kind === 'ok' ? null : { code: CODE[out.kind], message: out.message }, protocol: out.protocol, ms: out.ms });
      if (out.kind === 'ok') won = { slot, out };
      if (out.kind !== 'refused') break;
    }
    const last = attempts[attempts.length - 1]!;
    const result: ConnectResult = {
      ok: won !== null, serverId: target.serverId, identity: won?.slot.identity ?? null, fingerprint: won?.slot.fingerprint ?? null,
      fallback: won !== null && won.slot !== slots[0], error: last.error, attempts, protocol: won?.out.protocol ?? null, ms: performance.now() - t0,
    };
    if (!result.ok) this.counts.failed++;
    else this.counts.ok++;
    if (result.fallback) this.counts.fallbacks++;
    const fields = { server: target.serverId, identity: result.identity, fallback: result.fallback, code: result.error?.code, reason: result.error?.message, protocol: result.protocol };
    if (!result.ok) this.log.warn('tls connection failed', fields);
    else if (result.fallback) this.log.info('tls connection needed the old client certificate', fields);
    else this.log.debug('tls connection authenticated', fields);
    return { result, socket: won?.out.socket ?? null };
  }

  /**
   * Rebuild the per-identity contexts from the agent's current record,
   * reusing unchanged ones. Runs synchronously when every key is cached.
   */
  async refresh(): Promise<void> {
    for (;;) {
      const labels = this.o.agent.identities().map((i) => i.keyLabel);
      if (this.keyCache.hasAll(labels)) return this.build();
      await this.keyCache.load(labels);
    }
  }

  private build(): void {
    if (!this.dirty) return;
    const anchors = this.o.agent.trustAnchors();
    const ids = this.o.agent.identities();
    const next = new Map<string, tls.SecureContext>();
    this.slots = ids.map((id, i) => {
      const key = `${anchors.join('')}|${id.cert}|${id.keyLabel}`;
      let context = this.contexts.get(key);
      if (!context) {
        context = tls.createSecureContext({ key: this.keyCache.get(id.keyLabel)!, cert: id.cert, ca: anchors, minVersion: this.o.minVersion ?? 'TLSv1.2', maxVersion: this.o.maxVersion ?? 'TLSv1.3' });
        this.counts.contextsBuilt++;
      }
      next.set(key, context);
      return { identity: i === 0 ? 'active' : 'fallback', fingerprint: shortFingerprint(id.cert), context };
    });
    this.contexts = next;
    this.keyCache.retain(ids.map((i) => i.keyLabel));
    this.dirty = false;
    this.log.debug('tls identities loaded', { identities: this.slots.map((s) => s.fingerprint), anchors: anchors.map(shortFingerprint) });
  }

  private attempt(slot: Slot, target: TlsTarget): Promise<Outcome> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      let tcp = false;
      let settled = false;
      let leftover = '';
      const lines = new LineSplitter();
      const sock = tls.connect({ host: target.host, port: target.port, servername: target.serverId, secureContext: slot.context });
      const finish = (kind: Kind, message: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.removeAllListeners('data').removeAllListeners('end').removeAllListeners('close');
        if (kind === 'ok') {
          sock.pause();
          if (leftover) sock.unshift(Buffer.from(leftover));
        } else sock.destroy();
        resolve({ kind, message, socket: kind === 'ok' ? sock : null, protocol: sock.getProtocol() ?? null, ms: performance.now() - t0 });
      };
      const timer = setTimeout(() => finish('timeout', `no server greeting within ${this.o.timeoutMs ?? 5_000} ms`), this.o.timeoutMs ?? 5_000);
      sock.once('connect', () => (tcp = true));
      sock.on('error', (err: Error & { code?: string }) => {
        if (settled) return void this.log.debug('tls socket error after result', { code: err.code });
        if (!tcp) finish('connect', err.message);
        else if (err.code && LOCAL_VERIFY.test(err.code)) finish('untrusted', `${err.code}: ${err.message}`);
        else finish('refused', err.code ? `${err.code}: ${err.message}` : err.message);
      });
      const closed = () => finish(tcp ? 'refused' : 'connect', 'connection closed before the server greeting');
      sock.on('end', closed);
      sock.on('close', closed);
      sock.on('data', (chunk: Buffer) => {
        const got = lines.push(chunk);
        if (got === null) return finish('protocol', 'greeting line too long');
        if (got.length === 0) return;
        const greeting = parseGreeting(got[0]!);
        if (!greeting) finish('protocol', 'the server did not send a trustroll greeting');
        else if (greeting.serverId !== target.serverId) finish('protocol', `the server greeted as ${greeting.serverId}, expected ${target.serverId}`);
        else {
          leftover = got.slice(1).map((l) => `${l}\n`).join('') + lines.rest();
          finish('ok', 'authenticated');
        }
      });
    });
  }

  /** Detach from the agent; sockets handed out by `open` stay with their owners. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
  }
}
