import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { captureDevices, CrossStack, pemKeysOf, watchStepBoundaries, type CrossStackDevice, type CrossStackResult } from '../../demo/cross-stack.ts';
import { hasTool } from '../../demo/handshake-tools.ts';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { BATCHED, NAIVE, SIX_STEP, type Schedule } from '../../protocol/steps.ts';
import { tlsFixture } from '../support/tls-fixture.ts';

const TOOLS = hasTool('openssl') && hasTool('gnutls-cli', '--version') && hasTool('gnutls-serv', '--version');
const stacks = (r: CrossStackResult) => [['openssl', r.openssl], ['gnutls', r.gnutls]] as const;

describe('cross-stack handshakes (OpenSSL and GnuTLS CLIs on exported device material)', function () {
  this.timeout(40_000);
  before(function () {
    if (!TOOLS) this.skip(); // .ci/setup installs openssl and gnutls-bin
  });

  it('agrees with the device on one pair: fallback before P1, leaf-only presentation, P4 before P2 breaks', async () => {
    const f = await tlsFixture();
    const x = new CrossStack({ keyPem: pemKeysOf(new Map([[f.server.id, f.server.keys], [f.client.id, f.client.keys]])) });
    const state = () => captureDevices([f.server.agent, f.client.agent]);
    try {
      await f.step(f.client, 'P2');
      await f.step(f.client, 'P3');
      const early = await x.check(state(), 'P3 before P1');
      for (const [name, t] of stacks(early)) assert.deepEqual([t.attempted, t.failed, t.fallbacks], [1, 0, 1], `${name}: ${t.failures.join('; ')}`);
      await f.step(f.server, 'P1');
      await f.step(f.server, 'P4');
      const ok = await x.check(state(), 'P4');
      for (const [name, t] of stacks(ok)) assert.deepEqual([t.failed, t.fallbacks], [0, 0], `${name}: ${t.failures.join('; ')}`);
    } finally {
      await x.close();
      await f.close();
    }
    const g = await tlsFixture();
    const y = new CrossStack({ keyPem: pemKeysOf(new Map([[g.server.id, g.server.keys], [g.client.id, g.client.keys]])) });
    try {
      await g.step(g.server, 'P1');
      await g.step(g.server, 'P4'); // Sn presented while the client trusts only R0; D must not travel with it
      const broken = await y.check(captureDevices([g.server.agent, g.client.agent]), 'P4 before P2');
      for (const [name, t] of stacks(broken)) {
        assert.equal(t.failed, 1, name);
        assert.match(t.failures[0]!, /client rejected the server certificate/, name);
      }
    } finally {
      await y.close();
      await g.close();
    }
  });

  for (const schedule of [SIX_STEP, BATCHED]) {
    it(`${schedule.name}, 3 servers x 6 clients: every step boundary authenticates in both stacks`, async () => {
      const r = await rotateAndCheck(schedule, 7);
      assert.equal(r.status, 'complete');
      assert.deepEqual(r.boundaries, schedule.steps.map((s) => s.id).sort());
      for (const [i, res] of r.results.entries()) {
        for (const [name, t] of stacks(res)) {
          assert.equal(t.attempted, 18, name);
          assert.deepEqual(t.failures, [], name);
          // Six-step never needs the old certificate; batched does at B1 (servers still on R0), not after B2.
          assert.equal(t.fallbacks, schedule === BATCHED && i === 0 ? 18 : 0, `${name} fallbacks after ${r.boundaries[i]}`);
        }
      }
      console.log(`      ${schedule.name}: ${r.results.length} boundaries, ${r.results.map((x) => Math.round(x.ms)).join('/')} ms per check`);
    });
  }

  it('fails for a naive-broken state (the checker can fail), and leaves no key on disk', async () => {
    const r = await rotateAndCheck(NAIVE, 3, true);
    assert.ok(r.results.length >= 1);
    const first = r.results[0]!;
    for (const [name, t] of stacks(first)) assert.ok(t.failed > 0, `${name} finds the naive state broken`);
    assert.equal(r.dirMode, 0o700, 'private folder');
    assert.deepEqual(r.leftBetweenChecks, [], 'no check folder (keys) survives its check');
    assert.equal(existsSync(r.dir), false, 'the folder is deleted on close');
  });
});

/**
 * Rotate a 3x6 fleet and run the cross-stack check on the state captured at
 * every step boundary (for `firstChange`, at the first durable change
 * instead). Checks run one after another while the rotation continues.
 */
async function rotateAndCheck(schedule: Schedule, seed: number, firstChange = false) {
  const fleet = await InProcessFleet.create({ servers: 3, clients: 6, seed, maxLatencyMs: 4 });
  const x = new CrossStack({ keyPem: pemKeysOf(fleet.keys) });
  const results: CrossStackResult[] = [];
  const boundaries: string[] = [];
  let queue = Promise.resolve();
  const enqueue = (label: string, state: CrossStackDevice[]) => {
    queue = queue.then(async () => { results.push(await x.check(state, label)); });
  };
  const agents = [...fleet.agents.values()];
  try {
    if (firstChange) {
      let done = false;
      fleet.onChange((label) => { if (!done) { done = true; enqueue(`naive after ${label}`, captureDevices(agents)); } });
    } else {
      watchStepBoundaries(agents, schedule, (step) => { boundaries.push(step); enqueue(`${schedule.name} after ${step}`, captureDevices(agents)); });
    }
    const rotation = await fleet.rotate(schedule, { unsafe: schedule === NAIVE });
    await queue;
    const dirMode = statSync(x.dir).mode & 0o777;
    const leftBetweenChecks = readdirSync(x.dir);
    return { status: rotation.status, results, boundaries: boundaries.sort(), dir: x.dir, dirMode, leftBetweenChecks };
  } finally {
    await x.close();
    await fleet.close();
  }
}
