import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { checkStatesWithOpenssl, checkWithNode, type FleetSnapshot } from '../../demo/auth-matrix.ts';
import { BATCHED, NAIVE, SIX_STEP, type Schedule } from '../../protocol/steps.ts';
import { fingerprint } from '../../protocol/pem.ts';

const SEEDS = 16;

/** Run one rotation, checking the auth matrix with node:crypto after every device change. */
async function rotateChecked(schedule: Schedule, seed: number, opts: { unsafe?: boolean; keep?: FleetSnapshot[]; before?: (f: InProcessFleet) => void; servers?: number; clients?: number } = {}) {
  const fleet = await InProcessFleet.create({ servers: opts.servers ?? 3, clients: opts.clients ?? 5, seed, maxLatencyMs: 4 });
  const broken: string[] = [];
  let fallbacks = 0;
  let states = 0;
  const order: string[] = [];
  fleet.onChange((label) => {
    const snap = fleet.snapshot(`${schedule.name}/seed ${seed}/after ${label} #${++states}`);
    const r = checkWithNode(snap, new Date());
    broken.push(...r.broken);
    fallbacks += r.fallbacks;
    order.push(label);
    opts.keep?.push(snap);
  });
  opts.before?.(fleet);
  try {
    const rotation = await fleet.rotate(schedule, { unsafe: opts.unsafe });
    const newRoot = rotation.newRoot;
    return { fleet, rotation, broken, fallbacks, states, order: order.join(','), newRoot, close: () => fleet.close() };
  } catch (err) {
    await fleet.close();
    throw err;
  }
}

describe('rotation: at every acknowledged step every client authenticates with every server', function () {
  this.timeout(120_000);

  for (const schedule of [SIX_STEP, BATCHED]) {
    it(`${schedule.name}: 3 servers x 5 clients over ${SEEDS} random interleavings (node:crypto after every change)`, async () => {
      const orders = new Set<string>();
      for (let seed = 1; seed <= SEEDS; seed++) {
        const run = await rotateChecked(schedule, seed);
        try {
          assert.equal(run.rotation.status, 'complete', run.rotation.error ?? '');
          assert.deepEqual(run.broken, [], `seed ${seed}`);
          assert.equal(run.states, 8 * (schedule === SIX_STEP ? 3 : 0) + (schedule === BATCHED ? 3 + 5 * 2 : 0), 'one durable change per device step');
          orders.add(run.order);
          // End state: only R1 trusted, one identity issued by K1, on every device.
          const r1 = new X509Certificate(run.newRoot);
          for (const agent of run.fleet.agents.values()) {
            assert.deepEqual(agent.trustAnchors().map((p) => fingerprint(new X509Certificate(p))), [fingerprint(r1)], agent.deviceId);
            assert.equal(agent.identities().length, 1, agent.deviceId);
            assert.ok(new X509Certificate(agent.identities()[0]!.cert).verify(r1.publicKey), `${agent.deviceId} presents a K1 leaf`);
          }
        } finally {
          await run.close();
        }
      }
      assert.ok(orders.size >= SEEDS / 2, `interleavings differ between seeds (${orders.size} distinct of ${SEEDS})`);
    });

    it(`${schedule.name}: every state of 2 interleavings passes openssl verify on exported PEM files`, async () => {
      for (const seed of [101, 102]) {
        const snaps: FleetSnapshot[] = [];
        const run = await rotateChecked(schedule, seed, { keep: snaps });
        try {
          assert.equal(run.rotation.status, 'complete');
          const r = checkStatesWithOpenssl(snaps, join(run.fleet.dir, 'openssl'));
          assert.ok(r.states >= 8, `checked ${r.states} distinct states`);
          assert.deepEqual(r.broken, []);
        } finally {
          await run.close();
        }
      }
    });
  }

  it('six-step never needs the fallback certificate (P1 before P3); batched does until B2 lands [0131]', async () => {
    const six = await rotateChecked(SIX_STEP, 5);
    const batched = await rotateChecked(BATCHED, 5);
    try {
      assert.equal(six.fallbacks, 0);
      assert.ok(batched.fallbacks > 0);
    } finally {
      await six.close();
      await batched.close();
    }
  });

  it('the naive replace-everything order breaks authentication (node:crypto and openssl agree)', async () => {
    const snaps: FleetSnapshot[] = [];
    const run = await rotateChecked(NAIVE, 3, { unsafe: true, keep: snaps });
    try {
      assert.ok(run.broken.length > 0, 'node:crypto finds a broken state');
      const r = checkStatesWithOpenssl(snaps, join(run.fleet.dir, 'openssl'));
      assert.ok(r.broken.length > 0, 'openssl finds a broken state');
    } finally {
      await run.close();
    }
  });

  it('P4 before P2 (a server switches before a client trusts K1) breaks authentication', async () => {
    const p4EarlySchedule: Schedule = {
      name: 'six-step',
      steps: SIX_STEP.steps.map((s) => (s.id === 'P4' ? { ...s, after: [{ step: 'P1', scope: 'self' as const, strength: 'required' as const }] } : s)),
    };
    const snaps: FleetSnapshot[] = [];
    let lateClient = '';
    const run = await rotateChecked(p4EarlySchedule, 9, {
      unsafe: true,
      keep: snaps,
      before: (fleet) => {
        lateClient = 'cli-5';
        fleet.disconnect(lateClient);
        fleet.onChange(() => {
          const servers = [...fleet.agents.values()].filter((a) => a.role === 'server');
          if (fleet.offline.has(lateClient) && servers.every((a) => a.snapshot().rotation?.completed.includes('P4'))) fleet.connect(lateClient);
        });
      },
    });
    try {
      assert.ok(run.broken.some((b) => b.includes(`${lateClient} ->`) && b.includes('client rejects server cert')), run.broken.slice(0, 3).join('\n'));
      const r = checkStatesWithOpenssl(snaps, join(run.fleet.dir, 'openssl'));
      assert.ok(r.broken.length > 0, 'openssl agrees');
    } finally {
      await run.close();
    }
  });
});
