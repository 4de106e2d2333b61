/**
 * The on-disk frame of one file-backend object: magic "TRR1", u32 length,
 * u32 CRC-32 of the payload, then the payload. Rename makes replacement
 * atomic; the frame catches what rename cannot (truncation by a file system
 * without barriers, bit rot, a file copied in by hand).
 */
import { crc32 } from '../crc32.ts';
import { HalError } from '../errors.ts';

const MAGIC = Buffer.from('TRR1');
const HEADER = 12;

/** Wraps `payload` in the frame. */
export function frame(payload: Buffer): Buffer {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h.writeUInt32BE(payload.length, 4);
  h.writeUInt32BE(crc32(payload), 8);
  return Buffer.concat([h, payload]);
}

/** Checks and strips the frame; E_HAL_RECORD_CORRUPT naming `what` if it does not hold. */
export function unframe(data: Buffer, what: string): Buffer {
  if (data.length < HEADER || !data.subarray(0, 4).equals(MAGIC)) {
    throw new HalError('E_HAL_RECORD_CORRUPT', `${what}: bad header`);
  }
  const len = data.readUInt32BE(4);
  const payload = data.subarray(HEADER);
  if (payload.length !== len || crc32(payload) !== data.readUInt32BE(8)) {
    throw new HalError('E_HAL_RECORD_CORRUPT', `${what}: length or CRC mismatch`);
  }
  return payload;
}
