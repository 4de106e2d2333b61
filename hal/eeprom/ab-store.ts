/**
 * The A/B engine of the EEPROM backend. The device is split into two equal
 * slots; each holds a complete image of every record (see slot-image.ts).
 * An update writes the new image, with generation + 1, into the slot that
 * does NOT hold the current image, payload first and header last, syncing
 * after each. The current image is never touched, so a power cut at any
 * byte leaves it intact; on start the valid slot with the higher
 * generation wins.
 *
 * Roll-back detection: a slot that is damaged later (a flipped bit, a
 * zeroed page, a bad header) would make the *older* slot win without a
 * word, silently undoing acknowledged writes. So after each commit the new
 * generation is also written as a small commit counter into the last page
 * of BOTH slots (outside either image, so it never touches the current
 * image's bytes; two copies, so a cut or a damaged page leaves the other).
 * On open, an adopted image older than the highest valid counter means the
 * newest image was lost: `integrity()` reports it (never hidden), and the
 * layers above report it as an error state. Generations keep counting from
 * the adopted image, so the report clears once as many writes as were lost
 * have been made again (the manager re-sends the lost steps).
 */
import type { ByteDevice } from './byte-device.ts';
import { HalError } from '../errors.ts';
import { COUNTER_BYTES, SLOT_HEADER_BYTES, decodeCounter, decodeSlot, encodeCounter, encodeHeader, encodePayload, headerLength, isBlank } from './slot-image.ts';

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

function padTo(buf: Buffer, unit: number): Buffer {
  const len = roundUp(buf.length, unit);
  return len === buf.length ? buf : Buffer.concat([buf, Buffer.alloc(len - buf.length, 0xff)]);
}

/** What one slot or counter copy held when the store was opened. */
export type SlotCondition = 'valid' | 'blank' | 'damaged';

/**
 * What `open` found: the adopted image's generation, the highest commit
 * counter, and whether the adopted image is older than that (a roll-back:
 * acknowledged writes were lost with a damaged slot).
 */
export interface AbIntegrity {
  /** Generation of the image in use (0: none). */
  loadedGeneration: number;
  /** Highest generation ever committed, from the counters; null when no counter copy is valid (a store written before counters, or both copies damaged). */
  committedGeneration: number | null;
  /** True while the image in use is older than the committed generation. */
  rolledBack: boolean;
  /** Writes lost (committed - loaded) at open, 0 when none. */
  lostWrites: number;
  /** Writes still to be made again before the generation is back at the committed one. */
  missingWrites: number;
  /** Condition of slot A and B, and of the two counter copies, at open. */
  slots: [SlotCondition, SlotCondition];
  counters: [SlotCondition, SlotCondition];
}

function report0(): AbIntegrity {
  return { loadedGeneration: 0, committedGeneration: null, rolledBack: false, lostWrites: 0, missingWrites: 0, slots: ['blank', 'blank'], counters: ['blank', 'blank'] };
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
  /** Bytes at the end of each slot holding a commit counter copy (whole pages). */
  private readonly counterArea: number;
  /** Highest generation committed (counters), or null when unknown. */
  private committed: number | null = null;
  private opened: AbIntegrity | null = null;

  private constructor(private readonly device: ByteDevice) {
    this.slotSize = device.size / 2;
    this.headerArea = roundUp(SLOT_HEADER_BYTES, device.writeGranularity);
    this.counterArea = roundUp(roundUp(COUNTER_BYTES, device.writeGranularity), device.pageSize);
  }

  /** Reads both slots and adopts the newest valid image. */
  static async open(device: ByteDevice): Promise<AbStore> {
    const store = new AbStore(device);
    try {
      await store.load();
    } catch (err) {
      // The store owns the device: one it refuses (both slots damaged, a read error) is closed, not left open.
      await device.close().catch(() => undefined);
      throw err;
    }
    return store;
  }

  private async readSlot(i: number): Promise<{ blank: boolean; image: ReturnType<typeof decodeSlot> }> {
    const base = i * this.slotSize;
    const header = await this.device.read(base, SLOT_HEADER_BYTES);
    if (isBlank(header)) return { blank: true, image: null };
    const len = headerLength(header);
    if (len < 0 || this.headerArea + len > this.slotSize - this.counterArea) return { blank: false, image: null };
    const payload = await this.device.read(base + this.headerArea, len);
    return { blank: false, image: decodeSlot(header, payload) };
  }

  private counterBase(i: number): number {
    return (i + 1) * this.slotSize - this.counterArea;
  }

  private async readCounter(i: number): Promise<{ condition: SlotCondition; generation: number | null }> {
    const raw = await this.device.read(this.counterBase(i), COUNTER_BYTES);
    if (isBlank(raw)) return { condition: 'blank', generation: null };
    const generation = decodeCounter(raw);
    return generation === null ? { condition: 'damaged', generation } : { condition: 'valid', generation };
  }

  private async load(): Promise<void> {
    const slots = [await this.readSlot(0), await this.readSlot(1)];
    const counters = [await this.readCounter(0), await this.readCounter(1)];
    const valid = counters.map((c) => c.generation).filter((g): g is number => g !== null);
    this.committed = valid.length ? Math.max(...valid) : null;
    const cond = (s: { blank: boolean; image: unknown }): SlotCondition => (s.image ? 'valid' : s.blank ? 'blank' : 'damaged');
    const report = (loaded: number): AbIntegrity => {
      const lost = this.committed !== null && loaded < this.committed ? this.committed - loaded : 0;
      return {
        loadedGeneration: loaded, committedGeneration: this.committed, rolledBack: lost > 0, lostWrites: lost, missingWrites: lost,
        slots: [cond(slots[0]!), cond(slots[1]!)], counters: [counters[0]!.condition, counters[1]!.condition],
      };
    };
    let best = -1;
    slots.forEach((s, i) => {
      if (s.image && (best < 0 || s.image.generation > slots[best]!.image!.generation)) best = i;
    });
    if (best < 0) {
      if (!slots[0]!.blank && !slots[1]!.blank) {
        throw new HalError('E_HAL_RECORD_CORRUPT', 'neither EEPROM slot holds a valid image (both written, both fail CRC)', { setting: 'eeprom.device' });
      }
      this.opened = report(0);
      return;
    }
    const image = slots[best]!.image!;
    this.records = new Map(image.records);
    this.generation = image.generation;
    this.current = best;
    this.opened = report(image.generation);
  }

  /**
   * What the store found at open, updated as writes catch up: `rolledBack`
   * stays true until the generation reaches the committed one again.
   */
  integrity(): AbIntegrity {
    const missing = this.committed !== null && this.generation < this.committed ? this.committed - this.generation : 0;
    return { ...(this.opened ?? report0()), committedGeneration: this.committed, rolledBack: missing > 0, missingWrites: missing };
  }

  /** Bytes a record named `name` may take, given every other entry in the image. */
  room(name: string): number {
    const others = new Map(this.records);
    others.delete(name);
    const used = encodePayload(others).length + 1 + Buffer.byteLength(name) + 4;
    return this.capacity - used;
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
    return this.slotSize - this.headerArea - this.counterArea;
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
    // The commit counter, in both copies (never lowered): what a later open checks the adopted image against.
    const committed = Math.max(this.committed ?? 0, generation);
    const counter = padTo(encodeCounter(committed), g);
    for (const i of [0, 1]) {
      await this.device.write(this.counterBase(i), counter);
      await this.device.sync();
    }
    this.committed = committed;
  }

  /** Waits for pending updates and closes the device. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    await this.device.close();
  }
}
