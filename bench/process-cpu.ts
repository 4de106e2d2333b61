/**
 * CPU time of this process and of a child (the broker), so a benchmark can
 * say where a run's time went: which process was busy, and for how long.
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc times (USER_HZ, 100 on every Linux architecture Node supports). */
const USER_HZ = 100;

/** CPU milliseconds (user + system) of a process by pid, from /proc; null when unreadable. */
export function cpuMsOf(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
  } catch {
    return null;
  }
}

/** CPU milliseconds (user + system) this process has used so far. */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
