/**
 * What the scheduler decides at one check, as a pure function of the fleet's
 * facts, its settings and the time: start a root rotation a configured time
 * before the root expires, renew the device certificates that expire within
 * a configured time, only inside maintenance windows and only while nothing
 * is open; otherwise skip and say why. `Scheduler` (scheduler.ts) gathers
 * the facts, acts on the decisions and records them.
 */
import type { RootSide } from '../../protocol/steps.ts';
import { nextWindowStart, windowOpen, type MaintenanceWindow } from './maintenance-window.ts';

/** Settings of the scheduler (`trustroll serve --check-cron --rotate-before --renew-before --window`). */
export interface SchedulerConfig {
  /** When checks run (node-cron expression; default every 10 minutes). */
  checkCron: string;
  /** Start a root rotation once the active root expires within this many seconds (null: never by itself). */
  rotateBeforeS: number | null;
  /** Renew a device certificate once it expires within this many seconds (null: never by itself). */
  renewBeforeS: number | null;
  /** Scheduled work starts only inside one of these (none: any time). */
  windows: readonly MaintenanceWindow[];
  /** Windows and the cron expression in UTC instead of the manager's local time. */
  utc: boolean;
  /** Schedule of a scheduled root rotation. */
  rotateSchedule: 'six-step' | 'batched';
  /** Offline policy of scheduled work: exclude a device offline this long (null: wait for it). */
  excludeOfflineAfterS: number | null;
}

/** Every ten minutes. */
export const DEFAULT_CHECK_CRON = '*/10 * * * *';

/** What the scheduler needs to know about the fleet at a check. */
export interface ScheduleFacts {
  /** When the root expires; with separate roots, the one that expires first. */
  rootNotAfter: Date;
  /** Separate client and server roots only: each root's expiry (absent: one root for both sides). */
  roots?: readonly { side: RootSide; notAfter: Date }[];
  /** `role` tells, with separate roots, which root signs the certificate (a server's: the server root). */
  devices: readonly { id: string; role?: RootSide; notBefore: Date; notAfter: Date; online: boolean | null }[];
  /** The rotation (or renewal) that blocks new work, if any. */
  open: { id: string; schedule: string; status: string } | null;
}

/** Why work starts or is skipped. */
export type DecisionCode = 'due' | 'outside-window' | 'open' | 'capped' | 'short-lived' | 'offline';

/** One decision of a check. */
export interface Decision {
  what: 'rotate' | 'renew';
  outcome: 'start' | 'skip';
  code: DecisionCode;
  reason: string;
  /** Renewal: the devices the decision is about. */
  deviceIds: string[];
  /** Root rotation of a fleet with separate roots: the root it rotates (the one that expires first). */
  side?: RootSide;
}

const DAY = 86_400_000;

/** "180d", "12h", "30m" or "90s". */
export function formatDuration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

const inDays = (at: Date, now: Date) => Math.floor((at.getTime() - now.getTime()) / DAY);
const list = (ids: readonly string[]) => `${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ` and ${ids.length - 5} more` : ''}`;

/** The root that expires first, of a fleet with separate roots (undefined: one root). */
export function firstRootSide(facts: Pick<ScheduleFacts, 'roots'>): RootSide | undefined {
  return facts.roots?.length ? [...facts.roots].sort((a, b) => a.notAfter.getTime() - b.notAfter.getTime())[0]!.side : undefined;
}

/** When the root rotation falls due (null when not configured). */
export function rotationDueAt(facts: Pick<ScheduleFacts, 'rootNotAfter'>, c: SchedulerConfig): Date | null {
  return c.rotateBeforeS === null ? null : new Date(facts.rootNotAfter.getTime() - c.rotateBeforeS * 1000);
}

/** When the first device certificate falls due for renewal (null when not configured or no device). */
export function renewalDueAt(facts: Pick<ScheduleFacts, 'devices'>, c: SchedulerConfig): Date | null {
  if (c.renewBeforeS === null || facts.devices.length === 0) return null;
  const first = facts.devices.reduce((min, d) => Math.min(min, d.notAfter.getTime()), Infinity);
  return new Date(first - c.renewBeforeS * 1000);
}

/**
 * The decisions of a check at `now` (empty: nothing is due). A due root
 * rotation comes first and covers renewals (it gives every device a new
 * certificate). A renewal takes every due device that is online and whose
 * certificate a renewal can extend; the others are named in skip decisions.
 */
