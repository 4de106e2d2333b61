/**
 * The running agent's health file: a small JSON file next to the device's
 * store that `trustroll-agent run` rewrites (write-temp + fsync + rename)
 * whenever what it says changes and at least every WRITE_EVERY_MS, and that
 * `status` and `selftest` read. It lets a technician's tool learn the link's
 * state without opening a second MQTT session as the device: the broker
 * forces the client id to the certificate CN, so such a session would take
 * the running agent's over. Names, counters and times only; no key material.
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { atomicWriteFile } from '../hal/file/atomic-write.ts';
import { TLS_COUNTERS_SCHEMA, type TlsCounters } from '../protocol/messages/device-state.ts';
import type { AgentConfig } from './config.ts';

/** The running agent rewrites the file at least this often. */
export const WRITE_EVERY_MS = 10_000;
/** A file older than this is stale: the agent that wrote it hangs or is gone. */
export const FRESH_FOR_MS = 3 * WRITE_EVERY_MS;

/** What the running agent reports about itself. */
export interface AgentHealth {
  v: 1;
  deviceId: string;
  role: 'server' | 'client';
  pid: number;
  startedAt: string;
  updatedAt: string;
  /** Set by a graceful stop. */
  stoppedAt: string | null;
  link: { url: string; connected: boolean; since: string | null; lastError: string | null; connects: number; disconnects: number };
  /** Handshake counters (as in the state message), or null when the device makes or serves none. */
  tls: TlsCounters | null;
  /** The key backend's own check at `updatedAt`. */
  hal: { backend: string; ok: boolean; detail: string };
  /** Port of the device's mutual-TLS service (server role), else null. */
  tlsPort: number | null;
}

const text = { type: 'string', maxLength: 2000 };
const time = { type: 'string', minLength: 20, maxLength: 40 };
const nullable = (s: object) => ({ anyOf: [s, { type: 'null' }] });
const count = { type: 'integer', minimum: 0 };

/** JSON Schema of the health file. */
export const HEALTH_SCHEMA = {
  type: 'object', additionalProperties: false,
  required: ['v', 'deviceId', 'role', 'pid', 'startedAt', 'updatedAt', 'stoppedAt', 'link', 'tls', 'hal', 'tlsPort'],
  properties: {
    v: { const: 1 }, deviceId: text, role: { enum: ['server', 'client'] }, pid: { type: 'integer', minimum: 1 },
    startedAt: time, updatedAt: time, stoppedAt: nullable(time),
    link: {
      type: 'object', additionalProperties: false, required: ['url', 'connected', 'since', 'lastError', 'connects', 'disconnects'],
      properties: { url: text, connected: { type: 'boolean' }, since: nullable(time), lastError: nullable(text), connects: count, disconnects: count },
    },
    tls: nullable(TLS_COUNTERS_SCHEMA),
    hal: { type: 'object', additionalProperties: false, required: ['backend', 'ok', 'detail'], properties: { backend: text, ok: { type: 'boolean' }, detail: text } },
    tlsPort: nullable({ type: 'integer', minimum: 0, maximum: 65535 }),
  },
} as const;

let validator: ValidateFunction<AgentHealth> | null = null;
/** The health file's validator, compiled on first use: only its readers (status, selftest) need it, not the running agent. */
function healthValidator(): ValidateFunction<AgentHealth> {
  // No meta-schema check or code optimiser at run time: they cost the idle agent megabytes (bench/footprint.ts); test/agent/schemas-meta.test.ts checks the schemas instead.
  validator ??= new Ajv({ strict: false, validateSchema: false, code: { optimize: false } }).compile<AgentHealth>(HEALTH_SCHEMA);
  return validator;
}

/**
 * Where the agent of `config` keeps its health file: `healthFile` if set,
 * else next to the store (the SQLite file's folder, or the HAL record
 * folder); an EEPROM-only device has no such folder and uses the system's
 * temporary folder (volatile, which suits a health file).
 */
export function healthFilePath(config: AgentConfig): string {
  if (config.healthFile) return config.healthFile;
  const name = `${config.deviceId}.health.json`;
  if (config.store.kind === 'sqlite') return join(dirname(config.store.path), name);
  if (config.hal.records.backend === 'file') return join(config.hal.records.dir, name);
  return join(tmpdir(), 'trustroll-agent', name);
}

/** Durably replace the health file. */
export async function writeHealth(path: string, health: AgentHealth): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await atomicWriteFile(path, Buffer.from(JSON.stringify(health, null, 2) + '\n'));
}

/** True while a process with this id exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What a reader concludes from the health file. */
export type HealthView =
  | { state: 'running'; health: AgentHealth; ageMs: number }
  /** The process is alive but has not written for FRESH_FOR_MS: hung, or its storage fails. */
  | { state: 'stale'; health: AgentHealth; ageMs: number }
  | { state: 'stopped'; health: AgentHealth; ageMs: number }
  | { state: 'absent'; reason: string };

/** Read and judge the health file at `now` (never writes). */
export function readHealth(path: string, now: Date): HealthView {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { state: 'absent', reason: code === 'ENOENT' ? `no health file at ${path} (the agent has not run here)` : `cannot read ${path} (${code ?? (err as Error).message})` };
  }
  let health: unknown;
  try {
    health = JSON.parse(raw);
  } catch {
    return { state: 'absent', reason: `${path} is not valid JSON` };
  }
  const validate = healthValidator();
  if (!validate(health)) return { state: 'absent', reason: `${path} is not a trustroll health file (${validate.errors?.[0]?.instancePath || '/'} ${validate.errors?.[0]?.message ?? ''})` };
  const ageMs = Math.max(0, now.getTime() - Date.parse(health.updatedAt));
  if (health.stoppedAt !== null || !processAlive(health.pid)) return { state: 'stopped', health, ageMs };
  return { state: ageMs <= FRESH_FOR_MS ? 'running' : 'stale', health, ageMs };
}
