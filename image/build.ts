/**
 * `npm run image -- --arch arm64|armv7`: the overlay a firmware build drops
 * into its root filesystem, packed as a versioned tarball with a SHA-256
 * manifest (and a squashfs when mksquashfs is installed), in image/out/<arch>/:
 *
 *   opt/trustroll/...                         runtime, bundle, addons, LEGAL.txt (cross-compile/build.ts)
 *   opt/trustroll/share/sbom.spdx.json        SPDX 2.3 SBOM (image/sbom.ts), also beside the tarball
 *   opt/trustroll/MANIFEST.sha256             sha256sum -c format, every other file, paths from /
 *   usr/bin/trustroll-agent -> /opt/trustroll/bin/trustroll-agent
 *   etc/trustroll/                            agent.json goes here (template in /opt/trustroll/share)
 *   usr/lib/systemd/system/trustroll-agent.service
 *   etc/init.d/trustroll-agent                BusyBox/SysV init script
 *   var/lib/trustroll/                        state: mount the persistent partition here
 *
 * Owners are root (0:0) in the archive; the state folder belongs to the
 * agent's user at run time (systemd's StateDirectory, or the init script).
 * Reproducible (image/pack.ts): two builds of one commit give the same
 * bytes; every file carries SOURCE_DATE_EPOCH, or the commit's time. An
 * image whose inputs are unchanged is reused, not packed again.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { crossCompile, type BuildInfo, type CrossBuild } from '../cross-compile/build.ts';
import { BuildError } from '../cross-compile/errors.ts';
import { REPO_ROOT } from '../cross-compile/paths.ts';
import { describeSource, sourceState, type SourceState } from '../cross-compile/source.ts';
import { targetOf, type Target } from '../cross-compile/targets.ts';
import { normaliseTree, packSquashfs, packTarball } from './pack.ts';
import { checkSbom, SBOM, spdxDocument, type FileHashes } from './sbom.ts';

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
  /** The SBOM beside the tarball (the same file as /opt/trustroll/share/sbom.spdx.json). */
  sbom: string;
  /** The commit and the time it was built from, and where that time came from. */
  source: SourceState;
  /** Path (relative to the overlay root) -> sha256, as in the manifest. */
  manifest: Map<string, string>;
  info: BuildInfo;
  bytes: { tarball: number; squashfs: number | null; unpacked: number };
  seconds: { crossCompile: number; image: number };
}

/** Where an image is built and from what. */
export interface ImageOptions {
  /** Output folder of this arch's image (default image/out/<arch>). */
  out?: string;
  /** Output folder of its cross-compile (default cross-compile/out/<arch>). */
  crossOut?: string;
  /** The commit and time stamp (default: this checkout's; SOURCE_DATE_EPOCH wins). */
  source?: SourceState;
}

const walkFiles = (root: string, dir = ''): string[] => readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
  const rel = dir ? `${dir}/${e.name}` : e.name;
  return e.isDirectory() ? walkFiles(root, rel) : e.isFile() ? [rel] : [];
});

const hashes = (file: string): FileHashes => {
  const data = readFileSync(file);
  return { sha1: createHash('sha1').update(data).digest('hex'), sha256: createHash('sha256').update(data).digest('hex') };
};

/**
 * The overlay's own files around /opt/trustroll: the configuration template
 * and this document, the systemd unit, the init script, the technician's
 * symlink, the configuration and state folders. Each file sits where the
 * recipes install it (image/recipes: they copy the tree as it is and add
 * links only), so the manifest's paths are the installed ones.
 */
