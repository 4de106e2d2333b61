/**
 * A small DER encoder (ITU-T X.690) for the few structures trustroll builds
 * itself: TBSCertificates on the manager's fast issuance path and PKCS#10
 * requests on the device. Every function returns a complete TLV and rejects
 * values DER cannot represent, so a caller cannot produce a BER-only or
 * out-of-profile encoding by accident. Pure: depends on node:buffer only.
 */

/** Universal tag octets used below (class universal; SEQUENCE and SET constructed). */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

function header(tag: number, length: number): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f) {
    throw new RangeError(`DER: tag ${tag} is not a single-octet low tag`);
  }
  if (length < 0x80) return Buffer.from([tag, length]);
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n & 0xff);
  return Buffer.from([tag, 0x80 | octets.length, ...octets]);
}

/** One TLV: `tag` is the whole identifier octet, the contents are the concatenation of `content`. */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  let length = 0;
  for (const c of content) length += c.length;
  const head = header(tag, length);
  const out = Buffer.allocUnsafe(head.length + length);
  head.copy(out, 0);
  let at = head.length;
  for (const c of content) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** SEQUENCE of already encoded elements, in the given order. */
export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(Tag.SEQUENCE, ...items);
}

/** SET OF already encoded elements, sorted by encoding as X.690 §11.6 requires. */
export function set(...items: Uint8Array[]): Buffer {
  const sorted = items.length > 1 ? [...items].sort((a, b) => Buffer.compare(a, b)) : items;
  return tlv(Tag.SET, ...sorted);
}

/**
 * INTEGER in minimal two's complement. A bigint or safe integer is taken as
 * signed; a Buffer is taken as an unsigned big-endian magnitude (serial
 * numbers, RSA moduli), so leading zero octets are dropped and one is added
 * back when the high bit is set.
 */
export function integer(value: bigint | number | Uint8Array): Buffer {
  if (value instanceof Uint8Array) {
    let i = 0;
    while (i < value.length - 1 && value[i] === 0) i++;
    const magnitude = value.length === 0 ? Buffer.from([0]) : value.subarray(i);
    return magnitude[0]! & 0x80 ? tlv(Tag.INTEGER, Buffer.from([0]), magnitude) : tlv(Tag.INTEGER, magnitude);
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new RangeError(`DER: ${value} is not a safe integer; pass a bigint`);
  }
  let v = BigInt(value);
  if (v >= 0n) {
    let hex = v.toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    const bytes = Buffer.from(hex, 'hex');
    return bytes[0]! & 0x80 ? tlv(Tag.INTEGER, Buffer.from([0]), bytes) : tlv(Tag.INTEGER, bytes);
  }
  let octets = 1;
  while (v < -(1n << BigInt(8 * octets - 1))) octets++;
  v += 1n << BigInt(8 * octets);
  return tlv(Tag.INTEGER, Buffer.from(v.toString(16).padStart(octets * 2, '0'), 'hex'));
}

const oidCache = new Map<string, Buffer>();

/**
 * OBJECT IDENTIFIER from dotted decimal ("2.5.4.3"). Results are cached and
 * shared: treat the returned buffer as read-only.
 */
export function oid(dotted: string): Buffer {
  const hit = oidCache.get(dotted);
  if (hit) return hit;
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) throw new RangeError(`DER: "${dotted}" is not a dotted OID`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [first, second] = arcs as [bigint, bigint];
  if (first < 2n && second > 39n) throw new RangeError(`DER: OID "${dotted}": second arc must be below 40 under arc ${first}`);
  const bytes: number[] = [];
  for (const arc of [first * 40n + second, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let rest = arc >> 7n; rest > 0n; rest >>= 7n) chunk.unshift(Number(rest & 0x7fn) | 0x80);
    bytes.push(...chunk);
  }
  const encoded = tlv(Tag.OID, Buffer.from(bytes));
  oidCache.set(dotted, encoded);
  return encoded;
}

const LONE_SURROGATE = /\p{Cs}/u;
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const IA5 = /^[\x00-\x7f]*$/;

/** True if `text` uses only the PrintableString alphabet (X.680 §41.4). */
export function isPrintable(text: string): boolean {
  return PRINTABLE.test(text);
}

