/**
 * `trustroll audit verify`: proves from the audit log alone that every
 * rotation kept the method's order. The chain is checked first (an edited,
 * removed or reordered entry is found there); then every first send of a
 * step is checked against the schedule's required prerequisites using only
 * the acknowledgements recorded before it (P4 of a server only after P2 of
 * every client it talks to, and so on), with the fleet and peering that the
 * rotation's `rotation.started` entry recorded. Runs in one pass, O(entries
 * + peers), so a 10,000-device rotation checks in seconds.
 */
import { isReady, stepOf } from '../../protocol/schedule.ts';
import { SCHEDULES, type Role, type Schedule } from '../../protocol/steps.ts';
import { verifyChain, type AuditRow, type ChainBreak } from './audit-log.ts';
import { buildPeers } from '../fleet/peering.ts';

/** A command sent before its prerequisites were acknowledged, or an acknowledgement of nothing sent. */
export interface OrderViolation {
  seq: number;
  rotationId: string;
  deviceId: string;
  step: string;
  rule: string;
}

/** Result of `verifyAudit`. */
export interface AuditReport {
  entries: number;
  chain: ChainBreak | null;
  rotations: number;
  sendsChecked: number;
  acks: number;
  violations: OrderViolation[];
}

/** One rotation phase (forward or rollback) as rebuilt from the log. */
class Phase {
  readonly acked = new Set<string>();
  readonly sent = new Set<string>();
  private readonly counts = new Map<string, number>();
  readonly peers: Map<string, readonly string[]>;
  private readonly allToAll: boolean;
  private readonly size: Record<Role, number> = { server: 0, client: 0 };

  constructor(readonly schedule: Schedule, readonly roles: Map<string, Role>, edges: { server: string; client: string }[]) {
    this.allToAll = edges.length === 0;
    this.peers = buildPeers(roles, edges);
    for (const r of roles.values()) this.size[r]++;
  }

  ack(deviceId: string, step: string): void {
    const k = `${deviceId}\u0000${step}`;
    if (this.acked.has(k)) return;
    this.acked.add(k);
    this.counts.set(step, (this.counts.get(step) ?? 0) + 1);
  }

  peersAcked(deviceId: string, step: string): boolean {
    if (this.allToAll) {
      const role = this.roles.get(deviceId)!;
      return (this.counts.get(step) ?? 0) >= this.size[role === 'server' ? 'client' : 'server'];
    }
    return (this.peers.get(deviceId) ?? []).every((p) => this.acked.has(`${p}\u0000${step}`));
  }
}

/** Verify the chain and the order of every rotation in `rows` (oldest first). */
export function verifyAudit(rows: Iterable<AuditRow>, schedules: Readonly<Record<string, Schedule>> = SCHEDULES): AuditReport {
  const all = [...rows];
  const report: AuditReport = { entries: all.length, chain: verifyChain(all), rotations: 0, sendsChecked: 0, acks: 0, violations: [] };
  const phases = new Map<string, Phase>();
  const violation = (r: AuditRow, rule: string) => report.violations.push({ seq: r.seq, rotationId: r.rotationId ?? '-', deviceId: r.deviceId ?? '-', step: r.step ?? '-', rule });
  for (const r of all) {
    if (!r.rotationId) continue;
    if (r.action === 'rotation.started' || r.action === 'rotation.rollback-started') {
      const d = r.detail as { schedule: string; devices: Record<string, Role>; peering: { server: string; client: string }[] };
      const schedule = schedules[d.schedule];
      if (!schedule) {
        violation(r, `unknown schedule ${d.schedule}`);
        continue;
      }
      if (r.action === 'rotation.started') report.rotations++;
      phases.set(r.rotationId, new Phase(schedule, new Map(Object.entries(d.devices)), d.peering ?? []));
      continue;
    }
    const phase = phases.get(r.rotationId);
    if (phase && r.deviceId && r.action === 'device.excluded') {
      for (const s of ((r.detail as { steps?: string[] } | null)?.steps ?? [])) phase.ack(r.deviceId, s);
      continue;
    }
    if (!phase || !r.deviceId || !r.step) continue;
    const k = `${r.deviceId}\u0000${r.step}`;
    if (r.action === 'step.sent') {
      if (phase.sent.has(k)) continue;
      phase.sent.add(k);
      report.sendsChecked++;
      const role = phase.roles.get(r.deviceId);
      let def;
      try {
        def = stepOf(phase.schedule, r.step);
      } catch {
        violation(r, `step ${r.step} is not in schedule ${phase.schedule.name}`);
        continue;
      }
      if (role !== def.role) {
        violation(r, `${r.step} is a ${def.role} step but ${r.deviceId} is ${role ? `a ${role}` : 'not in the rotation'}`);
        continue;
      }
      const ok = isReady(phase.schedule, r.step, (s) => phase.acked.has(`${r.deviceId}\u0000${s}`), (s) => phase.peersAcked(r.deviceId!, s), { honourPreferred: false });
      if (!ok) {
        const missing = def.after.filter((p) => p.strength === 'required')
          .filter((p) => (p.scope === 'self' ? !phase.acked.has(`${r.deviceId}\u0000${p.step}`) : !phase.peersAcked(r.deviceId!, p.step)))
          .map((p) => (p.scope === 'self' ? `its own ${p.step}` : `${p.step} of every peer`));
        violation(r, `${r.step} of ${r.deviceId} was sent before ${missing.join(' and ')} was acknowledged`);
      }
    } else if (r.action === 'step.acked') {
      report.acks++;
      if (!phase.sent.has(k)) violation(r, `acknowledgement of ${r.step} by ${r.deviceId} recorded before the step was sent`);
      phase.ack(r.deviceId, r.step);
    }
  }
  return report;
}

/** Human rendering of a report. */
export function describeAuditReport(r: AuditReport): string {
  return [
    `audit log: ${r.entries} entries; hash chain ${r.chain ? `BROKEN at #${r.chain.seq}: ${r.chain.reason}` : 'intact'}`,
    `order: ${r.rotations} rotations, ${r.sendsChecked} sends checked against ${r.acks} acknowledgements: ${r.violations.length === 0 ? 'every step waited for its prerequisites' : `${r.violations.length} VIOLATIONS`}`,
    ...r.violations.slice(0, 20).map((v) => `  #${v.seq} ${v.rotationId}: ${v.rule}`),
    ...(r.violations.length > 20 ? [`  ... and ${r.violations.length - 20} more`] : []),
  ].join('\n');
}
