/**
 * Damage an EEPROM image file the way real parts fail, for the fault
 * harness and the HAL tests: one flipped bit in a slot's payload, a zeroed
 * page, or a bad header (magic overwritten), in the slot holding the newer
 * or the older image. Reads the slot headers itself (same layout as
 * hal/eeprom/slot-image.ts), so it works on a file no process has open.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { EepromGeometry } from '../../../hal/eeprom/byte-device.ts';

/** How a slot is damaged. */
export type DamageKind = 'bit-flip' | 'zero-page' | 'bad-header';
/** Every damage kind. */
export const DAMAGE_KINDS: readonly DamageKind[] = ['bit-flip', 'zero-page', 'bad-header'];

const MAGIC = 0x54524531;

/** Generation of each slot's header (null: not a slot header), read from the raw image. */
export function slotGenerations(image: Buffer): [number | null, number | null] {
  const half = image.length / 2;
  const gen = (base: number) => (image.readUInt32BE(base) === MAGIC ? image.readUInt32BE(base + 4) : null);
  return [gen(0), gen(half)];
}

/** Index (0 = A, 1 = B) of the slot with the newer or older image; throws if there are not two images. */
export function slotIndex(image: Buffer, which: 'newer' | 'older'): number {
  const [a, b] = slotGenerations(image);
  if (a === null || b === null) throw new Error(`eeprom image has ${[a, b].filter((g) => g !== null).length} slot header(s); need two to pick the ${which}`);
  return (a > b) === (which === 'newer') ? 0 : 1;
}

/** Damage the newer or older slot of the image in `file`; returns what was done (for the harness's report). */
export function damageSlot(file: string, g: EepromGeometry, which: 'newer' | 'older', kind: DamageKind, seed = 1): string {
  const image = readFileSync(file);
  if (image.length !== g.size) throw new Error(`${file} holds ${image.length} bytes, geometry says ${g.size}`);
  const slot = slotIndex(image, which);
  const base = slot * (g.size / 2);
  const len = image.readUInt32BE(base + 8);
  const payloadAt = base + Math.ceil(16 / g.writeGranularity) * g.writeGranularity;
  let what: string;
  if (kind === 'bit-flip') {
    const at = payloadAt + (seed * 7919) % Math.max(1, len);
    image[at]! ^= 1 << (seed % 8);
    what = `bit ${seed % 8} of byte ${at}`;
  } else if (kind === 'zero-page') {
    const page = Math.floor((payloadAt + (seed * 104729) % Math.max(1, len)) / g.pageSize) * g.pageSize;
    image.fill(0, page, page + g.pageSize);
    what = `page at ${page} zeroed`;
  } else {
    image.writeUInt32BE(0xdeadbeef, base);
    what = `header magic at ${base} overwritten`;
  }
  // In place, never truncated: a store read at the same time (the fault harness samples them) sees 64 KiB, old bytes or damaged ones.
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, image, 0, image.length, 0);
  } finally {
    closeSync(fd);
  }
  return `${which} slot ${slot === 0 ? 'A' : 'B'}: ${what}`;
}