export function placeOverlayFiles(rootfs: string): void {
  const put = (rel: string, from: string, mode: number) => {
    mkdirSync(dirname(join(rootfs, rel)), { recursive: true });
    copyFileSync(from, join(rootfs, rel));
    chmodSync(join(rootfs, rel), mode);
  };
  put('opt/trustroll/share/agent.json.example', join(FILES, 'agent.json.example'), 0o644);
  put('opt/trustroll/share/doc/README.md', join(REPO_ROOT, 'image', 'README.md'), 0o644);
  put('usr/lib/systemd/system/trustroll-agent.service', join(FILES, 'trustroll-agent.service'), 0o644);
  put('etc/init.d/trustroll-agent', join(FILES, 'trustroll-agent.init'), 0o755);
  mkdirSync(join(rootfs, 'usr', 'bin'), { recursive: true });
  symlinkSync('../../opt/trustroll/bin/trustroll-agent', join(rootfs, 'usr', 'bin', 'trustroll-agent'));
  mkdirSync(join(rootfs, 'etc', 'trustroll'), { recursive: true });
  mkdirSync(join(rootfs, 'var', 'lib', 'trustroll'), { recursive: true });
}

/** `sha256sum -c` lines for `files` (path relative to the overlay root -> sha256): absolute paths, as installed on the device. */
export function manifestText(files: ReadonlyMap<string, string>): string {
  return [...files].map(([rel, sha]) => `${sha}  /${rel}\n`).join('');
}

/** Writes the overlay tree for a cross-compiled target into `rootfs`, with its SBOM and manifest, modes and times normalised. */
function assemble(rootfs: string, cross: CrossBuild, name: string): Map<string, string> {
  cpSync(cross.root, join(rootfs, 'opt', 'trustroll'), { recursive: true });
  placeOverlayFiles(rootfs);

  const files = new Map(walkFiles(rootfs).sort().map((rel) => [rel, hashes(join(rootfs, rel))] as const));
  const sbom = spdxDocument({ name, version: cross.info.version, arch: cross.target.arch, source: cross.source, components: cross.components, files, excluded: [SBOM, MANIFEST] });
  checkSbom(sbom, cross.components);
  writeFileSync(join(rootfs, SBOM), JSON.stringify(sbom, null, 2) + '\n');

  const manifest = new Map<string, string>();
  for (const rel of walkFiles(rootfs).sort()) manifest.set(rel, files.get(rel)?.sha256 ?? hashes(join(rootfs, rel)).sha256);
  writeFileSync(join(rootfs, MANIFEST), manifestText(manifest));
  normaliseTree(rootfs, cross.source.epoch);
  return manifest;
}

/** File beside the tarball holding the hash of everything the image was made from. */
const IMAGE_KEY = '.image-key';

/** Hash of the image's inputs: every file of the cross-compiled tree (its build-info names the commit and the time), the overlay's files and these scripts. */
function imageKey(cross: CrossBuild): string {
  const h = createHash('sha256');
  for (const rel of walkFiles(cross.root).sort()) h.update(rel).update(readFileSync(join(cross.root, rel)));
  for (const f of readdirSync(FILES).sort()) h.update(f).update(readFileSync(join(FILES, f)));
  for (const f of ['README.md', 'build.ts', 'pack.ts', 'sbom.ts']) h.update(readFileSync(join(REPO_ROOT, 'image', f)));
  return h.update(String(cross.source.epoch)).digest('hex');
}

/** The previous build of the same inputs, if the output folder still holds it. */
function reuse(outDir: string, name: string, key: string, info: BuildInfo, source: SourceState, crossSeconds: number, started: number): ImageBuild | null {
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
    arch: info.arch, rootfs, tarball, squashfs: haveSquash ? squashfs : null, sbom: join(outDir, `${name}.spdx.json`), source, manifest, info,
    bytes: { tarball: statSync(tarball).size, squashfs: haveSquash ? statSync(squashfs).size : null, unpacked: du(rootfs) },
    seconds: { crossCompile: crossSeconds, image: (Date.now() - started) / 1000 },
  };
}

