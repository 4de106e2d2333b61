/**
 * A ByteDevice wrapper that loses power after a given number of bytes have
 * been programmed. Bytes before the cut are written; the write granule the
 * cut falls in is left with garbage (an interrupted program cycle leaves
 * undefined cell contents); nothing after it is written; every later call
 * fails as if the device were gone.
 */
import type { ByteDevice } from '../../../hal/eeprom/byte-device.ts';
import { pageChunks } from '../../../hal/eeprom/byte-device.ts';

/** Thrown by a PowerCutDevice at the cut. */
export class PowerCut extends Error {}

/** Counts programmed bytes and cuts power at byte `cutAt` (Infinity: never). */
export class PowerCutDevice implements ByteDevice {
  written = 0;
  private dead = false;

  constructor(
    private readonly inner: ByteDevice,
    private readonly cutAt: number,
  ) {}

  get size() { return this.inner.size; }
  get pageSize() { return this.inner.pageSize; }
  get writeGranularity() { return this.inner.writeGranularity; }

  read(offset: number, length: number): Promise<Buffer> {
    if (this.dead) throw new PowerCut('device is unpowered');
    return this.inner.read(offset, length);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.dead) throw new PowerCut('device is unpowered');
    const g = this.inner.writeGranularity;
    for (const [at, chunk] of pageChunks(offset, data, this.inner.pageSize)) {
      for (let i = 0; i < chunk.length; i += g) {
        const granule = chunk.subarray(i, i + g);
        if (this.written + g > this.cutAt) {
          const keep = this.cutAt - this.written;
          const torn = Buffer.from(granule);
          for (let j = keep; j < g; j++) torn[j] = (0xa5 + j * 37 + this.cutAt) & 0xff;
          await this.inner.write(at + i, torn);
          this.dead = true;
          throw new PowerCut(`power cut after ${this.cutAt} programmed bytes`);
        }
        await this.inner.write(at + i, granule);
        this.written += g;
      }
    }
  }

  async sync(): Promise<void> {
    if (this.dead) throw new PowerCut('device is unpowered');
    await this.inner.sync();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
