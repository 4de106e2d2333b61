/**
 * Encoding of one EEPROM slot. A slot holds the whole record set:
 *
 *   header  : magic "TRE1" | generation u32 | length u32 | crc32 u32   (16 bytes, BE)
 *   payload : count u16 | { nameLen u8 | name | valueLen u32 | value } * count
 *
 * The CRC covers generation, length and payload, so a slot written only in
 * part never validates. The payload is written before the header, so a cut
 * during the payload leaves a stale header whose CRC no longer matches.
 *
 * Commit counter (last page of each slot, outside both images):
 *
 *   magic "TRC1" | generation u32 | crc32 u32   (12 bytes, BE)
 */
import { crc32 } from '../crc32.ts';
import { HalError } from '../errors.ts';

/** Bytes of the slot header. */
export const SLOT_HEADER_BYTES = 16;
const MAGIC = 0x54524531; // "TRE1"
const COUNTER_MAGIC = 0x54524331; // "TRC1"

/** Bytes of a commit counter copy. */
export const COUNTER_BYTES = 12;

/** A commit counter copy for `generation`. */
export function encodeCounter(generation: number): Buffer {
  const c = Buffer.alloc(COUNTER_BYTES);
  c.writeUInt32BE(COUNTER_MAGIC, 0);
  c.writeUInt32BE(generation, 4);
  c.writeUInt32BE(crc32(c.subarray(0, 8)), 8);
  return c;
}

/** The generation a counter copy holds, or null if it is not a valid counter. */
export function decodeCounter(raw: Buffer): number | null {
  if (raw.length < COUNTER_BYTES || raw.readUInt32BE(0) !== COUNTER_MAGIC) return null;
  return crc32(raw.subarray(0, 8)) === raw.readUInt32BE(8) ? raw.readUInt32BE(4) : null;
}

/** A decoded slot: its generation and records. */
export interface SlotImage {
  readonly generation: number;
  readonly records: ReadonlyMap<string, Buffer>;
}

/** Serializes the record map into a payload (sorted by name, deterministic). */
export function encodePayload(records: ReadonlyMap<string, Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeUInt16BE(records.size, 0);
  for (const name of [...records.keys()].sort()) {
    const value = records.get(name)!;
    const n = Buffer.from(name, 'utf8');
    const h = Buffer.alloc(1 + n.length + 4);
    h.writeUInt8(n.length, 0);
    n.copy(h, 1);
    h.writeUInt32BE(value.length, 1 + n.length);
    parts.push(h, value);
  }
  return Buffer.concat(parts);
}

/** Builds the header for `payload` at `generation`. */
export function encodeHeader(generation: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(SLOT_HEADER_BYTES);
  h.writeUInt32BE(MAGIC, 0);
  h.writeUInt32BE(generation, 4);
  h.writeUInt32BE(payload.length, 8);
  h.writeUInt32BE(crc32(payload, crc32(h.subarray(4, 12))), 12);
  return h;
}

/** Payload length a header announces, or -1 if the header is not ours. */
export function headerLength(header: Buffer): number {
  return header.readUInt32BE(0) === MAGIC ? header.readUInt32BE(8) : -1;
}

/** True if the header bytes are all erased (0xFF): a slot never written. */
export function isBlank(header: Buffer): boolean {
  return header.every((b) => b === 0xff);
}

/** Validates a slot and decodes it, or returns null if it is torn or foreign. */
export function decodeSlot(header: Buffer, payload: Buffer): SlotImage | null {
  if (header.readUInt32BE(0) !== MAGIC || header.readUInt32BE(8) !== payload.length) return null;
  if (crc32(payload, crc32(header.subarray(4, 12))) !== header.readUInt32BE(12)) return null;
  const records = new Map<string, Buffer>();
  let pos = 2;
  const count = payload.readUInt16BE(0);
  try {
    for (let i = 0; i < count; i++) {
      const nl = payload.readUInt8(pos);
      const name = payload.subarray(pos + 1, pos + 1 + nl).toString('utf8');
      const vl = payload.readUInt32BE(pos + 1 + nl);
      const start = pos + 5 + nl;
      if (start + vl > payload.length) return null;
      records.set(name, Buffer.from(payload.subarray(start, start + vl)));
      pos = start + vl;
    }
  } catch (err) {
    if (err instanceof RangeError) return null;
    throw new HalError('E_HAL_RECORD_CORRUPT', 'slot payload', { cause: err });
  }
  return pos === payload.length ? { generation: header.readUInt32BE(4), records } : null;
}
