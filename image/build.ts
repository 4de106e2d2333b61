/**
 * `npm run image -- --arch arm64|armv7`: the overlay a firmware build drops
 * into its root filesystem, packed as a versioned tarball with a SHA-256
 * manifest (and a squashfs when mksquashfs is installed), in image/out/<arch>/:
 *
 *   opt/trustroll/...                         runtime, bundle, addons (cross-compile/build.ts)
 *   opt/trustroll/MANIFEST.sha256             sha256sum -c format, every other file, paths from /
 *   usr/bin/trustroll-agent -> /opt/trustroll/bin/trustroll-agent
 *   etc/trustroll/                            agent.json goes here (template in /opt/trustroll/share)
 *   usr/lib/systemd/system/trustroll-agent.service
 *   etc/init.d/trustroll-agent                BusyBox/SysV init script
 *   var/lib/trustroll/                        state: mount the persistent partition here
 *
 * Owners are root (0:0) in the archive; the state folder belongs to the
 * agent's user at run time (systemd's StateDirectory, or the init script).
 * Archives are reproducible: sorted, fixed owners and times (SOURCE_DATE_EPOCH
 * or the time of the last commit that touched the agent or the build). An
 * image whose inputs are unchanged is reused, not packed again.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { crossCompile, type BuildInfo } from '../cross-compile/build.ts';
import { BuildError } from '../cross-compile/errors.ts';
import { REPO_ROOT } from '../cross-compile/paths.ts';
import { targetOf, type Target } from '../cross-compile/targets.ts';

const FILES = join(dirname(fileURLToPath(import.meta.url)), 'files');
/** image/out/: one folder per arch. */
export const IMAGE_OUT = join(REPO_ROOT, 'image', 'out');
/** The manifest's place inside the overlay. */
export const MANIFEST = 'opt/trustroll/MANIFEST.sha256';

/** What one image build produced. */
export interface ImageBuild {
  arch: Target['arch'];
  /** The assembled overlay (what the tarball holds). */
  rootfs: string;
  tarball: string;
  squashfs: string | null;
  /** Path (relative to the overlay root) -> sha256, as in the manifest. */
  manifest: Map<string, string>;
  info: BuildInfo;
  bytes: { tarball: number; squashfs: number | null; unpacked: number };
  seconds: { crossCompile: number; image: number };
}

const walkFiles = (root: string, dir = ''): string[] => readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
  const rel = dir ? `${dir}/${e.name}` : e.name;
  return e.isDirectory() ? walkFiles(root, rel) : e.isFile() ? [rel] : [];
});

/** The time stamp every archived file gets. */
function sourceDateEpoch(): number {
  const env = Number(process.env.SOURCE_DATE_EPOCH);
  if (Number.isInteger(env) && env > 0) return env;
  const git = spawnSync('git', ['log', '-1', '--format=%ct', '--', 'agent', 'hal', 'protocol', 'bin', 'cross-compile', 'image', 'package.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
  return git.status === 0 && Number(git.stdout.trim()) > 0 ? Number(git.stdout.trim()) : 0;
}

/** Writes the overlay tree for a cross-compiled target into `rootfs`. */
function assemble(rootfs: string, optTree: string): Map<string, string> {
  const put = (rel: string, from: string, mode: number) => {
    mkdirSync(dirname(join(rootfs, rel)), { recursive: true });
    copyFileSync(from, join(rootfs, rel));
    chmodSync(join(rootfs, rel), mode);
  };
  cpSync(optTree, join(rootfs, 'opt', 'trustroll'), { recursive: true });
  put('opt/trustroll/share/agent.json.example', join(FILES, 'agent.json.example'), 0o644);
  put('opt/trustroll/share/doc/README.md', join(REPO_ROOT, 'image', 'README.md'), 0o644);
  put('usr/lib/systemd/system/trustroll-agent.service', join(FILES, 'trustroll-agent.service'), 0o644);
  put('etc/init.d/trustroll-agent', join(FILES, 'trustroll-agent.init'), 0o755);
  mkdirSync(join(rootfs, 'usr', 'bin'), { recursive: true });
  symlinkSync('../../opt/trustroll/bin/trustroll-agent', join(rootfs, 'usr', 'bin', 'trustroll-agent'));
  mkdirSync(join(rootfs, 'etc', 'trustroll'), { recursive: true, mode: 0o755 });
  mkdirSync(join(rootfs, 'var', 'lib', 'trustroll'), { recursive: true });
  chmodSync(join(rootfs, 'var', 'lib', 'trustroll'), 0o700);

  const manifest = new Map<string, string>();
  for (const rel of walkFiles(rootfs).sort()) manifest.set(rel, createHash('sha256').update(readFileSync(join(rootfs, rel))).digest('hex'));
  writeFileSync(join(rootfs, MANIFEST), [...manifest].map(([rel, sha]) => `${sha}  /${rel}\n`).join(''), { mode: 0o644 });
  return manifest;
}

/** Packs `rootfs` into a reproducible tar.gz. */
async function packTarball(rootfs: string, file: string, epoch: number): Promise<void> {
  const r = await run('sh', ['-c', 'tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$2" -C "$1" -cf - . | gzip -9n > "$3"', 'sh', rootfs, String(epoch), file]);
  if (r.status !== 0) throw new BuildError('E_BUILD_IMAGE', `tar/gzip ${file}: ${r.output.trim()}`);
}

/** Runs a command to its end without blocking (the tarball and the squashfs are packed at the same time); its status and output. */
function run(command: string, args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
    p.stderr.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
    p.once('error', reject);
    p.once('close', (status) => resolve({ status, output }));
  });
}