/** UTF8String; rejects strings with unpaired surrogates (they have no UTF-8 form). */
export function utf8String(text: string): Buffer {
  if (LONE_SURROGATE.test(text)) throw new RangeError('DER: UTF8String value contains an unpaired surrogate');
  return tlv(Tag.UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** PrintableString; rejects characters outside its alphabet. */
export function printableString(text: string): Buffer {
  if (!isPrintable(text)) throw new RangeError(`DER: ${JSON.stringify(text)} has characters outside PrintableString`);
  return tlv(Tag.PRINTABLE_STRING, Buffer.from(text, 'latin1'));
}

/** IA5String (ASCII), as used by dNSName and URI general names. */
export function ia5String(text: string): Buffer {
  if (!IA5.test(text)) throw new RangeError(`DER: ${JSON.stringify(text)} is not ASCII (IA5String)`);
  return tlv(Tag.IA5_STRING, Buffer.from(text, 'latin1'));
}

/** BIT STRING of whole octets, or with `unusedBits` trailing bits that must be zero. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw new RangeError(`DER: ${unusedBits} unused bits is invalid for a ${bytes.length}-octet BIT STRING`);
  }
  if (unusedBits && (bytes[bytes.length - 1]! & ((1 << unusedBits) - 1))) {
    throw new RangeError('DER: unused BIT STRING bits must be zero');
  }
  return tlv(Tag.BIT_STRING, Buffer.from([unusedBits]), bytes);
}

/**
 * Named-bit BIT STRING (keyUsage and friends) from the numbers of the bits
 * that are set (bit 0 is the most significant bit of the first octet).
 * Trailing zero bits are removed, as X.690 §11.2.2 requires.
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  for (const b of bits) if (!Number.isInteger(b) || b < 0 || b > 255) throw new RangeError(`DER: bit number ${b} out of range`);
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc((highest >> 3) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return bitString(bytes, 7 - (highest & 7));
}

/** OCTET STRING. */
export function octetString(bytes: Uint8Array): Buffer {
  return tlv(Tag.OCTET_STRING, bytes);
}

/** BOOLEAN (DER: TRUE is 0xff). */
export function boolean(value: boolean): Buffer {
  return Buffer.from([Tag.BOOLEAN, 1, value ? 0xff : 0x00]);
}

/** NULL. */
export function nullValue(): Buffer {
  return Buffer.from([Tag.NULL, 0]);
}

function timeFields(date: Date): { year: number; rest: string } {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('DER: invalid Date');
  const p = (n: number): string => String(n).padStart(2, '0');
  return {
    year: date.getUTCFullYear(),
    rest: `${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}Z`,
  };
}

/** UTCTime "YYMMDDHHMMSSZ" for years 1950–2049; fractions of a second are dropped. */
export function utcTime(date: Date): Buffer {
  const { year, rest } = timeFields(date);
  if (year < 1950 || year > 2049) throw new RangeError(`DER: UTCTime cannot hold year ${year}`);
  return tlv(Tag.UTC_TIME, Buffer.from(`${String(year % 100).padStart(2, '0')}${rest}`, 'latin1'));
}

/** GeneralizedTime "YYYYMMDDHHMMSSZ" (no fraction, RFC 5280 §4.1.2.5.2). */
export function generalizedTime(date: Date): Buffer {
  const { year, rest } = timeFields(date);
  if (year < 0 || year > 9999) throw new RangeError(`DER: GeneralizedTime cannot hold year ${year}`);
  return tlv(Tag.GENERALIZED_TIME, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'latin1'));
}

/** X.509 Time per RFC 5280 §4.1.2.5: UTCTime for 1950–2049, GeneralizedTime otherwise. */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  return year >= 1950 && year <= 2049 ? utcTime(date) : generalizedTime(date);
}

/** [n] EXPLICIT: a constructed context tag wrapping one encoded element. */
export function explicit(n: number, inner: Uint8Array): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`DER: context tag [${n}] not supported`);
  return tlv(0xa0 | n, inner);
}

/** [n] IMPLICIT: re-tags an encoded element, keeping its primitive/constructed form. */
export function implicit(n: number, encoded: Uint8Array): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`DER: context tag [${n}] not supported`);
  if (encoded.length < 2 || (encoded[0]! & 0x1f) === 0x1f) throw new RangeError('DER: implicit() needs an encoded low-tag element');
  const out = Buffer.from(encoded);
  out[0] = 0x80 | (encoded[0]! & 0x20) | n;
  return out;
}

/** Attribute types the Name encoder accepts, with their OIDs and RFC 5280 upper bounds. */
export const NAME_ATTRIBUTES = {
  CN: { oid: '2.5.4.3', max: 64 },
  serialNumber: { oid: '2.5.4.5', max: 64 },
  C: { oid: '2.5.4.6', max: 2 },
  L: { oid: '2.5.4.7', max: 128 },
  ST: { oid: '2.5.4.8', max: 128 },
  O: { oid: '2.5.4.10', max: 64 },
  OU: { oid: '2.5.4.11', max: 64 },
} as const;

/** A Name attribute type the encoder knows. */
export type NameAttribute = keyof typeof NAME_ATTRIBUTES;

/** One single-valued RDN: `['CN', 'printer-17']`. */
export type Rdn = readonly [NameAttribute, string];

/**
 * X.501 Name from RDNs in encoding order (the first element is the first
 * RDN in the DER, e.g. `[['CN','x'],['O','y']]`, the order in which
 * @peculiar/x509 reads "CN=x,O=y"). C and serialNumber are PrintableString
 * as RFC 5280 requires; other values are PrintableString when the alphabet
 * allows and UTF8String otherwise (the same choice @peculiar/x509 makes, so
 * both issuance paths produce identical bytes). Empty values, NUL and values
 * longer than the RFC 5280 upper bound are rejected.
 */
export function name(rdns: readonly Rdn[]): Buffer {
  const encoded = rdns.map(([type, value]) => {
    const spec = NAME_ATTRIBUTES[type];
    if (!spec) throw new RangeError(`DER: unsupported name attribute "${String(type)}"`);
    if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
      throw new RangeError(`DER: ${type} must be a non-empty string without NUL`);
    }
    if ([...value].length > spec.max) throw new RangeError(`DER: ${type} is longer than ${spec.max} characters`);
    if (type === 'C' && !/^[A-Z]{2}$/.test(value)) throw new RangeError(`DER: C must be a two-letter ISO 3166 code, got ${JSON.stringify(value)}`);
    const str = type === 'C' || type === 'serialNumber' || isPrintable(value) ? printableString(value) : utf8String(value);
    return set(sequence(oid(spec.oid), str));
  });
  return sequence(...encoded);
}
