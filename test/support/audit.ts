/**
 * The check every test fleet makes when it closes: its manager's audit log
 * has an intact hash chain and proves that no step was sent before its
 * prerequisites were acknowledged.
 */
import { strict as assert } from 'node:assert';
import type { AuditReport } from '../../manager/audit/audit-check.ts';

/** Fail unless `report` shows an intact chain and no ordering violation. */
export function assertAuditClean(report: AuditReport): void {
  assert.equal(report.chain, null, 'audit hash chain intact');
  assert.deepEqual(report.violations, [], 'no step sent before its prerequisites');
}

/** Verify a fleet's audit log, close the fleet, then assert the log was clean (mocha afterEach). */
export async function closeVerified(fleet: { verifyAudit(): AuditReport; close(): Promise<void> } | undefined): Promise<void> {
  if (!fleet) return;
  const report = fleet.verifyAudit();
  await fleet.close();
  assertAuditClean(report);
}
