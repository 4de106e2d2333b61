/**
 * The running agent's health file: a small JSON file in the agent's
 * runtime folder (volatile: /run/trustroll on a device, see state-paths.ts)
 * that `trustroll-agent run` replaces (write-temp + rename, no fsync: it is
 * lost at reboot by design, and never touches flash) only when something
 * the technician's tools show changed, and that `status` and `selftest`
 * read. It lets those tools learn the link's state without opening a
 * second MQTT session as the device: the broker forces the client id to
 * the certificate CN, so such a session would take the running agent's
 * over. A start that fails leaves a report too (`startError`), naming the
 * user the agent ran as. Names, counters and times only; no key material.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { TLS_COUNTERS_SCHEMA, type TlsCounters } from '../protocol/messages/device-state.ts';
import type { AgentConfig } from './config-types.ts';
import type { ConfigDigest } from './config-digest.ts';
import { runtimeDirOf } from './state-paths.ts';

/** A refused command as the health file and the durable record name it (no payload, no signature). */
export interface RefusalSummary {
  at: string;
  rotationId: string;
  seq: number;
  step: string;
  code: string;
}

/** A place the running agent found it cannot write (its own access check, with its user's rights). */
export interface StorageProblem {
  path: string;
  setting: string;
  /** errno code: EACCES, EPERM (immutable, or a security module), EROFS, ENOENT. */
  error: string;
}

/** What the running agent reports about itself. */
export interface AgentHealth {
  v: 2;
  deviceId: string;
  role: 'server' | 'client';
  pid: number;
  /** The process's start time in clock ticks after boot (/proc/<pid>/stat), so a reused pid is not taken for the agent; null without /proc. */
  procStart: string | null;
  /** Who the agent runs as: the user whose rights on the state folders count. */
  user: { uid: number; gid: number; name: string };
  startedAt: string;
  updatedAt: string;
  /** Set by a graceful stop, or by a start that failed. */
  stoppedAt: string | null;
  /** Why the start failed (the agent exited), or null. */
  startError: { code: string | null; message: string } | null;
  /** The configuration the agent started with (configDigest). */
  config: ConfigDigest;
  /** The command channel, or null when the start failed before it existed. */
  link: { url: string; connected: boolean; since: string | null; lastError: string | null; connects: number; disconnects: number } | null;
  /** Handshake counters (as in the state message), or null when the device makes or serves none. */
  tls: TlsCounters | null;
  /** The key backend's own check, or null when the start failed before the HAL opened. */
  hal: { backend: string; ok: boolean; detail: string } | null;
  /** Port of the device's mutual-TLS service (server role), else null. */
  tlsPort: number | null;
  /** The agent's own check that it can write where it keeps its state (state-paths.ts). */
  storage: { checkedAt: string; problems: StorageProblem[] };
  /** Commands refused since the agent started, and the last one. */
  refused: { count: number; last: RefusalSummary | null };
}

const text = { type: 'string', maxLength: 2000 };
const time = { type: 'string', minLength: 20, maxLength: 40 };
const nullable = (s: object) => ({ anyOf: [s, { type: 'null' }] });
const count = { type: 'integer', minimum: 0 };
const obj = (props: Record<string, object>) => ({ type: 'object', additionalProperties: false, required: Object.keys(props), properties: props });

