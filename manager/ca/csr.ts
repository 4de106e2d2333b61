/**
 * The manager's side of a device re-key: check a PKCS#10 request (RFC 2986)
 * before anything is issued for its key. The request must be one
 * well-formed CertificationRequest, version 1, signed with
 * ecdsa-with-SHA256 or sha256WithRSAEncryption by the key it carries (proof
 * of possession), with exactly one commonName. Requested extensions and
 * attributes are ignored: the CA's leaf profile decides.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPublicKey, verify } from 'node:crypto';
import { children, oidToString, readTlv } from '../../protocol/der-reader.ts';
import { rawChildren } from './cert-info.ts';
import { CaError, isCaError } from './errors.ts';
import { inspectSubjectKey, OID } from './keys.ts';
import { pemToDer } from './pem.ts';

/** What a verified request tells the CA. */
export interface VerifiedCsr {
  /** DER SubjectPublicKeyInfo, exactly as in the request. */
  readonly publicKey: Buffer;
  /** The subject DN as text (e.g. "CN=printer-17"). */
  readonly subject: string;
  readonly commonName: string;
}

/** Largest request accepted (an RSA-4096 request is ~1.7 KiB of PEM). */
export const MAX_CSR_BYTES = 16 * 1024;

function malformed(problem: string, cause?: unknown): CaError {
  return new CaError('E_CSR_MALFORMED', `certification request ${problem}`, cause === undefined ? undefined : { cause });
}

function parse(der: Buffer): { cri: Buffer; subject: Buffer; spki: Buffer; sigAlg: string; sigParams: Buffer | null; signature: Buffer } {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30 || top.end !== der.length) throw new Error('is not exactly one DER SEQUENCE');
  const parts = children(der, top);
  const [criT, algT, sigT] = parts;
  if (parts.length !== 3 || criT?.tag !== 0x30 || algT?.tag !== 0x30 || sigT?.tag !== 0x03) {
    throw new Error('is not SEQUENCE { CertificationRequestInfo, AlgorithmIdentifier, BIT STRING }');
  }
  const [cri] = rawChildren(der, top);
  const info = children(der, criT);
  const [version, subject, spki, attrs] = rawChildren(der, criT);
  if (info.length !== 4 || !version || !subject || !spki || !attrs) throw new Error('info must have version, subject, subjectPKInfo and attributes');
  if (!version.equals(Buffer.from([0x02, 0x01, 0x00]))) throw new Error('version is not v1 (0)');
  if (subject[0] !== 0x30 || spki[0] !== 0x30 || attrs[0] !== 0xa0) throw new Error('info fields have the wrong types');
  const alg = children(der, algT);
  if (alg[0]?.tag !== 0x06 || alg.length > 2) throw new Error('signature algorithm is malformed');
  const params = rawChildren(der, algT)[1] ?? null;
  if (sigT.end - sigT.start < 2 || der[sigT.start] !== 0) throw new Error('signature BIT STRING is empty or not octet aligned');
  return {
    cri: cri!,
    subject,
    spki,
    sigAlg: oidToString(der.subarray(alg[0].start, alg[0].end)),
    sigParams: params,
    signature: der.subarray(sigT.start + 1, sigT.end),
  };
}

/**
 * Verify a PEM request and return its key and subject. Throws
 * E_CSR_MALFORMED (structure, algorithm identifier, missing CN),
 * E_CA_ALGORITHM (unsupported device key) or E_CSR_SIGNATURE (the
 * signature does not verify under the enclosed key).
 */
export function verifyCsr(pem: string): VerifiedCsr {
  if (typeof pem !== 'string' || pem.length > MAX_CSR_BYTES) throw malformed(`is missing or larger than ${MAX_CSR_BYTES} bytes`);
  const label = /-----BEGIN NEW CERTIFICATE REQUEST-----/.test(pem) ? 'NEW CERTIFICATE REQUEST' : 'CERTIFICATE REQUEST';
  const der = pemToDer(pem, label, 'E_CSR_MALFORMED');
  let csr: ReturnType<typeof parse>;
  let cns: string[];
  let subject: string;
  try {
    csr = parse(der);
    const parsed = new x509.Pkcs10CertificateRequest(der);
    if (!Buffer.from(parsed.publicKey.rawData).equals(csr.spki)) throw new Error('has inconsistent key encodings');
    cns = parsed.subjectName.getField('CN');
    subject = parsed.subject;
  } catch (err) {
    throw malformed((err as Error).message, err);
  }
  if (cns.length !== 1 || !cns[0]) throw malformed(`must carry exactly one commonName, found ${cns.length}`);

  let keyType: 'ec' | 'rsa';
  try {
    keyType = inspectSubjectKey(csr.spki).type;
  } catch (err) {
    if (isCaError(err, 'E_CA_ALGORITHM')) throw err;
    throw malformed('carries an unreadable public key', err);
  }
  const isNull = csr.sigParams?.equals(Buffer.from([0x05, 0x00])) ?? false;
  if (csr.sigAlg === OID.ecdsaWithSha256) {
    if (csr.sigParams) throw malformed('ecdsa-with-SHA256 must not have parameters (RFC 5758)');
    if (keyType !== 'ec') throw malformed('is signed with ECDSA but carries an RSA key');
  } else if (csr.sigAlg === OID.sha256WithRsa) {
    if (csr.sigParams && !isNull) throw malformed('sha256WithRSAEncryption parameters must be NULL');
    if (keyType !== 'rsa') throw malformed('is signed with RSA but carries an EC key');
  } else {
    throw new CaError('E_CA_ALGORITHM', `certification request is signed with ${csr.sigAlg}; only ecdsa-with-SHA256 and sha256WithRSAEncryption are accepted`);
  }

  let ok = false;
  try {
    ok = verify('sha256', csr.cri, createPublicKey({ key: csr.spki, format: 'der', type: 'spki' }), csr.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new CaError('E_CSR_SIGNATURE', `certification request for "${cns[0]}" is not signed by the key it contains`);
  return { publicKey: Buffer.from(csr.spki), subject, commonName: cns[0] };
}
