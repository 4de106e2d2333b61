/**
 * One server agent and one client agent provisioned under a fresh root R0,
 * plus the rotation material (D, R1, Sn, Cn) a manager would send them, and
 * a command builder. For agent-level tests that drive steps by hand.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Command, StepPayload } from '../../protocol/messages/command.ts';
import type { Role } from '../../protocol/steps.ts';
import { createRoot, type RootMaterial } from '../../manager/ca/root.ts';
import { createRootUpdate, type RootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';

const DAY = 86_400_000;
/** Fixed start so validity tests are exact. */
export const T0 = new Date('2026-11-24T00:00:00Z');

/** A provisioned device under test. */
export interface TestDevice {
  id: string;
  role: Role;
  agent: Agent;
  keys: MemoryKeyStore;
  store: SqliteStateStore;
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
  /** SHA-256 of the device's database files (db + WAL; not the -shm reader index, which readers touch), to prove nothing was written. */
  fileHash(dev: TestDevice): string;
  close(): Promise<void>;
}

/** Build the fixture with R0 valid from T0 for 10 years and a rotation at T0 + 1 day. */
export async function deviceFixture(opts: { sameDn?: boolean } = {}): Promise<DeviceFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'trustroll-agent-'));
  const clock = new ManualClock(new Date(T0.getTime() + DAY));
  const r0 = await createRoot({ subject: 'CN=Printer Fleet Root,O=trustroll test', algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3650 * DAY) });
  const update = await createRootUpdate({ old: r0, now: clock.now(), lifetimeDays: 3650, subject: opts.sameDn === false ? 'CN=Printer Fleet Root 2,O=trustroll test' : undefined });
  const logger = createLogger({ level: 'error' });
  const make = async (id: string, role: Role): Promise<TestDevice> => {
    const keys = new MemoryKeyStore();
    const key = await keys.create('device', 'P-256');
    const cert = new LeafIssuer(r0).issue({ commonName: id, publicKey: key.spki, profile: role, notBefore: T0, notAfter: new Date(T0.getTime() + 700 * DAY) });
    const dbPath = join(dir, `${id}.db`);
    const store = new SqliteStateStore(dbPath);
    const agent = await Agent.provision({ deviceId: id, role, store, keys, clock, logger }, { root: r0.cert, certificate: cert, keyLabel: 'device' });
    return { id, role, agent, keys, store, dbPath };
  };
  const server = await make('srv-1', 'server');
  const client = await make('cli-1', 'client');
  const issue = (dev: TestDevice, spki: Buffer) => new LeafIssuer(update.next).issue({ commonName: dev.id, publicKey: spki, profile: dev.role, notBefore: clock.now(), notAfter: new Date(clock.now().getTime() + 700 * DAY) });
  const sn = issue(server, (await server.keys.get('device'))!.spki);
  const cn = issue(client, (await client.keys.get('device'))!.spki);
  return {
    dir, clock, r0, update, server, client, sn, cn,
    command: (dev, seq, step, payload, extra = {}) => ({
      v: 1, kind: 'command', deviceId: dev.id, rotationId: 'rot-1', schedule: step.startsWith('B') ? 'batched' : 'six-step',
      seq, step, issuedAt: clock.now().toISOString(), payload, ...extra,
    }),
    fileHash: (dev) => {
      const h = createHash('sha256');
      for (const f of readdirSync(dir).filter((n) => n.startsWith(`${dev.id}.db`) && !n.endsWith('-shm')).sort()) h.update(f).update(readFileSync(join(dir, f)));
      return h.digest('hex');
    },
    close: async () => {
      await server.store.close();
      await client.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
