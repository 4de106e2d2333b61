/**
 * Fetches an official Node runtime from the npm registry (`npm pack` of a
 * `node-linux-<arch>` package), checks the tarball against the pinned
 * integrity and unpacks it into a cache folder that later builds reuse.
 * Nothing is installed on the host: the runtime stays inside the cache.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { BuildError } from './errors.ts';
import type { RuntimePackage } from './targets.ts';
import { CACHE_DIR } from './paths.ts';

/** The unpacked package: `bin/node` and `include/node` (headers for native addons). */
export interface UnpackedRuntime {
  dir: string;
  node: string;
  headers: string;
}

/** The cached runtime, fetched and checked first if it is not there yet. */
export function fetchRuntime(pkg: RuntimePackage, cacheDir = CACHE_DIR): UnpackedRuntime {
  const dir = join(cacheDir, 'runtimes', `${pkg.name}-${pkg.version}`);
  const done = join(dir, '.integrity');
  const unpacked = { dir, node: join(dir, 'bin', 'node'), headers: join(dir, 'include', 'node') };
  if (existsSync(done) && readFileSync(done, 'utf8') === pkg.integrity && existsSync(unpacked.node)) return unpacked;

  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const packed = spawnSync('npm', ['pack', `${pkg.name}@${pkg.version}`, '--pack-destination', work, '--json', '--silent'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (packed.status !== 0) throw new BuildError('E_BUILD_RUNTIME', `npm pack ${pkg.name}@${pkg.version} failed: ${(packed.stderr || packed.stdout).trim().slice(-400)}`);
    const file = join(work, `${pkg.name}-${pkg.version}.tgz`);
    const got = `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
    if (got !== pkg.integrity) throw new BuildError('E_BUILD_RUNTIME', `${pkg.name}@${pkg.version}: tarball integrity ${got} is not the pinned ${pkg.integrity}`);
    const out = join(work, 'unpacked');
    mkdirSync(out);
    const tar = spawnSync('tar', ['-xzf', file, '-C', out, '--strip-components=1'], { encoding: 'utf8' });
    if (tar.status !== 0) throw new BuildError('E_BUILD_RUNTIME', `unpacking ${file}: ${tar.stderr.trim()}`);
    if (!existsSync(join(out, 'bin', 'node')) || !existsSync(join(out, 'include', 'node', 'node.h'))) {
      throw new BuildError('E_BUILD_RUNTIME', `${pkg.name}@${pkg.version} has no bin/node or include/node/node.h`);
    }
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, '..'), { recursive: true });
    renameSync(out, dir);
    // Written last: a cache entry without it is refetched.
    writeFileSync(done, pkg.integrity);
    return unpacked;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
