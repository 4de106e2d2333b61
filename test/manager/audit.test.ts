import { strict as assert } from 'node:assert';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { auditHash, AuditLog, AUDIT_GENESIS, type AuditRow } from '../../manager/audit/audit-log.ts';
import { verifyAudit } from '../../manager/audit/audit-check.ts';
import { BATCHED, SIX_STEP } from '../../protocol/steps.ts';

/** Re-chain rows after a forger reordered or edited them (so only the order check can catch it). */
function rechain(rows: AuditRow[]): AuditRow[] {
  let prev = AUDIT_GENESIS;
  return rows.map((r, i) => {
    const row = { ...r, seq: i + 1, prev };
    row.hash = auditHash(prev, row);
    prev = row.hash;
    return row;
  });
}

describe('audit trail: hash chain and order proven from the log alone', function () {
  this.timeout(60_000);
  let fleet: InProcessFleet;
  afterEach(async () => { await fleet?.close(); });

  for (const schedule of [SIX_STEP, BATCHED]) {
    it(`${schedule.name}: every command and acknowledgement is recorded; verify passes`, async () => {
      fleet = await InProcessFleet.create({ servers: 3, clients: 4, maxLatencyMs: 3, duplicateRate: 0.2 });
      await fleet.orchestrator.start({ schedule });
      assert.equal((await fleet.waitForEnd()).status, 'complete');
      const report = fleet.verifyAudit();
      const steps = fleet.db.steps(fleet.orchestrator.current()!.id).length;
      assert.equal(report.chain, null);
      assert.deepEqual(report.violations, []);
      assert.equal(report.sendsChecked, steps);
      assert.equal(report.acks, steps);
      const rows = [...new AuditLog(fleet.db).all()];
      const acked = rows.filter((r) => r.action === 'step.acked');
      for (const a of acked) {
        const d = a.detail as { deviceAt: string; sig: { alg: string; value: string } | null; storeHash: string };
        assert.match(d.deviceAt, /^\d{4}-\d\d-\d\dT/, 'the device\'s own apply time');
        assert.match(d.storeHash, /^[0-9a-f]{64}$/);
      }
      assert.ok(rows.every((r, i) => r.seq === i + 1), 'one manager-wide sequence, no gaps');
    });
  }

  it('detects an edited, a removed and a reordered entry; a re-chained forgery that breaks the order is caught by the order check', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2 });
    await fleet.orchestrator.start({ schedule: SIX_STEP });
    assert.equal((await fleet.waitForEnd()).status, 'complete');
    const rows = [...new AuditLog(fleet.db).all()];
    const edited = rows.map((r) => (r.seq === 5 ? { ...r, actor: 'operator:mallory' } : r));
    assert.equal(verifyAudit(edited).chain?.seq, 5);
    const removed = rows.filter((r) => r.seq !== 7);
    assert.equal(verifyAudit(removed).chain?.seq, 8);
    const swapped = [...rows];
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!];
    assert.ok(verifyAudit(swapped).chain, 'a swap breaks the chain');
    // A forger who re-chains: move every P2 acknowledgement after the first P4 send.
    const firstP4 = rows.findIndex((r) => r.action === 'step.sent' && r.step === 'P4');
    const p2acks = rows.filter((r) => r.action === 'step.acked' && r.step === 'P2');
    const rest = rows.filter((r) => !p2acks.includes(r));
    const at = rest.indexOf(rows[firstP4]!) + 1;
    const forged = rechain([...rest.slice(0, at), ...p2acks, ...rest.slice(at)]);
    const report = verifyAudit(forged);
    assert.equal(report.chain, null, 'the forgery re-chained cleanly');
    assert.ok(report.violations.some((v) => v.step === 'P4' && /P2 of every peer/.test(v.rule)), JSON.stringify(report.violations));
  });
});
