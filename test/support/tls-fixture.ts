/**
 * One server-role and one client-role agent under a fresh root R0, with the
 * rotation material (D, R1, Sn, Cn), for live-TLS tests. Unlike
 * device-fixture.ts every date is relative to the wall clock, because a real
 * TLS stack checks validity against the system time. Steps are driven by
 * hand with `step()`, so a test can build any pair of device states.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger, type Logger } from '../../protocol/log.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { StepPayload } from '../../protocol/messages/command.ts';
import type { Role } from '../../protocol/steps.ts';
import { createRoot, type RootMaterial } from '../../manager/ca/root.ts';
import { createRootUpdate, type RootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';

const DAY = 86_400_000;

/** A provisioned device of the fixture. */
export interface TlsTestDevice {
  id: string;
  role: Role;
  agent: Agent;
  keys: MemoryKeyStore;
  store: SqliteStateStore;
}

/** Everything a live-TLS test needs. */
export interface TlsFixture {
  r0: RootMaterial;
  update: RootUpdate;
  server: TlsTestDevice;
  client: TlsTestDevice;
  /** New server and client certificates, issued by K1 for the devices' own keys. */
  sn: string;
  cn: string;
  /** Log lines (JSON) of the fixture's devices and TLS components. */
  lines: string[];
  logger: Logger;
  /** Apply one step of the six-step schedule to a device (payload chosen from the step). */
  step(dev: TlsTestDevice, step: 'P1' | 'P2' | 'P3' | 'P4' | 'P5' | 'P6'): Promise<Ack>;
  close(): Promise<void>;
}

/** Build the fixture: R0 valid from an hour ago, the rotation material made now. */
export async function tlsFixture(): Promise<TlsFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'trustroll-tls-'));
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', sink: (l) => { lines.push(l); if (lines.length > 2000) lines.splice(0, 500); } });
  const start = new Date(Date.now() - 3_600_000);
  const r0 = await createRoot({ subject: 'CN=Printer Fleet Root,O=trustroll tls test', algorithm: 'P-256', notBefore: start, notAfter: new Date(start.getTime() + 3650 * DAY) });
  const update = await createRootUpdate({ old: r0, now: new Date(Date.now() - 60_000), lifetimeDays: 3650 });
  const make = async (id: string, role: Role): Promise<TlsTestDevice> => {
    const keys = new MemoryKeyStore();
    const key = await keys.create('device', 'P-256');
    const cert = new LeafIssuer(r0).issue({ commonName: id, publicKey: key.spki, profile: role, notBefore: start, notAfter: new Date(start.getTime() + 700 * DAY) });
    const store = new SqliteStateStore(join(dir, `${id}.db`));
    const agent = await Agent.provision({ deviceId: id, role, store, keys, clock: systemClock, logger: logger.child({ deviceId: id }) }, { root: r0.cert, certificate: cert, keyLabel: 'device' });
    return { id, role, agent, keys, store };
  };
  const server = await make('srv-1', 'server');
  const client = await make('cli-1', 'client');
  const issue = async (dev: TlsTestDevice) =>
    new LeafIssuer(update.next).issue({ commonName: dev.id, publicKey: (await dev.keys.get('device'))!.spki, profile: dev.role, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 700 * DAY) });
  const sn = await issue(server);
  const cn = await issue(client);
  const seqs = new Map<string, number>();
  const payloads: Record<string, (dev: TlsTestDevice) => StepPayload> = {
    P1: () => ({ distribution: update.distribution }),
    P2: () => ({ distribution: update.distribution }),
    P3: () => ({ certificate: cn }),
    P4: () => ({ certificate: sn }),
    P5: () => ({ newRoot: update.next.cert }),
    P6: () => ({ newRoot: update.next.cert }),
  };
  return {
    r0, update, server, client, sn, cn, lines, logger,
    step: async (dev, step) => {
      const seq = (seqs.get(dev.id) ?? 0) + 1;
      seqs.set(dev.id, seq);
      const ack = await dev.agent.handle({
        v: 1, kind: 'command', deviceId: dev.id, rotationId: 'rot-tls', schedule: 'six-step', seq, step, issuedAt: new Date().toISOString(), payload: payloads[step]!(dev),
      });
      if (!ack.ok) throw new Error(`${dev.id} ${step}: ${ack.error?.code} ${ack.error?.message}`);
      return ack;
    },
    close: async () => {
      await server.store.close();
      await client.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
