/**
 * Scheduled rotation and renewal inside `trustroll serve`: a node-cron task
 * (default every 10 minutes) runs a check that decides from the fleet's
 * facts and the injected clock (schedule-decision.ts) whether to start a
 * root rotation or one renewal for every due device, starts it through the
 * service like an operator would (actor `scheduler`), and records every
 * decision in the audit log (a skip that repeats unchanged is recorded once,
 * until the decision changes). Its view (settings, due dates, last
 * decisions) is served by GET /api/schedule and kept in the manager
 * database for `trustroll status`.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { AuditInput } from '../audit/audit-log.ts';
import { withoutCode } from '../../protocol/errors.ts';
import { ManagerError } from '../errors.ts';
import type { SchedulerDecisionView, SchedulerView } from '../http/api-types.ts';
import { nextWindowStart, parseWindow, windowOpen } from './maintenance-window.ts';
import { decide, DEFAULT_CHECK_CRON, firstRootSide, formatDuration, renewalDueAt, rotationDueAt, type Decision, type ScheduleFacts, type SchedulerConfig } from './schedule-decision.ts';

export { DEFAULT_CHECK_CRON, type SchedulerConfig } from './schedule-decision.ts';

/** The actor of everything the scheduler starts and records. */
export const SCHEDULER_ACTOR = 'scheduler';
const KEEP_DECISIONS = 20;

/** Build and check the settings (E_SERVICE_CONFIG names the option to fix). */
export function schedulerConfig(o: { checkCron?: string; rotateBeforeS?: number | null; renewBeforeS?: number | null; windows?: readonly string[]; utc?: boolean; rotateSchedule?: string; excludeOfflineAfterS?: number | null }): SchedulerConfig {
  const checkCron = o.checkCron ?? DEFAULT_CHECK_CRON;
  if (!cron.validate(checkCron)) throw new ManagerError('E_SERVICE_CONFIG', `--check-cron ${JSON.stringify(checkCron)} is not a cron expression; use five fields (minute hour day month weekday, e.g. "*/10 * * * *") or six with seconds first`);
  const schedule = o.rotateSchedule ?? 'six-step';
  if (schedule !== 'six-step' && schedule !== 'batched') throw new ManagerError('E_SERVICE_CONFIG', `--rotate-schedule ${JSON.stringify(schedule)}: use six-step or batched`);
  for (const [flag, v] of [['--rotate-before', o.rotateBeforeS], ['--renew-before', o.renewBeforeS], ['--scheduled-exclude-offline-after', o.excludeOfflineAfterS]] as const) {
    if (v !== undefined && v !== null && (!Number.isSafeInteger(v) || v < 1)) throw new ManagerError('E_SERVICE_CONFIG', `${flag} must be a positive duration such as 30d, 12h or 90m`);
  }
  return {
    checkCron, rotateBeforeS: o.rotateBeforeS ?? null, renewBeforeS: o.renewBeforeS ?? null, windows: (o.windows ?? []).map(parseWindow),
    utc: !!o.utc, rotateSchedule: schedule, excludeOfflineAfterS: o.excludeOfflineAfterS ?? null,
  };
}

/** True when the settings ask for any scheduled work. */
export function schedulerEnabled(c: SchedulerConfig): boolean {
  return c.rotateBeforeS !== null || c.renewBeforeS !== null;
}

/**
 * What the scheduler needs from the service around it, all it knows of it
 * (scheduler-host.ts builds one from a ManagerService; tests give their own).
 */
export interface SchedulerHost {
  facts(): ScheduleFacts;
  startRotation(schedule: string, actor: string, opts: { excludeOfflineAfterS: number | null }): Promise<{ id: string }>;
  startRenewal(deviceIds: readonly string[], actor: string, opts: { excludeOfflineAfterS: number | null }): Promise<{ id: string }>;
  audit(e: AuditInput): void;
  /** Keep the latest view durably (for `trustroll status`). */
  save?(view: SchedulerView): void;
}

/** Runs checks on the cron expression and on demand (`tick`, for tests with a simulated clock). */
export class Scheduler {
  private task: ScheduledTask | null = null;
  private busy = false;
  private lastCheck: Date | null = null;
  private readonly decisions: SchedulerDecisionView[] = [];
  /** Per decision kind, what was last recorded in the audit log (an unchanged skip is recorded once). */
  private readonly recorded = new Map<string, string>();
  private readonly log: Logger;

