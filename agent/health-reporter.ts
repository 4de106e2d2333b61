/**
 * The running agent's side of the health file (health-file.ts): samples the
 * link, the handshake counters, the refused commands, the key backend's
 * health and its own write access to the state folders, and replaces the
 * file only when one of them changed: at once for the link going up or
 * down, a refusal, the key backend or a folder it cannot write, and at most
 * every COUNTERS_EVERY_MS for counters alone. An idle agent writes nothing.
 * A failed write is logged and retried on the next tick; it never stops the
 * agent.
 */
import { constants, existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import type { KeyStore } from '../hal/key-store.ts';
import type { Clock } from '../protocol/clock.ts';
import type { Logger } from '../protocol/log.ts';
import type { TlsCounters } from '../protocol/messages/device-state.ts';
import type { AgentConfig } from './config.ts';
import { configDigest } from './config-digest.ts';
import { procStartOf, writeHealth, type AgentHealth, type StorageProblem } from './health-file.ts';
import { statePaths, writeTarget } from './state-paths.ts';
import type { Uplink } from './uplink.ts';

/** What the reporter samples. */
export interface HealthSources {
  path: string;
  config: AgentConfig;
  /** The configuration file the agent was started with, if known. */
  configPath: string | null;
  url: string;
  /** The command channel: the MQTT link, or a relayed device's relay connection. */
  link: Uplink;
  keys: KeyStore;
  tls: () => TlsCounters | null;
  refused: () => AgentHealth['refused'];
  tlsPort: number | null;
  clock: Clock;
  logger: Logger;
}

const SAMPLE_MS = 1_000;
/** Counters alone are written at most this often. */
const COUNTERS_EVERY_MS = 5_000;
/** The key backend and the state folders are checked this often (a token call and a few access(2) calls: cheap, but not every second). */
const CHECK_EVERY_MS = 10_000;

/** Who this process runs as (a uid without a passwd entry is named by its number); the technician's permission check uses it too. */
export function processUser(): AgentHealth['user'] {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let name = String(uid);
  try {
    name = userInfo().username;
  } catch {
    // A uid without a passwd entry: its number names it.
  }
  return { uid, gid, name };
}

/** The folders and files of `config` this process cannot write (access(2) with its own rights; nothing is written). */
export async function storageProblems(config: AgentConfig): Promise<StorageProblem[]> {
  const out: StorageProblem[] = [];
  for (const p of statePaths(config)) {
    const t = writeTarget(p);
    try {
      await access(t.path, t.kind === 'dir' ? constants.W_OK | constants.X_OK : constants.W_OK);
    } catch (err) {
      // A missing folder it cannot create is reported as missing (ENOENT), under its own name.
      out.push({ path: p.path, setting: p.setting, error: t.exists ? (err as NodeJS.ErrnoException).code ?? 'EACCES' : 'ENOENT' });
    }
  }
  return out;
}

/**
 * The report of a start that failed: who tried, with which configuration,
 * and why. Only into a runtime folder that exists (on a device the service
 * makes it; a failed start creates nothing); best effort, never throws.
 */
export async function reportFailedStart(path: string, config: AgentConfig, configPath: string | null, err: unknown, now: Date): Promise<void> {
  if (!existsSync(dirname(path))) return;
  const at = now.toISOString();
  const health: AgentHealth = {
    v: 2, deviceId: config.deviceId, role: config.role, pid: process.pid, procStart: procStartOf(process.pid), user: processUser(),
    startedAt: at, updatedAt: at, stoppedAt: at,
    startError: { code: (err as { code?: unknown }).code && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : null, message: ((err as Error).message ?? String(err)).slice(0, 2000) },
    config: configDigest(config, configPath), link: null, tls: null, hal: null, tlsPort: null,
    storage: { checkedAt: at, problems: await storageProblems(config).catch(() => []) }, refused: { count: 0, last: null },
  };
  await writeHealth(path, health).catch(() => undefined);
}

/** Keeps the health file current while the agent runs. */
export class HealthReporter {
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: () => void = () => undefined;
  private lastState = '';
  private lastTls = '';
  private lastWrite = 0;
  private lastCheck = 0;
  private hal: NonNullable<AgentHealth['hal']>;
  private storage: AgentHealth['storage'];
  private writing: Promise<void> = Promise.resolve();
  private readonly fixed: Pick<AgentHealth, 'v' | 'deviceId' | 'role' | 'pid' | 'procStart' | 'user' | 'startedAt' | 'config' | 'startError' | 'tlsPort'>;

  private constructor(private readonly s: HealthSources) {
    const startedAt = s.clock.now().toISOString();
    this.fixed = {
      v: 2, deviceId: s.config.deviceId, role: s.config.role, pid: process.pid, procStart: procStartOf(process.pid), user: processUser(),
      startedAt, config: configDigest(s.config, s.configPath), startError: null, tlsPort: s.tlsPort,
    };
    this.hal = { backend: s.keys.backend, ok: true, detail: 'not checked yet' };
    this.storage = { checkedAt: startedAt, problems: [] };
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
      ...this.fixed, updatedAt: '', stoppedAt,
      link: {
        url: this.s.url, connected: link.connected, since: link.connectedSince?.toISOString() ?? null,
        lastError: link.stats.lastError?.slice(0, 2000) ?? null, connects: link.stats.connects, disconnects: link.stats.disconnects,
      },
      tls: this.s.tls(), hal: this.hal, storage: this.storage, refused: this.s.refused(),
    };
  }

  private tick(stoppedAt: string | null = null): Promise<void> {
    this.writing = this.writing.then(async () => {
      const now = this.s.clock.now().getTime();
      if (now - this.lastCheck >= CHECK_EVERY_MS) {
        this.lastCheck = now;
        const h = await this.s.keys.health().catch((err: Error) => ({ ok: false, backend: this.s.keys.backend, detail: err.message }));
        const hal = { backend: h.backend, ok: h.ok, detail: h.detail.slice(0, 2000) };
        if (JSON.stringify(hal) !== JSON.stringify(this.hal)) this.hal = hal;
        const problems = await storageProblems(this.s.config);
        if (JSON.stringify(problems) !== JSON.stringify(this.storage.problems)) this.storage = { checkedAt: new Date(now).toISOString(), problems };
      }
      const health = this.snapshot(stoppedAt);
      const tls = JSON.stringify(health.tls);
      const state = JSON.stringify({ ...health, tls: null });
      const due = state !== this.lastState || (tls !== this.lastTls && now - this.lastWrite >= COUNTERS_EVERY_MS);
      if (!due) return;
      health.updatedAt = new Date(now).toISOString();
      try {
        await writeHealth(this.s.path, health);
        this.lastState = state;
        this.lastTls = tls;
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
