/**
 * The audit of refused requests keeps a flood out of the log: each remote
 * address gets its budget of entries a minute, the rest are counted into
 * one `http.denied.suppressed` entry when the minute ends.
 */
import { strict as assert } from 'node:assert';
import type { AuditInput } from '../../manager/audit/audit-log.ts';
import { DeniedAudit } from '../../manager/http/denied-audit.ts';

describe('DeniedAudit: refused requests in the audit log, a flood held to a budget per address and minute', () => {
  const denial = (remote: string, n: number) => ({ actor: 'anonymous', method: 'GET', route: `/api/fleet/${n}`, status: 401, code: 'E_AUTH_REQUIRED', reason: 'present an operator certificate', remote });

  it('records each refusal up to the budget, then one suppressed count per address when the minute ends', () => {
    const entries: AuditInput[] = [];
    let now = Date.parse('2027-01-05T10:00:10Z');
    const d = new DeniedAudit((e) => entries.push(e), () => now, 3);
    for (let i = 0; i < 10; i++) d.record(denial('203.0.113.9', i));
    d.record(denial('198.51.100.1', 0));
    assert.equal(entries.length, 4, 'three of the flooding address, one of the other');
    assert.deepEqual(entries.map((e) => (e.detail as { remote: string }).remote), ['203.0.113.9', '203.0.113.9', '203.0.113.9', '198.51.100.1']);
    assert.equal(entries[0]!.action, 'http.denied');
    assert.equal(entries[0]!.code, 'E_AUTH_REQUIRED');
    assert.deepEqual(entries[0]!.detail, { method: 'GET', route: '/api/fleet/0', status: 401, reason: 'present an operator certificate', remote: '203.0.113.9' });

    now += 60_000;
    d.record(denial('203.0.113.9', 99));
    assert.equal(entries.length, 6);
    assert.deepEqual([entries[4]!.action, entries[4]!.detail], ['http.denied.suppressed', { remote: '203.0.113.9', refused: 10, recorded: 3, minuteStart: '2027-01-05T10:00:00.000Z' }]);
    assert.equal(entries[5]!.action, 'http.denied', 'a new minute, a new budget');
    d.flush();
    assert.equal(entries.length, 6, 'nothing suppressed in this minute: no summary');
  });
});
