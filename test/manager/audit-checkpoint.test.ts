import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { AuditCheckpointer } from '../../manager/audit/audit-checkpoint.ts';
import { auditPaths, CheckpointStore, loadOrCreateAuditKey } from '../../manager/audit/audit-checkpoint-store.ts';
import { auditHash, AuditLog, type AuditRow } from '../../manager/audit/audit-log.ts';
import { noteVerifierKey, openCheckpoint, peekCheckpoint, signCheckpoint, signNote } from '../../manager/audit/audit-note.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { ManualClock, type Timers } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import { SIX_STEP } from '../../protocol/steps.ts';

const CLI = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const quiet = createLogger({ level: 'error', sink: () => {} });

/** Timers that fire only when told: shows what the checkpointer arms and when. */
class FakeTimers implements Timers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  private next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    this.pending.set(this.next, { fn, ms });
    return this.next++;
  }
  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
  }
}

/** Sizes of the checkpoints kept in a data folder, oldest first. */
function sizes(dataDir: string): number[] {
  return new CheckpointStore(dataDir).all().map((c) => peekCheckpoint(c.note)!.size);
}

/** A forger with write access to manager.db: edit entry `seq` and recompute every later hash. */
function rechain(dataDir: string, seq: number): void {
  const db = new FleetDb(join(dataDir, 'manager.db'));
  try {
    const rows = [...new AuditLog(db).all()];
    let prev = rows[seq - 2]?.hash ?? '0'.repeat(64);
    const update = db.db.prepare('UPDATE audit SET actor = ?, prev = ?, hash = ? WHERE seq = ?');
    db.tx(() => {
      for (const r of rows.slice(seq - 1)) {
        const row: AuditRow = { ...r, actor: r.seq === seq ? 'operator:mallory' : r.actor, prev };
        row.hash = auditHash(prev, row);
        update.run(row.actor, row.prev, row.hash, row.seq);
        prev = row.hash;
      }
    });
  } finally {
    db.close();
  }
}

/** A forger with write access to manager.db: delete the last `n` entries. */
function truncate(dataDir: string, n: number): void {
  const db = new FleetDb(join(dataDir, 'manager.db'));
  try {
    db.db.prepare('DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - ?').run(n);
  } finally {
    db.close();
  }
}

/** A checkpoint of the data folder's current head, signed with another key. */
function forgedCheckpoint(dataDir: string): string {
  const db = new FleetDb(join(dataDir, 'manager.db'));
  try {
    const head = new AuditLog(db).head();
    return signCheckpoint({ size: head.size, head: head.hash, time: new Date().toISOString() }, generateKeyPairSync('ed25519').privateKey);
  } finally {
    db.close();
  }
}

describe('audit checkpoints: the signed-note format', () => {
  it('signs and names keys exactly as golang.org/x/mod/sumdb/note (its PeterNeumann reference note)', () => {
    // From the Go package's documentation and note_test.go: signer key, verifier key, text and signed note.
    const skey = Buffer.from('AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz', 'base64');
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), skey.subarray(1)]), format: 'der', type: 'pkcs8' });
    const text = 'If you think cryptography is the answer to your problem,\nthen you don\'t know what your problem is.\n';
    assert.equal(noteVerifierKey('PeterNeumann', key), 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW');
    assert.equal(signNote(text, 'PeterNeumann', key), `${text}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`);
  });

  it('a checkpoint opens with its key only; an altered one does not open', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const note = signCheckpoint({ size: 7, head: 'ab'.repeat(32), time: '2026-01-02T03:04:05.000Z' }, privateKey);
    assert.deepEqual({ ...openCheckpoint(note, publicKey), origin: '' }, { origin: '', size: 7, head: 'ab'.repeat(32), time: '2026-01-02T03:04:05.000Z' });
    assert.throws(() => openCheckpoint(note, generateKeyPairSync('ed25519').publicKey), /E_AUDIT_CHECKPOINT_KEY/);
    assert.throws(() => openCheckpoint(note.replace('\n7\n', '\n9\n'), publicKey), /E_AUDIT_CHECKPOINT_INVALID: .*does not verify/);
    assert.throws(() => openCheckpoint('hello\n', publicKey), /E_AUDIT_CHECKPOINT_INVALID/);
  });
});

