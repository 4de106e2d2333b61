/**
 * The audit log checked against its signed checkpoints (audit-note.ts):
 * what the hash chain alone cannot show. A chain is intact after its last
 * entries are deleted, and after an entry is edited and every later hash
 * recomputed; a checkpoint the manager signed says how long the log was and
 * what its head hash was, so either shows here:
 *
 * - E_AUDIT_TRUNCATED: the log is shorter than a checkpoint's size;
 * - E_AUDIT_REWRITTEN: the entry at a checkpoint's size has another hash;
 * - E_AUDIT_CHECKPOINT_KEY / E_AUDIT_CHECKPOINT_INVALID: a checkpoint not
 *   signed by the audit key verified with (replaced, forged or altered);
 * - E_AUDIT_NO_CHECKPOINT: checkpoints are required and there is none.
 *
 * Works the same on the data folder's log and on an exported one, with
 * only the manager's public key.
 */
import type { KeyObject } from 'node:crypto';
import type { AuditRow } from './audit-log.ts';
import { checkpointKeyName, openCheckpoint, type AuditCheckpoint } from './audit-note.ts';
import { ManagerError, type ManagerErrorCode } from '../errors.ts';

/** One thing a checkpoint showed wrong. */
export interface CheckpointFinding {
  code: ManagerErrorCode;
  /** Where the checkpoint came from (a file, "export line 413", the broker). */
  source: string;
  message: string;
}

/** Result of `checkCheckpoints`. */
export interface AnchorReport {
  /** The audit key's name (the checkpoints' origin), or null when there is no key to check with. */
  key: string | null;
  /** Checkpoints read, and how many of them verified and matched the log. */
  checkpoints: number;
  matched: number;
  /** The newest checkpoint that verified and matched. */
  newest: AuditCheckpoint | null;
  /** Entries after the newest matching checkpoint: not covered by a signature yet. */
  uncovered: number;
  findings: CheckpointFinding[];
}

/** A checkpoint note and where it was found. */
export interface CheckpointSource {
  source: string;
  note: string;
}

/**
 * Check `rows` (the whole log, oldest first) against every checkpoint in
 * `notes`, verified with `publicKey`. `required`: a log without a usable
 * checkpoint is a finding (an export, or a data folder that has an audit key).
 */
export function checkCheckpoints(rows: readonly AuditRow[], notes: readonly CheckpointSource[], publicKey: KeyObject | null, required: boolean): AnchorReport {
  const report: AnchorReport = { key: publicKey ? checkpointKeyName(publicKey) : null, checkpoints: 0, matched: 0, newest: null, uncovered: rows.length, findings: [] };
  const hashes = new Map(rows.map((r) => [r.seq, r.hash]));
  const size = rows.length === 0 ? 0 : rows[rows.length - 1]!.seq;
  const seen = new Set<string>();
  for (const { source, note } of notes) {
    if (seen.has(note)) continue;
    seen.add(note);
    report.checkpoints++;
    if (!publicKey) continue;
    let c: AuditCheckpoint;
    try {
      c = openCheckpoint(note, publicKey);
    } catch (err) {
      if (!(err instanceof ManagerError)) throw err;
      report.findings.push({ code: err.code, source, message: err.message.slice(err.code.length + 2) });
      continue;
    }
    const signed = `signed at ${c.time}`;
    if (c.size > size) {
      const gone = c.size === size + 1 ? `entry #${c.size} was` : `entries #${size + 1}..#${c.size} were`;
      report.findings.push({ code: 'E_AUDIT_TRUNCATED', source, message: `the log ends at entry #${size}, but the manager ${signed} that it had ${c.size} entries: ${gone} removed` });
      continue;
    }
    const hash = c.size === 0 ? c.head : hashes.get(c.size);
    if (hash !== c.head) {
      report.findings.push({ code: 'E_AUDIT_REWRITTEN', source, message: `entry #${c.size} ${hash ? 'has another hash than' : 'is missing, unlike'} the head the manager ${signed}: the log up to #${c.size} was edited and its hashes recomputed` });
      continue;
    }
    report.matched++;
    if (!report.newest || c.size >= report.newest.size) report.newest = c;
  }
  if (report.newest) report.uncovered = rows.filter((r) => r.seq > report.newest!.size).length;
  if (publicKey && required && report.matched === 0 && report.findings.length === 0) {
    report.findings.push({ code: 'E_AUDIT_NO_CHECKPOINT', source: notes.length ? 'checkpoints' : 'none found', message: 'no signed checkpoint to check the log against: a truncated or re-chained log cannot be told from the real one' });
  }
  return report;
}

/** Human rendering of an anchor report (one line when all is well). */
export function describeAnchorReport(r: AnchorReport): string {
  if (!r.key) return 'checkpoints: NOT CHECKED: no audit key (no checkpoint was ever made; "trustroll serve", "trustroll rotate" or "trustroll audit checkpoint" make them)';
  const lines: string[] = [];
  if (r.newest) {
    const tail = r.uncovered ? `; ${r.uncovered} later ${r.uncovered === 1 ? 'entry' : 'entries'} not signed yet` : '';
    const covers = r.newest.size === 0 ? 'is of the empty log' : `covers entries #1..#${r.newest.size}`;
    lines.push(`checkpoints: ${r.matched} of ${r.checkpoints} signed by ${r.key} match the log; the newest ${covers} (signed ${r.newest.time})${tail}`);
  } else {
    lines.push(`checkpoints: none of ${r.checkpoints} signed by ${r.key} matches the log`);
  }
  for (const f of r.findings) lines.push(`  ${f.code}: ${f.message} (${f.source})`);
  return lines.join('\n');
}
