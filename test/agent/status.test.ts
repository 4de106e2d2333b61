import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deviceFixture, type DeviceFixture } from '../support/device-fixture.ts';

const BIN = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

describe('trustroll-agent status (technician check)', function () {
  this.timeout(30_000);
  let f: DeviceFixture;
  beforeEach(async () => { f = await deviceFixture(); });
  afterEach(async () => { await f.close(); });

  it('shows the dual trust store and the rotation in progress, read-only', async () => {
    await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }));
    const before = (await f.bytes(f.server));
    const r = run('status', '--store', f.server.dbPath, '--json');
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.deviceId, 'srv-1');
    assert.deepEqual(s.trust.map((c: { slot: string }) => c.slot), ['current root', 'distribution root (NewWithOld)']);
    assert.deepEqual(s.rotation.remaining, ['P4', 'P5']);
    assert.equal(s.history.length, 1);
    assert.ok(!r.stdout.includes('PRIVATE'), 'no key material');
    assert.equal((await f.bytes(f.server)), before, 'the check writes nothing');
    const human = run('status', '--store', f.server.dbPath);
    assert.match(human.stdout, /rotation rot-1 \(six-step\): done P1; remaining P4, P5/);
  });

  it('fails clearly for a missing store and a corrupted one', async () => {
    const missing = run('status', '--store', join(f.dir, 'nope.db'));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /E_STORE_CORRUPT: .*nope\.db/);
    const garbage = join(f.dir, 'garbage.db');
    writeFileSync(garbage, Buffer.alloc(4096, 0x41));
    const corrupt = run('status', '--store', garbage);
    assert.equal(corrupt.status, 2);
    assert.match(corrupt.stderr, /E_STORE_CORRUPT/);
  });
});
