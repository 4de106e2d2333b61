/**
 * Durable file replacement for the file backend: write a temp file in the
 * same directory (mode 0600), fsync it, rename it over the target, then
 * fsync the directory so the rename itself survives power loss.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';

async function fsyncDir(dir: string): Promise<void> {
  const fd = await fs.open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

async function writeTemp(target: string, data: Buffer): Promise<string> {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const fd = await fs.open(tmp, 'wx', 0o600);
  try {
    await fd.writeFile(data);
    await fd.sync();
  } catch (err) {
    await fd.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fd.close();
  return tmp;
}

/** Atomically and durably replaces `target` with `data` (mode 0600). */
export async function atomicWriteFile(target: string, data: Buffer): Promise<void> {
  const tmp = await writeTemp(target, data);
  try {
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(target));
}

/**
 * Atomically creates `target` with `data` only if it does not exist yet
 * (hard link of a synced temp file: fails with EEXIST, never clobbers).
 * Returns false if the target already existed.
 */
export async function atomicCreateFile(target: string, data: Buffer): Promise<boolean> {
  const tmp = await writeTemp(target, data);
  try {
    await fs.link(tmp, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
  await fsyncDir(path.dirname(target));
  return true;
}

/** Durably removes `target` (no error if it is already gone). */
export async function durableRemove(target: string): Promise<void> {
  await fs.rm(target, { force: true });
  await fsyncDir(path.dirname(target));
}

/** Creates `dir` (and parents) with mode 0700 if missing. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
}
