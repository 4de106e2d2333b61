/**
 * CI's reduced fault matrix (the full one: `npm run faults`): real
 * rotations over Mosquitto with agent processes, step-boundary and random
 * kill -9s, a manager kill, a broker kill, EEPROM damage in the newer slot
 * (a roll-back, detected and repaired) and the older one (none), and a
 * network cut longer than the retry interval. Zero invariant violations,
 * zero undetected roll-backs, every roll-back repaired.
 */
import assert from 'node:assert/strict';
import { reducedMatrix, runFaultMatrix } from './matrix.ts';

describe('faults: reduced matrix over Mosquitto and agent processes', function () {
  this.timeout(400_000);
  it('every rotation completes; stores keep the invariants; every roll-back is detected and repaired; handshakes fail only while a party is down', async () => {
    const summary = await runFaultMatrix(reducedMatrix(), { progress: (l) => console.log(`      ${l}`) });
    console.log(`      ${JSON.stringify({ ...summary, violations: summary.violations.slice(0, 5) })}`);
    assert.deepEqual(summary.violations, []);
    assert.equal(summary.invariantViolations, 0);
    assert.equal(summary.runs, reducedMatrix().length);
    assert.equal(summary.regressions.undetected, 0);
    assert.ok(summary.regressions.injected >= 2);
    assert.equal(summary.regressions.repaired, summary.regressions.injected);
    assert.equal(summary.regressions.falseAlarms, 0);
    assert.ok(summary.storeSamples > 0);
  });
});
