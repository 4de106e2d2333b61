/**
 * The components /opt/trustroll is made of, each with its version, its
 * licence and the licence text it ships with: trustroll itself, the Node
 * runtime (its release's LICENSE), every npm package esbuild actually
 * bundled (the metafile's inputs mapped to their node_modules folders, so
 * nothing is a hand list), the addons (those same packages, compiled), and
 * the libraries compiled into an addon (SQLite in better-sqlite3). One legal
 * notice file, /opt/trustroll/LEGAL.txt, carries every text; the SBOM
 * (image/sbom.ts) lists the same components. A component with no licence
 * text stops the build (E_BUILD_LICENSE).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BuildError } from './errors.ts';
import { REPO_ROOT } from './paths.ts';
import { NODE_RUNTIME_LICENSE, type RuntimePackage } from './targets.ts';

/** Licence texts for packages that ship none: `<name>@<version>.LICENSE` (scoped names with "+" for "/"), each saying where it came from. */
export const EXTRA_LICENSES = join(REPO_ROOT, 'cross-compile', 'licenses');
/** Where the legal notice file goes, relative to /opt/trustroll. */
export const LEGAL_FILE = 'LEGAL.txt';

/** One licence text a component ships with. */
export interface LicenceText {
  /** Where it was read: repository-relative, or the runtime package's file name. */
  from: string;
  text: string;
}

/** Something the image ships that has a licence of its own. */
export interface Component {
  /** trustroll itself, the Node runtime, a bundled npm package, or a library compiled into an addon. */
  kind: 'trustroll' | 'runtime' | 'npm' | 'embedded';
  name: string;
  version: string;
  /** SPDX licence expression. */
  license: string;
  texts: LicenceText[];
  /** An SRI hash ("sha512-<base64>"): the package tarball's (package-lock.json's integrity, the runtime's pin), or for a library compiled into an addon the source it is compiled from. */
  integrity: string | null;
  /** Where its source or package comes from (a URL), or null. */
  download: string | null;
  /** Package URL (purl), or null. */
  purl: string | null;
  /** Files under /opt/trustroll made from it (trustroll's: every file not listed elsewhere). */
  files: string[];
  /** Said in LEGAL.txt and the SBOM, when something needs saying. */
  comment?: string;
}

interface LockEntry { version?: string; resolved?: string; integrity?: string; license?: string }
type Lock = { packages: Record<string, LockEntry> };

const LICENCE_NAME = /^(licen[cs]e|copying|notice|copyright)([-._][^/]*)?$/i;

/** The licence files at the top of a package folder (LICENSE, LICENSE.md, license, COPYING, NOTICE, …), sorted. */
export function licenceFilesIn(dir: string): string[] {
  return readdirSync(dir).filter((f) => LICENCE_NAME.test(f) && statSync(join(dir, f)).isFile()).sort();
}

const purlOf = (name: string, version: string) => `pkg:npm/${name.startsWith('@') ? `%40${name.slice(1)}` : name}@${version}`;

/** The npm packages in `packageDirs` (repository-relative folders, from the bundle's metafile) as components, read from `root`'s node_modules and package-lock.json. */
export function npmComponents(packageDirs: string[], files: string[], root = REPO_ROOT): Component[] {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lock;
  return packageDirs.map((dir) => {
    const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as { name: string; version: string; license?: string | { type?: string } };
    const locked = lock.packages[dir] ?? {};
    const texts = licenceFilesIn(join(root, dir)).map((f) => ({ from: `${dir}/${f}`, text: readFileSync(join(root, dir, f), 'utf8') }));
    const extra = `cross-compile/licenses/${pkg.name.replace('/', '+')}@${pkg.version}.LICENSE`;
    if (texts.length === 0 && existsSync(join(root, extra))) texts.push({ from: extra, text: readFileSync(join(root, extra), 'utf8') });
    const declared = typeof pkg.license === 'object' ? pkg.license.type : pkg.license;
    return {
      kind: 'npm' as const,
      name: pkg.name,
      version: pkg.version,
      license: declared ?? locked.license ?? 'NOASSERTION',
      texts,
      integrity: locked.integrity ?? null,
      download: locked.resolved ?? null,
      purl: purlOf(pkg.name, pkg.version),
      files: [...files],
    };
  });
}

