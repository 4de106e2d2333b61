/**
 * Cross-compiles the agent's native addons (better-sqlite3, pkcs11js) for a
 * target CPU with Debian's cross toolchain, against the headers of the Node
 * runtime that ships with it (node-gyp --nodedir: nothing is downloaded).
 * Sources are the versions `npm ci` installed; a build is reused while its
 * inputs (addon version, runtime, compiler, this file) are unchanged.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BuildError } from './errors.ts';
import { REPO_ROOT } from './paths.ts';
import type { UnpackedRuntime } from './runtime.ts';
import type { Target } from './targets.ts';

/** A native addon the agent loads, and the file its build produces. */
export interface AddonSpec {
  /** npm package name. */
  pkg: string;
  /** The file under build/Release that the package's JavaScript loads. */
  file: string;
}

export const AGENT_ADDONS: AddonSpec[] = [
  { pkg: 'better-sqlite3', file: 'better_sqlite3.node' },
  { pkg: 'pkcs11js', file: 'pkcs11.node' },
];

/** One built addon. */
export interface BuiltAddon extends AddonSpec {
  version: string;
  path: string;
  /** True when a cached build was reused. */
  cached: boolean;
  seconds: number;
}

/** node-gyp as npm ships it (npm sets npm_config_node_gyp inside scripts). */
export function findNodeGyp(): string {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(dirname(realpathSync(process.execPath))), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const npmRoot = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  if (npmRoot.status === 0) candidates.push(join(npmRoot.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const found = candidates.find((c): c is string => !!c && existsSync(c));
  if (!found) throw new BuildError('E_BUILD_TOOL', 'node-gyp not found (it ships with npm); install npm');
  return found;
}

/** `<prefix>-gcc --version` first line; part of the cache key. */
function compilerVersion(target: Target): string {
  const r = spawnSync(`${target.toolchain}-g++`, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new BuildError('E_BUILD_TOOL', `${target.toolchain}-g++ not found: install ${target.toolchainPackages.join(' ')} (bash .ci/setup does)`);
  return r.stdout.split('\n')[0]!;
}

/** Checks that a file is an ELF shared object for the target CPU (readelf -h). */
export function checkElf(path: string, target: Target): string {
  const r = spawnSync('readelf', ['-h', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new BuildError('E_BUILD_ADDON', `${path} is not an ELF file: ${r.stderr.trim()}`);
  const machine = /Machine:\s+(.*)/.exec(r.stdout)?.[1]?.trim() ?? '';
  const flags = /Flags:\s+(.*)/.exec(r.stdout)?.[1]?.trim() ?? '';
  if (machine !== target.elfMachine) {
    throw new BuildError('E_BUILD_ADDON', `${path} is built for "${machine}", not ${target.elfMachine}`);
  }
  if (target.elfFlags && !target.elfFlags.test(flags)) throw new BuildError('E_BUILD_ADDON', `${path} has ELF flags "${flags}", expected ${target.elfFlags}`);
  return `${machine}; ${flags}`;
}

/** Builds (or reuses) every agent addon for the target; returns where each .node file is. */
export function buildAddons(target: Target, runtime: UnpackedRuntime, buildRoot: string, log: (line: string) => void = () => {}): BuiltAddon[] {
  const nodeGyp = findNodeGyp();
  const compiler = compilerVersion(target);
  const self = readFileSync(fileURLToPath(import.meta.url));
  return AGENT_ADDONS.map((spec) => {
    const src = join(REPO_ROOT, 'node_modules', spec.pkg);
    if (!existsSync(join(src, 'package.json'))) throw new BuildError('E_BUILD_ADDON', `${relative(REPO_ROOT, src)} is missing: run npm ci`);
    const version = (JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { version: string }).version;
    const key = createHash('sha256').update(JSON.stringify([target.arch, target.runtime, spec, version, compiler])).update(self).digest('hex');
    const work = join(buildRoot, spec.pkg);
    const output = join(work, 'build', 'Release', spec.file);
    const keyFile = join(work, '.build-key');
    if (existsSync(output) && existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key) {
      checkElf(output, target);
      return { ...spec, version, path: output, cached: true, seconds: 0 };
    }
    const started = Date.now();
    log(`cross-compile ${target.arch}: building ${spec.pkg}@${version} with ${target.toolchain}-g++ against Node ${target.runtime.version} headers`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    cpSync(src, work, { recursive: true, filter: (from) => !/[\\/](build|node_modules|prebuilds)$/.test(from.slice(src.length)) });
    const logFile = `${work}.log`;
    const fd = openSync(logFile, 'w');
    const tc = target.toolchain;
    const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', '--release', `--arch=${target.nodeArch}`, `--nodedir=${runtime.dir}`, '--jobs=2'], {
      cwd: work,
      stdio: ['ignore', fd, fd],
      env: {
        ...process.env,
        CC: `${tc}-gcc`, CXX: `${tc}-g++`, LINK: `${tc}-g++`, AR: `${tc}-ar`, STRIP: `${tc}-strip`,
        CC_host: 'gcc', CXX_host: 'g++', LINK_host: 'g++', AR_host: 'ar',
        npm_config_arch: target.nodeArch, npm_config_target_arch: target.nodeArch, npm_config_nodedir: runtime.dir,
      },
    });
    closeSync(fd);
    if (r.status !== 0 || !existsSync(output)) {
      const tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
      throw new BuildError('E_BUILD_ADDON', `${spec.pkg} for ${target.arch} failed (log: ${relative(REPO_ROOT, logFile)}):\n${tail}`);
    }
    const strip = spawnSync(`${tc}-strip`, ['--strip-unneeded', output], { encoding: 'utf8' });
    if (strip.status !== 0) throw new BuildError('E_BUILD_ADDON', `${tc}-strip ${output}: ${strip.stderr.trim()}`);
    checkElf(output, target);
    // Keep only what the image needs: the sources and objects go, the .node file and its key stay.
    for (const dir of ['src', 'deps', 'build/Release/obj', 'build/Release/obj.target', 'build/Release/.deps', 'build/deps']) rmSync(join(work, dir), { recursive: true, force: true });
    writeFileSync(keyFile, key);
    const seconds = (Date.now() - started) / 1000;
    log(`cross-compile ${target.arch}: ${spec.pkg} built in ${seconds.toFixed(0)} s`);
    return { ...spec, version, path: output, cached: false, seconds };
  });
}
