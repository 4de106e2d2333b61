/**
 * PEM armour (RFC 7468) for DER the CA produces or loads: 64-column
 * base64, one trailing newline, exactly one block when reading.
 */
import { CaError } from './errors.ts';

/** DER → PEM with the given label (default CERTIFICATE). */
export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/**
 * PEM → DER for exactly one block with the given label; anything else
 * throws E_CA_CERT_MALFORMED (or the code the caller passes).
 */
export function pemToDer(pem: string, label = 'CERTIFICATE', code: 'E_CA_CERT_MALFORMED' | 'E_CSR_MALFORMED' = 'E_CA_CERT_MALFORMED'): Buffer {
  const re = new RegExp(`^-----BEGIN ${label}-----\\r?\\n([A-Za-z0-9+/=\\r\\n]+?)\\r?\\n?-----END ${label}-----\\s*$`);
  const m = typeof pem === 'string' ? re.exec(pem.trim()) : null;
  if (!m) throw new CaError(code, `expected exactly one PEM "${label}" block`);
  const b64 = m[1]!.replace(/[\r\n]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new CaError(code, `PEM "${label}" block is not valid base64`);
  return Buffer.from(b64, 'base64');
}
