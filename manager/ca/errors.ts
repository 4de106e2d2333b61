/**
 * Errors of the manager's CA. Each code is stable (never renamed, never
 * reused) and documented here with the action an operator should take; the
 * message of each thrown error adds the specifics. Messages never contain
 * key material.
 */

/** Every CA error code with what it means and what to do about it. */
export const CA_ERRORS = {
  E_CA_VALIDITY:
    'The requested validity breaks the root key update rules (RFC 9810 §4.4): the new root must start before the old root expires, and every period must end after it starts. Run the rotation while the old root is still valid, or provision the new root out of band.',
  E_CA_ALGORITHM:
    'A key uses an algorithm or size trustroll does not sign with or for (CA keys: P-256, P-384, RSA-2048, RSA-3072; device keys: P-256, P-384, RSA 2048-4096). Re-key with a supported algorithm.',
  E_CA_SUBJECT:
    'A distinguished name could not be parsed or is outside the supported profile (single-valued RDNs of CN, O, OU, C, L, ST, serialNumber within RFC 5280 length limits). Fix the configured subject.',
  E_CA_KEY_MISMATCH:
    'The CA private key does not belong to the CA certificate it was loaded with. Check which key file was paired with which certificate; never issue with a mismatched pair.',
  E_CA_NOT_CA:
    'The issuing certificate is not a CA certificate (basicConstraints CA:true and keyUsage keyCertSign are required). Load the root or distribution certificate, not a device certificate.',
  E_CA_CERT_MALFORMED:
    'The CA certificate could not be parsed as one PEM X.509 certificate. Re-export it from the CA store.',
  E_LEAF_REQUEST:
    'A device certificate request is invalid (names, validity, serial or key). The message names the field; fix the request, nothing was issued.',
  E_CSR_MALFORMED:
    'The device sent a certification request that is not a well-formed PKCS#10 request with a commonName. Ask the device to regenerate it; check agent and manager versions.',
  E_CSR_SIGNATURE:
    'The certification request is not signed by the key it contains (damaged in transit, or forged). Nothing was issued; ask the device to regenerate its request and investigate if it repeats.',
  E_CA_WORKER:
    'A worker thread used for batch issuance failed to start or crashed. Nothing from the batch was returned; retry with workers: 1 and report the message.',
} as const;

/** A stable, machine-matchable CA error code. */
export type CaErrorCode = keyof typeof CA_ERRORS;

/** A CA failure: `code` is for programs, `message` tells the operator what happened and what to do. */
export class CaError extends Error {
  readonly code: CaErrorCode;

  constructor(code: CaErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'CaError';
    this.code = code;
  }

  /** The documented action for this code. */
  get hint(): string {
    return CA_ERRORS[this.code];
  }
}

/** True when `value` is a CaError, optionally with the given code. */
export function isCaError(value: unknown, code?: CaErrorCode): value is CaError {
  return value instanceof CaError && (code === undefined || value.code === code);
}
