/**
 * The progress line of `trustroll rotate` (bin/trustroll/rotate-progress.ts): fed
 * successive states, it prints nothing for an unchanged state off a
 * terminal and one line per change; on a terminal it rewrites one line in
 * place (carriage return + clear line) and ends it with a newline only at
 * the end.
 */
import { strict as assert } from 'node:assert';
import { fromDetail, fromStatus, progressLine, RotateProgress, type ProgressState } from '../../bin/trustroll/rotate-progress.ts';
import type { RotationStatus } from '../../manager/rotation/rotation-status.ts';

/** A stdout stand-in that records every write. */
function recorder(isTTY: boolean, columns?: number): { writes: string[]; write(t: string): boolean; isTTY: boolean; columns?: number } {
  const writes: string[] = [];
  return { writes, isTTY, columns, write: (t: string) => { writes.push(t); return true; } };
}

const state = (acked: number, blockers: ProgressState['blockers'] = []): ProgressState => ({ rotationId: 'rot-1', status: 'running', acked, total: 12, blockers });
const C2 = { deviceId: 'console-2', step: 'P2', online: false };
const P1 = { deviceId: 'printer-1', step: 'P1', online: true };

describe('trustroll rotate: progress line', () => {
  it('names acknowledged/total and the first blockers with their step and presence', () => {
    assert.equal(progressLine(state(3)), 'rot-1: running, 3/12 steps acknowledged');
    assert.equal(progressLine(state(3, [C2, P1])), 'rot-1: running, 3/12 steps acknowledged; waiting for console-2 P2 (offline), printer-1 P1 (online)');
    assert.equal(progressLine({ ...state(3, [C2, P1, { deviceId: 'console-3', step: 'P2', online: null }]), blockersTotal: 7 }), 'rot-1: running, 3/12 steps acknowledged; waiting for console-2 P2 (offline), printer-1 P1 (online) and 5 more');
  });

  it('not a terminal: an unchanged state prints nothing, a changed one prints exactly one line', () => {
    const out = recorder(false);
    const p = new RotateProgress(out);
    p.update(state(3, [C2]));
    assert.deepEqual(out.writes, ['rot-1: running, 3/12 steps acknowledged; waiting for console-2 P2 (offline)\n']);
    for (let i = 0; i < 5; i++) p.update(state(3, [C2]));
    assert.equal(out.writes.length, 1, 'the same state five more times (the old 1 s / 2 s repeat): nothing');
    p.update(state(4, [C2]));
    assert.equal(out.writes.length, 2);
    assert.equal(out.writes[1], 'rot-1: running, 4/12 steps acknowledged; waiting for console-2 P2 (offline)\n');
    p.update(state(4, [{ ...C2, online: true }]));
    assert.equal(out.writes.length, 3, 'the blocker coming online is a change');
    assert.ok(out.writes.every((w) => !w.includes('\r') && !w.includes('\x1b') && w.endsWith('\n') && w.split('\n').length === 2), 'plain lines, no control sequences');
    p.end();
    assert.equal(out.writes.length, 3, 'end adds nothing off a terminal');
  });

  it('on a terminal: one line rewritten in place with \\r and clear-line, no newline until the end', () => {
    const out = recorder(true, 200);
    const p = new RotateProgress(out);
    p.update(state(1, [C2]));
    p.update(state(1, [C2]));
    p.update(state(2, [C2]));
    p.update(state(12));
    assert.equal(out.writes.length, 3, 'an unchanged state is not rewritten');
    for (const w of out.writes) {
      assert.ok(w.startsWith('\r\x1b[2K'), JSON.stringify(w));
      assert.ok(!w.includes('\n'), `no newline while the rotation runs: ${JSON.stringify(w)}`);
    }
    assert.equal(out.writes[2], '\r\x1b[2Krot-1: running, 12/12 steps acknowledged');
    p.end();
    assert.equal(out.writes.at(-1), '\n', 'the line is ended once, at the end');
    p.end();
    assert.equal(out.writes.length, 4, 'a second end writes nothing');
  });

  it('on a narrow terminal the line is cut to fit (a wrapped line could not be rewritten in place)', () => {
    const out = recorder(true, 40);
    new RotateProgress(out).update(state(3, [C2, P1]));
    assert.ok(out.writes[0]!.length - '\r\x1b[2K'.length <= 39, JSON.stringify(out.writes[0]));
    assert.ok(out.writes[0]!.endsWith('…'));
  });

  it('reads the API detail and the database status: offline blockers first, then by how much they hold up; an offline device\'s step in flight counts', () => {
    assert.deepEqual(fromDetail({ id: 'r', status: 'running', acked: 1, total: 2 }).blockers, [], 'a POST summary has no blockers yet');
    assert.deepEqual(fromDetail({ id: 'r', status: 'running', acked: 1, total: 2, blockers: [{ ...C2, role: 'client', since: null, status: 'sent', attempts: 1, lastError: null, blocks: 2 }] }).blockers, [C2]);
    const dev = (deviceId: string, steps: [string, string][], waitingFor: string[] = []) => ({ deviceId, role: 'client' as const, steps: steps.map(([step, status]) => ({ step, status, attempts: 1, error: null })), waitingFor });
    const st = {
      rotation: { id: 'r', status: 'running' }, acked: 3, total: 12,
      devices: [
        dev('printer-1', [['P1', 'acked'], ['P4', 'pending']], ['console-1:P2', 'console-2:P2']),
        dev('printer-2', [['P1', 'acked'], ['P4', 'pending']], ['console-1:P2', 'console-2:P2']),
        dev('console-1', [['P2', 'sent']]),
        dev('console-2', [['P2', 'sent']]),
        dev('console-3', [['P2', 'acked'], ['P3', 'sent']]),
      ],
    } as unknown as RotationStatus;
    const online = (id: string) => (id === 'console-2' || id === 'console-3' ? false : true);
    assert.deepEqual(fromStatus(st, online).blockers, [
      { deviceId: 'console-2', step: 'P2', online: false },
      { deviceId: 'console-3', step: 'P3', online: false },
      { deviceId: 'console-1', step: 'P2', online: true },
    ]);
  });
});
