/**
 * Packs an assembled overlay the same way every time: every entry's mode
 * normalised (0755 folders and executables, 0644 other files; the state
 * folder keeps 0700) and its time set to the build's SOURCE_DATE_EPOCH,
 * then a tarball (GNU tar, sorted names, owner 0:0, gzip without name or
 * time) and a squashfs (mksquashfs, all root-owned, its creation time the
 * same epoch). Two builds of one commit give the same bytes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, lutimesSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BuildError } from '../cross-compile/errors.ts';

/** Folders that keep a mode of their own (relative to the overlay root). */
const KEEP_MODE: Readonly<Record<string, number>> = { 'var/lib/trustroll': 0o700 };

/** Sets every entry under `root` (and `root`) to its normalised mode and to time `epoch`; whatever the umask and the clock were. */
export function normaliseTree(root: string, epoch: number, rel = ''): void {
  const path = rel ? join(root, rel) : root;
  const st = lstatSync(path);
  if (st.isDirectory()) {
    for (const name of readdirSync(path)) normaliseTree(root, epoch, rel ? `${rel}/${name}` : name);
    chmodSync(path, KEEP_MODE[rel] ?? 0o755);
  } else if (st.isFile()) {
    chmodSync(path, st.mode & 0o111 ? 0o755 : 0o644);
  }
  lutimesSync(path, epoch, epoch);
}

/** Runs a command to its end without blocking (the tarball and the squashfs are packed at the same time); its status and output. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    p.stdout.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
    p.stderr.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
    p.once('error', reject);
    p.once('close', (status) => resolve({ status, output }));
  });
}

/** Packs `rootfs` into a reproducible tar.gz (entries sorted, 0:0, every time `epoch`, gzip -n: no name, no time stamp). */
export async function packTarball(rootfs: string, file: string, epoch: number): Promise<void> {
  const r = await run('sh', ['-c', 'tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$2" -C "$1" -cf - . | gzip -9n > "$3"', 'sh', rootfs, String(epoch), file]);
  if (r.status !== 0) throw new BuildError('E_BUILD_IMAGE', `tar/gzip ${file}: ${r.output.trim()}`);
}

/** mksquashfs's version ("4.5.1" -> [4, 5, 1]), or null when it is not installed. */
export function mksquashfsVersion(): number[] | null {
  const r = spawnSync('mksquashfs', ['-version'], { encoding: 'utf8' });
  if (r.error) return null;
  const v = /mksquashfs version (\d+(?:\.\d+)*)/.exec(r.stdout + r.stderr)?.[1];
  return v ? v.split('.').map(Number) : [0];
}

/**
 * How mksquashfs is told the time: 4.5 and later read SOURCE_DATE_EPOCH
 * (the creation time, and file times after it clamped to it) and refuse it
 * together with -mkfs-time/-all-time ("SOURCE_DATE_EPOCH and command line
 * options can't be used at the same time"); older ones ignore the variable
 * and take the options. The file times are the epoch already (normaliseTree).
 */
export function squashfsTime(version: number[], epoch: number, env: NodeJS.ProcessEnv = process.env): { args: string[]; env: NodeJS.ProcessEnv } {
  const [major = 0, minor = 0] = version;
  if (major > 4 || (major === 4 && minor >= 5)) return { args: [], env: { ...env, SOURCE_DATE_EPOCH: String(epoch) } };
  const rest = { ...env };
  delete rest.SOURCE_DATE_EPOCH;
  return { args: ['-mkfs-time', String(epoch), '-all-time', String(epoch)], env: rest };
}

/** Packs `rootfs` into a reproducible squashfs, if mksquashfs exists; returns false when it does not. */
export async function packSquashfs(rootfs: string, file: string, epoch: number): Promise<boolean> {
  const version = mksquashfsVersion();
  if (!version) return false;
  rmSync(file, { force: true });
  const time = squashfsTime(version, epoch);
  const r = await run('mksquashfs', [rootfs, file, '-all-root', '-noappend', '-no-progress', '-comp', 'xz', ...time.args], time.env);
  if (r.status !== 0) throw new BuildError('E_BUILD_IMAGE', `mksquashfs ${file}: ${r.output.trim().slice(-400)}`);
  return true;
}
