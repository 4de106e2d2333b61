/**
 * The technician's local status check: reads the device's trust store,
 * verifies its integrity, and reports what the device trusts, what it
 * presents, where it stands in a rotation, and anything that needs action.
 * With the configuration it also reports the running agent's link (from its
 * health file) and the key backend's health (a real signature).
 * Fingerprints and names only; no key material.
 */
import type { RecordStoreIntegrity } from '../hal/record-store.ts';
import { fingerprint, parseCertificate, validity, dn } from '../protocol/pem.ts';
import type { TlsCounters } from '../protocol/messages/device-state.ts';
import { deviceSequence } from '../protocol/schedule.ts';
import { SCHEDULES } from '../protocol/steps.ts';
import type { AgentConfig } from './config.ts';
import type { DeviceRecord } from './device-record.ts';
import { healthFilePath, readHealth } from './health-file.ts';
import type { ReadOnlyDevice } from './read-only.ts';
import { keyCheck } from './selftest/local-checks.ts';
import type { HistoryEntry } from './state-store.ts';

/** One certificate as a technician sees it. */
export interface CertLine {
  slot: string;
  subject: string;
  issuer: string;
  sha256: string;
  notBefore: string;
  notAfter: string;
  daysLeft: number;
}

/** The status report. */
export interface DeviceStatus {
  deviceId: string;
  role: string;
  trust: CertLine[];
  identities: CertLine[];
  rotation: { id: string; schedule: string; completed: string[]; remaining: string[] } | null;
  lastSeq: number;
  history: HistoryEntry[];
  warnings: string[];
  /**
   * The store rolled back to an older copy (E_STORE_REGRESSED): acknowledged
   * steps are missing here until the manager re-sends them. Null when none
   * was detected (or the backend cannot tell: SQLite, files).
   */
  regression: { code: 'E_STORE_REGRESSED'; message: string; lostWrites: number; missingWrites: number } | null;
  /** The running agent, from its health file (with --config only). */
  agent?: AgentRunState;
  /** The key backend and the device key (with --config only). */
  hal?: HalHealth;
}

/** Whether the agent runs here and how its link is. */
export interface AgentRunState {
  state: 'running' | 'stale' | 'stopped' | 'absent';
  healthFile: string;
  pid: number | null;
  updatedAt: string | null;
  link: { url: string; connected: boolean; since: string | null; lastError: string | null } | null;
  tls: TlsCounters | null;
  /** Why the agent is not known to run (absent/stopped/stale). */
  reason: string | null;
}

/** The key backend's health and whether the device key is present and signs for its certificate. */
export interface HalHealth {
  backend: string;
  ok: boolean;
  message: string;
  code: string | null;
  action: string | null;
}

/** The running agent as its health file tells it (reads only). */
export function agentRunState(config: AgentConfig, now: Date): AgentRunState {
  const healthFile = healthFilePath(config);
  const v = readHealth(healthFile, now);
  if (v.state === 'absent') return { state: 'absent', healthFile, pid: null, updatedAt: null, link: null, tls: null, reason: v.reason };
  const h = v.health;
  const reason = v.state === 'stopped' ? `stopped${h.stoppedAt ? ` at ${h.stoppedAt}` : ` (pid ${h.pid} is gone; last report ${h.updatedAt})`}`
    : v.state === 'stale' ? `pid ${h.pid} is alive but has not reported for ${Math.round(v.ageMs / 1000)} s` : null;
  const link = { url: h.link.url, connected: h.link.connected, since: h.link.since, lastError: h.link.lastError };
  return { state: v.state, healthFile, pid: h.pid, updatedAt: h.updatedAt, link, tls: h.tls, reason };
}

/** Add the agent's and the key backend's health to a status, with a warning for each problem. */
export function withHealth(s: DeviceStatus, agent: AgentRunState, hal: HalHealth): DeviceStatus {
  const warnings = [...s.warnings];
  if (!hal.ok) warnings.push(`the device key is not usable (${hal.code ?? 'key backend'}): ${hal.action ?? hal.message}`);
  if (agent.state === 'running' && agent.link && !agent.link.connected) warnings.push(`the agent is not connected to ${agent.link.url.startsWith('mqtt') ? 'the broker ' : ''}${agent.link.url}${agent.link.lastError ? ` (${agent.link.lastError})` : ''}`);
  if (agent.state === 'stale') warnings.push(`the agent ${agent.reason}; restart it if it hangs`);
  return { ...s, warnings, agent, hal };
}

/** The key backend's health: the same real signature check as the self-test's key check. */
export async function halHealth(dev: ReadOnlyDevice): Promise<HalHealth> {
  const c = await keyCheck(dev);
  return { backend: dev.config.hal.keys.backend, ok: c.status === 'ok', message: c.message, code: c.code ?? null, action: c.status === 'ok' ? null : c.action ?? null };
}

const DAY = 86_400_000;

function line(slot: string, pem: string, now: Date): CertLine {
  const c = parseCertificate(pem, slot);
  const v = validity(c);
  return {
    slot, subject: dn(c.subject), issuer: dn(c.issuer), sha256: fingerprint(c),
    notBefore: v.notBefore.toISOString(), notAfter: v.notAfter.toISOString(), daysLeft: Math.floor((v.notAfter.getTime() - now.getTime()) / DAY),
  };
}

