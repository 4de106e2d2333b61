/**
 * Device handler latency: verify + durable persist + acknowledgement, per
 * step, on real SQLite stores (synchronous=FULL), one agent per device.
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../agent/agent.ts';
import { SqliteStateStore } from '../agent/sqlite-state-store.ts';
import { ManualClock } from '../protocol/clock.ts';
import { silentLogger } from '../protocol/log.ts';
import { createRoot } from '../manager/ca/root.ts';
import { createRootUpdate } from '../manager/ca/root-update.ts';
import { LeafIssuer } from '../manager/ca/leaf-issuer.ts';
import { MemoryKeyStore } from '../demo/memory-key-store.ts';
import { latencySummary } from './stats.ts';

const DAY = 86_400_000;

/** Latency of P1 (verify D), P4 (verify Sn) and P5 (verify R1, drop R0) over `devices` server agents. */
export async function benchHandlers(devices: number): Promise<Record<string, ReturnType<typeof latencySummary>>> {
  const dir = mkdtempSync(join(tmpdir(), 'trustroll-bench-'));
  const t0 = new Date('2026-11-01T00:00:00Z');
  const clock = new ManualClock(new Date(t0.getTime() + DAY));
  const r0 = await createRoot({ subject: 'CN=Bench Root', algorithm: 'P-256', notBefore: t0, notAfter: new Date(t0.getTime() + 3650 * DAY) });
  const update = await createRootUpdate({ old: r0, now: clock.now(), lifetimeDays: 3650 });
  const oldIssuer = new LeafIssuer(r0);
  const newIssuer = new LeafIssuer(update.next);
  const agents: { agent: Agent; store: SqliteStateStore; sn: string }[] = [];
  for (let i = 0; i < devices; i++) {
    const keys = new MemoryKeyStore();
    const key = await keys.create('device', 'P-256');
    const req = { commonName: `srv-${i}`, publicKey: key.spki, profile: 'server' as const, notBefore: t0, notAfter: new Date(t0.getTime() + 700 * DAY) };
    const store = new SqliteStateStore(join(dir, `srv-${i}.db`));
    const agent = await Agent.provision({ deviceId: `srv-${i}`, role: 'server', store, keys, clock, logger: silentLogger }, { root: r0.cert, certificate: oldIssuer.issue(req), keyLabel: 'device' });
    agents.push({ agent, store, sn: newIssuer.issue({ ...req, notBefore: clock.now() }) });
  }
  const cmd = (id: string, seq: number, step: string, payload: object) => JSON.stringify({ v: 1, kind: 'command', deviceId: id, rotationId: 'rot-bench', schedule: 'six-step', seq, step, issuedAt: clock.now().toISOString(), payload });
  const out: Record<string, ReturnType<typeof latencySummary>> = {};
  for (const [seq, step, payload] of [[1, 'P1', { distribution: update.distribution }], [2, 'P4', null], [3, 'P5', { newRoot: update.next.cert }]] as const) {
    const times: number[] = [];
    for (const a of agents) {
      const raw = cmd(a.agent.deviceId, seq, step, payload ?? { certificate: a.sn });
      const start = performance.now();
      const ack = await a.agent.handle(raw);
      times.push(performance.now() - start);
      if (!ack.ok) throw new Error(`${step} failed: ${ack.error?.message}`);
    }
    out[step] = latencySummary(times);
  }
  const redelivery: number[] = [];
  for (const a of agents) {
    const raw = cmd(a.agent.deviceId, 3, 'P5', { newRoot: update.next.cert });
    const start = performance.now();
    await a.agent.handle(raw);
    redelivery.push(performance.now() - start);
  }
  out.redeliveredP5 = latencySummary(redelivery);
  for (const a of agents) await a.store.close();
  rmSync(dir, { recursive: true, force: true });
  return out;
}