/** SQLite, compiled into better-sqlite3's addon from the amalgamation the package carries: its version and its public-domain dedication (the "blessing"). */
export function sqliteComponent(betterSqliteDir: string, addonFile: string): Component {
  const header = readFileSync(join(betterSqliteDir, 'deps', 'sqlite3', 'sqlite3.h'), 'utf8');
  const amalgamation = createHash('sha256').update(readFileSync(join(betterSqliteDir, 'deps', 'sqlite3', 'sqlite3.c'))).digest('base64');
  const version = /#define SQLITE_VERSION\s+"([^"]+)"/.exec(header)?.[1];
  const blessing = /^\/\*\n([\s\S]*?)\n\*{20,}/.exec(header)?.[1];
  if (!version || !blessing) throw new BuildError('E_BUILD_LICENSE', `${betterSqliteDir}/deps/sqlite3/sqlite3.h: no SQLITE_VERSION or no dedication at its top`);
  return {
    kind: 'embedded',
    name: 'sqlite',
    version,
    license: 'blessing',
    texts: [{ from: 'node_modules/better-sqlite3/deps/sqlite3/sqlite3.h', text: blessing.replace(/^\*\* ?/gm, '') + '\n' }],
    integrity: `sha256-${amalgamation}`,
    download: 'https://www.sqlite.org/',
    purl: `pkg:generic/sqlite@${version}`,
    files: [addonFile],
    comment: 'The SQLite amalgamation better-sqlite3 carries (deps/sqlite3), compiled into its addon; the hash is that of sqlite3.c.',
  };
}

/** The Node runtime package the image ships (its binary, stripped): its release LICENSE, read from the unpacked package. */
export function runtimeComponent(pkg: RuntimePackage, unpackedDir: string): Component {
  const file = join(unpackedDir, 'LICENSE');
  return {
    kind: 'runtime',
    name: pkg.name,
    version: pkg.version,
    license: NODE_RUNTIME_LICENSE,
    texts: existsSync(file) ? [{ from: `${pkg.name}-${pkg.version}.tgz: LICENSE`, text: readFileSync(file, 'utf8') }] : [],
    integrity: pkg.integrity,
    download: `https://registry.npmjs.org/${pkg.name}/-/${pkg.name}-${pkg.version}.tgz`,
    purl: purlOf(pkg.name, pkg.version),
    files: ['bin/node'],
    comment: 'The official Node.js build for this CPU (npm registry package), stripped of its symbols. Node.js is MIT; the libraries built into it are listed in its LICENSE with their licences.',
  };
}

/** trustroll itself (its LICENSE at the repository root). */
export function trustrollComponent(version: string, root = REPO_ROOT): Component {
  const file = join(root, 'LICENSE');
  return {
    kind: 'trustroll',
    name: 'trustroll',
    version,
    license: (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { license: string }).license,
    texts: existsSync(file) ? [{ from: 'LICENSE', text: readFileSync(file, 'utf8') }] : [],
    integrity: null,
    download: null,
    purl: null,
    files: [],
  };
}

/** Throws E_BUILD_LICENSE naming every component without a licence text or without a declared licence. */
export function checkLicences(components: Component[]): void {
  const bad = components.filter((c) => !c.texts.some((t) => t.text.trim() !== '') || c.license === 'NOASSERTION' || c.license === '');
  if (bad.length) {
    throw new BuildError('E_BUILD_LICENSE', bad.map((c) => `${c.name}@${c.version} ${c.texts.length ? 'declares no licence' : 'ships no licence text'}`).join('; ')
      + `: add its text as ${EXTRA_LICENSES.slice(REPO_ROOT.length + 1)}/<name>@<version>.LICENSE, or leave the package out of the bundle`);
  }
}

const RULE = '='.repeat(78);

/** The legal notice file: a list of the components, then each one's licence texts. `legalComments` are esbuild's, from the bundled sources. */
export function legalNotice(product: string, components: Component[], legalComments = ''): string {
  checkLicences(components);
  const lines = [
    `${product}: licences of what /opt/trustroll holds`,
    '',
    'Every component of this software, with the licence text it is distributed',
    'under: trustroll itself, the Node.js runtime, each npm package bundled into',
    'lib/trustroll-agent.mjs, and the libraries compiled into the native addons',
    'in lib/addons/. share/sbom.spdx.json lists the same components with their',
    'versions and hashes.',
    '',
    ...components.map((c) => `  ${c.name} ${c.version}  (${c.license})`),
  ];
  for (const c of components) {
    lines.push('', RULE, `${c.name} ${c.version}`, `Licence: ${c.license}`);
    if (c.files.length) lines.push(`In: ${c.files.map((f) => `/opt/trustroll/${f}`).join(', ')}`);
    if (c.comment) lines.push(c.comment);
    for (const t of c.texts) lines.push('', `--- ${t.from}`, '', t.text.replace(/\s+$/, ''));
  }
  if (legalComments.trim()) lines.push('', RULE, 'Legal comments kept from the bundled sources (esbuild)', '', legalComments.replace(/\s+$/, ''));
  return lines.join('\n') + '\n';
}
