/**
 * What the Yocto recipe and the Buildroot package (image/recipes/) must
 * declare for an image: its licences, from the components the image is made
 * of (the same terms as the SBOM), and the checksums of its legal notice
 * file, /opt/trustroll/LEGAL.txt (Yocto's LIC_FILES_CHKSUM md5, Buildroot's
 * hash file sha256). test/image checks the recipes against a built image.
 */
import { createHash } from 'node:crypto';
import type { Component } from '../cross-compile/licenses.ts';
import { licenceTerms } from './sbom.ts';

/** SPDX identifiers Yocto knows under another name (OE-core's sqlite3 recipe declares SQLite's blessing as PD). */
const YOCTO_NAMES: Readonly<Record<string, string>> = { blessing: 'PD' };

/** The recipe values of one image. */
export interface RecipeValues {
  /** Yocto LICENSE: "A & B & …". */
  yoctoLicense: string;
  /** Buildroot <PKG>_LICENSE: "A, B, …". */
  buildrootLicense: string;
  /** md5 of LEGAL.txt (Yocto LIC_FILES_CHKSUM). */
  legalMd5: string;
  /** sha256 of LEGAL.txt (Buildroot hash file). */
  legalSha256: string;
}

/** The values for an image whose components are `components` and whose LEGAL.txt holds `legal`. */
export function recipeValues(components: Pick<Component, 'license'>[], legal: Buffer): RecipeValues {
  const terms = licenceTerms(components.map((c) => c.license));
  const yocto = [...new Set(terms.map((t) => YOCTO_NAMES[t] ?? t.replaceAll(' AND ', ' & ').replaceAll(' OR ', ' | ')))].sort((a, b) => a.localeCompare(b, 'en'));
  return {
    yoctoLicense: yocto.join(' & '),
    buildrootLicense: terms.join(', '),
    legalMd5: createHash('md5').update(legal).digest('hex'),
    legalSha256: createHash('sha256').update(legal).digest('hex'),
  };
}
