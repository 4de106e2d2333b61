import { strict as assert } from 'node:assert';
import { BATCHED, NAIVE, SIX_STEP } from '../../protocol/steps.ts';
import { rotateWithHandshakes } from '../support/tls-fleet.ts';

/**
 * Live mutual TLS through whole rotations of 3 servers x 5 clients: the
 * continuous loop runs throughout, and full rounds run after every durable
 * device change before its acknowledgement is released. The rounds after
 * changes alone guarantee the 1,000-handshake floor (six-step: 24 changes x
 * 3 rounds x 15 pairs; batched: 13 x 6 x 15). For the naive order, message
 * latency is stretched (up to 1 s per command) so its broken window is wider
 * than a handshake.
 */
describe('live handshake matrix through a rotation (3 servers x 5 clients)', function () {
  this.timeout(40_000);

  it('six-step over TLS 1.3: no failed connection over >= 1,000 handshakes, never a fallback', async () => {
    const r = await rotateWithHandshakes({ schedule: SIX_STEP, seed: 3, maxLatencyMs: 200, roundsPerChange: 3, version: 'TLSv1.3' });
    assert.equal(r.rotation.status, 'complete', r.rotation.error ?? '');
    assert.equal(r.changes, 3 * 3 + 5 * 3, 'one change per device step, each followed by its rounds');
    assert.deepEqual(r.totals.failures, []);
    assert.equal(r.totals.failed, 0);
    assert.ok(r.totals.attempted >= 1_000, `${r.totals.attempted} connections`);
    assert.ok(r.loop.rounds >= 5, `the loop kept running (${r.loop.rounds} rounds)`);
    assert.equal(r.totals.fallbacks, 0, 'P1 precedes P3, so the new certificate is always accepted first time');
    console.log(`      six-step: ${JSON.stringify({ ...r.totals, failures: undefined, ms: Math.round(r.ms), loopRounds: r.loop.rounds, handshakesPerSecond: Math.round((r.totals.handshakes * 1000) / r.ms) })}`);
  });

  it('batched over TLS 1.2: no failed connection over >= 1,000 handshakes; fallbacks until B2 lands', async () => {
    const r = await rotateWithHandshakes({ schedule: BATCHED, seed: 5, maxLatencyMs: 200, roundsPerChange: 6, version: 'TLSv1.2' });
    assert.equal(r.rotation.status, 'complete', r.rotation.error ?? '');
    assert.equal(r.changes, 3 * 1 + 5 * 2);
    assert.deepEqual(r.totals.failures, []);
    assert.equal(r.totals.failed, 0);
    assert.ok(r.totals.attempted >= 1_000, `${r.totals.attempted} connections`);
    assert.ok(r.totals.fallbacks > 0, 'clients present Cn first and pay one refused handshake until B2 [0131]');
    console.log(`      batched: ${JSON.stringify({ ...r.totals, failures: undefined, ms: Math.round(r.ms), loopRounds: r.loop.rounds, handshakesPerSecond: Math.round((r.totals.handshakes * 1000) / r.ms) })}`);
  });

  it('the naive replace-everything order fails real handshakes', async () => {
    const r = await rotateWithHandshakes({ schedule: NAIVE, unsafe: true, seed: 3, maxLatencyMs: 1_000 });
    assert.ok(r.totals.failed > 0, JSON.stringify({ ...r.totals, failures: r.totals.failures.slice(0, 3) }));
    assert.ok(r.totals.failures.some((f) => /E_TLS_(SERVER_UNTRUSTED|REJECTED)/.test(f)), r.totals.failures[0]);
  });
});
