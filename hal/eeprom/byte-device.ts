/**
 * The byte device under the EEPROM backend: a fixed-size array of bytes
 * programmed in units of `writeGranularity` bytes, never across a
 * `pageSize` boundary in one program operation (a real I2C/SPI EEPROM wraps
 * around inside the page instead). `FileByteDevice` is a file standing in
 * for the chip; a driver for a real part implements the same interface.
 */
import fs from 'node:fs/promises';
import { HalError, asHalError } from '../errors.ts';

/** Geometry of an EEPROM part, as set in config section `eeprom`. */
export interface EepromGeometry {
  /** Total bytes (e.g. 65536 for a 24C512). */
  readonly size: number;
  /** Page size in bytes (e.g. 128 for a 24C512). */
  readonly pageSize: number;
  /** Smallest unit programmed at once, in bytes; writes must be aligned to it. */
  readonly writeGranularity: number;
}

/** A byte-addressable non-volatile device. */
export interface ByteDevice extends EepromGeometry {
  read(offset: number, length: number): Promise<Buffer>;
  /** Programs `data` at `offset`; both must be multiples of writeGranularity. */
  write(offset: number, data: Buffer): Promise<void>;
  /** Returns once every completed write is durable. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** Throws E_HAL_CONFIG unless the geometry is consistent. */
export function checkGeometry(g: EepromGeometry): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(g.pageSize)) throw new HalError('E_HAL_CONFIG', `pageSize ${g.pageSize} must be a power of two`, { setting: 'eeprom.pageSize' });
  if (!pow2(g.writeGranularity) || g.writeGranularity > g.pageSize) {
    throw new HalError('E_HAL_CONFIG', `writeGranularity ${g.writeGranularity} must be a power of two <= pageSize`, { setting: 'eeprom.writeGranularity' });
  }
  if (!Number.isInteger(g.size) || g.size < 4 * g.pageSize || g.size % (2 * g.pageSize) !== 0) {
    throw new HalError('E_HAL_CONFIG', `size ${g.size} must be a multiple of 2 x pageSize and hold at least 4 pages`, { setting: 'eeprom.size' });
  }
}

/** A file of exactly `size` bytes standing in for the chip (created erased, 0xFF). */
export class FileByteDevice implements ByteDevice {
  private constructor(
    private readonly fd: fs.FileHandle,
    readonly size: number,
    readonly pageSize: number,
    readonly writeGranularity: number,
  ) {}

  /** Opens or creates the device file; E_HAL_CONFIG if its size disagrees with `eeprom.size`. */
  static async open(file: string, g: EepromGeometry): Promise<FileByteDevice> {
    checkGeometry(g);
    let fd: fs.FileHandle;
    try {
      fd = await fs.open(file, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new HalError('E_HAL_CONFIG', `cannot open EEPROM device ${file}: ${(err as Error).message}`, { setting: 'eeprom.device', cause: err });
      }
      let created: fs.FileHandle | null = null;
      try {
        created = await fs.open(file, 'wx+', 0o600);
        await created.write(Buffer.alloc(g.size, 0xff), 0, g.size, 0);
        await created.sync();
        fd = created;
      } catch (err2) {
        await created?.close().catch(() => undefined);
        throw new HalError('E_HAL_CONFIG', `cannot create EEPROM device ${file}: ${(err2 as Error).message}`, { setting: 'eeprom.device', cause: err2 });
      }
    }
    const { size } = await fd.stat();
    if (size !== g.size) {
      await fd.close();
      throw new HalError('E_HAL_CONFIG', `device ${file} holds ${size} bytes but eeprom.size is ${g.size}`, { setting: 'eeprom.size' });
    }
    return new FileByteDevice(fd, g.size, g.pageSize, g.writeGranularity);
  }

  private check(offset: number, length: number): void {
    if (!Number.isInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new HalError('E_HAL_IO', `access ${offset}+${length} outside device of ${this.size} bytes`);
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    const buf = Buffer.alloc(length);
    try {
      await this.fd.read(buf, 0, length, offset);
    } catch (err) {
      throw asHalError(err, 'EEPROM read');
    }
    return buf;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.check(offset, data.length);
    if (offset % this.writeGranularity !== 0 || data.length % this.writeGranularity !== 0) {
      throw new HalError('E_HAL_IO', `write ${offset}+${data.length} not aligned to ${this.writeGranularity}`);
    }
    try {
      for (const [at, chunk] of pageChunks(offset, data, this.pageSize)) await this.fd.write(chunk, 0, chunk.length, at);
    } catch (err) {
      throw asHalError(err, 'EEPROM write');
    }
  }

  async sync(): Promise<void> {
    try {
      await this.fd.datasync();
    } catch (err) {
      throw asHalError(err, 'EEPROM sync');
    }
  }

  async close(): Promise<void> {
    await this.fd.close();
  }
}

/** Splits a write into program operations that never cross a page boundary. */
export function* pageChunks(offset: number, data: Buffer, pageSize: number): Generator<[number, Buffer]> {
  let pos = 0;
  while (pos < data.length) {
    const at = offset + pos;
    const n = Math.min(data.length - pos, pageSize - (at % pageSize));
    yield [at, data.subarray(pos, pos + n)];
    pos += n;
  }
}
