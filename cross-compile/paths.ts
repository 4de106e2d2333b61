/** Where the build tools read and write: the repository root, the git-ignored output and cache folders. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
/** Per-target build output: cross-compile/out/<arch>/. */
export const OUT_DIR = join(REPO_ROOT, 'cross-compile', 'out');
/** Fetched runtimes and other downloads, shared by every target. */
export const CACHE_DIR = join(OUT_DIR, 'cache');
