/**
 * The fast, synchronous leaf issuance path. Everything that is constant per
 * issuer (issuer Name bytes, AKI, signature AlgorithmIdentifier, the fixed
 * extensions) is encoded once; per leaf only the serial, validity, subject,
 * SKI and SAN are encoded with protocol/der.ts and the TBSCertificate is
 * signed with one crypto.sign call. The encoding choices (string and time
 * types, extension order, DER of each extension) match what @peculiar/x509
 * produces for the same request, so the reference path in leaf-issuer.ts
 * yields a byte-identical TBSCertificate (tested).
 *
 * This module imports no ASN.1 library, so worker threads start quickly.
 */
import { isIP } from 'node:net';
import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { boolean, explicit, integer, name, namedBits, octetString, oid, sequence, tlv, time, bitString } from '../../protocol/der.ts';
import { assertIssuer, readCaCertificate, type CaCertInfo } from './cert-info.ts';
import { CaError } from './errors.ts';
import { randomSerial } from './fields.ts';
import { algorithmOf, hashOf, inspectSubjectKey, signatureAlgorithmDer } from './keys.ts';
import { derToPem } from './pem.ts';
import type { RootMaterial } from './root.ts';

/** A request for one device certificate. */
export interface LeafRequest {
  readonly commonName: string;
  /** The device's DER SubjectPublicKeyInfo. */
  readonly publicKey: Buffer;
  readonly profile: 'server' | 'client';
  readonly dnsNames?: readonly string[];
  readonly uris?: readonly string[];
  /** IPv4 or IPv6 literals. */
  readonly ipAddresses?: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Unsigned big-endian serial; default: random 128-bit (see fields.ts). */
  readonly serial?: Buffer;
}

/** Extension OIDs and the extended key usages of the two profiles. */
export const LEAF_OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
const KU_DIGITAL_SIGNATURE = 0;
const KU_KEY_ENCIPHERMENT = 2;

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);
const URI = /^[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+$/;

function leafError(req: LeafRequest, field: string, problem: string): CaError {
  const cn = typeof req?.commonName === 'string' ? req.commonName : '?';
  return new CaError('E_LEAF_REQUEST', `leaf "${cn}": ${field} ${problem}`);
}

/** True if `host` is an LDH host name usable as a dNSName (no wildcards, ≤ 253 octets). */
export function isDnsName(host: string): boolean {
  return typeof host === 'string' && host.length <= 253 && DNS_NAME.test(host);
}

/** IPv4 (4 octets) or IPv6 (16 octets, "::" and a dotted IPv4 tail allowed) → octets, or null. */
export function ipOctets(ip: string): Buffer | null {
  const family = typeof ip === 'string' && !ip.includes('%') ? isIP(ip) : 0;
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  if (family !== 6) return null;
  let text = ip;
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = dotted[2]!.split('.').map(Number);
    text = `${dotted[1]}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  if (groups.length !== 8) return null;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function serialOf(req: LeafRequest): Buffer {
  if (req.serial === undefined) return randomSerial();
  if (!(req.serial instanceof Uint8Array)) throw leafError(req, 'serial', 'must be a Buffer');
  let i = 0;
  while (i < req.serial.length && req.serial[i] === 0) i++;
  const magnitude = req.serial.subarray(i);
  if (magnitude.length === 0) throw leafError(req, 'serial', 'must not be zero (RFC 5280 §4.1.2.2)');
  if (magnitude.length > 20 || (magnitude.length === 20 && magnitude[0]! & 0x80)) {
    throw leafError(req, 'serial', 'must fit in 20 octets of DER (RFC 5280 §4.1.2.2)');
  }
  return Buffer.from(magnitude);
}

/** The GeneralNames for the request's subjectAltName, or null when it has none. */
function generalNames(req: LeafRequest): Buffer | null {
  const dns = req.dnsNames ?? [];
  const uris = req.uris ?? [];
  const ips = req.ipAddresses ?? [];
  const names: Buffer[] = [];
  for (const d of dns) {
    if (!isDnsName(d)) throw leafError(req, 'dnsNames', `entry ${JSON.stringify(d)} is not a DNS host name`);
    names.push(tlv(0x82, Buffer.from(d, 'latin1')));
  }
  for (const u of uris) {
    if (typeof u !== 'string' || u.length > 2048 || !URI.test(u)) throw leafError(req, 'uris', `entry ${JSON.stringify(u)} is not an ASCII URI with a scheme`);
    names.push(tlv(0x86, Buffer.from(u, 'latin1')));
  }
  for (const ip of ips) {
    const octets = ipOctets(ip);
    if (!octets) throw leafError(req, 'ipAddresses', `entry ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
    names.push(tlv(0x87, octets));
  }
  if (names.length === 0 && req.profile === 'server') {
    if (!isDnsName(req.commonName)) {
      throw leafError(req, 'dnsNames', 'is empty and commonName is not a DNS name; a server certificate needs at least one subjectAltName');
    }
    names.push(tlv(0x82, Buffer.from(req.commonName, 'latin1')));
  }
  return names.length ? sequence(...names) : null;
}