const du = (root: string): number => walkFiles(root).reduce((n, rel) => n + lstatSync(join(root, rel)).size, 0);
const sha256File = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Cross-compiles the target (cached native parts reused) and builds its image. */
export async function buildImage(target: Target, log: (line: string) => void = () => {}, opts: ImageOptions = {}): Promise<ImageBuild> {
  const source = opts.source ?? sourceState();
  const cross = await crossCompile(target, log, { out: opts.crossOut, source });
  const started = Date.now();
  const outDir = opts.out ?? join(IMAGE_OUT, target.arch);
  const name = `trustroll-agent-${cross.info.version}-linux-${target.arch}`;
  const key = imageKey(cross);
  const reused = reuse(outDir, name, key, cross.info, source, cross.seconds, started);
  if (reused) {
    log(`image ${target.arch}: inputs unchanged, reusing ${reused.tarball}`);
    return reused;
  }
  const work = `${outDir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const rootfs = join(work, 'rootfs');
    const manifest = assemble(rootfs, cross, 'trustroll-agent');
    const tarball = join(work, `${name}.tar.gz`);
    const squashfs = join(work, `${name}.squashfs`);
    // Both read the finished rootfs and write their own file: packed at the same time (gzip uses one core, mksquashfs the others).
    const [tarDone, squashDone] = await Promise.allSettled([packTarball(rootfs, tarball, source.epoch), packSquashfs(rootfs, squashfs, source.epoch)]);
    for (const d of [tarDone, squashDone]) if (d.status === 'rejected') throw d.reason;
    const haveSquash = (squashDone as PromiseFulfilledResult<boolean>).value;
    writeFileSync(`${tarball}.sha256`, `${sha256File(tarball)}  ${name}.tar.gz\n`);
    copyFileSync(join(rootfs, MANIFEST), join(work, 'MANIFEST.sha256'));
    copyFileSync(join(rootfs, SBOM), join(work, `${name}.spdx.json`));
    if (haveSquash) writeFileSync(`${squashfs}.sha256`, `${sha256File(squashfs)}  ${name}.squashfs\n`);
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
      sbom: join(outDir, `${name}.spdx.json`),
      source,
      manifest,
      info: cross.info,
      bytes: { tarball: statSync(final(tarball)).size, squashfs: haveSquash ? statSync(final(squashfs)).size : null, unpacked: du(final(rootfs)) },
      seconds: { crossCompile: cross.seconds, image: (Date.now() - started) / 1000 },
    };
  } finally {
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }
}

/** One line on what was built from what: the commit, the files' time and the C library it needs. */
const describeBuild = (info: BuildInfo, source: SourceState): string =>
  `${describeSource(info.source)}, files dated ${info.source.date} (${source.epochFrom}); needs ${Object.entries(info.libc.needs).map(([f, v]) => `${f}_${v}`).join(', ')}`;

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const { values } = parseArgs({ options: { arch: { type: 'string' }, json: { type: 'boolean', default: false } } });
    const img = await buildImage(targetOf(values.arch), (l) => process.stderr.write(`${l}\n`));
    const summary = { arch: img.arch, tarball: img.tarball, squashfs: img.squashfs, sbom: img.sbom, files: img.manifest.size, bytes: img.bytes, seconds: img.seconds, runtime: img.info.runtime, source: { ...img.info.source, dateFrom: img.source.epochFrom }, libc: img.info.libc.needs };
    process.stdout.write(values.json ? JSON.stringify(summary) + '\n'
      : `image ${img.arch}: ${relative(process.cwd(), img.tarball)} (${(img.bytes.tarball / 1e6).toFixed(1)} MB, ${img.manifest.size} files, ${(img.bytes.unpacked / 1e6).toFixed(1)} MB unpacked)${img.squashfs ? `, ${relative(process.cwd(), img.squashfs)} (${(img.bytes.squashfs! / 1e6).toFixed(1)} MB)` : ', no squashfs (mksquashfs not installed)'}; ${describeBuild(img.info, img.source)}; runtime Node ${img.info.runtime.version}: ${img.info.runtime.support}\n`);
  } catch (err) {
    process.stderr.write(`image: ${(err as Error).message}\n`);
    process.exitCode = err instanceof BuildError && err.code === 'E_BUILD_ARCH' ? 2 : 1;
  }
}
