/**
 * The audit export (`trustroll audit export`): JSON Lines, every entry as
 * one object (oldest first, the stored fields: seq, at, actor, action,
 * rotationId, deviceId, step, code, detail, prev, hash), followed by the
 * signed checkpoints kept in the data folder, oldest first, one line each:
 *
 *   {"type":"checkpoint","note":"trustroll-audit/...\n412\n...\n\n— trustroll-audit/... ...\n"}
 *
 * Entries never carry a `type` field, so the two kinds cannot be confused.
 * With the manager's public key the export is verified offline
 * (`trustroll audit verify --export`): chain, order and checkpoints.
 */
import type { AuditRow } from './audit-log.ts';
import type { CheckpointSource } from './audit-anchor.ts';
import { ManagerError } from '../errors.ts';

/** The `type` of a checkpoint line. */
export const CHECKPOINT_LINE_TYPE = 'checkpoint';

/** Render an export: every entry, then every checkpoint note. */
export function* exportLines(rows: Iterable<AuditRow>, notes: readonly string[]): IterableIterator<string> {
  for (const r of rows) yield JSON.stringify(r);
  for (const note of notes) yield JSON.stringify({ type: CHECKPOINT_LINE_TYPE, note });
}

const FIELDS = ['seq', 'at', 'actor', 'action', 'prev', 'hash'] as const;

/** Read an export back; E_AUDIT_INPUT names the first line that is neither an entry nor a checkpoint. */
export function parseExport(text: string, file: string): { rows: AuditRow[]; checkpoints: CheckpointSource[] } {
  const rows: AuditRow[] = [];
  const checkpoints: CheckpointSource[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const bad = (why: string) => new ManagerError('E_AUDIT_INPUT', `${file} line ${i + 1}: ${why}`);
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw bad('not JSON');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('not a JSON object');
    if (v.type === CHECKPOINT_LINE_TYPE) {
      if (typeof v.note !== 'string') throw bad('a checkpoint line without its note');
      checkpoints.push({ source: `${file} line ${i + 1}`, note: v.note });
      continue;
    }
    if (v.type !== undefined) throw bad(`unknown line type ${JSON.stringify(v.type)}`);
    if (typeof v.seq !== 'number' || FIELDS.some((f) => f !== 'seq' && typeof v[f] !== 'string')) throw bad('not an audit entry (seq, at, actor, action, prev, hash)');
    rows.push({
      seq: v.seq, at: v.at as string, actor: v.actor as string, action: v.action as string,
      rotationId: (v.rotationId ?? null) as string | null, deviceId: (v.deviceId ?? null) as string | null, step: (v.step ?? null) as string | null,
      code: (v.code ?? null) as string | null, detail: (v.detail ?? null) as Record<string, unknown> | null, prev: v.prev as string, hash: v.hash as string,
    });
  }
  return { rows, checkpoints };
}
