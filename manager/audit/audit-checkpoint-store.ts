/**
 * Where the audit checkpoints and their key live in the manager's data
 * folder, apart from the fleet database (manager.db):
 *
 *   ca/keys/audit-checkpoint.key    Ed25519 private key (PKCS#8 PEM, 0600, the CA's key vault)
 *   audit/audit-key.pub.pem         its public key (SPKI PEM): what an auditor verifies with
 *   audit/checkpoint.note           the newest signed checkpoint
 *   audit/checkpoints/<size>.note   the newest CHECKPOINT_HISTORY checkpoints, one file each
 *
 * Every file is written atomically (temp file, fsync, rename, fsync of the
 * folder). Someone who can rewrite manager.db but not the key cannot make a
 * checkpoint that matches the rewritten log.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { peekCheckpoint, type AuditCheckpoint } from './audit-note.ts';
import { ManagerError } from '../errors.ts';
import { KeyVault, writeFileAtomic } from '../pki/key-vault.ts';

/** Name of the audit key in the CA's key vault (ca/keys/<name>.key). */
export const AUDIT_KEY_NAME = 'audit-checkpoint';

/** How many past checkpoints the data folder keeps (the newest one covers everything before it). */
export const CHECKPOINT_HISTORY = 256;

/** Paths of the audit files of data folder `dataDir`. */
export function auditPaths(dataDir: string): { dir: string; publicKey: string; newest: string; history: string; privateKey: string; vault: string } {
  const dir = join(dataDir, 'audit');
  const vault = join(dataDir, 'ca', 'keys');
  return { dir, publicKey: join(dir, 'audit-key.pub.pem'), newest: join(dir, 'checkpoint.note'), history: join(dir, 'checkpoints'), vault, privateKey: join(vault, `${AUDIT_KEY_NAME}.key`) };
}

/** The audit checkpoint key of `dataDir`, made (and its public key written) on first use. */
export function loadOrCreateAuditKey(dataDir: string): KeyObject {
  const p = auditPaths(dataDir);
  const vault = new KeyVault(p.vault);
  let key: KeyObject;
  if (existsSync(p.privateKey)) {
    key = vault.get(AUDIT_KEY_NAME);
  } else {
    key = generateKeyPairSync('ed25519').privateKey;
    vault.put(AUDIT_KEY_NAME, key);
  }
  const pem = createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
  if (!existsSync(p.publicKey) || readFileSync(p.publicKey, 'utf8') !== pem) {
    mkdirSync(p.dir, { recursive: true, mode: 0o755 });
    writeFileAtomic(p.publicKey, pem, 0o644);
  }
  return key;
}

/**
 * The public key checkpoints of `dataDir` are checked with: the private
 * key's public half when this user can read it, else audit-key.pub.pem;
 * null when the folder has no audit key yet (no checkpoint was ever made).
 */
export function dataFolderPublicKey(dataDir: string): KeyObject | null {
  const p = auditPaths(dataDir);
  if (existsSync(p.privateKey)) {
    try {
      return createPublicKey(new KeyVault(p.vault).get(AUDIT_KEY_NAME));
    } catch {
      // Not readable by this user (an auditor's account): the public file says the same.
    }
  }
  return existsSync(p.publicKey) ? readPublicKey(p.publicKey) : null;
}

/** Load a public key file (SPKI PEM); E_AUDIT_INPUT when it is missing or not a key. */
export function readPublicKey(path: string): KeyObject {
  try {
    return createPublicKey(readFileSync(path));
  } catch (err) {
    throw new ManagerError('E_AUDIT_INPUT', `public key ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The checkpoint files of one data folder. */
export class CheckpointStore {
  private readonly p: ReturnType<typeof auditPaths>;

  constructor(dataDir: string) {
    this.p = auditPaths(dataDir);
  }

  /** Keep a newly signed checkpoint: in the history, and as the newest unless a larger one is already there. */
  save(note: string, c: AuditCheckpoint): void {
    mkdirSync(this.p.history, { recursive: true, mode: 0o755 });
    writeFileAtomic(join(this.p.history, `${String(c.size).padStart(12, '0')}.note`), note, 0o644);
    const current = this.newest();
    if (!current || (peekCheckpoint(current)?.size ?? -1) <= c.size) writeFileAtomic(this.p.newest, note, 0o644);
    this.prune();
  }

  /** The newest checkpoint's note, or null. */
  newest(): string | null {
    return existsSync(this.p.newest) ? readFileSync(this.p.newest, 'utf8') : null;
  }

  /** Every checkpoint kept (history and newest, each once), oldest first, with the file it came from. */
  all(): { source: string; note: string }[] {
    const out = new Map<string, string>();
    for (const f of this.historyFiles()) out.set(readFileSync(join(this.p.history, f), 'utf8'), join(this.p.history, f));
    const newest = this.newest();
    if (newest !== null && !out.has(newest)) out.set(newest, this.p.newest);
    return [...out].map(([note, source]) => ({ note, source }))
      .sort((a, b) => (peekCheckpoint(a.note)?.size ?? -1) - (peekCheckpoint(b.note)?.size ?? -1));
  }

  private historyFiles(): string[] {
    return existsSync(this.p.history) ? readdirSync(this.p.history).filter((f) => /^\d{12}\.note$/.test(f)).sort() : [];
  }

  private prune(): void {
    const files = this.historyFiles();
    for (const f of files.slice(0, Math.max(0, files.length - CHECKPOINT_HISTORY))) rmSync(join(this.p.history, f), { force: true });
  }
}
