import { strict as assert } from 'node:assert';
import { generateKeyPairSync } from 'node:crypto';
import { rollbackBlockedBy, validateSchedule } from '../../protocol/schedule.ts';
import {
  BATCHED, BATCHED_ROLLBACK, CATCH_UP, FORWARD_OF, NAIVE, ROLLBACK_OF, SAFE_SCHEDULES, SCHEDULES, SIX_STEP, SIX_STEP_ROLLBACK,
  type Schedule, type StepDef,
} from '../../protocol/steps.ts';
import { assertCommand, payloadFields } from '../../protocol/messages/command.ts';
import { canonicalJson } from '../../protocol/canonical-json.ts';
import { isProtocolError } from '../../protocol/errors.ts';
import { buildCatchUpCommand, buildCommand } from '../../manager/rotation/commands.ts';
import type { RotationRow, StepRow } from '../../manager/fleet/fleet-db.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { createRootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';

const throwsCode = (fn: () => unknown, code: string, match?: RegExp) =>
  assert.throws(fn, (e: unknown) => isProtocolError(e) && e.code === code && (!match || match.test(e.message)));

const step = (id: string, role: StepDef['role'], effects: StepDef['effects'], after: StepDef['after'] = []): StepDef => ({ id, role, effects, after, doc: id });

describe('protocol: rollback and catch-up schedules', () => {
  it('accepts the rollback and catch-up schedules; each role has one step', () => {
    assert.deepEqual(validateSchedule(SIX_STEP_ROLLBACK), { sequence: { server: ['X2'], client: ['X1'] }, warnings: [] });
    assert.deepEqual(validateSchedule(BATCHED_ROLLBACK), { sequence: { server: ['Y2'], client: ['Y1'] }, warnings: [] });
    assert.deepEqual(validateSchedule(CATCH_UP), { sequence: { server: ['C1'], client: ['C2'] }, warnings: [] });
  });

  it('maps each forward schedule to its rollback, and devices accept all of them but naive', () => {
    assert.equal(ROLLBACK_OF['six-step'], SIX_STEP_ROLLBACK);
    assert.equal(ROLLBACK_OF.batched, BATCHED_ROLLBACK);
    assert.equal(FORWARD_OF['six-step-rollback'], SIX_STEP);
    assert.equal(FORWARD_OF['batched-rollback'], BATCHED);
    assert.deepEqual(Object.keys(SAFE_SCHEDULES).sort(), ['batched', 'batched-rollback', 'catch-up', 'client-root', 'renew', 'server-root', 'six-step', 'six-step-rollback']);
    assert.deepEqual(Object.keys(SCHEDULES).sort(), [...Object.keys(SAFE_SCHEDULES), NAIVE.name].sort());
    for (const s of Object.values(SAFE_SCHEDULES)) validateSchedule(s);
  });

  it('names the forward steps after which rollback is impossible (a server replaced its certificate or a device dropped R0)', () => {
    assert.deepEqual(rollbackBlockedBy(SIX_STEP), ['P4', 'P5', 'P6']);
    assert.deepEqual(rollbackBlockedBy(BATCHED), ['B2', 'B3']);
    assert.deepEqual(rollbackBlockedBy(SIX_STEP_ROLLBACK), []);
  });

  it('rejects a rollback where a server forgets K1 before every client stopped presenting Cn', () => {
    const early: Schedule = { name: 'early', steps: [SIX_STEP_ROLLBACK.steps[0]!, { ...SIX_STEP_ROLLBACK.steps[1]!, after: [] }] };
    throwsCode(() => validateSchedule(early), 'E_SCHEDULE_ORDER', /X2 \(server\) forgets K1 while a client may still present Cn/);
    const preferred: Schedule = { name: 'preferred', steps: [BATCHED_ROLLBACK.steps[0]!, { ...BATCHED_ROLLBACK.steps[1]!, after: [{ step: 'Y1', scope: 'peers', strength: 'preferred' }] }] };
    throwsCode(() => validateSchedule(preferred), 'E_SCHEDULE_ORDER', /Y2/);
  });

  it('rejects a client that forgets D before restoring its old certificate, and a server step that rolls back a client certificate', () => {
    throwsCode(() => validateSchedule({ name: 'swapped', steps: [step('X1', 'client', ['rollback-roots', 'rollback-client-cert']), SIX_STEP_ROLLBACK.steps[1]!] }), 'E_SCHEDULE_ORDER', /X1 \(client\) forgets K1 before restoring/);
    throwsCode(() => validateSchedule({ name: 'server-cert', steps: [SIX_STEP_ROLLBACK.steps[0]!, step('X2', 'server', ['rollback-client-cert', 'rollback-roots'], [{ step: 'X1', scope: 'peers', strength: 'required' }])] }), 'E_SCHEDULE_INVALID', /only clients/);
  });

  it('rejects schedules that mix forward, rollback and catch-up effects, and a catch-up step with other effects', () => {
    throwsCode(() => validateSchedule({ name: 'mixed', steps: [...SIX_STEP.steps, step('X1', 'client', ['rollback-client-cert'], [{ step: 'P6', scope: 'self', strength: 'required' }])] }), 'E_SCHEDULE_INVALID', /mixes forward and rollback/);
    throwsCode(() => validateSchedule({ name: 'catch-up-in-rotation', steps: [...BATCHED.steps, step('C1', 'server', ['catch-up'], [{ step: 'B2', scope: 'self', strength: 'required' }])] }), 'E_SCHEDULE_INVALID', /mixes forward and catch-up/);
    throwsCode(() => validateSchedule({ name: 'catch-up-plus', steps: [step('C1', 'server', ['catch-up', 'catch-up'])] }), 'E_SCHEDULE_INVALID', /catch-up with other effects/);
  });
});

