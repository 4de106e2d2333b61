/**
 * Canonical JSON (sorted keys, no whitespace) so that a message or a stored
 * record has exactly one byte form to hash or sign.
 */
import { createHash } from 'node:crypto';

/**
 * Serialize with object keys sorted at every depth; undefined members are
 * dropped. The bytes equal `JSON.stringify` of a key-sorted deep copy; it is
 * written out in one pass because every command and acknowledgement is
 * serialized this way on both sides of the link (signing and verifying).
 */
export function canonicalJson(value: unknown): string {
  return write(value, false) ?? 'null';
}

/** One value; undefined when it has no JSON form (then dropped from objects, null in arrays). */
function write(value: unknown, inArray: boolean): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + (write(value[i], true) ?? 'null');
        return out + ']';
      }
      const keys = sortedKeys(value);
      let out = '{';
      let first = true;
      for (const key of keys) {
        const v = write((value as Record<string, unknown>)[key], false);
        if (v === undefined) continue;
        out += (first ? '' : ',') + JSON.stringify(key) + ':' + v;
        first = false;
      }
      return out + '}';
    }
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
    default:
      return inArray ? 'null' : undefined;
  }
}

/**
 * Keys in the order the definition yields: sorted by UTF-16 code units,
 * except that array-index keys ("0", "17") come first in numeric order, as
 * JavaScript enumerates them in any object (the sorted copy included).
 */
function sortedKeys(value: object): string[] {
  const keys = Object.keys(value).sort();
  if (!keys.some(isArrayIndex)) return keys;
  const indices = keys.filter(isArrayIndex).sort((a, b) => Number(a) - Number(b));
  return [...indices, ...keys.filter((k) => !isArrayIndex(k))];
}

function isArrayIndex(key: string): boolean {
  const c = key.charCodeAt(0);
  if (!(c >= 0x30 && c <= 0x39)) return false;
  return /^(0|[1-9][0-9]*)$/.test(key) && Number(key) < 2 ** 32 - 1;
}

/** Hex SHA-256 of the canonical form. */
export function canonicalHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}
