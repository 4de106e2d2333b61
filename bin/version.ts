/**
 * The release version `--version` prints: the bundler writes it into the
 * firmware bundle, with the commit the bundle was built from; from a
 * checkout or the npm package it is read from the package.json above this
 * file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const __TRUSTROLL_VERSION__: string | undefined;
/** Set by the bundler (cross-compile/bundle.ts): "commit 0123456789ab" or "commit 0123456789ab, dirty". */
declare const __TRUSTROLL_SOURCE__: string | undefined;

/** trustroll's version, e.g. "0.1.0". */
export function trustrollVersion(): string {
  if (typeof __TRUSTROLL_VERSION__ === 'string') return __TRUSTROLL_VERSION__;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'trustroll' && pkg.version) return pkg.version;
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

/** What `--version` prints: the version, and for a firmware bundle the commit it was built from ("0.1.0 (commit 0123456789ab, dirty)"). */
export function versionLine(): string {
  const source = typeof __TRUSTROLL_SOURCE__ === 'string' ? __TRUSTROLL_SOURCE__ : '';
  return source ? `${trustrollVersion()} (${source})` : trustrollVersion();
}
