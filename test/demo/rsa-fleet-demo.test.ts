import { strict as assert } from 'node:assert';
import { runFleetDemo } from '../../demo/fleet-demo.ts';

describe('trustroll demo --algorithm RSA-2048: a legacy RSA fleet of device processes through a real Mosquitto, OpenSSL and GnuTLS handshakes at every step boundary', function () {
  this.timeout(240_000);

  for (const c of [
    { schedule: 'six-step', newSubject: undefined, title: 'six-step, the new root keeps the subject' },
    { schedule: 'batched', newSubject: 'CN=Printer Fleet Root 2027,O=trustroll demo', title: 'batched, the new root gets a new subject' },
  ]) {
    it(`${c.title}: complete, 0 failed handshakes, cross-stack clean`, async () => {
      const r = await runFleetDemo({ servers: 2, clients: 3, schedule: c.schedule, naive: false, broker: 'mosquitto', paceMs: 200, minHandshakes: 600, algorithm: 'RSA-2048', newSubject: c.newSubject });
      assert.equal(r.rotation.status, 'complete', r.rotation.error ?? '');
      assert.deepEqual(r.rotation.roots.from, { algorithm: 'RSA-2048', subject: 'CN=Printer Fleet Root,O=trustroll demo' });
      assert.deepEqual(r.rotation.roots.to, { algorithm: 'RSA-2048', subject: c.newSubject ?? 'CN=Printer Fleet Root,O=trustroll demo' }, 'the rotation keeps RSA-2048');
      assert.ok(r.handshakes.attempted >= 600, `${r.handshakes.attempted} handshakes`);
      assert.equal(r.handshakes.failed, 0, r.handshakes.failures.join('\n'));
      const boundaries = c.schedule === 'six-step' ? 7 : 4;
      assert.equal(r.crossStack.boundaries, boundaries, 'before the rotation and after every step');
      for (const stack of ['openssl', 'gnutls'] as const) {
        assert.ok(r.crossStack[stack].attempted >= 6 * boundaries, `${stack}: every pair at every boundary (${r.crossStack[stack].attempted})`);
        assert.equal(r.crossStack[stack].failed, 0, r.crossStack.failures.join('\n'));
      }
    });
  }
});
