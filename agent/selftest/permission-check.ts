/**
 * The technician's permission check: can the agent's user write every
 * folder the agent keeps its state in (state-paths.ts)? While the agent
 * runs, its own answer is in the health file (it checks with its own
 * rights, supplementary groups included). Otherwise the agent's user is
 * the one its health file names (a failed start leaves it), or this
 * tool's user, and the check runs with that user's rights: directly when
 * the tool runs as that user, through `sh -c 'test -w'` as that uid/gid
 * when the tool runs as root. A problem is reported as what it is, a
 * permission with its user, path and the command that fixes it, never as
 * a setting to change.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import type { AgentConfig } from '../config.ts';
import type { AgentHealth, HealthView, StorageProblem } from '../health-file.ts';
import { processUser } from '../health-reporter.ts';
import { statePaths, writeTarget, type StatePath } from '../state-paths.ts';
import type { Check } from './report.ts';

/** The user whose rights count. */
type AgentUser = AgentHealth['user'];

/** errno of access(2) on what decides `p` (writeTarget) with this process's rights, or null when writable. */
function ownAccess(p: StatePath): string | null {
  const t = writeTarget(p);
  try {
    accessSync(t.path, t.kind === 'dir' ? constants.W_OK | constants.X_OK : constants.W_OK);
    return null;
  } catch (err) {
    return t.exists ? (err as NodeJS.ErrnoException).code ?? 'EACCES' : 'ENOENT';
  }
}

/** The paths `user` cannot write (a missing folder counts only when `user` cannot create it); null when this tool cannot check for that user. */
export function problemsFor(config: AgentConfig, user: AgentUser): StorageProblem[] | null {
  const paths = statePaths(config);
  const me = processUser();
  const problem = (p: StatePath, error: string): StorageProblem => ({ path: p.path, setting: p.setting, error });
  if (me.uid === user.uid) return paths.flatMap((p) => { const e = ownAccess(p); return e ? [problem(p, e)] : []; });
  if (me.uid !== 0) return null;
  // Root checks as the agent's uid and gid: a read-only mount or an immutable flag stops root too, and names the cause.
  const targets = paths.map(writeTarget);
  const script = 'for p do if [ -w "$p" ] && { [ ! -d "$p" ] || [ -x "$p" ]; }; then echo ok; else echo no; fi; done';
  const r = spawnSync('/bin/sh', ['-c', script, 'sh', ...targets.map((t) => t.path)], { uid: user.uid, gid: user.gid, encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return null;
  const verdicts = r.stdout.trim().split('\n');
  return paths.flatMap((p, i) => {
    const rootErr = ownAccess(p);
    if (rootErr === 'EROFS' || rootErr === 'EPERM') return [problem(p, rootErr)];
    if (verdicts[i] === 'ok') return [];
    return [problem(p, targets[i]!.exists ? 'EACCES' : 'ENOENT')];
  });
}

/** The mount point holding `path` (longest prefix in /proc/mounts), or `path` itself when unknown. */
function mountPointOf(path: string): string {
  try {
    const points = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m && (path === m || path.startsWith(m.endsWith('/') ? m : `${m}/`)));
    return points.sort((a, b) => b.length - a.length)[0] ?? path;
  } catch {
    return path;
  }
}

const isDir = (p: string) => { try { return statSync(p).isDirectory(); } catch { return true; } };
const q = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;

/** The shell command that fixes one problem for `user`. */
export function fixCommand(p: StorageProblem, user: AgentUser): string {
  switch (p.error) {
    case 'EROFS': return `mount -o remount,rw ${q(mountPointOf(p.path))}`;
    case 'EPERM': return `chattr -i ${q(p.path)}`;
    case 'ENOENT': return `install -d -o ${user.uid} -g ${user.gid} -m 0700 ${q(p.path)}`;
    default: {
      const owner = `${/^\d+$/.test(user.name) ? user.uid : user.name}:${user.gid}`;
      return isDir(p.path) ? `chown -R ${owner} ${q(p.path)} && chmod -R u+rwX ${q(p.path)}` : `chown ${owner} ${q(p.path)} && chmod u+rw ${q(p.path)}`;
    }
  }
}

const WHY: Record<string, string> = {
  EROFS: 'its file system is mounted read-only',
  EPERM: 'it is marked immutable (chattr +i) or a security module forbids it',
  ENOENT: 'it does not exist, and that user cannot create it',
};

/**
 * The permission check: the agent's own report while it runs, else a
 * check with the rights of the user its health file names (or this tool's).
 */
export function permissionsCheck(config: AgentConfig, view: HealthView): Check {
  const name = 'permissions';
  if (view.state === 'absent' && view.unreadable) {
    return { name, status: 'warn', code: 'E_AGENT_PERMISSION', message: `the agent's user is not known here (${view.reason})`, action: 'run this check as root or as the agent\'s user' };
  }
  const running = view.state === 'running';
  const user = view.state === 'absent' ? processUser() : view.health.user;
  const whose = view.state === 'absent' ? `user ${user.name} (uid ${user.uid}; the agent's user is not known: it has not run since the device started)` : `the agent's user ${user.name} (uid ${user.uid})`;
  const problems = running ? view.health.storage.problems : problemsFor(config, user);
  if (problems === null) {
    return { name, status: 'warn', code: 'E_AGENT_PERMISSION', message: `cannot check what ${whose} may write while running as ${processUser().name}`, action: `run this check as root or as ${user.name}` };
  }
  const paths = statePaths(config);
  if (problems.length === 0) {
    return { name, status: 'ok', message: `${whose} can write every folder the agent keeps its state in (${paths.map((p) => p.path).join(', ')})${running ? ', as the running agent found' : ''}` };
  }
  const fixes = [...new Set(problems.map((p) => fixCommand(p, user)))];
  const fix = fixes.join(' && ');
  const what = problems.map((p) => `${p.path} (${paths.find((s) => s.path === p.path)?.holds ?? p.setting}): ${p.error}, ${WHY[p.error] ?? 'ownership or mode'}`).join('; ');
  const then = running ? 'the running agent sees the change within 10 s' : 'then start the agent';
  return {
    name, status: 'fail', code: 'E_AGENT_PERMISSION',
    message: `a permission problem: ${whose} cannot write ${what}`,
    action: `as root: ${fix}; ${then}`,
    details: { user, problems, fix },
  };
}
