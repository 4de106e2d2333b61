/**
 * The real-handshake counterpart of auth-matrix.ts: every server-role agent
 * of a fleet runs a live DeviceTlsServer on a free loopback port, every
 * client-role agent a DeviceTlsConnector, and a round connects every client
 * to every (peer) server once over real mutual TLS. A continuous mode keeps
 * handshaking all pairs for the whole rotation, so the demo and the tests
 * can show that no client ever failed to authenticate while the roots moved.
 */
import type tls from 'node:tls';
import type { Agent } from '../agent/agent.ts';
import { DeviceTlsServer } from '../agent/tls/device-tls-server.ts';
import { DeviceTlsConnector, type ConnectResult } from '../agent/tls/device-tls-connector.ts';
import type { KeyStore } from '../hal/key-store.ts';
import { silentLogger, type Logger } from '../protocol/log.ts';

/** What the matrix needs of a fleet (InProcessFleet fits). */
export interface HandshakeFleet {
  readonly agents: ReadonlyMap<string, Agent>;
  readonly keys: ReadonlyMap<string, KeyStore>;
}

/** Options of a handshake matrix. */
export interface HandshakeMatrixOptions {
  logger?: Logger;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  /** Per handshake attempt (ms); default 5 000. */
  timeoutMs?: number;
  /** Which client talks to which server; default every client to every server. */
  peers?: (serverId: string, clientId: string) => boolean;
  /** Failure descriptions kept per tally (the counters stay exact); default 50. */
  maxFailures?: number;
}

/** Counters over some logical connections. */
export interface HandshakeTally {
  /** Logical connections (client → server). */
  attempted: number;
  /** Connections not established with any certificate the client holds. */
  failed: number;
  /** Connections that needed the old client certificate. */
  fallbacks: number;
  /** TLS handshakes started (a fallback costs two). */
  handshakes: number;
  /** Identity sequences run again because a handshake straddled a trust change (see the connector). */
  retries: number;
  /** `client -> server: CODE reason`, at most `maxFailures`. */
  failures: string[];
}

const empty = (): HandshakeTally => ({ attempted: 0, failed: 0, fallbacks: 0, handshakes: 0, retries: 0, failures: [] });

/** Live servers and connectors for a fleet; see the module comment. */
export class HandshakeMatrix {
  private loop: Promise<void> | null = null;
  private running = false;
  private readonly loopTally = empty();
  private readonly allTally = empty();
  private loopRounds = 0;
  private loopStart = 0;
  private loopMs = 0;

  private constructor(
    private readonly o: HandshakeMatrixOptions,
    private readonly servers: Map<string, DeviceTlsServer>,
    private readonly connectors: Map<string, DeviceTlsConnector>,
  ) {}

  /** Start a service for every server-role agent and a connector for every client-role agent. */
  static async create(fleet: HandshakeFleet, o: HandshakeMatrixOptions = {}): Promise<HandshakeMatrix> {
    const logger = o.logger ?? silentLogger;
    const versions = { minVersion: o.minVersion, maxVersion: o.maxVersion };
    const servers = new Map<string, DeviceTlsServer>();
    const connectors = new Map<string, DeviceTlsConnector>();
    const m = new HandshakeMatrix(o, servers, connectors);
    try {
      for (const [id, agent] of fleet.agents) {
        const keys = fleet.keys.get(id);
        if (!keys) throw new Error(`fleet has no key store for ${id}`);
        if (agent.role === 'server') servers.set(id, await DeviceTlsServer.start({ agent, keys, logger, ...versions }));
        else connectors.set(id, await DeviceTlsConnector.create({ agent, keys, logger, timeoutMs: o.timeoutMs, ...versions }));
      }
    } catch (err) {
      await m.close();
      throw err;
    }
    return m;
  }

  /** The live services by device id (ports, counters). */
  get services(): ReadonlyMap<string, DeviceTlsServer> {
    return this.servers;
  }

  /** Connect every client to every peer server once, concurrently; the tally of this round. */
  async runRound(): Promise<HandshakeTally> {
    const round = empty();
    const jobs: Promise<void>[] = [];
    for (const [clientId, connector] of this.connectors) {
      for (const [serverId, server] of this.servers) {
        if (this.o.peers && !this.o.peers(serverId, clientId)) continue;
        jobs.push(connector.check({ host: '127.0.0.1', port: server.port, serverId }).then(
          (r) => this.count(round, clientId, r),
          (err: unknown) => this.countError(round, clientId, serverId, err),
        ));
      }
    }
    await Promise.all(jobs);
    merge(this.allTally, round, this.o.maxFailures ?? 50);
    return round;
  }

  private count(t: HandshakeTally, clientId: string, r: ConnectResult): void {
    t.attempted++;
    t.handshakes += r.attempts.length;
    t.retries += r.retries.length;
    if (r.fallback) t.fallbacks++;
    if (!r.ok) {
      t.failed++;
      if (t.failures.length < (this.o.maxFailures ?? 50)) t.failures.push(`${clientId} -> ${r.serverId}: ${r.error?.code} ${r.error?.message ?? ''}`);
    }
  }

  /** A connector that could not even try (closed, key unavailable) counts as a failed connection. */
  private countError(t: HandshakeTally, clientId: string, serverId: string, err: unknown): void {
    t.attempted++;
    t.failed++;
    if (t.failures.length < (this.o.maxFailures ?? 50)) t.failures.push(`${clientId} -> ${serverId}: ${(err as Error).message}`);
  }

  /** Keep running rounds back to back until `stop()`. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopStart = performance.now();
    this.loop = (async () => {
      while (this.running) {
        const round = await this.runRound();
        merge(this.loopTally, round, this.o.maxFailures ?? 50);
        this.loopRounds++;
        // Yield to timers and I/O of the rotation between rounds.
        await new Promise((r) => setImmediate(r));
      }
    })();
  }

  /** Stop the continuous loop after its current round; the loop's tally, rounds and rate. */
  async stop(): Promise<HandshakeTally & { rounds: number; ms: number; handshakesPerSecond: number }> {
    this.running = false;
    await this.loop;
    this.loop = null;
    this.loopMs = performance.now() - this.loopStart;
    const rate = this.loopMs > 0 ? (this.loopTally.handshakes * 1000) / this.loopMs : 0;
    return { ...this.loopTally, failures: [...this.loopTally.failures], rounds: this.loopRounds, ms: this.loopMs, handshakesPerSecond: Math.round(rate) };
  }

  /** Everything since creation: explicit rounds and the continuous loop. */
  totals(): HandshakeTally {
    return { ...this.allTally, failures: [...this.allTally.failures] };
  }

  /** Stop the loop, the services and the connectors. */
  async close(): Promise<void> {
    if (this.running) await this.stop();
    for (const c of this.connectors.values()) c.close();
    await Promise.all([...this.servers.values()].map((s) => s.close()));
  }
}

function merge(into: HandshakeTally, from: HandshakeTally, max: number): void {
  into.attempted += from.attempted;
  into.failed += from.failed;
  into.fallbacks += from.fallbacks;
  into.handshakes += from.handshakes;
  into.retries += from.retries;
  for (const f of from.failures) if (into.failures.length < max) into.failures.push(f);
}