  constructor(readonly config: SchedulerConfig, private readonly host: SchedulerHost, private readonly o: { clock: Clock; logger: Logger }) {
    this.log = o.logger.child({ component: 'scheduler' });
  }

  /** Start the cron task (checks at the configured times, by the injected clock) and record the settings. */
  start(): void {
    if (this.task) return;
    this.task = cron.schedule(this.config.checkCron, () => this.check(), { name: 'trustroll-scheduler', noOverlap: true, timezone: this.config.utc ? 'UTC' : undefined });
    const view = this.view(this.o.clock.now());
    this.host.save?.(view);
    this.host.audit({ actor: SCHEDULER_ACTOR, action: 'scheduler.started', detail: { ...view.config, nextCheck: view.nextCheck } });
    this.log.info('scheduler started', { checkCron: this.config.checkCron, nextCheck: view.nextCheck, rotateBefore: view.config.rotateBefore, renewBefore: view.config.renewBefore, windows: view.config.windows });
  }

  /** Stop the cron task. */
  async stop(): Promise<void> {
    const task = this.task;
    this.task = null;
    await task?.destroy();
  }

  /** One check now (what the cron task runs); failures are logged, never thrown into the timer. */
  async check(): Promise<void> {
    try {
      await this.tick(this.o.clock.now());
    } catch (err) {
      this.log.error('scheduled check failed; the next check tries again', { code: (err as ManagerError).code ?? 'E_INTERNAL', reason: (err as Error).message });
    }
  }

  /** Decide at `now` and act: start what is due, record every decision; returns this check's decisions. */
  async tick(now: Date): Promise<SchedulerDecisionView[]> {
    if (this.busy) return [];
    this.busy = true;
    try {
      const decisions = decide(this.host.facts(), this.config, now);
      const out: SchedulerDecisionView[] = [];
      for (const d of decisions) out.push(d.outcome === 'start' ? await this.act(d, now) : this.note(d, now));
      const keys = new Set(decisions.map(keyOf));
      for (const k of [...this.recorded.keys()]) if (!keys.has(k)) this.recorded.delete(k);
      this.lastCheck = now;
      this.decisions.unshift(...out);
      this.decisions.splice(KEEP_DECISIONS);
      this.host.save?.(this.view(now));
      return out;
    } finally {
      this.busy = false;
    }
  }

  private async act(d: Decision, now: Date): Promise<SchedulerDecisionView> {
    const detail = { what: d.what, reason: d.reason, devices: d.deviceIds.length, deviceIds: d.deviceIds.slice(0, 50) };
    this.host.audit({ actor: SCHEDULER_ACTOR, action: 'scheduler.start', code: null, detail });
    this.recorded.set(keyOf(d), fingerprint(d));
    const opts = { excludeOfflineAfterS: this.config.excludeOfflineAfterS };
    try {
      const started = d.what === 'rotate'
        ? await this.host.startRotation(d.side ? `${d.side}-root` : this.config.rotateSchedule, SCHEDULER_ACTOR, opts)
        : await this.host.startRenewal(d.deviceIds, SCHEDULER_ACTOR, opts);
      this.log.info(d.what === 'rotate' ? 'scheduled root rotation started' : 'scheduled renewal started', { rotationId: started.id, reason: d.reason, devices: d.deviceIds.length });
      return view(d, now, 'start', d.code, d.reason, started.id);
    } catch (err) {
      const code = (err as ManagerError).code ?? 'E_INTERNAL';
      const message = withoutCode((err as Error).message);
      this.host.audit({ actor: SCHEDULER_ACTOR, action: 'scheduler.refused', code, detail: { what: d.what, message } });
      this.log.error('scheduled work was refused; the next check tries again', { what: d.what, code, reason: message });
      this.recorded.delete(keyOf(d));
      return view(d, now, 'refused', code, message, null);
    }
  }

  private note(d: Decision, now: Date): SchedulerDecisionView {
    const fp = fingerprint(d);
    if (this.recorded.get(keyOf(d)) !== fp) {
      this.recorded.set(keyOf(d), fp);
      this.host.audit({ actor: SCHEDULER_ACTOR, action: 'scheduler.skip', code: null, detail: { what: d.what, why: d.code, reason: d.reason, devices: d.deviceIds.length, deviceIds: d.deviceIds.slice(0, 50) } });
      this.log.info('scheduled work skipped', { what: d.what, why: d.code, reason: d.reason });
    }
    return view(d, now, 'skip', d.code, d.reason, null);
  }

