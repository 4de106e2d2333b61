/**
 * The client-role device's mutual-TLS connector (PROTOCOL.md P3, [0075-0076]):
 * it presents the new client certificate first and, when the server refuses
 * it, retries once with the old one, counting such fallbacks. How one
 * handshake is judged (greeting, leaf-only presentation, TLS 1.2 and 1.3)
 * is in handshake-attempt.ts.
 *
 * One secure context per identity is built and reused; contexts are rebuilt
 * only when the agent's record changes (and only for a new certificate or
 * key), synchronously inside the agent's change notification when the keys
 * are cached, so the new material is in use before the step is acknowledged.
 *
 * In flight, a connection carries the client's material from its start and
 * the server's from its accept, so a handshake can straddle a step and meet
 * states that never coexisted. Two such cases are retried, at most twice in
 * all per connection, and counted (`retries`, with the reason):
 * - `material-changed`: the attempt failed and this client's own record
 *   changed meanwhile (a step landed on it, and a server gated on that step
 *   moved on before accepting): reconnect with the current material;
 * - `server-switched`: the server refused the new certificate and then the
 *   old one. A server only moves from old trust to new, so it switched in
 *   between (batched B2 drops R0 at once): present the new one again.
 * A failure that repeats with unchanged material is final. Neither retry can
 * hide a broken steady state: the retry meets the same state and fails.
 */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { KeyStore } from '../../hal/key-store.ts';
import { systemClock, type Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Agent } from '../agent.ts';
import { TlsError, type TlsErrorCode } from './errors.ts';
import { ATTEMPT_CODE, attemptHandshake, type AttemptOutcome, type TlsTarget } from './handshake-attempt.ts';
import { shortFingerprint, tlsStateHash, TlsKeyCache } from './material.ts';

export type { TlsTarget } from './handshake-attempt.ts';

/** Which of the client's identities an attempt presented. */
export type IdentitySlot = 'active' | 'fallback';

/** Why a connection ran its identity sequence again. */
export type RetryReason = 'material-changed' | 'server-switched';

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
  /** Why the identity sequence was run again (see the module comment), in order. */
  retries: RetryReason[];
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
  /** Time for validating the server certificate; default the system clock. */
  clock?: Clock;
}

/** Counters of a connector. */
export interface DeviceTlsConnectorStats {
  attempted: number;
  ok: number;
  /** Connections whose handshake failed: refused, untrusted, or not a trustroll peer. */
  failed: number;
  /** Connections that never reached a handshake: the peer did not answer (E_TLS_CONNECT, E_TLS_TIMEOUT). */
  unreachable: number;
  fallbacks: number;
  /** Identity sequences run again (both reasons). */
  retries: number;
  /** TLS handshakes started (a fallback costs two). */
  handshakes: number;
  /** Secure contexts built (reused ones not counted). */
  contextsBuilt: number;
}

/** The codes of a peer that did not answer, counted apart from trust failures. */
const UNREACHABLE = new Set<TlsErrorCode | undefined>(['E_TLS_CONNECT', 'E_TLS_TIMEOUT']);

interface Slot { identity: IdentitySlot; fingerprint: string; context: tls.SecureContext }
interface Material { hash: string; slots: Slot[]; anchors: X509Certificate[] }

