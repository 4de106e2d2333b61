import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInProcessDemo } from '../../demo/run-demo.ts';
import { SIX_STEP } from '../../protocol/steps.ts';

const BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));

describe('trustroll demo (in-process)', function () {
  this.timeout(60_000);

  for (const schedule of ['six-step', 'batched']) {
    it(`${schedule}: completes with zero failed checks in node:crypto and openssl`, async () => {
      const r = await runInProcessDemo({ servers: 3, clients: 6, schedule, naive: false, seed: 3, opensslAll: true });
      assert.equal(r.rotation.status, 'complete');
      assert.equal(r.authChecks.failed, 0);
      assert.ok(r.authChecks.pairs >= 18 * 10, `${r.authChecks.pairs} pair checks`);
      assert.equal(r.crossCheck.openssl.failed, 0);
      assert.ok(r.crossCheck.openssl.pairs > 0);
      for (const s of r.rotation.steps) assert.equal(s.acked, s.of, `${s.step} acknowledged by every device`);
    });
  }

  it('--naive shows failures, detected by both checkers', async () => {
    const r = await runInProcessDemo({ servers: 3, clients: 6, schedule: 'six-step', naive: true, seed: 3, opensslAll: true });
    assert.ok(r.authChecks.failed > 0);
    assert.ok(r.crossCheck.openssl.failed > 0);
  });

  it('the CLI (--in-process) prints one JSON object with --json and exits 0', () => {
    const out = execFileSync(process.execPath, [BIN, 'demo', '--in-process', '--servers', '2', '--clients', '3', '--json'], { encoding: 'utf8' });
    const r = JSON.parse(out);
    assert.equal(r.rotation.status, 'complete');
    assert.equal(r.rotation.devices, 5);
  });

  it('schedule check accepts six-step and rejects P4-before-P2 with the rule it breaks', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-sched-'));
    try {
      writeFileSync(join(dir, 'ok.json'), JSON.stringify(SIX_STEP));
      assert.match(execFileSync(process.execPath, [BIN, 'schedule', 'check', join(dir, 'ok.json')], { encoding: 'utf8' }), /valid\n  server: P1 -> P4 -> P5/);
      const bad = { ...SIX_STEP, name: 'bad', steps: SIX_STEP.steps.map((s) => (s.id === 'P4' ? { ...s, after: [{ step: 'P1', scope: 'self', strength: 'required' }] } : s)) };
      writeFileSync(join(dir, 'bad.json'), JSON.stringify(bad));
      const r = spawnSync(process.execPath, [BIN, 'schedule', 'check', join(dir, 'bad.json')], { encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /E_SCHEDULE_ORDER: .*P4 .*every client trusts K1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
