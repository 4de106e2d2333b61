import { strict as assert } from 'node:assert';
import { checkLocalOrder, deviceSequence, validateSchedule, blockers } from '../../protocol/schedule.ts';
import { BATCHED, NAIVE, SIX_STEP, type Schedule, type StepDef } from '../../protocol/steps.ts';
import { isProtocolError } from '../../protocol/errors.ts';

/** SIX_STEP with one step's prerequisites replaced. */
function withAfter(base: Schedule, id: string, after: StepDef['after']): Schedule {
  return { name: `${base.name}-${id}-variant`, steps: base.steps.map((s) => (s.id === id ? { ...s, after } : s)) };
}

const throwsCode = (fn: () => unknown, code: string, match?: RegExp) =>
  assert.throws(fn, (e: unknown) => isProtocolError(e) && e.code === code && (!match || match.test(e.message)));

describe('protocol: schedules as data', () => {
  it('accepts the six-step and batched schedules and derives each role\'s device sequence', () => {
    assert.deepEqual(validateSchedule(SIX_STEP).sequence, { server: ['P1', 'P4', 'P5'], client: ['P2', 'P3', 'P6'] });
    const batched = validateSchedule(BATCHED);
    assert.deepEqual(batched.sequence, { server: ['B2'], client: ['B1', 'B3'] });
    assert.match(batched.warnings.join('\n'), /fallback handshake/, 'batched pays a fallback handshake until B2 [0131]');
    assert.deepEqual(validateSchedule(SIX_STEP).warnings, []);
  });

  it('rejects the naive replace-everything schedule', () => {
    throwsCode(() => validateSchedule(NAIVE), 'E_SCHEDULE_ORDER', /every client trusts K1/);
  });

  it('rejects P4 before P2 is complete on every client (claim 16, the core rule)', () => {
    throwsCode(() => validateSchedule(withAfter(SIX_STEP, 'P4', [{ step: 'P1', scope: 'self', strength: 'required' }])), 'E_SCHEDULE_ORDER', /P4.*every client trusts K1/);
  });

  it('rejects P4 that only prefers P2 (a preferred edge is not a guarantee)', () => {
    throwsCode(() => validateSchedule(withAfter(SIX_STEP, 'P4', [
      { step: 'P1', scope: 'self', strength: 'required' }, { step: 'P2', scope: 'peers', strength: 'preferred' }])), 'E_SCHEDULE_ORDER');
  });

  it('rejects P3 before P2 (client installs Cn before trusting K1)', () => {
    const s: Schedule = { name: 'p3-first', steps: SIX_STEP.steps.map((st) => {
      if (st.id === 'P3') return { ...st, after: [] };
      if (st.id === 'P2') return { ...st, after: [{ step: 'P3', scope: 'self', strength: 'required' }] };
      if (st.id === 'P6') return { ...st, after: [{ step: 'P2', scope: 'self', strength: 'required' }, { step: 'P4', scope: 'peers', strength: 'required' }] };
      if (st.id === 'P4') return { ...st, after: [{ step: 'P1', scope: 'self', strength: 'required' }, { step: 'P3', scope: 'peers', strength: 'required' }] };
      return st;
    }) };
    throwsCode(() => validateSchedule(s), 'E_SCHEDULE_ORDER', /P3 .*P3 not before P2/);
  });

  it('rejects P4 before P1 (server installs Sn before trusting K1)', () => {
    const s: Schedule = { name: 'p4-first', steps: SIX_STEP.steps.map((st) => {
      if (st.id === 'P4') return { ...st, after: [{ step: 'P2', scope: 'peers', strength: 'required' }] };
      if (st.id === 'P1') return { ...st, after: [{ step: 'P4', scope: 'self', strength: 'required' }] };
      if (st.id === 'P5') return { ...st, after: [{ step: 'P1', scope: 'self', strength: 'required' }, { step: 'P3', scope: 'peers', strength: 'required' }] };
      return st;
    }) };
    throwsCode(() => validateSchedule(s), 'E_SCHEDULE_ORDER', /P4 not before P1/);
  });

  it('rejects dropping R0 on a server before every client presents Cn', () => {
    throwsCode(() => validateSchedule(withAfter(SIX_STEP, 'P5', [{ step: 'P4', scope: 'self', strength: 'required' }])), 'E_SCHEDULE_ORDER', /deletes R0/);
  });

  it('rejects dropping R0 on a client before every server presents Sn', () => {
    throwsCode(() => validateSchedule(withAfter(SIX_STEP, 'P6', [{ step: 'P3', scope: 'self', strength: 'required' }])), 'E_SCHEDULE_ORDER', /deletes R0/);
  });

  it('rejects structural errors: unknown step, duplicate id, wrong-role edge, two chains', () => {
    throwsCode(() => validateSchedule(withAfter(SIX_STEP, 'P4', [{ step: 'PX', scope: 'self', strength: 'required' }])), 'E_SCHEDULE_INVALID', /no step "PX"/);
    throwsCode(() => validateSchedule({ name: 'dup', steps: [...SIX_STEP.steps, SIX_STEP.steps[0]!] }), 'E_SCHEDULE_INVALID', /used twice/);
    throwsCode(() => validateSchedule(withAfter(SIX_STEP, 'P4', [{ step: 'P2', scope: 'self', strength: 'required' }])), 'E_SCHEDULE_INVALID', /client step/);
    throwsCode(() => deviceSequence(withAfter(SIX_STEP, 'P5', [{ step: 'P3', scope: 'peers', strength: 'required' }]), 'server'), 'E_SCHEDULE_INVALID', /one chain/);
  });

  it('device-side order: names the current step, the target and what it waits for', () => {
    checkLocalOrder(SIX_STEP, 'server', 'P1', []);
    checkLocalOrder(SIX_STEP, 'server', 'P5', ['P1', 'P4']);
    throwsCode(() => checkLocalOrder(SIX_STEP, 'server', 'P5', ['P1']), 'E_OUT_OF_ORDER', /current step is P1, next allowed is P4; P5 requires P4/);
    throwsCode(() => checkLocalOrder(SIX_STEP, 'server', 'P2', []), 'E_WRONG_ROLE');
    throwsCode(() => checkLocalOrder(SIX_STEP, 'client', 'P6', ['P2', 'P3', 'P6']), 'E_OUT_OF_ORDER', /rotation complete/);
  });

  it('fleet readiness lists exactly the peers a step waits for', () => {
    const acked = new Set(['s1:P1', 'c1:P2']);
    const isAcked = (d: string, s: string) => acked.has(`${d}:${s}`);
    assert.deepEqual(blockers(SIX_STEP, 'P4', 's1', ['c1', 'c2'], isAcked), ['c2:P2']);
    acked.add('c2:P2');
    assert.deepEqual(blockers(SIX_STEP, 'P4', 's1', ['c1', 'c2'], isAcked), []);
    assert.deepEqual(blockers(SIX_STEP, 'P3', 'c1', ['s1', 's2'], isAcked), ['s2:P1']);
    assert.deepEqual(blockers(SIX_STEP, 'P3', 'c1', ['s1', 's2'], isAcked, { honourPreferred: false }), []);
  });
});
