/**
 * The agent's configuration file: who the device is, which HAL backends
 * hold its keys and records, and where its trust-store record lives.
 * Validated once with ajv; the agent then works through the interfaces and
 * never branches on which backend it got.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { halConfigSchema } from '../hal/config-schema.ts';
import { checkHalConfig, openHal } from '../hal/config.ts';
import { HalError } from '../hal/errors.ts';
import type { KeyStore } from '../hal/key-store.ts';
import type { RecordStore, RecordStoreIntegrity } from '../hal/record-store.ts';
import type { Clock } from '../protocol/clock.ts';
import type { Logger } from '../protocol/log.ts';
import { SAFE_SCHEDULES, SCHEDULES } from '../protocol/steps.ts';
import type { Command } from '../protocol/messages/command.ts';
import type { Ack } from '../protocol/messages/ack.ts';
import { Agent } from './agent.ts';
import { configDigest } from './config-digest.ts';
import { AgentError } from './errors.ts';
import { RecordStateStore } from './record-state-store.ts';
import { RefusalLog } from './refusals.ts';
import type { StateStore } from './state-store.ts';

export type { AgentConfig, LinkConfig, RelayConfig, StoreConfig, ViaConfig } from './config-types.ts';
import type { AgentConfig, StoreConfig } from './config-types.ts';

/** JSON Schema of AgentConfig. */
export const agentConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['deviceId', 'role', 'hal', 'store'],
  properties: {
    deviceId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
    role: { enum: ['server', 'client'] },
    hal: halConfigSchema,
    store: {
      type: 'object',
      required: ['kind'],
      discriminator: { propertyName: 'kind' },
      oneOf: [
        { properties: { kind: { const: 'sqlite' }, path: { type: 'string', minLength: 1 } }, required: ['path'], additionalProperties: false },
        { properties: { kind: { const: 'hal-records' }, name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } }, additionalProperties: false },
      ],
    },
    allowUnsafeSchedules: { type: 'boolean' },
    logLevel: { enum: ['debug', 'info', 'warn', 'error'] },
    stateDir: { type: 'string', minLength: 1 },
    runtimeDir: { type: 'string', minLength: 1 },
    healthFile: { type: 'string', minLength: 1 },
    link: {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'ca', 'cert', 'commandKeys'],
      oneOf: [{ required: ['key'] }, { required: ['keyLabel'] }],
      properties: {
        url: { type: 'string', pattern: '^mqtts://' },
        ca: { type: 'string', minLength: 1 },
        cert: { type: 'string', minLength: 1 },
        key: { type: 'string', minLength: 1 },
        keyLabel: { type: 'string', minLength: 1 },
        serverName: { type: 'string', minLength: 1 },
        commandKeys: { type: 'object', minProperties: 1, additionalProperties: { type: 'string', minLength: 1 } },
        stateIntervalMs: { type: 'integer', minimum: 100, maximum: 86_400_000 },
      },
    },
    relay: {
      type: 'object',
      additionalProperties: false,
      required: ['for'],
      properties: {
        for: { type: 'array', minItems: 1, maxItems: 256, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } },
        intervalMs: { type: 'integer', minimum: 50, maximum: 3_600_000 },
      },
    },
    via: {
      type: 'object',
      additionalProperties: false,
      required: ['relay', 'commandKeys'],
      properties: {
        relay: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        pollMs: { type: 'integer', minimum: 50, maximum: 3_600_000 },
        commandKeys: { type: 'object', minProperties: 1, additionalProperties: { type: 'string', minLength: 1 } },
      },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['host', 'port'],
      properties: { host: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
    },
    probe: {
      type: 'object',
      additionalProperties: false,
      required: ['targets', 'intervalMs'],
      properties: {
        targets: {
          type: 'array',
          items: {
            type: 'object', additionalProperties: false, required: ['host', 'port', 'serverId'],
            properties: { host: { type: 'string' }, port: { type: 'integer', minimum: 1, maximum: 65535 }, serverId: { type: 'string' } },
          },
        },
        intervalMs: { type: 'integer', minimum: 0 },
      },
    },
  },
} as const;

// No meta-schema check or code optimiser at run time: they cost the idle agent megabytes (bench/footprint.ts); test/agent/schemas-meta.test.ts checks the schemas instead.
// Held weakly: the agent checks its configuration once at start, and the compiled validator (with its Ajv instance) is then garbage.
let validator: WeakRef<ValidateFunction> | undefined;
const compiled = (): ValidateFunction => {
  let v = validator?.deref();
  if (!v) validator = new WeakRef(v = new Ajv({ allErrors: false, strict: false, discriminator: true, validateSchema: false, code: { optimize: false } }).compile(agentConfigSchema));
  return v;
};