  /** Settings, due dates, the window at `now` (default: the scheduler's clock), and the last decisions (newest first). */
  view(now: Date = this.o.clock.now()): SchedulerView {
    const c = this.config;
    const facts = this.host.facts();
    const rotateAt = rotationDueAt(facts, c);
    const renewAt = renewalDueAt(facts, c);
    const limit = c.renewBeforeS === null ? null : now.getTime() + c.renewBeforeS * 1000;
    const next = this.task?.getNextRun() ?? null;
    return {
      enabled: schedulerEnabled(c),
      config: {
        checkCron: c.checkCron, rotateBefore: c.rotateBeforeS === null ? null : formatDuration(c.rotateBeforeS), renewBefore: c.renewBeforeS === null ? null : formatDuration(c.renewBeforeS),
        windows: c.windows.map((w) => w.text), timeZone: c.utc ? 'UTC' : 'local', rotateSchedule: c.rotateSchedule,
        excludeOfflineAfter: c.excludeOfflineAfterS === null ? null : formatDuration(c.excludeOfflineAfterS),
      },
      lastCheck: this.lastCheck?.toISOString() ?? null,
      nextCheck: next ? next.toISOString() : null,
      window: { open: windowOpen(c.windows, now, c.utc), nextStart: nextWindowStart(c.windows, now, c.utc)?.toISOString() ?? null },
      rotation: { rootNotAfter: facts.rootNotAfter.toISOString(), dueAt: rotateAt?.toISOString() ?? null, ...(facts.roots?.length ? { root: firstRootSide(facts) } : {}) },
      renewal: { dueAt: renewAt?.toISOString() ?? null, dueNow: limit === null ? 0 : facts.devices.filter((d) => d.notAfter.getTime() <= limit).length },
      open: facts.open,
      decisions: [...this.decisions],
      updatedAt: now.toISOString(),
    };
  }
}

const keyOf = (d: Decision) => `${d.what}:${d.code}`;
const fingerprint = (d: Decision) => `${d.outcome}:${d.code}:${d.deviceIds.join(',')}`;

function view(d: Decision, now: Date, outcome: SchedulerDecisionView['outcome'], code: string, reason: string, rotationId: string | null): SchedulerDecisionView {
  return { at: now.toISOString(), what: d.what, outcome, code, reason, rotationId, devices: d.deviceIds.length, deviceIds: d.deviceIds.slice(0, 20) };
}

/** The `trustroll status` lines for the scheduler (`live`: a service runs on the data folder now). */
export function describeSchedulerView(v: SchedulerView | null, live: boolean): string {
  if (!v || !v.enabled) return 'schedule: no scheduled rotation or renewal (trustroll serve --rotate-before 180d --renew-before 30d [--window "Sat 01:00-05:00"])';
  const c = v.config;
  const last = v.decisions[0];
  return [
    `schedule: ${live ? 'active' : `not running (as of ${v.updatedAt})`}; checks "${c.checkCron}"${v.nextCheck && live ? `, next ${v.nextCheck}` : ''}; windows ${c.windows.length ? `${c.windows.join('; ')} (${c.timeZone})` : 'none (any time)'}`,
    `  root rotation: ${c.rotateBefore ? `due ${v.rotation.dueAt} (${v.rotation.root ? `the ${v.rotation.root} root, the first to expire,` : 'root'} expires ${v.rotation.rootNotAfter}, --rotate-before ${c.rotateBefore}, ${v.rotation.root ? `${v.rotation.root}-root` : c.rotateSchedule})` : 'not scheduled'}`,
    `  renewal: ${c.renewBefore ? `next due ${v.renewal.dueAt ?? 'never'} (--renew-before ${c.renewBefore}; ${v.renewal.dueNow} due now)` : 'not scheduled'}`,
    `  last check: ${v.lastCheck ?? 'none yet'}${v.lastCheck && (!last || v.lastCheck > last.at) ? ': nothing due' : ''}`,
    `  last decision: ${last ? `${last.at} ${last.what} ${last.outcome}${last.outcome === 'skip' ? ` (${last.code})` : ''}${last.rotationId ? ` ${last.rotationId}` : ''}: ${last.reason}` : 'none yet'}`,
  ].join('\n');
}
