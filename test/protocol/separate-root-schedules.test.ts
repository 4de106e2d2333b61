import { strict as assert } from 'node:assert';
import { blockers, checkLocalOrder, validateSchedule } from '../../protocol/schedule.ts';
import { CLIENT_ROOT, SERVER_ROOT, SIX_STEP, type Schedule, type StepDef } from '../../protocol/steps.ts';
import { isProtocolError } from '../../protocol/errors.ts';

/** `base` with one step's prerequisites (or effects) replaced. */
function variant(base: Schedule, id: string, change: Partial<StepDef>): Schedule {
  return { ...base, name: `${base.name}-${id}-variant`, steps: base.steps.map((s) => (s.id === id ? { ...s, ...change } : s)) };
}

const throwsCode = (fn: () => unknown, code: string, match?: RegExp) =>
  assert.throws(fn, (e: unknown) => isProtocolError(e) && e.code === code && (!match || match.test(e.message)));

describe('protocol: separate client and server roots, each rotated on its own schedule [0144-0145]', () => {
  it('client-root and server-root pass the ordering rules without warnings; each device has one chain of steps', () => {
    const c = validateSchedule(CLIENT_ROOT);
    assert.deepEqual(c.sequence, { server: ['CR1', 'CR4'], client: ['CR2', 'CR3', 'CR5'] });
    assert.deepEqual(c.warnings, [], 'servers trust the new client key before any client presents Cn: no fallback handshake');
    const s = validateSchedule(SERVER_ROOT);
    assert.deepEqual(s.sequence, { server: ['SR2', 'SR3', 'SR5'], client: ['SR1', 'SR4'] });
    assert.deepEqual(s.warnings, []);
  });

  it('only the rotated side gets new certificates: client-root never touches a server certificate, server-root never a client one', () => {
    const effects = (s: Schedule, role: 'server' | 'client') => s.steps.filter((x) => x.role === role).flatMap((x) => x.effects);
    assert.ok(!effects(CLIENT_ROOT, 'server').some((e) => e.includes('cert')), 'no server step of client-root changes a certificate');
    assert.ok(!effects(SERVER_ROOT, 'client').some((e) => e.includes('cert')), 'no client step of server-root changes a certificate');
    throwsCode(() => validateSchedule(variant(CLIENT_ROOT, 'CR4', { effects: ['store-new-root', 'drop-old-roots', 'install-server-cert'] })), 'E_SCHEDULE_INVALID', /changes no server certificate/);
    throwsCode(() => validateSchedule(variant(SERVER_ROOT, 'SR4', { effects: ['store-new-root', 'drop-old-roots', 'drop-old-client-cert'] })), 'E_SCHEDULE_INVALID', /changes no client certificate/);
  });

  it('client-root: a client presents Cn only after every server trusts the new client key (the verifying side first)', () => {
    throwsCode(() => validateSchedule(variant(CLIENT_ROOT, 'CR3', { after: [{ step: 'CR2', scope: 'self', strength: 'required' }] })), 'E_SCHEDULE_ORDER', /CR3.*every server trusts the new client root key/);
    throwsCode(() => validateSchedule(variant(CLIENT_ROOT, 'CR3', { after: [{ step: 'CR2', scope: 'self', strength: 'required' }, { step: 'CR1', scope: 'peers', strength: 'preferred' }] })), 'E_SCHEDULE_ORDER');
  });

  it('client-root: a server drops the old client root only after every client presents Cn', () => {
    throwsCode(() => validateSchedule(variant(CLIENT_ROOT, 'CR4', { after: [{ step: 'CR1', scope: 'self', strength: 'required' }] })), 'E_SCHEDULE_ORDER', /CR4.*install-client-cert/);
  });

  it('server-root: a server switches to Sn only after every client trusts the new server key; clients drop the old one only after every Sn', () => {
    throwsCode(() => validateSchedule(variant(SERVER_ROOT, 'SR3', { after: [{ step: 'SR2', scope: 'self', strength: 'required' }] })), 'E_SCHEDULE_ORDER', /SR3.*every client trusts K1/);
    throwsCode(() => validateSchedule(variant(SERVER_ROOT, 'SR4', { after: [{ step: 'SR1', scope: 'self', strength: 'required' }] })), 'E_SCHEDULE_ORDER', /SR4.*install-server-cert/);
  });

  it('the presenting side verifies its new certificate with its issuer D, and keeps its old issuer root while it presents an old certificate', () => {
    throwsCode(() => validateSchedule(variant(CLIENT_ROOT, 'CR3', { effects: ['install-client-cert'], after: [{ step: 'CR1', scope: 'peers', strength: 'required' }] })), 'E_SCHEDULE_INVALID');
    const early: Schedule = { ...CLIENT_ROOT, name: 'cr5-early', steps: CLIENT_ROOT.steps.map((s) => (s.id === 'CR5' ? { ...s, effects: ['store-issuer-new-root', 'drop-old-issuer-roots'] as StepDef['effects'], after: [{ step: 'CR2', scope: 'self', strength: 'required' }] } : s.id === 'CR3' ? { ...s, after: [{ step: 'CR5', scope: 'self', strength: 'required' }, { step: 'CR1', scope: 'peers', strength: 'required' }] } : s)) };
    throwsCode(() => validateSchedule(early), 'E_SCHEDULE_ORDER', /issuer root while it still presents/);
  });

  it('a side-specific effect on the wrong side, or issuer effects in a single-root schedule, are malformed', () => {
    throwsCode(() => validateSchedule(variant(CLIENT_ROOT, 'CR1', { effects: ['store-issuer-distribution'] })), 'E_SCHEDULE_INVALID', /only clients hold the client root as their issuer/);
    throwsCode(() => validateSchedule(variant(CLIENT_ROOT, 'CR2', { effects: ['store-distribution'] })), 'E_SCHEDULE_INVALID', /clients do not verify peers with the client root/);
    throwsCode(() => validateSchedule(variant(SIX_STEP, 'P1', { effects: ['store-issuer-distribution'] })), 'E_SCHEDULE_INVALID', /names no root side/);
  });

  it('the manager waits: CR3 for every server\'s CR1, CR4 for every client\'s CR3; SR3 for every client\'s SR1', () => {
    const acked = new Set(['srv-1:CR1', 'cli-1:CR2']);
    const has = (d: string, s: string) => acked.has(`${d}:${s}`);
    assert.deepEqual(blockers(CLIENT_ROOT, 'CR3', 'cli-1', ['srv-1', 'srv-2'], has), ['srv-2:CR1']);
    assert.deepEqual(blockers(CLIENT_ROOT, 'CR4', 'srv-1', ['cli-1'], has), ['cli-1:CR3']);
    assert.deepEqual(blockers(SERVER_ROOT, 'SR3', 'srv-1', ['cli-1', 'cli-2'], has), ['srv-1:SR2', 'cli-1:SR1', 'cli-2:SR1']);
  });

  it('a device refuses its steps out of its own order', () => {
    throwsCode(() => checkLocalOrder(CLIENT_ROOT, 'client', 'CR3', []), 'E_OUT_OF_ORDER', /next allowed is CR2/);
    throwsCode(() => checkLocalOrder(CLIENT_ROOT, 'server', 'CR4', []), 'E_OUT_OF_ORDER', /next allowed is CR1/);
    throwsCode(() => checkLocalOrder(SERVER_ROOT, 'server', 'SR5', ['SR2']), 'E_OUT_OF_ORDER', /next allowed is SR3/);
    throwsCode(() => checkLocalOrder(SERVER_ROOT, 'client', 'SR2', []), 'E_WRONG_ROLE');
  });
});