/** Build the status of a device record at `now` (with the store's roll-back report, when the backend has one). */
export function deviceStatus(record: DeviceRecord, history: HistoryEntry[], now: Date, integrity: RecordStoreIntegrity | null = null): DeviceStatus {
  const trust = [
    line('current root', record.trust.current, now),
    ...(record.trust.distribution ? [line('distribution root (NewWithOld)', record.trust.distribution, now)] : []),
    ...(record.trust.next ? [line('new root (NewWithNew)', record.trust.next, now)] : []),
    // Separate roots: the root that issued this device's own certificate (verifies its next one, never a peer).
    ...(record.issuer ? [
      line('issuer root (own certificate\'s, not for peers)', record.issuer.current, now),
      ...(record.issuer.distribution ? [line('issuer distribution root (NewWithOld)', record.issuer.distribution, now)] : []),
      ...(record.issuer.next ? [line('issuer new root (NewWithNew)', record.issuer.next, now)] : []),
    ] : []),
  ];
  const identities = [
    line(record.identity.fallback ? 'identity (presented first)' : 'identity', record.identity.active.cert, now),
    ...(record.identity.fallback ? [line('fallback identity', record.identity.fallback.cert, now)] : []),
  ];
  const warnings: string[] = [];
  for (const c of [...trust, ...identities]) {
    if (c.daysLeft < 0) warnings.push(`${c.slot} expired on ${c.notAfter}`);
    else if (c.daysLeft < 30) warnings.push(`${c.slot} expires in ${c.daysLeft} days`);
  }
  const regression = integrity?.rolledBack
    ? { code: 'E_STORE_REGRESSED' as const, message: `${integrity.detail}; this device runs on an older trust state (last command #${record.lastSeq}) than it acknowledged; the manager re-sends the lost steps when the agent is connected (check "trustroll status" on the manager; if it repeats, replace the storage part)`, lostWrites: integrity.lostWrites, missingWrites: integrity.missingWrites }
    : null;
  if (regression) warnings.push(`E_STORE_REGRESSED: ${regression.message}`);
  let rotation: DeviceStatus['rotation'] = null;
  if (record.rotation) {
    const schedule = SCHEDULES[record.rotation.schedule];
    const seq = schedule ? deviceSequence(schedule, record.role) : [];
    const remaining = seq.slice(record.rotation.completed.length);
    rotation = { ...record.rotation, remaining };
    // After a roll-back the manager may consider this rotation complete: do not call it "in progress, safe".
    if (remaining.length > 0 && !regression) warnings.push(`rotation ${record.rotation.id} is in progress (next: ${remaining[0]}); this is safe, the manager continues it`);
  }
  return { deviceId: record.deviceId, role: record.role, trust, identities, rotation, lastSeq: record.lastSeq, history, warnings, regression };
}

/** Human-readable rendering. */
export function describeStatus(s: DeviceStatus): string {
  const cert = (c: CertLine) => `  ${c.slot}: ${c.subject}\n    issuer ${c.issuer}; valid to ${c.notAfter} (${c.daysLeft} days); sha256 ${c.sha256.slice(0, 16)}…`;
  return [
    `device ${s.deviceId} (${s.role}), last command #${s.lastSeq}`,
    'trusts:', ...s.trust.map(cert),
    'presents:', ...s.identities.map(cert),
    s.rotation ? `rotation ${s.rotation.id} (${s.rotation.schedule}): done ${s.rotation.completed.join(', ') || 'none'}; remaining ${s.rotation.remaining.join(', ') || 'none'}` : 'no rotation recorded',
    ...s.history.map((h) => `  ${h.at} #${h.seq} ${h.rotationId} ${h.step} store ${h.storeHash.slice(0, 12)}…`),
    ...(s.agent ? [describeAgent(s.agent)] : []),
    ...(s.hal ? [`hal: ${s.hal.backend} ${s.hal.ok ? 'OK' : 'NOT OK'}: ${s.hal.message}${s.hal.action ? `\n  what to do: ${s.hal.action}` : ''}`] : []),
    ...(s.regression ? [`ERROR ${s.regression.code}: the trust store rolled back (${s.regression.missingWrites} of ${s.regression.lostWrites} lost write(s) still missing)`] : []),
    ...(s.warnings.length ? ['warnings:', ...s.warnings.map((w) => `  ${w}`)] : ['status: OK']),
  ].join('\n');
}

function describeAgent(a: AgentRunState): string {
  if (a.state !== 'running' || !a.link) return `agent: not running (${a.reason}); link: unknown`;
  const link = a.link.connected ? `connected to ${a.link.url} since ${a.link.since}` : `NOT connected to ${a.link.url}${a.link.lastError ? ` (${a.link.lastError})` : ''}; retrying`;
  const tls = a.tls ? `; handshakes since ${a.tls.since}: ${a.tls.attempts} attempted, ${a.tls.ok} ok, ${a.tls.failed} failed, ${a.tls.fallbacks} fallbacks` : '';
  return `agent: running (pid ${a.pid}, reported ${a.updatedAt}); link ${link}${tls}`;
}
