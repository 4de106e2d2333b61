/**
 * The technician's local status check: reads the device's trust store,
 * verifies its integrity, and reports what the device trusts, what it
 * presents, where it stands in a rotation, and anything that needs action.
 * With the configuration it also runs the checks it shares with the
 * self-test (selftest/device-checks.ts: the running agent, its
 * configuration, permissions, link files, link and refused commands) and
 * the key backend's check (a real signature), and gives one verdict: OK,
 * OK with warnings, or NOT OK with what to do for each problem.
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
import type { Check } from './selftest/report.ts';
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
  /** The checks shared with the self-test (with --config only). */
  checks?: Check[];
  /** Every failed check and warning, with what to do (`checks` that are not ok, and the key backend's). */
  problems: Check[];
  /** fail: something needs action now (exit 1); warn: worth a look; ok: nothing to do. */
  verdict: 'ok' | 'warn' | 'fail';
}

/** Whether the agent runs here and how its link is. */
export interface AgentRunState {
  state: 'running' | 'stopped' | 'absent';
  healthFile: string;
  pid: number | null;
  /** The user the agent runs (or last ran) as. */
  user: string | null;
  updatedAt: string | null;
  link: { url: string; connected: boolean; since: string | null; lastError: string | null } | null;
  tls: TlsCounters | null;
  /** Why the agent is not known to run (absent/stopped). */
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
  if (v.state === 'absent') return { state: 'absent', healthFile, pid: null, user: null, updatedAt: null, link: null, tls: null, reason: v.reason };
  const h = v.health;
  const reason = v.state === 'running' ? null
    : h.startError ? `its start at ${h.startedAt} failed: ${h.startError.message}`
    : h.stoppedAt ? `stopped at ${h.stoppedAt}` : `pid ${h.pid} is gone; last report ${h.updatedAt}`;
  const link = h.link ? { url: h.link.url, connected: h.link.connected, since: h.link.since, lastError: h.link.lastError } : null;
  return { state: v.state, healthFile, pid: h.pid, user: h.user.name, updatedAt: h.updatedAt, link, tls: h.tls, reason };
}

/** Add the agent, the key backend and the shared checks to a status, and decide the verdict. */
export function withChecks(s: DeviceStatus, agent: AgentRunState, hal: HalHealth, checks: Check[]): DeviceStatus {
  const keyProblem: Check[] = hal.ok ? [] : [{ name: 'key', status: 'fail', message: `the device key is not usable: ${hal.message}`, ...(hal.code ? { code: hal.code } : {}), ...(hal.action ? { action: hal.action } : {}) }];
  const problems = [...s.problems, ...keyProblem, ...checks.filter((c) => c.status === 'fail' || c.status === 'warn')];
  return { ...s, agent, hal, checks, problems, verdict: verdictOf(s.warnings, problems, s.regression) };
}

function verdictOf(warnings: string[], problems: Check[], regression: DeviceStatus['regression']): DeviceStatus['verdict'] {
  if (regression || problems.some((p) => p.status === 'fail')) return 'fail';
  return warnings.length > 0 || problems.length > 0 ? 'warn' : 'ok';
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
    if (c.daysLeft >= 0 && c.daysLeft < 30) warnings.push(`${c.slot} expires in ${c.daysLeft} days`);
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
  // An expired certificate is a failure, not a note: peers refuse the device's own, and an expired root verifies nothing.
  const problems: Check[] = [...trust, ...identities].filter((c) => c.daysLeft < 0).map((c) => ({
    name: 'certificate', status: 'fail', code: 'E_VALIDITY', message: `${c.slot} expired on ${c.notAfter}`,
    action: identities.includes(c) ? 'the device cannot authenticate: have the manager issue a new certificate (a rotation or re-enrollment) and provision it' : 'rotate the fleet\'s root on the manager (trustroll rotate)',
  }));
  return { deviceId: record.deviceId, role: record.role, trust, identities, rotation, lastSeq: record.lastSeq, history, warnings, regression, problems, verdict: verdictOf(warnings, problems, regression) };
}

/** Human-readable rendering. */
export function describeStatus(s: DeviceStatus): string {
  const cert = (c: CertLine) => `  ${c.slot}: ${c.subject}\n    issuer ${c.issuer}; valid to ${c.notAfter} (${c.daysLeft} days); sha256 ${c.sha256.slice(0, 16)}…`;
  const problem = (c: Check) => [`  ${c.status === 'fail' ? 'FAIL' : 'WARN'} ${c.name}: ${c.message}`, ...(c.action ? [`       what to do: ${c.action}`] : []), ...(c.code ? [`       code: ${c.code}`] : [])];
  const fails = s.problems.filter((p) => p.status === 'fail').length;
  return [
    `device ${s.deviceId} (${s.role}), last command #${s.lastSeq}`,
    'trusts:', ...s.trust.map(cert),
    'presents:', ...s.identities.map(cert),
    s.rotation ? `rotation ${s.rotation.id} (${s.rotation.schedule}): done ${s.rotation.completed.join(', ') || 'none'}; remaining ${s.rotation.remaining.join(', ') || 'none'}` : 'no rotation recorded',
    ...s.history.map((h) => `  ${h.at} #${h.seq} ${h.rotationId} ${h.step} store ${h.storeHash.slice(0, 12)}…`),
    ...(s.agent ? [describeAgent(s.agent)] : []),
    ...(s.hal ? [`hal: ${s.hal.backend} ${s.hal.ok ? 'OK' : 'NOT OK'}: ${s.hal.message}`] : []),
    // Which link CA and certificate are in force: the configured (factory) files, or the rotation's record under the state folder.
    ...(s.checks ?? []).filter((c) => c.name === 'link files' && c.status === 'ok').map((c) => `link files: ${c.message}`),
    ...(s.regression ? [`ERROR ${s.regression.code}: the trust store rolled back (${s.regression.missingWrites} of ${s.regression.lostWrites} lost write(s) still missing)`] : []),
    ...(s.warnings.length ? ['warnings:', ...s.warnings.map((w) => `  ${w}`)] : []),
    ...(s.problems.length ? ['problems:', ...s.problems.flatMap(problem)] : []),
    s.verdict === 'ok' ? 'status: OK' : s.verdict === 'warn' ? 'status: OK with warnings' : `status: NOT OK (${fails} problem${fails === 1 ? '' : 's'}; what to do is under "problems")`,
  ].join('\n');
}

function describeAgent(a: AgentRunState): string {
  if (a.state !== 'running' || !a.link) return `agent: not running (${a.reason}); link: unknown`;
  const link = a.link.connected ? `connected to ${a.link.url} since ${a.link.since}` : `NOT connected to ${a.link.url}${a.link.lastError ? ` (${a.link.lastError})` : ''}; retrying`;
  const t = a.tls;
  const tls = t ? `; handshakes since ${t.since}: ${t.attempts} attempted, ${t.ok} ok, ${t.failed} failed (trust), ${t.unreachable ?? 0} peer unreachable, ${t.fallbacks} fallbacks` : '';
  return `agent: running (pid ${a.pid}, user ${a.user}, reported ${a.updatedAt}); link ${link}${tls}`;
}
