/**
 * RecordStore on a POSIX file system, one file per record
 * (`<dir>/<name>.rec`, mode 0600, framed with a CRC). For development and
 * for devices with a journaling file system on reliable storage.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { RecordStore } from '../record-store.ts';
import { HalError, asHalError, permissionError } from '../errors.ts';
import { assertName } from '../names.ts';
import { atomicWriteFile, durableRemove, ensurePrivateDir } from './atomic-write.ts';
import { frame, unframe } from './framing.ts';

/** Records as files in one private directory. Open with `open()`. */
export class FileRecordStore implements RecordStore {
  readonly backend = 'file';
  private closed = false;

  private constructor(private readonly dir: string) {}

  /**
   * Opens (creating if needed, mode 0700) the record directory; E_HAL_PERMISSION
   * when this process's user may not write it. `readOnly` (the technician's
   * tools): only reads, so the folder must exist and nothing is created or checked for writing.
   */
  static async open(dir: string, o: { readOnly?: boolean } = {}): Promise<FileRecordStore> {
    if (o.readOnly) return new FileRecordStore(dir);
    try {
      await ensurePrivateDir(dir);
      await fs.access(dir, fs.constants.W_OK);
    } catch (err) {
      throw permissionError('record directory', dir, err);
    }
    return new FileRecordStore(dir);
  }

  private file(name: string): string {
    if (this.closed) throw new HalError('E_HAL_CLOSED', 'file record store');
    assertName(name, 'record name');
    return path.join(this.dir, `${name}.rec`);
  }

  async read(name: string): Promise<Buffer | null> {
    const f = this.file(name);
    let data: Buffer;
    try {
      data = await fs.readFile(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw asHalError(err, `reading record ${name}`);
    }
    return Buffer.from(unframe(data, `record ${name}`));
  }

  async write(name: string, value: Buffer): Promise<void> {
    const f = this.file(name);
    try {
      await atomicWriteFile(f, frame(value));
    } catch (err) {
      throw asHalError(err, `writing record ${name}`);
    }
  }

  async remove(name: string): Promise<void> {
    const f = this.file(name);
    try {
      await durableRemove(f);
    } catch (err) {
      throw asHalError(err, `removing record ${name}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