/** Validate a parsed configuration; E_AGENT_CONFIG names the setting to fix. */
export function checkAgentConfig(value: unknown): AgentConfig {
  const validate = compiled();
  if (!validate(value)) {
    const e = validate.errors?.[0];
    // The HAL section has its own checker with precise messages (e.g. the list of backends this build has).
    if (e?.instancePath.startsWith('/hal') && value && typeof value === 'object') {
      try {
        checkHalConfig((value as { hal?: unknown }).hal);
      } catch (err) {
        if (err instanceof HalError) throw new AgentError('E_AGENT_CONFIG', `setting "hal.${err.setting ?? ''}": ${err.message}`);
        throw err;
      }
    }
    const setting = (e?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') || '(top level)';
    const detail = e?.keyword === 'additionalProperties' ? `unknown setting "${(e.params as { additionalProperty: string }).additionalProperty}"` : e?.message ?? 'invalid';
    throw new AgentError('E_AGENT_CONFIG', `setting "${setting}": ${detail}`);
  }
  const config = value as unknown as AgentConfig;
  checkTopology(config);
  return config;
}

/** The relay settings that the schema cannot express; E_AGENT_CONFIG naming the setting. */
function checkTopology(c: AgentConfig): void {
  const fail = (setting: string, why: string) => { throw new AgentError('E_AGENT_CONFIG', `setting "${setting}": ${why}`); };
  if (c.via) {
    if (c.link) fail('via', 'a device takes its commands either from the broker ("link") or through a relay ("via"), not both; remove one');
    if (c.relay) fail('relay', 'a relayed device cannot relay for others (one hop only); remove "relay" or give this device a "link"');
    if (c.via.relay === c.deviceId) fail('via.relay', 'a device cannot be its own relay');
    if (c.role === 'client' && (c.via.host === undefined || c.via.port === undefined)) fail('via', 'a client-role device polls its relay: give "host" and "port" of the relay\'s mutual-TLS service');
    if (c.role === 'server' && !c.tls) fail('tls', 'a relayed server takes its commands on its mutual-TLS service; give "tls"');
  }
  if (c.relay) {
    if (c.relay.for.includes(c.deviceId)) fail('relay.for', `device ${c.deviceId} cannot relay for itself`);
    if (c.role === 'server' && !c.tls) fail('tls', 'a server-role relay is polled on its mutual-TLS service; give "tls"');
    if (c.role === 'client') {
      const known = new Set((c.probe?.targets ?? []).map((t) => t.serverId));
      const missing = c.relay.for.filter((id) => !known.has(id));
      if (missing.length > 0) fail('relay.for', `a client-role relay pushes to its servers at the addresses in "probe.targets"; none is given for ${missing.join(', ')}`);
    }
  }
}

/** Read and validate a JSON configuration file. */
export function loadAgentConfig(path: string): AgentConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AgentError('E_AGENT_CONFIG', `${path}: ${(err as Error).message}`);
  }
  return checkAgentConfig(parsed);
}

/** Everything a configured device runs with. */
export interface AgentRuntime {
  config: AgentConfig;
  keys: KeyStore;
  store: StateStore;
  /** The agent, or null if the device is not provisioned yet. */
  agent: Agent | null;
  /** Roll-back report of the HAL record store (EEPROM), or null when the backend cannot tell. */
  halIntegrity(): RecordStoreIntegrity | null;
  /** The last refused command, kept durably (with `keepRefusals`), else null. */
  refusals: RefusalLog | null;
  close(): Promise<void>;
}

/** The state store `store` names; a `hal-records` store owns (and closes) `records`. SQLite's engine is loaded only for a `sqlite` store. */
export async function openStateStore(store: StoreConfig, records: RecordStore): Promise<StateStore> {
  if (store.kind === 'hal-records') return new RecordStateStore(records, store.name);
  const { SqliteStateStore } = await import('./sqlite-state-store.ts');
  return new SqliteStateStore(store.path);
}

/** Open the HAL and the state store the configuration names, and the agent if provisioned. */
export async function openAgentRuntime(config: AgentConfig, deps: { clock: Clock; logger: Logger; verifySignature?: (cmd: Command, signedBytes: Buffer) => void; keepRefusals?: boolean }): Promise<AgentRuntime> {
  if (config.store.kind === 'sqlite' && !existsSync(dirname(resolve(config.store.path)))) {
    throw new AgentError('E_AGENT_CONFIG', `setting "store.path": the folder ${dirname(resolve(config.store.path))} does not exist; create it (the agent makes only the store file) or fix the path`);
  }
  const hal = await openHal(config.hal);
  let store: StateStore;
  try {
    store = await openStateStore(config.store, hal.records);
  } catch (err) {
    await hal.keys.close();
    await hal.records.close();
    throw err;
  }
  const close = async () => {
    await store.close();
    await hal.keys.close();
    if (config.store.kind === 'sqlite') await hal.records.close();
  };
  try {
    const provisioned = (await store.load()) !== null;
    const logger = deps.logger.child({ deviceId: config.deviceId });
    const refusals = deps.keepRefusals ? await RefusalLog.open(hal.records, logger, configDigest(config, null).sha256) : null;
    const opts = {
      deviceId: config.deviceId, role: config.role, store, keys: hal.keys, clock: deps.clock, logger, verifySignature: deps.verifySignature,
      schedules: config.allowUnsafeSchedules ? SCHEDULES : SAFE_SCHEDULES, ...(refusals ? { onRefused: (ack: Ack, raw: Buffer | string | object) => refusals.record(ack, raw) } : {}),
    };
    return { config, keys: hal.keys, store, agent: provisioned ? await Agent.open(opts) : null, halIntegrity: () => hal.records.integrity?.() ?? null, refusals, close };
  } catch (err) {
    await close();
    throw err;
  }
}
