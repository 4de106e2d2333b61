/**
 * The running agent's side of the health file (health-file.ts): samples the
 * link, the handshake counters and the key backend's health once a second
 * and at once when the link goes up or down, and rewrites the file when
 * anything but the time changed, or at least every WRITE_EVERY_MS. A failed write is logged and retried on the next
 * tick; it never stops the agent.
 */
import type { KeyStore } from '../hal/key-store.ts';
import type { Clock } from '../protocol/clock.ts';
import type { Logger } from '../protocol/log.ts';
import type { TlsCounters } from '../protocol/messages/device-state.ts';
import { WRITE_EVERY_MS, writeHealth, type AgentHealth } from './health-file.ts';
import type { Uplink } from './uplink.ts';

/** What the reporter samples. */
export interface HealthSources {
  path: string;
  deviceId: string;
  role: 'server' | 'client';
  url: string;
  /** The command channel: the MQTT link, or a relayed device's relay connection. */
  link: Uplink;
  keys: KeyStore;
  tls: () => TlsCounters | null;
  tlsPort: number | null;
  clock: Clock;
  logger: Logger;
}

const SAMPLE_MS = 1_000;
/** The key backend is asked for its health this often (a token call; cheap, but not every second). */
const HAL_EVERY_MS = WRITE_EVERY_MS;

/** Keeps the health file current while the agent runs. */
export class HealthReporter {
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: () => void = () => undefined;
  private last = '';
  private lastWrite = 0;
  private lastHal = 0;
  private hal: AgentHealth['hal'];
  private writing: Promise<void> = Promise.resolve();
  private readonly startedAt: string;

  private constructor(private readonly s: HealthSources) {
    this.startedAt = s.clock.now().toISOString();
    this.hal = { backend: s.keys.backend, ok: true, detail: 'not checked yet' };
  }

  /** Write the first report and keep the file current until `stop`. */
  static async start(s: HealthSources): Promise<HealthReporter> {
    const r = new HealthReporter(s);
    await r.tick();
    r.timer = setInterval(() => void r.tick(), SAMPLE_MS);
    r.timer.unref();
    r.unsubscribe = s.link.onLinkChange(() => void r.tick());
    return r;
  }

  private snapshot(stoppedAt: string | null): AgentHealth {
    const { link } = this.s;
    return {
      v: 1, deviceId: this.s.deviceId, role: this.s.role, pid: process.pid, startedAt: this.startedAt, updatedAt: '', stoppedAt,
      link: {
        url: this.s.url, connected: link.connected, since: link.connectedSince?.toISOString() ?? null,
        lastError: link.stats.lastError?.slice(0, 2000) ?? null, connects: link.stats.connects, disconnects: link.stats.disconnects,
      },
      tls: this.s.tls(), hal: this.hal, tlsPort: this.s.tlsPort,
    };
  }

  private tick(stoppedAt: string | null = null): Promise<void> {
    this.writing = this.writing.then(async () => {
      const now = this.s.clock.now().getTime();
      if (now - this.lastHal >= HAL_EVERY_MS) {
        this.lastHal = now;
        const h = await this.s.keys.health().catch((err: Error) => ({ ok: false, backend: this.s.keys.backend, detail: err.message }));
        this.hal = { backend: h.backend, ok: h.ok, detail: h.detail.slice(0, 2000) };
      }
      const health = this.snapshot(stoppedAt);
      const key = JSON.stringify(health);
      if (key === this.last && now - this.lastWrite < WRITE_EVERY_MS) return;
      health.updatedAt = new Date(now).toISOString();
      try {
        await writeHealth(this.s.path, health);
        this.last = key;
        this.lastWrite = now;
      } catch (err) {
        this.s.logger.warn('health file not written; retrying', { path: this.s.path, reason: (err as Error).message });
      }
    });
    return this.writing;
  }

  /** Stop sampling and record the graceful stop in the file. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe();
    await this.tick(this.s.clock.now().toISOString());
  }
}