export function decide(facts: ScheduleFacts, c: SchedulerConfig, now: Date): Decision[] {
  const window = () => {
    if (windowOpen(c.windows, now, c.utc)) return null;
    const next = nextWindowStart(c.windows, now, c.utc);
    return `outside the maintenance windows (${c.windows.map((w) => w.text).join('; ')}${c.utc ? ' UTC' : ', manager local time'}); the next opens ${next?.toISOString() ?? 'never'}`;
  };
  const blocked = facts.open ? `rotation ${facts.open.id} (${facts.open.schedule}) is ${facts.open.status}; scheduled work waits until it is closed` : null;

  const rotateAt = rotationDueAt(facts, c);
  const side = firstRootSide(facts);
  if (rotateAt && now >= rotateAt) {
    const why = `the ${side ? `${side} ` : ''}root expires ${facts.rootNotAfter.toISOString()} (in ${inDays(facts.rootNotAfter, now)} days), within --rotate-before ${formatDuration(c.rotateBeforeS!)}`;
    const skip = blocked ?? window();
    const bySide = side ? { side } : {};
    if (skip) return [{ what: 'rotate', outcome: 'skip', code: blocked ? 'open' : 'outside-window', reason: `${why}; ${skip}`, deviceIds: [], ...bySide }];
    const what = side ? `a ${side}-root rotation (it also renews every ${side === 'server' ? 'printer' : 'client'} certificate)` : `a ${c.rotateSchedule} rotation (it also renews every device certificate)`;
    return [{ what: 'rotate', outcome: 'start', code: 'due', reason: `${why}: starting ${what}`, deviceIds: [], ...bySide }];
  }
  if (c.renewBeforeS === null) return [];
  const limit = now.getTime() + c.renewBeforeS * 1000;
  const due = facts.devices.filter((d) => d.notAfter.getTime() <= limit).sort((a, b) => a.notAfter.getTime() - b.notAfter.getTime());
  if (due.length === 0) return [];
  const out: Decision[] = [];
  const skip = (code: DecisionCode, devices: typeof due, reason: string) => {
    if (devices.length > 0) out.push({ what: 'renew', outcome: 'skip', code, reason, deviceIds: devices.map((d) => d.id) });
  };
  // A new leaf ends no later than the root that signs it (with separate roots: its side's), so a certificate that already ends with it cannot be extended.
  const signerEnd = (d: (typeof due)[number]) => (facts.roots?.find((r) => r.side === d.role)?.notAfter ?? facts.rootNotAfter).getTime();
  const capped = due.filter((d) => d.notAfter.getTime() >= signerEnd(d) - 1000);
  // A certificate that lives hardly longer than --renew-before would be due again as soon as it is renewed.
  const shortLived = due.filter((d) => !capped.includes(d) && d.notAfter.getTime() - d.notBefore.getTime() <= c.renewBeforeS! * 1000 + DAY);
  const offline = due.filter((d) => !capped.includes(d) && !shortLived.includes(d) && d.online !== true);
  const ready = due.filter((d) => !capped.includes(d) && !shortLived.includes(d) && d.online === true);
  skip('capped', capped, facts.roots?.length
    ? `${capped.length} device certificates (${list(capped.map((d) => d.id))}) expire with the root that signs them; a renewal cannot extend them, that root's rotation does ("trustroll rotate --root client|server", or a --rotate-before that covers it)`
    : `${capped.length} device certificates (${list(capped.map((d) => d.id))}) expire with the root (${facts.rootNotAfter.toISOString()}); a renewal cannot extend them, a root rotation does ("trustroll rotate", or a --rotate-before that covers it)`);
  skip('short-lived', shortLived, `${shortLived.length} device certificates (${list(shortLived.map((d) => d.id))}) live at most a day longer than --renew-before ${formatDuration(c.renewBeforeS)}; a renewed one would be due again at once, so they are left to a root rotation (shorten --renew-before)`);
  skip('offline', offline, `${offline.length} devices due for renewal are not online (${list(offline.map((d) => d.id))}); they are renewed at a later check once they are`);
  if (ready.length > 0) {
    const first = ready[0]!;
    const why = `${ready.length} device certificates expire within --renew-before ${formatDuration(c.renewBeforeS)} (first: ${first.id} on ${first.notAfter.toISOString()}, in ${inDays(first.notAfter, now)} days)`;
    const held = blocked ?? window();
    out.unshift(held
      ? { what: 'renew', outcome: 'skip', code: blocked ? 'open' : 'outside-window', reason: `${why}; ${held}`, deviceIds: ready.map((d) => d.id) }
      : { what: 'renew', outcome: 'start', code: 'due', reason: `${why}: starting one renewal for all of them`, deviceIds: ready.map((d) => d.id) });
  }
  return out;
}