describe('protocol: rollback and catch-up payloads; manager command builders', function () {
  this.timeout(30_000);
  const now = new Date('2026-11-26T00:00:00Z');
  let material: { r0: string; d: string; r1: string; d2: string; r2: string; leafServer: string; leafClient: string };
  before(async () => {
    const r0 = await createRoot({ subject: 'CN=Payload Test Root', algorithm: 'P-256', notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2036-01-01T00:00:00Z') });
    const u1 = await createRootUpdate({ old: r0, now: new Date('2026-11-24T00:00:00Z'), lifetimeDays: 3650 });
    const u2 = await createRootUpdate({ old: u1.next, now: new Date('2026-11-25T00:00:00Z'), lifetimeDays: 3650 });
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const issue = (profile: 'server' | 'client') => new LeafIssuer(u2.next).issue({ commonName: 'dev-1', publicKey: spki, profile, notBefore: now, notAfter: new Date(now.getTime() + 86_400_000) });
    material = { r0: r0.cert, d: u1.distribution, r1: u1.next.cert, d2: u2.distribution, r2: u2.next.cert, leafServer: issue('server'), leafClient: issue('client') };
  });

  const rotation = (): RotationRow => ({ id: 'rot-1', schedule: 'six-step', status: 'running', unsafe: false, distribution: material.d, newRoot: material.r1, createdAt: now.toISOString(), updatedAt: now.toISOString(), error: null });
  const row = (stepId: string): StepRow => ({ rotationId: 'rot-1', deviceId: 'dev-1', step: stepId, status: 'pending', seq: null, attempts: 0, command: null, sentAt: null, ackedAt: null, dueAt: null, errorCode: null, errorMessage: null } as StepRow);

  it('rollback steps carry an empty payload; buildCommand builds exactly that and the device schema accepts it', () => {
    for (const s of [SIX_STEP_ROLLBACK, BATCHED_ROLLBACK]) {
      for (const st of s.steps) {
        assert.deepEqual(payloadFields(s, st.id), []);
        const cmd = buildCommand(s, rotation(), row(st.id), 7, undefined, now);
        assert.deepEqual(cmd, { v: 1, kind: 'command', deviceId: 'dev-1', rotationId: 'rot-1', schedule: s.name, seq: 7, step: st.id, issuedAt: now.toISOString(), payload: {} });
        assertCommand(cmd, SAFE_SCHEDULES);
        throwsCode(() => assertCommand({ ...cmd, payload: { distribution: material.d } }, SAFE_SCHEDULES), 'E_SCHEMA');
      }
    }
  });

  it('buildCommand is unchanged for the forward schedules (the redelivery hash depends on its bytes)', () => {
    const p1 = buildCommand(SIX_STEP, rotation(), row('P1'), 1, undefined, now);
    assert.deepEqual(p1, { v: 1, kind: 'command', deviceId: 'dev-1', rotationId: 'rot-1', schedule: 'six-step', seq: 1, step: 'P1', issuedAt: now.toISOString(), payload: { distribution: material.d } });
    const b2 = buildCommand(BATCHED, { ...rotation(), schedule: 'batched' }, row('B2'), 2, material.leafServer, now);
    assert.equal(canonicalJson(b2.payload), canonicalJson({ distribution: material.d, newRoot: material.r1, certificate: material.leafServer }));
    assert.deepEqual(Object.keys(b2.payload), ['distribution', 'newRoot', 'certificate'], 'field order as before');
    assert.throws(() => buildCommand(CATCH_UP, rotation(), row('C1'), 1, material.leafServer, now), /buildCatchUpCommand/);
  });

  it('buildCatchUpCommand: the step follows the role (given, or from the certificate), the payload passes the device schema', () => {
    const chain = [{ distribution: material.d, newRoot: material.r1 }, { distribution: material.d2, newRoot: material.r2 }];
    const c1 = buildCatchUpCommand('dev-1', 'catchup-1', 3, chain, material.leafServer, now);
    assert.deepEqual(c1, { v: 1, kind: 'command', deviceId: 'dev-1', rotationId: 'catchup-1', schedule: 'catch-up', seq: 3, step: 'C1', issuedAt: now.toISOString(), payload: { chain, certificate: material.leafServer } });
    assertCommand(c1, SAFE_SCHEDULES);
    const c2 = buildCatchUpCommand('dev-1', 'catchup-1', 3, chain, material.leafClient, now, 'client');
    assert.equal(c2.step, 'C2');
    assertCommand(c2, SAFE_SCHEDULES);
    assert.throws(() => buildCatchUpCommand('dev-1', 'catchup-1', 3, chain, material.leafClient, now, 'server'), /lacks serverAuth/);
    assert.throws(() => buildCatchUpCommand('dev-1', 'catchup-1', 3, [], material.leafClient, now), /1 to 8 links/);
    assert.throws(() => buildCatchUpCommand('dev-1', 'catchup-1', 3, Array.from({ length: 9 }, () => chain[0]!), material.leafClient, now), /1 to 8 links/);
    // A separate-roots device: either chain may be empty, not both, and neither longer than 8.
    const both = buildCatchUpCommand('dev-1', 'catchup-1', 3, [], material.leafClient, now, 'client', chain);
    assert.deepEqual([both.payload.chain, both.payload.issuerChain], [[], chain]);
    assertCommand(both, SAFE_SCHEDULES);
    assert.throws(() => buildCatchUpCommand('dev-1', 'catchup-1', 3, [], material.leafClient, now, 'client', []), /at least one in all/);
    assert.throws(() => buildCatchUpCommand('dev-1', 'catchup-1', 3, chain, material.leafClient, now, 'client', Array.from({ length: 9 }, () => chain[0]!)), /up to 8 in each/);
    // Exactly the links' two fields travel, whatever the caller's objects hold.
    const extra = buildCatchUpCommand('dev-1', 'catchup-1', 3, [{ ...chain[0]!, oldWithNew: 'x' } as typeof chain[0]], material.leafClient, now);
    assertCommand(extra, SAFE_SCHEDULES);
  });

  it('the catch-up schema is strict: up to 8 links of exactly D and R as PEM in each chain, and the certificate (a catch-up with no link at all is refused by the effect: test/agent/catch-up)', () => {
    const base = buildCatchUpCommand('dev-1', 'c', 1, [{ distribution: material.d, newRoot: material.r1 }], material.leafClient, now);
    const link = base.payload.chain![0]!;
    assertCommand({ ...base, payload: { ...base.payload, chain: Array.from({ length: 8 }, () => link) } }, SAFE_SCHEDULES);
    assertCommand({ ...base, payload: { ...base.payload, chain: [], issuerChain: Array.from({ length: 8 }, () => link) } }, SAFE_SCHEDULES);
    for (const payload of [
      { ...base.payload, chain: Array.from({ length: 9 }, () => link) },
      { ...base.payload, issuerChain: Array.from({ length: 9 }, () => link) },
      { ...base.payload, issuerChain: [{ ...link, extra: material.r0 }] },
      { ...base.payload, issuerChain: link },
      { ...base.payload, chain: [{ ...link, extra: material.r0 }] },
      { ...base.payload, chain: [{ newRoot: link.newRoot }] },
      { ...base.payload, chain: [{ ...link, distribution: 'no PEM here, only text that is long enough for the minimum length' }] },
      { chain: base.payload.chain },
      { ...base.payload, newRoot: material.r1 },
    ]) {
      throwsCode(() => assertCommand({ ...base, payload }, SAFE_SCHEDULES), 'E_SCHEMA');
    }
  });
});
