/**
 * The image's software bill of materials, SPDX 2.3 JSON
 * (/opt/trustroll/share/sbom.spdx.json, and beside the tarball). SPDX
 * because firmware builds already speak it (Yocto's create-spdx class
 * writes SPDX for every recipe, so this document joins the image's own),
 * it is an ISO standard (ISO/IEC 5962), and licences are first-class in it
 * (declared and concluded expressions), which the legal notice needs.
 *
 * The image is one package (trustroll-agent, every shipped file in it with
 * SHA-1 and SHA-256, and a verification code); it CONTAINS one package per
 * component (cross-compile/licenses.ts: the runtime, each bundled npm
 * package, SQLite) with its version, licence and the tarball's hash
 * (package-lock.json's integrity; the runtime's pin); each shipped file is
 * GENERATED_FROM the components it is made of. Deterministic: the same
 * inputs give the same document (its time is the build's epoch).
 */
import { createHash } from 'node:crypto';
import { BuildError } from '../cross-compile/errors.ts';
import type { Component } from '../cross-compile/licenses.ts';
import type { SourceState } from '../cross-compile/source.ts';

/** The SBOM's place inside the overlay. */
export const SBOM = 'opt/trustroll/share/sbom.spdx.json';

/** The SHA-1 and SHA-256 of one shipped file. */
export interface FileHashes { sha1: string; sha256: string }

