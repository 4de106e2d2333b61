import { strict as assert } from 'node:assert';
import { deviceFixture, fixturePerTest, refused, type DeviceFixture, type TestDevice } from '../support/device-fixture.ts';
import { AGENT_BACKENDS } from '../support/agent-backends.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { createRootUpdate } from '../../manager/ca/root-update.ts';
import { canonicalJson } from '../../protocol/canonical-json.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { StepPayload } from '../../protocol/messages/command.ts';
import type { DeviceRecord } from '../../agent/device-record.ts';
import { EFFECT_HANDLERS } from '../../agent/effects/index.ts';
import { isProtocolError } from '../../protocol/errors.ts';

const DAY = 86_400_000;

/** What decides authentication, as canonical JSON: the trust store and the identities. */
const authState = (r: DeviceRecord) => canonicalJson({ trust: r.trust, identity: r.identity });

for (const b of AGENT_BACKENDS) describe(`agent on ${b.name}: rollback before any server replaced its certificate`, function () {
  this.timeout(60_000);
  let f!: DeviceFixture;
  fixturePerTest(b, (x) => { f = x; });

  const payloads = (): Record<string, StepPayload> => ({
    P1: { distribution: f.update.distribution }, P2: { distribution: f.update.distribution }, P3: { certificate: f.cn },
    P4: { certificate: f.sn }, P5: { newRoot: f.update.next.cert }, P6: { newRoot: f.update.next.cert },
    B1: { distribution: f.update.distribution, newRoot: f.update.next.cert, certificate: f.cn },
    B2: { distribution: f.update.distribution, newRoot: f.update.next.cert, certificate: f.sn }, B3: {},
  });

  /** Apply forward steps of rot-1 with seq 1..n, each acknowledged. */
  async function forward(dev: TestDevice, steps: readonly string[]): Promise<void> {
    for (const [i, step] of steps.entries()) {
      const ack = await dev.agent.handle(f.command(dev, i + 1, step, payloads()[step]!));
      assert.equal(ack.ok, true, `${step}: ${JSON.stringify(ack.error)}`);
    }
  }

  const rollback = (dev: TestDevice, seq: number, step: string, extra: Record<string, unknown> = {}) =>
    f.command(dev, seq, step, {}, { schedule: step.startsWith('X') ? 'six-step-rollback' : 'batched-rollback', ...extra });

  const rejects = (dev: TestDevice, raw: object, code: string, message?: RegExp): Promise<Ack> => refused(f, dev, raw, code, message);

  const cases: { schedule: string; role: 'client' | 'server'; prefix: string[]; step: string }[] = [
    { schedule: 'six-step', role: 'client', prefix: [], step: 'X1' },
    { schedule: 'six-step', role: 'client', prefix: ['P2'], step: 'X1' },
    { schedule: 'six-step', role: 'client', prefix: ['P2', 'P3'], step: 'X1' },
    { schedule: 'six-step', role: 'server', prefix: [], step: 'X2' },
    { schedule: 'six-step', role: 'server', prefix: ['P1'], step: 'X2' },
    { schedule: 'batched', role: 'client', prefix: [], step: 'Y1' },
    { schedule: 'batched', role: 'client', prefix: ['B1'], step: 'Y1' },
    { schedule: 'batched', role: 'server', prefix: [], step: 'Y2' },
  ];
  for (const c of cases) {
    it(`${c.schedule}: a ${c.role} after ${c.prefix.join('+') || 'no step'} rolls back with ${c.step} to byte-identical trust and identity`, async () => {
      const dev = c.role === 'client' ? f.client : f.server;
      const before = authState(dev.agent.snapshot());
      const anchorsBefore = dev.agent.trustAnchors();
      await forward(dev, c.prefix);
      if (c.prefix.length > 0) assert.notEqual(authState(dev.agent.snapshot()), before, 'the forward steps changed the store');
      const seq = c.prefix.length + 1;
      const cmd = rollback(dev, seq, c.step);
      const ack = await dev.agent.handle(cmd);
      assert.equal(ack.ok, true, JSON.stringify(ack.error));
      const after = dev.agent.snapshot();
      assert.equal(authState(after), before, 'trust store and identity equal to before the rotation, byte for byte');
      assert.deepEqual(dev.agent.trustAnchors(), anchorsBefore);
      assert.equal(dev.agent.identities().length, 1);
      assert.deepEqual(after.rotation, { id: 'rot-1', schedule: `${c.schedule}-rollback`, completed: [c.step] });
      assert.equal(after.lastSeq, seq, 'the rollback consumes its sequence number');
      assert.deepEqual(ack.state.completed, [c.step]);

      // Survives a restart; a redelivery gets the stored acknowledgement and writes nothing.
      const reopened = await f.reopen(dev);
      if (c.role === 'client') f.client = reopened; else f.server = reopened;
      assert.deepEqual(reopened.agent.snapshot(), after);
      const bytes = await f.bytes(reopened);
      assert.deepEqual(await reopened.agent.handle(cmd), ack);
      assert.equal(await f.bytes(reopened), bytes);

      // A late forward step of the rolled-back rotation is refused; a new rotation can start.
      const next = c.schedule === 'six-step' ? (c.role === 'client' ? 'P2' : 'P1') : (c.role === 'client' ? 'B1' : 'B2');
      await rejects(reopened, f.command(reopened, seq + 1, next, payloads()[next]!), 'E_ROTATION_ROLLED_BACK', /rolled back/);
      const fresh = await reopened.agent.handle(f.command(reopened, seq + 1, next, payloads()[next]!, { rotationId: 'rot-2' }));
      assert.equal(fresh.ok, true, JSON.stringify(fresh.error));
    });
  }

  it('a rolled-back client can run the same rotation material again under a new rotation id', async () => {
    await forward(f.client, ['P2', 'P3']);
    assert.equal((await f.client.agent.handle(rollback(f.client, 3, 'X1'))).ok, true);
    assert.equal((await f.client.agent.handle(f.command(f.client, 4, 'P2', payloads().P2!, { rotationId: 'rot-2' }))).ok, true);
    assert.equal((await f.client.agent.handle(f.command(f.client, 5, 'P3', payloads().P3!, { rotationId: 'rot-2' }))).ok, true);
    assert.equal(f.client.agent.identities().length, 2, 'Cn first again, old certificate as fallback');
  });

  it('rolling back a re-keyed Cn restores the old identity and keeps the new key pending for the next rotation', async () => {
    const before = authState(f.client.agent.snapshot());
    const csrKey = f.client.agent.snapshot().pendingKey;
    assert.equal(csrKey ?? null, null);
    await f.client.agent.rekey();
    const pending = f.client.agent.snapshot().pendingKey!;
    const spki = (await f.client.keys.get(pending))!.spki;
    const cn2 = new LeafIssuer(f.update.next).issue({ commonName: 'cli-1', publicKey: spki, profile: 'client', notBefore: f.clock.now(), notAfter: new Date(f.clock.now().getTime() + 30 * DAY) });
    assert.equal((await f.client.agent.handle(f.command(f.client, 1, 'P2', payloads().P2!))).ok, true);
    assert.equal((await f.client.agent.handle(f.command(f.client, 2, 'P3', { certificate: cn2 }))).ok, true);
    assert.equal(f.client.agent.identities()[0]!.keyLabel, pending);
    assert.equal(f.client.agent.snapshot().pendingKey, null);
    assert.equal((await f.client.agent.handle(rollback(f.client, 3, 'X1'))).ok, true);
    assert.equal(authState(f.client.agent.snapshot()), before);
    assert.equal(f.client.agent.snapshot().pendingKey, pending, 'the re-key is pending again');
  });

  it('a device whose last rotation finished records a rollback of one it never joined as a no-op', async () => {
    await forward(f.server, ['P1', 'P4', 'P5']);
    const before = authState(f.server.agent.snapshot());
    const ack = await f.server.agent.handle(rollback(f.server, 4, 'X2', { rotationId: 'rot-2' }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.equal(authState(f.server.agent.snapshot()), before);
    assert.deepEqual(f.server.agent.snapshot().rotation, { id: 'rot-2', schedule: 'six-step-rollback', completed: ['X2'] });
  });

  it('refuses a rollback once the device replaced its server certificate or dropped its old root (E_ROLLBACK_TOO_LATE)', async () => {
    await forward(f.server, ['P1', 'P4']);
    await rejects(f.server, rollback(f.server, 3, 'X2'), 'E_ROLLBACK_TOO_LATE', /already completed P4/);
    await forward(f.client, ['P2', 'P3', 'P6']);
    await rejects(f.client, rollback(f.client, 4, 'X1'), 'E_ROLLBACK_TOO_LATE', /already completed P6/);
  });

  it('refuses a batched rollback after B2 on a server and after B3 on a client (E_ROLLBACK_TOO_LATE)', async () => {
    await forward(f.server, ['B2']);
    await rejects(f.server, rollback(f.server, 2, 'Y2'), 'E_ROLLBACK_TOO_LATE', /B2/);
    await forward(f.client, ['B1', 'B3']);
    await rejects(f.client, rollback(f.client, 3, 'Y1'), 'E_ROLLBACK_TOO_LATE', /B3/);
  });

  it('refuses a rollback step for the other role, of the other schedule, with a payload, or while another rotation is open', async () => {
    await forward(f.client, ['P2']);
    await rejects(f.client, rollback(f.client, 2, 'X2'), 'E_WRONG_ROLE');
    await rejects(f.client, rollback(f.client, 2, 'Y1'), 'E_OUT_OF_ORDER', /runs schedule six-step/);
    await rejects(f.client, f.command(f.client, 2, 'X1', { distribution: f.update.distribution }, { schedule: 'six-step-rollback' }), 'E_SCHEMA');
    await rejects(f.client, rollback(f.client, 2, 'X1', { rotationId: 'rot-0' }), 'E_ROTATION_IN_PROGRESS', /rot-1 is still open/);
  });

  it('a client that finished its rollback answers a fresh X1 with E_OUT_OF_ORDER and changes nothing', async () => {
    await forward(f.client, ['P2', 'P3']);
    assert.equal((await f.client.agent.handle(rollback(f.client, 3, 'X1'))).ok, true);
    await rejects(f.client, rollback(f.client, 4, 'X1'), 'E_OUT_OF_ORDER', /rotation complete/);
  });

  it('after a rollback, D is gone: a leaf of the rolled-back root key can no longer be installed', async () => {
    await forward(f.server, ['P1']);
    assert.equal((await f.server.agent.handle(rollback(f.server, 2, 'X2'))).ok, true);
    // A later rotation with a different root key: the old rotation's Sn does not verify under it.
    f.clock.advance(DAY);
    const other = await createRootUpdate({ old: f.r0, now: f.clock.now(), lifetimeDays: 3650 });
    assert.equal((await f.server.agent.handle(f.command(f.server, 3, 'P1', { distribution: other.distribution }, { rotationId: 'rot-2' }))).ok, true);
    await rejects(f.server, f.command(f.server, 4, 'P4', { certificate: f.sn }, { rotationId: 'rot-2' }), 'E_VERIFY_LEAF');
  });
});

describe('rollback effects on their own (defence behind the dispatcher\'s E_ROLLBACK_TOO_LATE)', function () {
  this.timeout(30_000);
  let f: DeviceFixture;
  beforeEach(async () => { f = await deviceFixture(); });
  afterEach(async () => { await f?.close(); });

  it('rollback-roots refuses to forget K1 while the device presents a certificate signed by it; rollback-client-cert leaves a server alone', async () => {
    assert.equal((await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }))).ok, true);
    assert.equal((await f.server.agent.handle(f.command(f.server, 2, 'P4', { certificate: f.sn }))).ok, true);
    const draft = f.server.agent.snapshot();
    const before = authState(draft);
    const ctx = { draft, payload: {}, ownKeys: [], now: f.clock.now() };
    EFFECT_HANDLERS['rollback-client-cert'](ctx);
    assert.equal(authState(draft), before, 'a server has no fallback certificate to return to');
    assert.throws(() => EFFECT_HANDLERS['rollback-roots'](ctx), (e: unknown) => isProtocolError(e, 'E_ROLLBACK_TOO_LATE'));
    assert.equal(authState(draft), before);
  });
});