/** Issues device certificates from one CA certificate and key; construct once, issue many. */
export class LeafIssuer {
  /** The issuing CA certificate as parsed at construction. */
  readonly issuer: CaCertInfo;
  private readonly key: KeyObject;
  private readonly head: Buffer;
  private readonly sigAlg: Buffer;
  private readonly hash: 'sha256' | 'sha384';
  private readonly issuerName: Buffer;
  private readonly fixed: { readonly bc: Buffer; readonly kuEc: Buffer; readonly kuRsa: Buffer; readonly server: Buffer; readonly client: Buffer; readonly aki: Buffer };

  /** Check the CA certificate/key pair (E_CA_NOT_CA, E_CA_KEY_MISMATCH, E_CA_ALGORITHM) and pre-encode the constant parts. */
  constructor(issuer: RootMaterial) {
    this.issuer = readCaCertificate(issuer.cert);
    assertIssuer(this.issuer, issuer.key);
    this.key = issuer.key;
    this.sigAlg = signatureAlgorithmDer(algorithmOf(issuer.key));
    this.hash = hashOf(algorithmOf(issuer.key));
    this.head = explicit(0, integer(2));
    this.issuerName = this.issuer.subject;
    this.fixed = {
      bc: extension(LEAF_OID.basicConstraints, true, sequence()),
      kuEc: extension(LEAF_OID.keyUsage, true, namedBits([KU_DIGITAL_SIGNATURE])),
      kuRsa: extension(LEAF_OID.keyUsage, true, namedBits([KU_DIGITAL_SIGNATURE, KU_KEY_ENCIPHERMENT])),
      server: extension(LEAF_OID.extKeyUsage, false, sequence(oid(LEAF_OID.serverAuth))),
      client: extension(LEAF_OID.extKeyUsage, false, sequence(oid(LEAF_OID.clientAuth))),
      aki: extension(LEAF_OID.authorityKeyIdentifier, false, sequence(tlv(0x80, this.issuer.keyId))),
    };
  }

  /**
   * The exact TBSCertificate `issue` signs for `req` (with `req.serial`, or
   * a fresh random serial). Validates the request; E_LEAF_REQUEST or
   * E_CA_ALGORITHM on a bad one.
   */
  tbs(req: LeafRequest): Buffer {
    if (!req || typeof req.commonName !== 'string') throw new CaError('E_LEAF_REQUEST', 'leaf request needs a commonName string');
    if (req.profile !== 'server' && req.profile !== 'client') throw leafError(req, 'profile', `must be "server" or "client", got ${JSON.stringify(req.profile)}`);
    const nb = req.notBefore instanceof Date ? req.notBefore.getTime() : NaN;
    const na = req.notAfter instanceof Date ? req.notAfter.getTime() : NaN;
    if (!Number.isFinite(nb) || !Number.isFinite(na) || Math.floor(na / 1000) <= Math.floor(nb / 1000)) {
      throw leafError(req, 'validity', 'needs valid Dates with notAfter at least one second after notBefore');
    }
    if (!(req.publicKey instanceof Uint8Array)) throw leafError(req, 'publicKey', 'must be a DER SubjectPublicKeyInfo Buffer');
    const key = inspectSubjectKey(Buffer.from(req.publicKey.buffer, req.publicKey.byteOffset, req.publicKey.byteLength));
    let subject: Buffer;
    try {
      subject = name([['CN', req.commonName]]);
    } catch (err) {
      throw leafError(req, 'commonName', `is not usable: ${(err as Error).message}`);
    }
    const san = generalNames(req);
    const f = this.fixed;
    const extensions = [
      f.bc,
      key.type === 'rsa' ? f.kuRsa : f.kuEc,
      req.profile === 'server' ? f.server : f.client,
      extension(LEAF_OID.subjectKeyIdentifier, false, octetString(key.keyId)),
      f.aki,
    ];
    if (san) extensions.push(extension(LEAF_OID.subjectAltName, false, san));
    return sequence(
      this.head,
      integer(serialOf(req)),
      this.sigAlg,
      this.issuerName,
      sequence(time(req.notBefore), time(req.notAfter)),
      subject,
      req.publicKey,
      explicit(3, sequence(...extensions)),
    );
  }

  /** Sign a TBSCertificate built by `tbs` and return the certificate DER. */
  signTbs(tbs: Buffer): Buffer {
    return sequence(tbs, this.sigAlg, bitString(cryptoSign(this.hash, tbs, this.key)));
  }

  /** Issue one certificate; DER. */
  issueDer(req: LeafRequest): Buffer {
    return this.signTbs(this.tbs(req));
  }

  /** Issue one certificate; PEM. */
  issue(req: LeafRequest): string {
    return derToPem(this.issueDer(req));
  }
}
