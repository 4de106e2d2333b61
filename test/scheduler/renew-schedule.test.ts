import { strict as assert } from 'node:assert';
import { generateKeyPairSync } from 'node:crypto';
import { rollbackBlockedBy, validateSchedule } from '../../protocol/schedule.ts';
import { CATCH_UP, RENEW, SAFE_SCHEDULES, SIX_STEP, type StepDef } from '../../protocol/steps.ts';
import { assertCommand, payloadFields } from '../../protocol/messages/command.ts';
import { isProtocolError } from '../../protocol/errors.ts';
import { buildCommand } from '../../manager/rotation/commands.ts';
import type { RotationRow, StepRow } from '../../manager/fleet/fleet-db.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';

const throwsCode = (fn: () => unknown, code: string, match?: RegExp) =>
  assert.throws(fn, (e: unknown) => isProtocolError(e) && e.code === code && (!match || match.test(e.message)));
const step = (id: string, role: StepDef['role'], effects: StepDef['effects'], after: StepDef['after'] = []): StepDef => ({ id, role, effects, after, doc: id });

describe('protocol: the renew schedule', function () {
  this.timeout(30_000);

  it('is valid on its own: one step per role, no prerequisites, no warning; devices accept it; nothing to roll back', () => {
    assert.deepEqual(validateSchedule(RENEW), { sequence: { server: ['RS'], client: ['RC'] }, warnings: [] });
    assert.equal(SAFE_SCHEDULES.renew, RENEW);
    for (const s of RENEW.steps) assert.deepEqual(s.after, [], `${s.id} waits for nothing`);
    assert.deepEqual(rollbackBlockedBy(RENEW), []);
  });

  it('must not be mixed with rotation, rollback or catch-up effects, nor combined in one step', () => {
    throwsCode(() => validateSchedule({ name: 'renew-in-rotation', steps: [...SIX_STEP.steps, step('RS', 'server', ['renew-cert'], [{ step: 'P5', scope: 'self', strength: 'required' }])] }), 'E_SCHEDULE_INVALID', /mixes forward and renew/);
    throwsCode(() => validateSchedule({ name: 'renew-and-catch-up', steps: [...CATCH_UP.steps, step('RC', 'client', ['renew-cert'], [{ step: 'C2', scope: 'self', strength: 'required' }])] }), 'E_SCHEDULE_INVALID', /mixes catch-up and renew|mixes renew and catch-up/);
    throwsCode(() => validateSchedule({ name: 'renew-twice', steps: [step('RS', 'server', ['renew-cert', 'renew-cert']), step('RC', 'client', ['renew-cert'])] }), 'E_SCHEDULE_INVALID', /combines renew-cert with other effects/);
    throwsCode(() => validateSchedule({ name: 'renew-rollback', steps: [step('RS', 'server', ['renew-cert']), step('X1', 'client', ['rollback-client-cert'])] }), 'E_SCHEDULE_INVALID', /mixes/);
  });

  it('carries exactly the renewed certificate; buildCommand fills it and the device schema accepts only that', async () => {
    const now = new Date('2026-11-26T00:00:00Z');
    const root = await createRoot({ subject: 'CN=Renew Payload Root', algorithm: 'P-256', notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2036-01-01T00:00:00Z') });
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const leaf = new LeafIssuer(root).issue({ commonName: 'dev-1', publicKey: spki, profile: 'server', notBefore: now, notAfter: new Date(now.getTime() + 86_400_000) });
    assert.deepEqual(payloadFields(RENEW, 'RS'), ['certificate']);
    assert.deepEqual(payloadFields(RENEW, 'RC'), ['certificate']);
    const rotation: RotationRow = { id: 'renew-1', schedule: 'renew', status: 'running', unsafe: false, distribution: root.cert, newRoot: root.cert, createdAt: now.toISOString(), updatedAt: now.toISOString(), error: null };
    const row = { rotationId: 'renew-1', deviceId: 'dev-1', step: 'RS', status: 'pending', seq: null, attempts: 0, command: null, sentAt: null, ackedAt: null, dueAt: null, errorCode: null, errorMessage: null } as StepRow;
    const cmd = buildCommand(RENEW, rotation, row, 7, leaf, now);
    assert.deepEqual(cmd.payload, { certificate: leaf });
    assert.equal(cmd.schedule, 'renew');
    assertCommand(cmd, SAFE_SCHEDULES);
    throwsCode(() => assertCommand({ ...cmd, payload: { certificate: leaf, newRoot: root.cert } }, SAFE_SCHEDULES), 'E_SCHEMA');
    throwsCode(() => assertCommand({ ...cmd, payload: {} }, SAFE_SCHEDULES), 'E_SCHEMA');
    assert.throws(() => buildCommand(RENEW, rotation, row, 7, undefined, now), /no new certificate for dev-1/);
  });
});
