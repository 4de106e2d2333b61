/**
 * Durable file replacement for the link material: write a temp file in the
 * same folder, fsync it, rename it over the target, fsync the folder. A
 * power cut at any byte leaves either the old or the new file, never a mix.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ProtocolError } from '../../protocol/errors.ts';

/** Atomically and durably replace `path` with `data` (mode applies to the new file). */
export function writeFileDurable(path: string, data: string, mode = 0o644): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (err) {
    throw new ProtocolError('E_STORE_IO', `cannot write ${path} durably: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Create `dir` (0700) if it is missing, and make its entry in the folder above survive power loss before anything is written into it. */
export function makeDirDurable(dir: string): void {
  if (existsSync(dir)) return;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pfd = openSync(dirname(dir), 'r');
    try {
      fsyncSync(pfd);
    } finally {
      closeSync(pfd);
    }
  } catch (err) {
    throw new ProtocolError('E_STORE_IO', `cannot create ${dir} durably: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
