/**
 * The A/B engine of the EEPROM backend. The device is split into two equal
 * slots; each holds a complete image of every record (see slot-image.ts).
 * An update writes the new image, with generation + 1, into the slot that
 * does NOT hold the current image, payload first and header last, syncing
 * after each. The current image is never touched, so a power cut at any
 * byte leaves it intact; on start the valid slot with the higher
 * generation wins.
 */
import type { ByteDevice } from './byte-device.ts';
import { HalError } from '../errors.ts';
import { SLOT_HEADER_BYTES, decodeSlot, encodeHeader, encodePayload, headerLength, isBlank } from './slot-image.ts';

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

function padTo(buf: Buffer, unit: number): Buffer {
  const len = roundUp(buf.length, unit);
  return len === buf.length ? buf : Buffer.concat([buf, Buffer.alloc(len - buf.length, 0xff)]);
}

/** Records in A/B slots on a ByteDevice. One owner per device. */
export class AbStore {
  private records = new Map<string, Buffer>();
  private generation = 0;
  /** Index (0 = A, 1 = B) of the slot holding the current image, or -1 if none yet. */
  private current = -1;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly slotSize: number;
  private readonly headerArea: number;

  private constructor(private readonly device: ByteDevice) {
    this.slotSize = device.size / 2;
    this.headerArea = roundUp(SLOT_HEADER_BYTES, device.writeGranularity);
  }

  /** Reads both slots and adopts the newest valid image. */
  static async open(device: ByteDevice): Promise<AbStore> {
    const store = new AbStore(device);
    await store.load();
    return store;
  }

  private async readSlot(i: number): Promise<{ blank: boolean; image: ReturnType<typeof decodeSlot> }> {
    const base = i * this.slotSize;
    const header = await this.device.read(base, SLOT_HEADER_BYTES);
    if (isBlank(header)) return { blank: true, image: null };
    const len = headerLength(header);
    if (len < 0 || this.headerArea + len > this.slotSize) return { blank: false, image: null };
    const payload = await this.device.read(base + this.headerArea, len);
    return { blank: false, image: decodeSlot(header, payload) };
  }

  private async load(): Promise<void> {
    const slots = [await this.readSlot(0), await this.readSlot(1)];
    let best = -1;
    slots.forEach((s, i) => {
      if (s.image && (best < 0 || s.image.generation > slots[best]!.image!.generation)) best = i;
    });
    if (best < 0) {
      if (!slots[0]!.blank && !slots[1]!.blank) {
        throw new HalError('E_HAL_RECORD_CORRUPT', 'neither EEPROM slot holds a valid image (both written, both fail CRC)', { setting: 'eeprom.device' });
      }
      return;
    }
    const image = slots[best]!.image!;
    this.records = new Map(image.records);
    this.generation = image.generation;
    this.current = best;
  }

  /** Generation of the current image (0 before the first write). */
  get currentGeneration(): number {
    return this.generation;
  }

  /** Slot holding the current image: 'A', 'B', or null before the first write. */
  get currentSlot(): 'A' | 'B' | null {
    return this.current < 0 ? null : this.current === 0 ? 'A' : 'B';
  }

  /** Bytes one slot can hold for the encoded record set. */
  get capacity(): number {
    return this.slotSize - this.headerArea;
  }

  /** The stored value, or null. */
  get(name: string): Buffer | null {
    if (this.closed) throw new HalError('E_HAL_CLOSED', 'EEPROM store');
    const v = this.records.get(name);
    return v === undefined ? null : Buffer.from(v);
  }

  /** Names currently stored that start with `prefix`. */
  names(prefix: string): string[] {
    return [...this.records.keys()].filter((n) => n.startsWith(prefix)).sort();
  }

  /** Durably sets (or with null, deletes) one record. Serialized with other updates. */
  set(name: string, value: Buffer | null): Promise<void> {
    const run = this.queue.then(() => this.update(name, value));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async update(name: string, value: Buffer | null): Promise<void> {
    if (this.closed) throw new HalError('E_HAL_CLOSED', 'EEPROM store');
    if (Buffer.byteLength(name) > 255) throw new HalError('E_HAL_NAME', 'record name longer than 255 bytes');
    const next = new Map(this.records);
    if (value === null) {
      if (!next.delete(name)) return;
    } else next.set(name, Buffer.from(value));
    const payload = encodePayload(next);
    if (payload.length > this.capacity) {
      throw new HalError('E_HAL_STORAGE_FULL', `records need ${payload.length} bytes, an EEPROM slot holds ${this.capacity}`, { setting: 'eeprom.size' });
    }
    const generation = this.generation + 1;
    const target = this.current === 0 ? 1 : 0;
    const base = target * this.slotSize;
    const g = this.device.writeGranularity;
    await this.device.write(base + this.headerArea, padTo(payload, g));
    await this.device.sync();
    await this.device.write(base, padTo(encodeHeader(generation, payload), g));
    await this.device.sync();
    this.records = next;
    this.generation = generation;
    this.current = target;
  }

  /** Waits for pending updates and closes the device. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    await this.device.close();
  }
}