/** JSON Schema of the health file. */
export const HEALTH_SCHEMA = {
  ...obj({
    v: { const: 2 }, deviceId: text, role: { enum: ['server', 'client'] }, pid: { type: 'integer', minimum: 1 }, procStart: nullable(text),
    user: obj({ uid: count, gid: count, name: text }),
    startedAt: time, updatedAt: time, stoppedAt: nullable(time),
    startError: nullable(obj({ code: nullable(text), message: text })),
    config: obj({ path: nullable(text), sha256: text, sections: { type: 'object', additionalProperties: text } }),
    link: nullable(obj({ url: text, connected: { type: 'boolean' }, since: nullable(time), lastError: nullable(text), connects: count, disconnects: count })),
    tls: nullable(TLS_COUNTERS_SCHEMA),
    hal: nullable(obj({ backend: text, ok: { type: 'boolean' }, detail: text })),
    tlsPort: nullable({ type: 'integer', minimum: 0, maximum: 65535 }),
    storage: obj({ checkedAt: time, problems: { type: 'array', maxItems: 32, items: obj({ path: text, setting: text, error: text }) } }),
    refused: obj({ count, last: nullable(obj({ at: time, rotationId: text, seq: count, step: text, code: text })) }),
  }),
} as const;

let validator: ValidateFunction<AgentHealth> | null = null;
/** The health file's validator, compiled on first use: only its readers (status, selftest) need it, not the running agent. */
function healthValidator(): ValidateFunction<AgentHealth> {
  // No meta-schema check or code optimiser at run time: they cost the idle agent megabytes (bench/footprint.ts); test/agent/schemas-meta.test.ts checks the schemas instead.
  validator ??= new Ajv({ strict: false, validateSchema: false, code: { optimize: false } }).compile<AgentHealth>(HEALTH_SCHEMA);
  return validator;
}

/** Where the agent of `config` keeps its health file: `healthFile` if set, else `<runtime folder>/<deviceId>.health.json`. */
export function healthFilePath(config: AgentConfig): string {
  return config.healthFile ?? join(runtimeDirOf(config), `${config.deviceId}.health.json`);
}

/** Replace the health file atomically (temp + rename), without fsync: it lives on a volatile folder and is rewritten on change. */
export async function writeHealth(path: string, health: AgentHealth): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(health, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The start time of process `pid` (field 22 of /proc/<pid>/stat), or null when it cannot be read. */
export function procStartOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Start times this close (clock ticks: 1 s at Linux's 100 Hz) are one process: qemu-user computes its own, a tick or so off the kernel's. */
const SAME_START_TICKS = 100;

/**
 * True while process `pid` exists (EPERM: it exists but belongs to someone
 * else) and, given the start time it recorded, is that process and not a
 * later one with its pid. A recorded 0 or an unreadable /proc is no
 * evidence either way.
 */
export function processAlive(pid: number, procStart: string | null = null): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = procStart === null || Number(procStart) === 0 ? null : procStartOf(pid);
  return now === null || Math.abs(Number(now) - Number(procStart)) <= SAME_START_TICKS;
}

/** What a reader concludes from the health file. */
export type HealthView =
  | { state: 'running'; health: AgentHealth; ageMs: number }
  /** Stopped cleanly, failed to start (`health.startError`), or its process is gone. */
  | { state: 'stopped'; health: AgentHealth; ageMs: number }
  /** No health file to go by; `unreadable`: there is one, but this user may not read it. */
  | { state: 'absent'; reason: string; unreadable?: boolean };

/** Read and judge the health file at `now` (never writes). */
export function readHealth(path: string, now: Date): HealthView {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'absent', reason: `no health file at ${path}: the agent has not run since the device started` };
    return { state: 'absent', reason: `cannot read ${path} (${code ?? (err as Error).message})`, unreadable: true };
  }
  let health: unknown;
  try {
    health = JSON.parse(raw);
  } catch {
    return { state: 'absent', reason: `${path} is not valid JSON` };
  }
  const validate = healthValidator();
  if (!validate(health)) return { state: 'absent', reason: `${path} is not a health file of this agent version (${validate.errors?.[0]?.instancePath || '/'} ${validate.errors?.[0]?.message ?? ''})` };
  const ageMs = Math.max(0, now.getTime() - Date.parse(health.updatedAt));
  if (health.stoppedAt !== null || !processAlive(health.pid, health.procStart)) return { state: 'stopped', health, ageMs };
  return { state: 'running', health, ageMs };
}