interface Checksum { algorithm: string; checksumValue: string }
/** An SPDX 2.3 package, as this document writes it. */
export interface SpdxPackage {
  SPDXID: string; name: string; versionInfo: string; downloadLocation: string; filesAnalyzed: boolean;
  licenseConcluded: string; licenseDeclared: string; copyrightText: string;
  checksums?: Checksum[]; externalRefs?: { referenceCategory: string; referenceType: string; referenceLocator: string }[];
  packageVerificationCode?: { packageVerificationCodeValue: string; packageVerificationCodeExcludedFiles: string[] };
  hasFiles?: string[]; sourceInfo?: string; comment?: string; primaryPackagePurpose: string;
}
/** An SPDX 2.3 document, as this module writes it. */
export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3'; dataLicense: 'CC0-1.0'; SPDXID: 'SPDXRef-DOCUMENT'; name: string; documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: SpdxPackage[];
  files: { SPDXID: string; fileName: string; checksums: Checksum[]; licenseConcluded: string; copyrightText: string }[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

const id = (kind: string, name: string) => `SPDXRef-${kind}-${name.replace(/[^A-Za-z0-9.]+/g, '-')}`;
const IMAGE_ID = 'SPDXRef-Package-trustroll-agent';

/** SRI integrity ("sha512-<base64>") as an SPDX checksum. */
export function integrityChecksum(integrity: string): Checksum {
  const m = /^(sha1|sha256|sha384|sha512)-([A-Za-z0-9+/=]+)$/.exec(integrity);
  if (!m) throw new BuildError('E_BUILD_LICENSE', `"${integrity}" is not an integrity string`);
  return { algorithm: m[1]!.toUpperCase(), checksumValue: Buffer.from(m[2]!, 'base64').toString('hex') };
}

/** The distinct terms of a conjunction of licence expressions, sorted: plain AND-lists are split, an expression with OR stays whole (in parentheses). */
export function licenceTerms(licences: string[]): string[] {
  const terms = licences.flatMap((l) => (/ OR |[()]/.test(l) ? [`(${l.replace(/^\((.*)\)$/, '$1')})`] : l.split(' AND ').map((t) => t.trim())));
  return [...new Set(terms)].sort((a, b) => a.localeCompare(b, 'en'));
}

/** The conjunction of licence expressions, as one SPDX expression. */
export const allOf = (licences: string[]): string => licenceTerms(licences).join(' AND ');

/** What the document describes: the image, from which commit, what it is made of, its files (paths from the overlay root, SBOM and manifest left out). */
export interface SbomInput {
  name: string; version: string; arch: string;
  source: Pick<SourceState, 'commit' | 'dirty' | 'epoch'>;
  components: Component[];
  files: Map<string, FileHashes>;
  /** Files of the image not in `files` (the SBOM itself, the manifest that hashes it). */
  excluded: string[];
}

/** The SPDX 2.3 document of an image. */
export function spdxDocument(input: SbomInput): SpdxDocument {
  const paths = [...input.files.keys()].sort();
  const fileId = new Map(paths.map((p) => [p, id('File', p)]));
  const trustroll = input.components.find((c) => c.kind === 'trustroll');
  const parts = input.components.filter((c) => c.kind !== 'trustroll');
  const verification = createHash('sha1').update(paths.map((p) => input.files.get(p)!.sha1).sort().join('')).digest('hex');
  const image: SpdxPackage = {
    SPDXID: IMAGE_ID, name: input.name, versionInfo: input.version, downloadLocation: 'NOASSERTION', filesAnalyzed: true,
    licenseConcluded: allOf(input.components.map((c) => c.license)), licenseDeclared: trustroll?.license ?? 'NOASSERTION', copyrightText: 'NOASSERTION',
    packageVerificationCode: { packageVerificationCodeValue: verification, packageVerificationCodeExcludedFiles: input.excluded.map((e) => `./${e}`) },
    hasFiles: paths.map((p) => fileId.get(p)!),
    sourceInfo: `trustroll commit ${input.source.commit}${input.source.dirty ? ' with uncommitted changes (dirty)' : ''}, for linux-${input.arch}`,
    primaryPackagePurpose: 'APPLICATION',
  };
  const packages = [image, ...parts.map((c): SpdxPackage => ({
    SPDXID: id('Package', `${c.kind}-${c.name}-${c.version}`), name: c.name, versionInfo: c.version,
    downloadLocation: c.download ?? 'NOASSERTION', filesAnalyzed: false,
    licenseConcluded: c.license, licenseDeclared: c.license, copyrightText: 'NOASSERTION',
    ...(c.integrity ? { checksums: [integrityChecksum(c.integrity)] } : {}),
    ...(c.purl ? { externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: c.purl }] } : {}),
    ...(c.comment ? { comment: c.comment } : {}),
    primaryPackagePurpose: c.kind === 'runtime' ? 'APPLICATION' : 'LIBRARY',
  }))];
  const relationships = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: IMAGE_ID }];
  for (const [i, c] of parts.entries()) {
    const pkgId = packages[i + 1]!.SPDXID;
    relationships.push({ spdxElementId: IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: pkgId });
    for (const f of c.files) {
      const fid = fileId.get(`opt/trustroll/${f}`);
      if (!fid) throw new BuildError('E_BUILD_LICENSE', `${c.name}@${c.version}: its file /opt/trustroll/${f} is not in the image`);
      relationships.push({ spdxElementId: fid, relationshipType: 'GENERATED_FROM', relatedSpdxElement: pkgId });
    }
  }
  const content = createHash('sha256').update(JSON.stringify([packages, paths.map((p) => input.files.get(p)!.sha256)])).digest('hex');
  return {
    spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT',
    name: `${input.name}-${input.version}-linux-${input.arch}`,
    documentNamespace: `https://spdx.org/spdxdocs/${input.name}-${input.version}-linux-${input.arch}-${content.slice(0, 32)}`,
    creationInfo: { created: new Date(input.source.epoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'), creators: [`Tool: trustroll-image-build-${input.version}`] },
    packages,
    files: paths.map((p) => ({
      SPDXID: fileId.get(p)!, fileName: `./${p}`,
      checksums: [{ algorithm: 'SHA1', checksumValue: input.files.get(p)!.sha1 }, { algorithm: 'SHA256', checksumValue: input.files.get(p)!.sha256 }],
      licenseConcluded: 'NOASSERTION', copyrightText: 'NOASSERTION',
    })),
    relationships,
  };
}

/**
 * Throws E_BUILD_LICENSE naming every component the document does not list
 * with its version, a licence and a hash, or whose files it does not tie
 * to it with their SHA-256.
 */
export function checkSbom(doc: SpdxDocument, components: Component[]): void {
  const missing: string[] = [];
  for (const c of components) {
    const what = `${c.name}@${c.version}`;
    if (c.kind === 'trustroll') {
      const image = doc.packages.find((p) => p.SPDXID === IMAGE_ID);
      if (!image || image.licenseDeclared !== c.license || !image.packageVerificationCode) missing.push(`${what}: no image package with its licence`);
      continue;
    }
    const p = doc.packages.find((q) => q.name === c.name && q.versionInfo === c.version);
    if (!p) { missing.push(`${what}: no package entry`); continue; }
    if (!p.licenseConcluded || p.licenseConcluded === 'NOASSERTION') missing.push(`${what}: no licence`);
    if (c.integrity && !p.checksums?.length) missing.push(`${what}: no hash`);
    for (const f of c.files) {
      const file = doc.files.find((x) => x.fileName === `./opt/trustroll/${f}`);
      const tied = file && doc.relationships.some((r) => r.spdxElementId === file.SPDXID && r.relationshipType === 'GENERATED_FROM' && r.relatedSpdxElement === p.SPDXID);
      if (!tied || !file.checksums.some((k) => k.algorithm === 'SHA256')) missing.push(`${what}: /opt/trustroll/${f} not listed as made from it with its SHA-256`);
    }
  }
  if (missing.length) throw new BuildError('E_BUILD_LICENSE', `the SBOM does not cover: ${missing.join('; ')}`);
}