/** A client-role connector; see the module comment. */
export class DeviceTlsConnector {
  private material: Material = { hash: '', slots: [], anchors: [] };
  private contexts = new Map<string, tls.SecureContext>();
  private readonly keyCache: TlsKeyCache;
  private readonly log: Logger;
  private readonly counts: DeviceTlsConnectorStats = { attempted: 0, ok: 0, failed: 0, unreachable: 0, fallbacks: 0, retries: 0, handshakes: 0, contextsBuilt: 0 };
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
    await c.current();
    c.unsubscribe = o.agent.onChange(() => {
      c.current().catch((err: unknown) => c.log.error('tls identity reload failed; keeping the previous contexts', { code: (err as { code?: string }).code, reason: (err as Error).message }));
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
    const t0 = performance.now();
    this.counts.attempted++;
    const attempts: ConnectAttempt[] = [];
    let won: { slot: Slot; out: AttemptOutcome } | null = null;
    const retries: RetryReason[] = [];
    for (;;) {
      const m = await this.current();
      let refused = 0;
      for (const slot of m.slots) {
        this.counts.handshakes++;
        const out = await attemptHandshake({ target, context: slot.context, anchors: m.anchors, now: (this.o.clock ?? systemClock).now(), timeoutMs: this.o.timeoutMs ?? 5_000, log: this.log });
        attempts.push({ identity: slot.identity, fingerprint: slot.fingerprint, ok: out.kind === 'ok', error: out.kind === 'ok' ? null : { code: ATTEMPT_CODE[out.kind], message: out.message }, protocol: out.protocol, ms: out.ms });
        if (out.kind === 'ok') won = { slot, out };
        if (out.kind !== 'refused') break;
        refused++;
      }
      if (won || retries.length >= 2) break;
      const reason: RetryReason | null = tlsStateHash(this.o.agent) !== m.hash ? 'material-changed'
        : refused >= 2 && !retries.includes('server-switched') ? 'server-switched' : null;
      if (!reason) break;
      retries.push(reason);
      this.counts.retries++;
      this.log.info('handshake straddled a trust change; running the identity sequence again', { server: target.serverId, reason });
    }
    const last = attempts[attempts.length - 1]!;
    const result: ConnectResult = {
      ok: won !== null, serverId: target.serverId, identity: won?.slot.identity ?? null, fingerprint: won?.slot.fingerprint ?? null,
      fallback: won?.slot.identity === 'fallback', retries, error: won ? null : last.error, attempts, protocol: won?.out.protocol ?? null, ms: performance.now() - t0,
    };
    this.counts[result.ok ? 'ok' : UNREACHABLE.has(result.error?.code) ? 'unreachable' : 'failed']++;
    if (result.fallback) this.counts.fallbacks++;
    const fields = { server: target.serverId, identity: result.identity, fallback: result.fallback, retries, code: result.error?.code, reason: result.error?.message, protocol: result.protocol };
    if (!result.ok) this.log.warn('tls connection failed', fields);
    else if (result.fallback) this.log.info('tls connection needed the old client certificate', fields);
    else this.log.debug('tls connection authenticated', fields);
    return { result, socket: won?.out.socket ?? null };
  }

  /**
   * The contexts for the agent's current record, rebuilt when it changed
   * (reusing unchanged ones). Synchronous up to the return when every key is
   * cached; only a key label never seen before is fetched first.
   */
  async current(): Promise<Material> {
    for (;;) {
      const hash = tlsStateHash(this.o.agent);
      if (hash === this.material.hash) return this.material;
      const labels = this.o.agent.identities().map((i) => i.keyLabel);
      if (this.keyCache.hasAll(labels)) return this.build(hash);
      await this.keyCache.load(labels);
    }
  }

  private build(hash: string): Material {
    const anchors = this.o.agent.trustAnchors();
    const ids = this.o.agent.identities();
    const next = new Map<string, tls.SecureContext>();
    const slots = ids.map((id, i): Slot => {
      const key = `${id.cert}|${id.keyLabel}`;
      let context = this.contexts.get(key);
      if (!context) {
        context = tls.createSecureContext({ key: this.keyCache.get(id.keyLabel)!, cert: id.cert, minVersion: this.o.minVersion ?? 'TLSv1.2', maxVersion: this.o.maxVersion ?? 'TLSv1.3' });
        this.counts.contextsBuilt++;
      }
      next.set(key, context);
      return { identity: i === 0 ? 'active' : 'fallback', fingerprint: shortFingerprint(id.cert), context };
    });
    this.contexts = next;
    this.keyCache.retain(ids.map((i) => i.keyLabel));
    this.material = { hash, slots, anchors: anchors.map((p) => new X509Certificate(p)) };
    this.log.debug('tls identities loaded', { identities: slots.map((s) => s.fingerprint), anchors: anchors.map(shortFingerprint) });
    return this.material;
  }

  /** Detach from the agent; sockets handed out by `open` stay with their owners. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
  }
}
