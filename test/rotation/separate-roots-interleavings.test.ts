import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { checkWithNode } from '../../demo/auth-matrix.ts';
import { fingerprint } from '../../protocol/pem.ts';
import { CLIENT_ROOT, SERVER_ROOT, type Schedule } from '../../protocol/steps.ts';

const SEEDS = 8;
const fp = (pem: string) => fingerprint(new X509Certificate(pem));

/** A separate-roots fleet whose every durable change is checked with node:crypto (every client with every server). */
async function checkedFleet(seed: number) {
  const fleet = await InProcessFleet.create({ servers: 2, clients: 4, seed, maxLatencyMs: 4, clientRootSubject: 'CN=Client Root,O=trustroll test' });
  const state = { broken: [] as string[], fallbacks: 0, states: 0 };
  fleet.onChange((label) => {
    const r = checkWithNode(fleet.snapshot(`seed ${seed} after ${label} #${++state.states}`), new Date());
    state.broken.push(...r.broken);
    state.fallbacks += r.fallbacks;
  });
  return { fleet, state };
}

describe('separate roots: every interleaving authenticates at every change (in-process, node:crypto)', function () {
  this.timeout(120_000);

  it(`client root, then server root, over ${SEEDS} random interleavings: no broken pair, no fallback, only the rotated side's certificates change`, async () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const { fleet, state } = await checkedFleet(seed);
      try {
        const certs = () => new Map([...fleet.agents.values()].map((a) => [a.deviceId, a.identities().map((i) => fp(i.cert)).join(',')]));
        const before = certs();
        const c = await fleet.rotate(CLIENT_ROOT);
        assert.equal(c.status, 'complete', c.error ?? '');
        const mid = certs();
        for (const a of fleet.agents.values()) {
          if (a.role === 'server') assert.equal(mid.get(a.deviceId), before.get(a.deviceId), `seed ${seed}: ${a.deviceId} kept its certificate`);
          else assert.notEqual(mid.get(a.deviceId), before.get(a.deviceId), `seed ${seed}: ${a.deviceId} got Cn`);
        }
        fleet.rearm();
        const s = await fleet.rotate(SERVER_ROOT);
        assert.equal(s.status, 'complete', s.error ?? '');
        for (const a of fleet.agents.values()) {
          if (a.role === 'client') assert.equal(certs().get(a.deviceId), mid.get(a.deviceId), `seed ${seed}: ${a.deviceId} kept its certificate`);
          assert.deepEqual(a.trustAnchors().map(fp), [fp(fleet.ca.peerRoot(a.role).cert)], `seed ${seed}: ${a.deviceId} trusts only the other side's new root`);
        }
        assert.deepEqual(state.broken, [], `seed ${seed}`);
        assert.equal(state.fallbacks, 0, `seed ${seed}: the verifying side always trusted the new key first`);
        assert.equal(state.states, (2 * 2 + 4 * 3) + (2 * 3 + 4 * 2), `seed ${seed}: one durable change per device step`);
        const audit = fleet.verifyAudit();
        assert.deepEqual(audit.violations, []);
        assert.equal(audit.rotations, 2);
      } finally {
        await fleet.close();
      }
    }
  });

  it('the check can fail: a server switching to Sn before a lagging client trusts the new server key breaks that pair', async () => {
    const early: Schedule = { ...SERVER_ROOT, steps: SERVER_ROOT.steps.map((s) => (s.id === 'SR3' ? { ...s, after: [{ step: 'SR2', scope: 'self', strength: 'required' }] } : s)) };
    const { fleet, state } = await checkedFleet(3);
    try {
      fleet.disconnect('cli-4');
      fleet.onChange(() => {
        const servers = [...fleet.agents.values()].filter((a) => a.role === 'server');
        if (fleet.offline.has('cli-4') && servers.every((a) => a.snapshot().rotation?.completed.includes('SR3'))) fleet.connect('cli-4');
      });
      const r = await fleet.rotate(early, { unsafe: true });
      assert.equal(r.status, 'complete');
      assert.ok(state.broken.some((b) => b.includes('cli-4 ->') && b.includes('client rejects server cert')), state.broken.slice(0, 3).join('\n') || 'nothing broke');
    } finally {
      await fleet.close();
    }
  });
});
