/**
 * Weekly maintenance windows for scheduled rotation and renewal
 * (`trustroll serve --window "Sat 01:00-05:00"`): day names and a time span,
 * in the manager's local time or in UTC. A span whose end is at or before
 * its start runs past midnight into the next day ("Fri 22:00-02:00" ends on
 * Saturday at 02:00). Pure functions of the time they are given.
 */
import { ManagerError } from '../errors.ts';

/** One window: on `days` (0 = Sunday) from `start` to `end`, in minutes after midnight. */
export interface MaintenanceWindow {
  /** As the operator wrote it (normalized spacing). */
  readonly text: string;
  readonly days: readonly number[];
  readonly start: number;
  readonly end: number;
}

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const FULL_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
const EVERY_DAY = new Set(['daily', '*', 'every']);

function badWindow(text: string, why: string): ManagerError {
  return new ManagerError('E_SERVICE_CONFIG', `--window ${JSON.stringify(text)}: ${why}; use day names and HH:MM-HH:MM, e.g. "Sat 01:00-05:00", "Sat,Sun 02:00-04:00", "Mon-Fri 22:00-02:00" or "daily 02:00-04:00"`);
}

function dayIndex(name: string, text: string): number {
  const n = name.toLowerCase();
  const i = DAY_NAMES.indexOf(n) >= 0 ? DAY_NAMES.indexOf(n) : FULL_NAMES.indexOf(n);
  if (i < 0) throw badWindow(text, `"${name}" is not a day name (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`);
  return i;
}

function minutes(h: string, m: string, text: string, allow24: boolean): number {
  const hours = Number(h);
  const mins = Number(m);
  if (mins > 59 || hours > 24 || (hours === 24 && (!allow24 || mins !== 0))) throw badWindow(text, `${h}:${m} is not a time of day`);
  return hours * 60 + mins;
}

/** Parse "Sat 01:00-05:00", "Sat,Sun 02:00-04:00", "Mon-Fri 22:00-02:00" or "daily 02:00-04:00"; E_SERVICE_CONFIG names what is wrong. */
export function parseWindow(text: string): MaintenanceWindow {
  const m = /^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  if (!m) throw badWindow(text, 'not a window');
  const days = new Set<number>();
  for (const part of m[1]!.split(',')) {
    if (EVERY_DAY.has(part.toLowerCase())) {
      for (let d = 0; d < 7; d++) days.add(d);
      continue;
    }
    const range = part.split('-');
    if (range.length > 2 || range.some((r) => r === '')) throw badWindow(text, `"${part}" is not a day or a range of days`);
    const from = dayIndex(range[0]!, text);
    const to = dayIndex(range[range.length - 1]!, text);
    for (let d = from; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === to) break;
    }
  }
  const start = minutes(m[2]!, m[3]!, text, false);
  const end = minutes(m[4]!, m[5]!, text, true);
  return { text: `${m[1]} ${m[2]!.padStart(2, '0')}:${m[3]}-${m[4]!.padStart(2, '0')}:${m[5]}`, days: [...days].sort(), start, end };
}

const dayOf = (at: Date, utc: boolean) => (utc ? at.getUTCDay() : at.getDay());
const minuteOf = (at: Date, utc: boolean) => (utc ? at.getUTCHours() * 60 + at.getUTCMinutes() : at.getHours() * 60 + at.getMinutes());

/** True if `at` lies inside `w` (local time, or UTC with `utc`). */
export function insideWindow(w: MaintenanceWindow, at: Date, utc: boolean): boolean {
  const day = dayOf(at, utc);
  const m = minuteOf(at, utc);
  if (w.start < w.end) return w.days.includes(day) && m >= w.start && m < w.end;
  // Past midnight: the evening of a listed day, or the early hours of the day after one.
  return (w.days.includes(day) && m >= w.start) || (w.days.includes((day + 6) % 7) && m < w.end);
}

/** True if scheduled work may start at `at`: inside any window, or always when none is configured. */
export function windowOpen(windows: readonly MaintenanceWindow[], at: Date, utc: boolean): boolean {
  return windows.length === 0 || windows.some((w) => insideWindow(w, at, utc));
}

/** When the next window opens (`at` itself while one is open; null with no windows, which means always). */
export function nextWindowStart(windows: readonly MaintenanceWindow[], at: Date, utc: boolean): Date | null {
  if (windows.length === 0) return null;
  if (windowOpen(windows, at, utc)) return at;
  let best: Date | null = null;
  const [y, mo, d] = utc ? [at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()] : [at.getFullYear(), at.getMonth(), at.getDate()];
  for (let offset = 0; offset <= 7; offset++) {
    for (const w of windows) {
      const candidate = utc ? new Date(Date.UTC(y, mo, d + offset, 0, w.start)) : new Date(y, mo, d + offset, 0, w.start);
      if (candidate > at && w.days.includes(dayOf(candidate, utc)) && (!best || candidate < best)) best = candidate;
    }
  }
  return best;
}
