/**
 * The offline policy of a rotation started with `excludeOfflineAfterS`: a
 * device offline (or never seen) longer than that since the rotation began
 * is excluded, recorded in the audit log as `policy.exclude`, and its peers
 * go on. Without a policy the rotation waits for it and names it.
 */
import type { Logger } from '../../protocol/log.ts';
import type { Clock } from '../../protocol/clock.ts';
import type { AuditInput } from '../audit/audit-log.ts';
import type { Orchestrator } from '../rotation/orchestrator.ts';
import type { FleetView } from './fleet-view.ts';
import type { ServiceDb } from './service-db.ts';

/** What the policy uses of the service. */
export interface OfflinePolicyHost {
  orchestrator: Pick<Orchestrator, 'current' | 'exclude'>;
  sdb: Pick<ServiceDb, 'excludeOfflineAfter'>;
  fleet: Pick<FleetView, 'all' | 'build'>;
  clock: Clock;
  log: Logger;
  audit(e: AuditInput): void;
}

/** Exclude every device of the running rotation that has been offline longer than its policy allows. */
export function applyOfflinePolicy(h: OfflinePolicyHost): void {
  const rot = h.orchestrator.current();
  if (!rot || (rot.status !== 'running' && rot.status !== 'rolling-back')) return;
  const limit = h.sdb.excludeOfflineAfter(rot.id);
  if (limit === null) return;
  const now = h.clock.now().getTime();
  for (const line of h.fleet.all()) {
    if (line.rotationId !== rot.id || line.excluded || line.stepStatus === 'done' || line.online === true) continue;
    const since = Date.parse(line.since ?? rot.createdAt);
    const away = (now - Math.max(since, Date.parse(rot.createdAt))) / 1000;
    if (away < limit) continue;
    try {
      h.audit({ actor: `policy:exclude-after-${limit}s`, action: 'policy.exclude', rotationId: rot.id, deviceId: line.id, detail: { offlineSince: line.since, seconds: Math.round(away) } });
      h.orchestrator.exclude(line.id);
      h.fleet.build();
    } catch (err) {
      h.log.warn('offline policy could not exclude the device', { deviceId: line.id, rotationId: rot.id, reason: (err as Error).message });
    }
  }
}
