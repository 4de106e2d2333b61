/**
 * `trustroll audit ...`: the manager's audit trail from the command line.
 * `verify` re-checks the hash chain, every rotation's order and the log
 * against the signed checkpoints (manager/audit/audit-anchor.ts), on the data
 * folder or offline on an export with only the manager's public key;
 * `export` writes the entries and the checkpoints (manager/audit/audit-export.ts);
 * `public-key` prints what an auditor verifies with; `checkpoint` signs the
 * current head now. docs/audit.md walks an auditor through them.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { checkCheckpoints, describeAnchorReport, type CheckpointSource } from '../../manager/audit/audit-anchor.ts';
import { describeAuditReport, verifyAudit } from '../../manager/audit/audit-check.ts';
import { AuditCheckpointer } from '../../manager/audit/audit-checkpoint.ts';
import { auditPaths, CheckpointStore, dataFolderPublicKey, loadOrCreateAuditKey, readPublicKey } from '../../manager/audit/audit-checkpoint-store.ts';
import { exportLines, parseExport } from '../../manager/audit/audit-export.ts';
import { AuditLog, type AuditRow } from '../../manager/audit/audit-log.ts';
import { checkpointVerifierKey } from '../../manager/audit/audit-note.ts';
import { ManagerError } from '../../manager/errors.ts';
import { writeFileAtomic } from '../../manager/pki/key-vault.ts';
import { systemClock, systemTimers } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import { withFleetDb } from './options.ts';

/** A file given on the command line, as text; E_AUDIT_INPUT when it cannot be read. */
function readInput(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ManagerError('E_AUDIT_INPUT', `${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

interface VerifyOptions {
  data: string;
  export?: string;
  publicKey?: string;
  checkpoint: string[];
  json: boolean;
}

/** `audit verify`: chain, order and checkpoints; exit 1 on any finding. */
function verify(o: VerifyOptions): void {
  let rows: AuditRow[];
  let notes: CheckpointSource[];
  let key: KeyObject | null;
  let required: boolean;
  if (o.export) {
    if (!o.publicKey) throw new ManagerError('E_AUDIT_INPUT', 'an export is verified with the manager\'s public key: add --public-key audit-key.pub.pem ("trustroll audit public-key" prints it on the manager)');
    ({ rows, checkpoints: notes } = parseExport(readInput(o.export, 'export'), o.export));
    key = readPublicKey(o.publicKey);
    required = true;
  } else {
    rows = withFleetDb(o.data, (db) => [...new AuditLog(db).all()]);
    notes = new CheckpointStore(o.data).all();
    key = o.publicKey ? readPublicKey(o.publicKey) : dataFolderPublicKey(o.data);
    required = key !== null;
  }
  for (const f of o.checkpoint) notes.push({ source: f, note: readInput(f, 'checkpoint') });
  const report = verifyAudit(rows);
  const anchor = checkCheckpoints(rows, notes, key, required);
  process.stdout.write((o.json ? JSON.stringify({ ...report, checkpoints: anchor }, null, 2) : `${describeAuditReport(report)}\n${describeAnchorReport(anchor)}`) + '\n');
  process.exitCode = report.chain || report.violations.length > 0 || anchor.findings.length > 0 ? 1 : 0;
}

/** Add the `audit` command group to the manager's CLI. */
export function addAuditCommands(program: Command, dataOption: readonly [string, string, string]): void {
  const audit = program.command('audit').description('the manager\'s hash-chained audit trail and its signed checkpoints (docs/audit.md)');

  audit.command('verify')
    .description('check the hash chain, re-check every rotation\'s ordering rules, and check the log against the signed checkpoints (a deleted tail or a recomputed chain shows there); exit 1 on any break, violation or finding')
    .option(...dataOption)
    .option('--export <file>', 'verify this export (from "trustroll audit export") instead of the data folder, offline')
    .option('--public-key <file>', 'the manager\'s audit public key (from "trustroll audit public-key"); required with --export; default: the data folder\'s')
    .option('--checkpoint <file>', 'also check against this checkpoint (e.g. the broker\'s retained copy); repeatable', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--json', 'print JSON', false)
    .action((o: VerifyOptions) => verify(o));

  audit.command('export')
    .description('write every audit entry as one JSON object per line (oldest first), then the signed checkpoints, one {"type":"checkpoint","note":...} line each')
    .option(...dataOption)
    .option('--out <file>', 'write to this file (atomically) instead of stdout')
    .action((o: { data: string; out?: string }) => {
      withFleetDb(o.data, (db) => {
        const notes = new CheckpointStore(o.data).all().map((c) => c.note);
        const lines = [...exportLines(new AuditLog(db).all(), notes)];
        const text = lines.join('\n') + (lines.length ? '\n' : '');
        if (o.out) writeFileAtomic(o.out, text, 0o640);
        else process.stdout.write(text);
      });
    });

  audit.command('public-key')
    .description(`print the public key the audit checkpoints are verified with (PEM; it is also the file audit/audit-key.pub.pem of the data folder); made on first use`)
    .option(...dataOption)
    .option('--vkey', 'print it as a signed-note verifier key instead (Go: golang.org/x/mod/sumdb/note)', false)
    .option('--out <file>', 'write to this file instead of stdout')
    .action((o: { data: string; vkey: boolean; out?: string }) => {
      const p = auditPaths(o.data);
      if (!existsSync(join(o.data, 'ca', 'ca.json'))) throw new ManagerError('E_NO_ROOT', `no CA in ${o.data}; check --data`);
      const key = existsSync(p.publicKey) ? readPublicKey(p.publicKey) : createPublicKey(loadOrCreateAuditKey(o.data));
      const text = o.vkey ? `${checkpointVerifierKey(key)}\n` : key.export({ type: 'spki', format: 'pem' }) as string;
      if (o.out) writeFileAtomic(o.out, text, 0o644);
      else process.stdout.write(text);
    });

  audit.command('checkpoint')
    .description('sign a checkpoint of the audit log\'s head now (the manager makes them by itself; this one is for a log the manager is not running on) and print it; refused when the log does not extend the last checkpoint')
    .option(...dataOption)
    .action((o: { data: string }) => {
      withFleetDb(o.data, (db) => {
        const cp = new AuditCheckpointer({
          log: new AuditLog(db), store: new CheckpointStore(o.data), key: loadOrCreateAuditKey(o.data),
          clock: systemClock, timers: systemTimers, logger: createLogger({ level: 'error' }),
        });
        cp.close();
        if (cp.refusal) throw new ManagerError(cp.refusal.code, `${cp.refusal.message}; no checkpoint signed ("trustroll audit verify" shows what changed)`);
        process.stdout.write(new CheckpointStore(o.data).newest() ?? '');
      });
    });
}