describe('audit checkpoints: when the manager makes them', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-ckpt-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an appended entry arms one timer of intervalMs; it signs the head; nothing appended, no timer', () => {
    const db = new FleetDb(join(dir, 'manager.db'));
    const log = new AuditLog(db);
    const timers = new FakeTimers();
    const clock = new ManualClock(new Date('2026-03-01T00:00:00Z'));
    const cp = new AuditCheckpointer({ log, store: new CheckpointStore(dir), key: loadOrCreateAuditKey(dir), clock, timers, logger: quiet, intervalMs: 120_000 });
    assert.deepEqual(sizes(dir), [0], 'the empty log is signed when the checkpointer starts');
    assert.equal(timers.pending.size, 0, 'no timer while nothing is appended');
    log.append({ actor: 'operator:alice', action: 'operator.pause' }, clock.now());
    log.append({ actor: 'operator:alice', action: 'operator.resume' }, clock.now());
    assert.deepEqual([...timers.pending.values()].map((t) => t.ms), [120_000], 'one timer for both entries');
    assert.deepEqual(sizes(dir), [0], 'not signed before the timer fires');
    clock.advance(120_000);
    timers.fireAll();
    assert.deepEqual(sizes(dir), [0, 2]);
    assert.equal(openCheckpoint(new CheckpointStore(dir).newest()!, loadOrCreateAuditKey(dir)).time, '2026-03-01T00:02:00.000Z', 'signed at the injected clock\'s time');
    assert.equal(timers.pending.size, 0, 'no timer again until something is appended');
    log.append({ actor: 'operator:alice', action: 'operator.pause' }, clock.now());
    cp.close();
    assert.deepEqual(sizes(dir), [0, 2, 3], 'close signs what the timer had not covered yet');
    assert.equal(timers.pending.size, 0);
    db.close();
  });

  it('a rotation\'s start and end are each signed at once (in-process fleet)', async () => {
    const fleet = await InProcessFleet.create({ servers: 2, clients: 2 });
    try {
      const timers = new FakeTimers();
      const cp = new AuditCheckpointer({ log: fleet.audit, store: new CheckpointStore(fleet.dir), key: loadOrCreateAuditKey(fleet.dir), clock: fleet.clock, timers, logger: quiet, intervalMs: 3_600_000 });
      assert.equal((await fleet.rotate(SIX_STEP)).status, 'complete');
      await new Promise((r) => setImmediate(r));
      const rows = [...fleet.audit.all()];
      const started = rows.find((r) => r.action === 'rotation.started')!.seq;
      const firstAck = rows.find((r) => r.action === 'step.acked')!.seq;
      const complete = rows.find((r) => r.action === 'rotation.complete')!.seq;
      const made = sizes(fleet.dir);
      assert.ok(made.some((s) => s >= started && s < firstAck), `a checkpoint right after rotation.started (#${started}), before the first acknowledgement (#${firstAck}): ${made}`);
      assert.equal(made.at(-1), complete, `the last checkpoint covers rotation.complete (#${complete}), the last entry: ${made}`);
      assert.equal(complete, rows.length);
      assert.equal(timers.pending.size, 0, 'the end checkpoint covered everything: no timer left');
      cp.close();
      assert.equal(sizes(fleet.dir).length, made.length, 'nothing new to sign at close');
    } finally {
      await fleet.close();
    }
  });
});

