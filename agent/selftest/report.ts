/**
 * The technician's self-test report: one entry per check, each ok, warn,
 * fail or skipped with a plain sentence, and for a failure what to do and
 * the typed error code. Rendered as text or as one JSON object; the exit
 * code is 0 unless a check failed.
 */
import { withoutCode } from '../../protocol/errors.ts';

/** How one check came out. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skipped';

/** One check of the self-test. */
export interface Check {
  /** Short name: key, store, chain, link, peer <id>, tls service. */
  name: string;
  status: CheckStatus;
  /** What was found, in plain words. */
  message: string;
  /** What to do about a failure or warning. */
  action?: string;
  /** The typed error code (E_...) behind a failure or warning. */
  code?: string;
  details?: Record<string, unknown>;
}

/** A root or certificate as the report names it. */
export interface CertSummary {
  slot: string;
  subject: string;
  sha256: string;
  notAfter: string;
}

/** The whole report. */
export interface SelftestReport {
  deviceId: string;
  role: string;
  at: string;
  /** True when no check failed (warnings allowed). */
  ok: boolean;
  result: 'ok' | 'warn' | 'fail';
  /** The roots the device trusts (R0, D, R1 as held), from its store. */
  trusts: CertSummary[];
  /** The certificates it presents, in order. */
  presents: CertSummary[];
  checks: Check[];
}

/** Assemble the report from its checks. */
export function buildReport(o: { deviceId: string; role: string; at: Date; trusts: CertSummary[]; presents: CertSummary[]; checks: Check[] }): SelftestReport {
  const failed = o.checks.some((c) => c.status === 'fail');
  const warned = o.checks.some((c) => c.status === 'warn');
  return { deviceId: o.deviceId, role: o.role, at: o.at.toISOString(), ok: !failed, result: failed ? 'fail' : warned ? 'warn' : 'ok', trusts: o.trusts, presents: o.presents, checks: o.checks };
}

/** The process exit code for a report: 0 all passed (warnings allowed), 1 a check failed. */
export function exitCodeOf(r: SelftestReport): number {
  return r.ok ? 0 : 1;
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skipped: 'skip' };

/** Human-readable rendering. */
export function describeReport(r: SelftestReport): string {
  const cert = (c: CertSummary) => `${c.slot}: ${c.subject} (sha256 ${c.sha256.slice(0, 16)}…, valid to ${c.notAfter})`;
  const lines = [
    `self-test of ${r.deviceId} (${r.role}) at ${r.at}`,
    ...(r.trusts.length ? ['trusts:', ...r.trusts.map((c) => `  ${cert(c)}`)] : ['trusts: (trust store not readable)']),
    ...(r.presents.length ? ['presents:', ...r.presents.map((c) => `  ${cert(c)}`)] : []),
    'checks:',
  ];
  for (const c of r.checks) {
    lines.push(`  [${MARK[c.status]}] ${c.name}: ${c.message}`);
    if (c.action && (c.status === 'fail' || c.status === 'warn')) lines.push(`         what to do: ${c.action}`);
    if (c.code && (c.status === 'fail' || c.status === 'warn')) lines.push(`         code: ${c.code}`);
  }
  const n = (s: CheckStatus) => r.checks.filter((c) => c.status === s).length;
  const summary = `${n('ok')} ok, ${n('warn')} warning(s), ${n('fail')} failed, ${n('skipped')} skipped`;
  lines.push(`result: ${r.result === 'fail' ? 'FAIL' : r.result === 'warn' ? 'OK with warnings' : 'OK'} (${summary})`);
  return lines.join('\n');
}

/** The E_... code an error carries, if any. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('E_') ? code : undefined;
}

/** An error's message without its leading "E_CODE: " (the code is reported apart). */
export function plainMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return withoutCode(msg);
}
