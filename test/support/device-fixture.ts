/**
 * One server agent and one client agent provisioned under a fresh root R0,
 * plus the rotation material (D, R1, Sn, Cn) a manager would send them, and
 * a command builder. For agent-level tests that drive steps by hand.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { strict as assert } from 'node:assert';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Command, StepPayload } from '../../protocol/messages/command.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { Role } from '../../protocol/steps.ts';
import { createRoot, type RootMaterial } from '../../manager/ca/root.ts';
import { createRootUpdate, type RootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import type { KeyStore } from '../../hal/key-store.ts';
import type { StateStore } from '../../agent/state-store.ts';
import { AGENT_BACKENDS, type AgentBackend, type OpenBackend } from './agent-backends.ts';

const DAY = 86_400_000;
let fixtures = 0;

/** Fixed start so validity tests are exact. */
export const T0 = new Date('2026-11-24T00:00:00Z');

/** A provisioned device under test. */
export interface TestDevice {
  id: string;
  role: Role;
  agent: Agent;
  keys: KeyStore;
  keyLabel: string;
  store: StateStore;
  /** SQLite file of the record (only for the SQLite-backed backends). */
  dbPath: string;
}

/** Everything an agent test needs. */
export interface DeviceFixture {
  dir: string;
  clock: ManualClock;
  r0: RootMaterial;
  update: RootUpdate;
  server: TestDevice;
  client: TestDevice;
  sn: string;
  cn: string;
  /** Build a command for a device. */
  command(dev: TestDevice, seq: number, step: string, payload: StepPayload, opts?: Partial<Command>): Command;
  /** Digest of everything durable about the device's record (SQLite db + WAL, or the HAL record), to prove nothing was written. */
  bytes(dev: TestDevice): Promise<string>;
  /** Simulate a restart: a fresh agent over a fresh state store on the same storage. */
  reopen(dev: TestDevice): Promise<TestDevice>;
  backend: OpenBackend;
  close(): Promise<void>;
}

/** Build the fixture with R0 valid from T0 for 10 years and a rotation at T0 + 1 day. */
export async function deviceFixture(opts: { sameDn?: boolean; backend?: OpenBackend } = {}): Promise<DeviceFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'trustroll-agent-'));
  const ownBackend = !opts.backend;
  const backend = opts.backend ?? (await AGENT_BACKENDS[0]!.open());
  await backend.renew?.();
  const tag = `f${++fixtures}`;
  const clock = new ManualClock(new Date(T0.getTime() + DAY));
  const r0 = await createRoot({ subject: 'CN=Printer Fleet Root,O=trustroll test', algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3650 * DAY) });
  const update = await createRootUpdate({ old: r0, now: clock.now(), lifetimeDays: 3650, subject: opts.sameDn === false ? 'CN=Printer Fleet Root 2,O=trustroll test' : undefined });
  const logger = createLogger({ level: 'error' });
  const keys = backend.keys;
  const make = async (id: string, role: Role): Promise<TestDevice> => {
    const keyLabel = `${id}.${tag}.key`;
    const key = await keys.create(keyLabel, 'P-256');
    const cert = new LeafIssuer(r0).issue({ commonName: id, publicKey: key.spki, profile: role, notBefore: T0, notAfter: new Date(T0.getTime() + 700 * DAY) });
    const store = backend.store(`${id}-${tag}`);
    const agent = await Agent.provision({ deviceId: id, role, store, keys, clock, logger }, { root: r0.cert, certificate: cert, keyLabel });
    return { id, role, agent, keys, keyLabel, store, dbPath: (store as SqliteStateStore).path ?? '' };
  };
  const server = await make('srv-1', 'server');
  const client = await make('cli-1', 'client');
  const issue = (dev: TestDevice, spki: Buffer) => new LeafIssuer(update.next).issue({ commonName: dev.id, publicKey: spki, profile: dev.role, notBefore: clock.now(), notAfter: new Date(clock.now().getTime() + 700 * DAY) });
  const sn = issue(server, (await keys.get(server.keyLabel))!.spki);
  const cn = issue(client, (await keys.get(client.keyLabel))!.spki);
  return {
    dir, clock, r0, update, server, client, sn, cn,
    command: (dev, seq, step, payload, extra = {}) => ({
      v: 1, kind: 'command', deviceId: dev.id, rotationId: 'rot-1', schedule: step.startsWith('B') ? 'batched' : 'six-step',
      seq, step, issuedAt: clock.now().toISOString(), payload, ...extra,
    }),
    bytes: (dev) => backend.bytes(`${dev.id}-${tag}`),
    reopen: async (dev) => {
      await dev.store.close();
      const store = backend.store(`${dev.id}-${tag}`);
      const agent = await Agent.open({ deviceId: dev.id, role: dev.role, store, keys, clock, logger });
      return { ...dev, store, agent };
    },
    backend,
    close: async () => {
      await server.store.close();
      await client.store.close();
      // Devices hold one or two keys; a shared test backend must not pile them up (a TPM has few object slots).
      for (const k of await keys.list()) if (k.label.includes(`.${tag}.`) || k.label.startsWith('srv-1.k') || k.label.startsWith('cli-1.k')) await keys.destroy(k.label).catch(() => undefined);
      if (ownBackend) await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Send `raw` to `dev`; assert the error code and that no byte of its store and nothing in its memory changed. */
export async function refused(f: DeviceFixture, dev: TestDevice, raw: object, code: string, message?: RegExp): Promise<Ack> {
  const bytes = await f.bytes(dev);
  const before = dev.agent.snapshot();
  const ack = await dev.agent.handle(raw);
  assert.equal(ack.ok, false, `expected ${code}, got success`);
  assert.equal(ack.error?.code, code, ack.error?.message);
  if (message) assert.match(ack.error!.message, message);
  assert.equal(await f.bytes(dev), bytes, 'store bytes unchanged');
  assert.deepEqual(dev.agent.snapshot(), before, 'record unchanged');
  return ack;
}

/**
 * Mocha hooks of a per-backend agent suite: `b` is opened once for the
 * describe, and every test gets a fresh fixture on it (handed to `use`,
 * closed after the test). `replace` swaps the test's fixture for one made
 * with other options (the old one is closed first: they share the backend).
 */
export function fixturePerTest(b: AgentBackend, use: (f: DeviceFixture) => void): { replace(opts: { sameDn?: boolean }): Promise<void> } {
  let backend: OpenBackend | undefined;
  let current: DeviceFixture | undefined;
  const make = async (opts: { sameDn?: boolean }) => {
    current = await deviceFixture({ ...opts, backend });
    use(current);
  };
  before(async () => { backend = await b.open(); });
  after(async () => { await backend?.close(); });
  beforeEach(() => make({}));
  afterEach(async () => { await current?.close(); });
  return {
    async replace(opts) {
      await current?.close();
      current = undefined;
      await make(opts);
    },
  };
}
