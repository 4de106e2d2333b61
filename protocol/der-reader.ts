/**
 * Minimal DER reader: just enough structure walking to read the X.509
 * extensions node:crypto does not expose (keyUsage bits, key identifiers).
 * Bounds-checked; any malformed input throws.
 */

/** One decoded TLV: tag byte, value bounds within the source buffer. */
export interface Tlv {
  readonly tag: number;
  /** Where the tag byte is. */
  readonly offset: number;
  readonly start: number;
  readonly end: number;
  readonly next: number;
}

/** Read the TLV at `offset` (short and long lengths, no indefinite length). */
export function readTlv(buf: Buffer, offset: number): Tlv {
  if (offset + 2 > buf.length) throw new Error('DER: truncated header');
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) throw new Error('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw new Error('DER: value runs past the end');
  return { tag, offset, start, end, next: end };
}

/** The children of a constructed TLV. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(buf, at);
    if (t.end > parent.end) throw new Error('DER: child overruns parent');
    out.push(t);
    at = t.next;
  }
  return out;
}

/** Encoded OID bytes (value only) → dotted string. */
export function oidToString(value: Buffer): string {
  const parts: number[] = [];
  let acc = 0;
  for (const byte of value) {
    acc = acc * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(acc);
      acc = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const a = first < 80 ? Math.floor(first / 40) : 2;
  return [a, first - a * 40, ...parts].join('.');
}

/** Map of extension OID → { critical, value (the OCTET STRING content) } of a DER certificate. */
export function certificateExtensions(der: Buffer): Map<string, { critical: boolean; value: Buffer }> {
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0];
  if (!tbs) throw new Error('DER: no TBSCertificate');
  const out = new Map<string, { critical: boolean; value: Buffer }>();
  const extWrapper = children(der, tbs).find((t) => t.tag === 0xa3);
  if (!extWrapper) return out;
  const extList = children(der, extWrapper)[0];
  if (!extList) return out;
  for (const ext of children(der, extList)) {
    const parts = children(der, ext);
    const oid = parts[0];
    if (!oid || oid.tag !== 0x06) throw new Error('DER: extension without OID');
    let critical = false;
    let valueTlv = parts[1];
    if (valueTlv?.tag === 0x01) {
      critical = der[valueTlv.start] !== 0;
      valueTlv = parts[2];
    }
    if (!valueTlv || valueTlv.tag !== 0x04) throw new Error('DER: extension without value');
    out.set(oidToString(der.subarray(oid.start, oid.end)), { critical, value: der.subarray(valueTlv.start, valueTlv.end) });
  }
  return out;
}