describe('audit checkpoints: trustroll audit verify finds what the chain alone does not', function () {
  this.timeout(120_000);
  let fleet: InProcessFleet;
  let work: string;
  let n = 0;
  /** A fresh copy of the rotated fleet's data folder. */
  const copy = () => {
    const d = join(work, `data-${++n}`);
    cpSync(fleet.dir, d, { recursive: true });
    return d;
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'trustroll-ckpt-verify-'));
    fleet = await InProcessFleet.create({ servers: 2, clients: 2 });
    const cp = new AuditCheckpointer({ log: fleet.audit, store: new CheckpointStore(fleet.dir), key: loadOrCreateAuditKey(fleet.dir), clock: fleet.clock, timers: new FakeTimers(), logger: quiet });
    assert.equal((await fleet.rotate(SIX_STEP)).status, 'complete');
    await new Promise((r) => setImmediate(r));
    cp.close();
    fleet.db.db.pragma('wal_checkpoint(TRUNCATE)');
  });
  after(async () => {
    await fleet?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('the untouched log passes', () => {
    const r = cli('audit', 'verify', '--data', copy());
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /hash chain intact/);
    assert.match(r.stdout, /checkpoints: \d+ of \d+ signed by trustroll-audit\/[0-9a-f]{16} match the log; the newest covers entries #1\.\.#\d+/);
  });

  it('a deleted tail: E_AUDIT_TRUNCATED (the chain alone says intact); the manager then refuses to sign', () => {
    const d = copy();
    truncate(d, 3);
    const r = cli('audit', 'verify', '--data', d);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /hash chain intact/);
    assert.match(r.stdout, /E_AUDIT_TRUNCATED: the log ends at entry #(\d+), but the manager signed at .* that it had \d+ entries/);
    const sign = cli('audit', 'checkpoint', '--data', d);
    assert.equal(sign.status, 2, sign.stdout);
    assert.match(sign.stderr, /E_AUDIT_TRUNCATED/);
  });

  it('an edited entry with every later hash recomputed: E_AUDIT_REWRITTEN', () => {
    const d = copy();
    rechain(d, 5);
    const r = cli('audit', 'verify', '--data', d);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /hash chain intact/, 'the forgery re-chained cleanly');
    assert.match(r.stdout, /E_AUDIT_REWRITTEN: entry #\d+ has another hash than the head the manager signed/);
  });

  it('checkpoints replaced by ones signed with another key: E_AUDIT_CHECKPOINT_KEY, also when the key files were replaced too and the auditor pins the key', () => {
    const d = copy();
    const p = auditPaths(d);
    const original = readFileSync(p.publicKey, 'utf8');
    writeFileSync(join(work, 'pinned.pem'), original);
    rechain(d, 5);
    rmSync(p.history, { recursive: true });
    writeFileSync(p.newest, forgedCheckpoint(d));
    const r = cli('audit', 'verify', '--data', d);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /E_AUDIT_CHECKPOINT_KEY: checkpoint of \d+ entries .* is signed by trustroll-audit\/[0-9a-f]{16} .*not by the audit key/);
    // The forger also swaps the key files: only a key the auditor kept shows it.
    const forger = generateKeyPairSync('ed25519');
    writeFileSync(p.privateKey, forger.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    writeFileSync(p.publicKey, forger.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const db = new FleetDb(join(d, 'manager.db'));
    const head = new AuditLog(db).head();
    db.close();
    writeFileSync(p.newest, signCheckpoint({ size: head.size, head: head.hash, time: new Date().toISOString() }, forger.privateKey));
    assert.equal(cli('audit', 'verify', '--data', d).status, 0, 'with the data folder\'s own (swapped) key the forgery passes: pin the key');
    const pinned = cli('audit', 'verify', '--data', d, '--public-key', join(work, 'pinned.pem'));
    assert.equal(pinned.status, 1, pinned.stdout);
    assert.match(pinned.stdout, /E_AUDIT_CHECKPOINT_KEY/);
  });

  it('a checkpoint altered after signing: E_AUDIT_CHECKPOINT_INVALID', () => {
    const d = copy();
    const p = auditPaths(d);
    truncate(d, 2);
    rmSync(p.history, { recursive: true });
    const note = readFileSync(p.newest, 'utf8');
    const size = peekCheckpoint(note)!.size;
    writeFileSync(p.newest, note.replace(`\n${size}\n`, `\n${size - 2}\n`));
    const r = cli('audit', 'verify', '--data', d);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /E_AUDIT_CHECKPOINT_INVALID: .*does not verify/);
  });

  it('an export verifies offline with only the public key; the same tampering on the export is found', () => {
    const d = copy();
    const out = join(work, 'offline');
    const exp = cli('audit', 'export', '--data', d, '--out', join(work, 'audit.jsonl'));
    assert.equal(exp.status, 0, exp.stderr);
    const pub = cli('audit', 'public-key', '--data', d, '--out', join(work, 'audit-key.pub.pem'));
    assert.equal(pub.status, 0, pub.stderr);
    assert.equal(readFileSync(join(work, 'audit-key.pub.pem'), 'utf8'), readFileSync(auditPaths(d).publicKey, 'utf8'));
    rmSync(d, { recursive: true });
    // The auditor's machine: the export and the public key, nothing else.
    cpSync(join(work, 'audit.jsonl'), join(out, 'audit.jsonl'));
    cpSync(join(work, 'audit-key.pub.pem'), join(out, 'audit-key.pub.pem'));
    const lines = readFileSync(join(out, 'audit.jsonl'), 'utf8').trimEnd().split('\n');
    const entries = lines.filter((l) => !l.startsWith('{"type":"checkpoint"'));
    const checkpoints = lines.filter((l) => l.startsWith('{"type":"checkpoint"'));
    assert.ok(checkpoints.length >= 2 && lines.slice(entries.length).every((l) => checkpoints.includes(l)), 'checkpoints are the trailing lines');
    const verify = (name: string, text: string[]) => {
      writeFileSync(join(out, name), text.join('\n') + '\n');
      return cli('audit', 'verify', '--export', join(out, name), '--public-key', join(out, 'audit-key.pub.pem'), '--data', join(out, 'no-data-folder'));
    };
    const clean = verify('clean.jsonl', lines);
    assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, new RegExp(`newest covers entries #1\\.\\.#${entries.length}\\b`));
    const cut = verify('cut.jsonl', [...entries.slice(0, -3), ...checkpoints]);
    assert.equal(cut.status, 1);
    assert.match(cut.stdout, /E_AUDIT_TRUNCATED/);
    const rows = entries.map((l) => JSON.parse(l) as AuditRow);
    let prev = rows[3]!.hash;
    const forged = rows.map((r) => {
      if (r.seq < 5) return r;
      const row = { ...r, actor: r.seq === 5 ? 'operator:mallory' : r.actor, prev };
      row.hash = auditHash(prev, row);
      prev = row.hash;
      return row;
    });
    const rewritten = verify('rewritten.jsonl', [...forged.map((r) => JSON.stringify(r)), ...checkpoints]);
    assert.equal(rewritten.status, 1);
    assert.match(rewritten.stdout, /hash chain intact/);
    assert.match(rewritten.stdout, /E_AUDIT_REWRITTEN/);
    const other = generateKeyPairSync('ed25519').privateKey;
    const replaced = verify('replaced.jsonl', [...forged.map((r) => JSON.stringify(r)), JSON.stringify({ type: 'checkpoint', note: signCheckpoint({ size: forged.length, head: forged.at(-1)!.hash, time: new Date().toISOString() }, other) })]);
    assert.equal(replaced.status, 1);
    assert.match(replaced.stdout, /E_AUDIT_CHECKPOINT_KEY/);
    const none = verify('none.jsonl', entries);
    assert.equal(none.status, 1);
    assert.match(none.stdout, /E_AUDIT_NO_CHECKPOINT/);
    const noKey = cli('audit', 'verify', '--export', join(out, 'clean.jsonl'));
    assert.equal(noKey.status, 2);
    assert.match(noKey.stderr, /E_AUDIT_INPUT: .*--public-key/);
  });
});
