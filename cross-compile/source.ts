/**
 * What a build is made from, so that two builds of one commit are the same
 * bytes and the image says which commit it is: the commit (git HEAD),
 * whether the files the image is built from differ from it ("dirty"), and
 * the one time stamp every packed file gets: SOURCE_DATE_EPOCH when the
 * caller sets it (Yocto and Buildroot export it), else the commit's time.
 * Nothing here reads the wall clock.
 */
import { spawnSync } from 'node:child_process';
import { BuildError } from './errors.ts';
import { REPO_ROOT } from './paths.ts';

/** The paths the image is built from: a change under any of them makes the build "dirty". */
export const IMAGE_SOURCES = ['agent', 'hal', 'protocol', 'bin', 'cross-compile', 'image', 'package.json', 'package-lock.json', 'LICENSE'];

/** The commit a build comes from and the time its files carry. */
export interface SourceState {
  /** Full commit id of HEAD, or "unknown" outside a git checkout. */
  commit: string;
  /** True when IMAGE_SOURCES had uncommitted (or untracked) changes. */
  dirty: boolean;
  /** Seconds since 1970: SOURCE_DATE_EPOCH, or the commit's time. */
  epoch: number;
  /** Where `epoch` came from. */
  epochFrom: 'SOURCE_DATE_EPOCH' | 'commit';
}

const git = (args: string[], cwd: string) => spawnSync('git', args, { cwd, encoding: 'utf8' });

/** SOURCE_DATE_EPOCH as the reproducible-builds spec defines it (a decimal number of seconds), or null when unset. */
export function sourceDateEpochFromEnv(env: NodeJS.ProcessEnv = process.env): number | null {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return null;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new BuildError('E_BUILD_SOURCE', `SOURCE_DATE_EPOCH="${raw}" is not a whole number of seconds`);
  return Number(raw);
}

/** The commit, its dirtiness and the build's time stamp for the checkout at `root`. */
export function sourceState(root = REPO_ROOT, env: NodeJS.ProcessEnv = process.env): SourceState {
  const head = git(['rev-parse', '--verify', 'HEAD'], root);
  const commit = head.status === 0 ? head.stdout.trim() : 'unknown';
  const status = commit === 'unknown' ? null : git(['status', '--porcelain', '--untracked-files=all', '--', ...IMAGE_SOURCES], root);
  const dirty = status === null || status.status !== 0 || status.stdout.trim() !== '';
  const fromEnv = sourceDateEpochFromEnv(env);
  if (fromEnv !== null) return { commit, dirty, epoch: fromEnv, epochFrom: 'SOURCE_DATE_EPOCH' };
  const time = commit === 'unknown' ? null : git(['log', '-1', '--format=%ct', 'HEAD'], root);
  const epoch = Number(time?.stdout.trim());
  if (!time || time.status !== 0 || !Number.isSafeInteger(epoch) || epoch <= 0) {
    throw new BuildError('E_BUILD_SOURCE', `no commit time in ${root} (not a git checkout?): set SOURCE_DATE_EPOCH`);
  }
  return { commit, dirty, epoch, epochFrom: 'commit' };
}

/** How `--version` and build-info name the source: "<12 hex digits>", with ", dirty" when it had uncommitted changes. */
export function describeSource(s: Pick<SourceState, 'commit' | 'dirty'>): string {
  return `commit ${s.commit === 'unknown' ? s.commit : s.commit.slice(0, 12)}${s.dirty ? ', dirty' : ''}`;
}