/** Packs `rootfs` into a squashfs, if mksquashfs exists; returns false when it does not. */
async function packSquashfs(rootfs: string, file: string, epoch: number): Promise<boolean> {
  if (spawnSync('mksquashfs', ['-version']).error) return false;
  rmSync(file, { force: true });
  const r = await run('mksquashfs', [rootfs, file, '-all-root', '-noappend', '-no-progress', '-comp', 'xz', '-mkfs-time', String(epoch), '-all-time', String(epoch)]);
  if (r.status !== 0) throw new BuildError('E_BUILD_IMAGE', `mksquashfs ${file}: ${r.output.trim().slice(-400)}`);
  return true;
}

/** File beside the tarball holding the hash of everything the image was made from. */
const IMAGE_KEY = '.image-key';

/** Hash of the image's inputs: every file of the cross-compiled tree except the build time, the overlay's files and this script. */
function imageKey(optTree: string): string {
  const h = createHash('sha256');
  for (const rel of walkFiles(optTree).sort()) {
    let data = readFileSync(join(optTree, rel));
    if (rel === 'build-info.json') data = Buffer.from(data.toString('utf8').replace(/"builtAt": "[^"]*"/, ''));
    h.update(rel).update(data);
  }
  for (const f of readdirSync(FILES).sort()) h.update(f).update(readFileSync(join(FILES, f)));
  h.update(readFileSync(join(REPO_ROOT, 'image', 'README.md'))).update(readFileSync(fileURLToPath(import.meta.url))).update(String(sourceDateEpoch()));
  return h.digest('hex');
}

/** The previous build of the same inputs, if image/out/<arch> still holds it. */
function reuse(outDir: string, name: string, key: string, info: BuildInfo, crossSeconds: number, started: number): ImageBuild | null {
  const keyFile = join(outDir, IMAGE_KEY);
  const tarball = join(outDir, `${name}.tar.gz`);
  const rootfs = join(outDir, 'rootfs');
  if (!existsSync(keyFile) || readFileSync(keyFile, 'utf8') !== key || !existsSync(tarball) || !existsSync(join(rootfs, MANIFEST))) return null;
  const manifest = new Map<string, string>();
  for (const line of readFileSync(join(rootfs, MANIFEST), 'utf8').split('\n').filter(Boolean)) {
    const m = /^([0-9a-f]{64}) {2}\/(.+)$/.exec(line);
    if (m) manifest.set(m[2]!, m[1]!);
  }
  const squashfs = join(outDir, `${name}.squashfs`);
  const haveSquash = existsSync(squashfs);
  return {
    arch: info.arch, rootfs, tarball, squashfs: haveSquash ? squashfs : null, manifest, info,
    bytes: { tarball: statSync(tarball).size, squashfs: haveSquash ? statSync(squashfs).size : null, unpacked: du(rootfs) },
    seconds: { crossCompile: crossSeconds, image: (Date.now() - started) / 1000 },
  };
}

const du = (root: string): number => walkFiles(root).reduce((n, rel) => n + lstatSync(join(root, rel)).size, 0);

/** Cross-compiles the target (cached native parts reused) and builds its image. */
export async function buildImage(target: Target, log: (line: string) => void = () => {}): Promise<ImageBuild> {
  const cross = await crossCompile(target, log);
  const started = Date.now();
  const outDir = join(IMAGE_OUT, target.arch);
  const name = `trustroll-agent-${cross.info.version}-linux-${target.arch}`;
  const key = imageKey(cross.root);
  const reused = reuse(outDir, name, key, cross.info, cross.seconds, started);
  if (reused) {
    log(`image ${target.arch}: inputs unchanged, reusing ${reused.tarball}`);
    return reused;
  }
  const work = `${outDir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const rootfs = join(work, 'rootfs');
    const manifest = assemble(rootfs, cross.root);
    const epoch = sourceDateEpoch();
    const tarball = join(work, `${name}.tar.gz`);
    const squashfs = join(work, `${name}.squashfs`);
    // Both read the finished rootfs and write their own file: packed at the same time (gzip uses one core, mksquashfs the others).
    const [tarDone, squashDone] = await Promise.allSettled([packTarball(rootfs, tarball, epoch), packSquashfs(rootfs, squashfs, epoch)]);
    for (const d of [tarDone, squashDone]) if (d.status === 'rejected') throw d.reason;
    const haveSquash = (squashDone as PromiseFulfilledResult<boolean>).value;
    const tarSha = createHash('sha256').update(readFileSync(tarball)).digest('hex');
    writeFileSync(`${tarball}.sha256`, `${tarSha}  ${name}.tar.gz\n`);
    copyFileSync(join(rootfs, MANIFEST), join(work, 'MANIFEST.sha256'));
    if (haveSquash) writeFileSync(`${squashfs}.sha256`, `${createHash('sha256').update(readFileSync(squashfs)).digest('hex')}  ${name}.squashfs\n`);
    writeFileSync(join(work, IMAGE_KEY), key);
    rmSync(outDir, { recursive: true, force: true });
    renameSync(work, outDir);
    const final = (p: string) => join(outDir, relative(work, p));
    log(`image ${target.arch}: ${final(tarball)}`);
    return {
      arch: target.arch,
      rootfs: final(rootfs),
      tarball: final(tarball),
      squashfs: haveSquash ? final(squashfs) : null,
      manifest,
      info: cross.info,
      bytes: { tarball: statSync(final(tarball)).size, squashfs: haveSquash ? statSync(final(squashfs)).size : null, unpacked: du(final(rootfs)) },
      seconds: { crossCompile: cross.seconds, image: (Date.now() - started) / 1000 },
    };
  } finally {
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const { values } = parseArgs({ options: { arch: { type: 'string' }, json: { type: 'boolean', default: false } } });
    const img = await buildImage(targetOf(values.arch), (l) => process.stderr.write(`${l}\n`));
    const summary = { arch: img.arch, tarball: img.tarball, squashfs: img.squashfs, files: img.manifest.size, bytes: img.bytes, seconds: img.seconds, runtime: img.info.runtime };
    process.stdout.write(values.json ? JSON.stringify(summary) + '\n'
      : `image ${img.arch}: ${relative(process.cwd(), img.tarball)} (${(img.bytes.tarball / 1e6).toFixed(1)} MB, ${img.manifest.size} files, ${(img.bytes.unpacked / 1e6).toFixed(1)} MB unpacked)${img.squashfs ? `, ${relative(process.cwd(), img.squashfs)} (${(img.bytes.squashfs! / 1e6).toFixed(1)} MB)` : ', no squashfs (mksquashfs not installed)'}; runtime Node ${img.info.runtime.version}: ${img.info.runtime.support}\n`);
  } catch (err) {
    process.stderr.write(`image: ${(err as Error).message}\n`);
    process.exitCode = err instanceof BuildError && err.code === 'E_BUILD_ARCH' ? 2 : 1;
  }
}
