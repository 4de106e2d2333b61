/** Where the build tools read and write: the repository root, the git-ignored output and cache folders. */
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
/** Per-target build output: cross-compile/out/<arch>/. */
export const OUT_DIR = join(REPO_ROOT, 'cross-compile', 'out');
/**
 * Downloads and native builds, keyed by their inputs, kept per machine
 * (TRUSTROLL_BUILD_CACHE, default ~/.cache/trustroll) so that a fresh clone
 * on the same machine (CI) does not fetch and compile them again. Every
 * entry carries the hash of its inputs and is rebuilt when they change.
 */
export const BUILD_CACHE = process.env.TRUSTROLL_BUILD_CACHE ?? join(homedir(), '.cache', 'trustroll');
/** Fetched runtimes and other downloads, shared by every target. */
export const CACHE_DIR = join(BUILD_CACHE, 'downloads');
/** Native addon builds of one target (or of the host's Node 24 for the Node 24 test step). */
export function addonCache(name: string): string {
  return join(BUILD_CACHE, 'addons', name);
}
