import { strict as assert } from 'node:assert';
import { insideWindow, nextWindowStart, parseWindow, windowOpen } from '../../manager/service/maintenance-window.ts';
import { decide, formatDuration, type ScheduleFacts } from '../../manager/service/schedule-decision.ts';
import { schedulerConfig } from '../../manager/service/scheduler.ts';
import { ManualClock } from '../../protocol/clock.ts';

const DAY = 86_400_000;
const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;
/** Tuesday 10:00 UTC and the Saturday after it, 02:00 UTC. */
const TUESDAY = new Date('2027-01-05T10:00:00Z');
const SATURDAY = new Date('2027-01-09T02:00:00Z');

describe('scheduler: maintenance windows', () => {
  it('parses day names, lists, ranges and daily windows; says what is wrong otherwise', () => {
    assert.deepEqual(parseWindow('Sat 01:00-05:00'), { text: 'Sat 01:00-05:00', days: [6], start: 60, end: 300 });
    assert.deepEqual(parseWindow(' sat,SUN  2:00 - 4:30 ').days, [0, 6]);
    assert.deepEqual(parseWindow('Mon-Fri 22:00-02:00'), { text: 'Mon-Fri 22:00-02:00', days: [1, 2, 3, 4, 5], start: 1320, end: 120 });
    assert.deepEqual(parseWindow('Fri-Mon 00:00-24:00').days, [0, 1, 5, 6]);
    assert.deepEqual(parseWindow('daily 02:00-04:00').days, [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(parseWindow('Saturday 01:00-05:00').days, [6]);
    for (const bad of ['Sat', 'Sat 1-5', 'Caturday 01:00-05:00', 'Sat 25:00-26:00', 'Sat 01:60-05:00', 'Sat 24:00-05:00', 'Mon--Fri 01:00-02:00', '01:00-05:00']) {
      assert.throws(() => parseWindow(bad), (err: Error & { code?: string }) => err.code === 'E_SERVICE_CONFIG' && err.message.includes(JSON.stringify(bad)) && /e\.g\. "Sat 01:00-05:00"/.test(err.message), bad);
    }
  });

  it('is open inside a window only, across midnight for overnight windows, and always without windows', () => {
    const sat = parseWindow('Sat 01:00-05:00');
    assert.equal(insideWindow(sat, TUESDAY, true), false);
    assert.equal(insideWindow(sat, SATURDAY, true), true);
    assert.equal(insideWindow(sat, new Date('2027-01-09T05:00:00Z'), true), false, 'the end is exclusive');
    assert.equal(insideWindow(sat, new Date('2027-01-09T00:59:00Z'), true), false);
    const night = parseWindow('Fri 22:00-02:00');
    assert.equal(insideWindow(night, new Date('2027-01-08T23:30:00Z'), true), true, 'Friday evening');
    assert.equal(insideWindow(night, new Date('2027-01-09T01:59:00Z'), true), true, 'early Saturday');
    assert.equal(insideWindow(night, new Date('2027-01-09T02:00:00Z'), true), false);
    assert.equal(insideWindow(night, new Date('2027-01-08T01:00:00Z'), true), false, 'early Friday belongs to Thursday');
    assert.equal(windowOpen([], TUESDAY, true), true);
    assert.equal(windowOpen([sat, parseWindow('Tue 09:00-11:00')], TUESDAY, true), true);
  });

  it('names when the next window opens (local time or UTC)', () => {
    const sat = parseWindow('Sat 01:00-05:00');
    assert.equal(nextWindowStart([sat], TUESDAY, true)?.toISOString(), '2027-01-09T01:00:00.000Z');
    assert.equal(nextWindowStart([sat], SATURDAY, true), SATURDAY, 'open now');
    assert.equal(nextWindowStart([sat], new Date('2027-01-09T06:00:00Z'), true)?.toISOString(), '2027-01-16T01:00:00.000Z');
    assert.equal(nextWindowStart([], TUESDAY, true), null);
    // The manager's local time: the same wall-clock window, whatever the machine's zone.
    const localTuesday = new Date(2027, 0, 5, 10, 0);
    assert.equal(insideWindow(sat, localTuesday, false), false);
    assert.equal(insideWindow(sat, new Date(2027, 0, 9, 2, 0), false), true);
    assert.equal(nextWindowStart([sat], localTuesday, false)?.getTime(), new Date(2027, 0, 9, 1, 0).getTime());
  });
});

describe('scheduler: decisions over a simulated clock', () => {
  const config = (o: Parameters<typeof schedulerConfig>[0] = {}) => schedulerConfig({ rotateBeforeS: 180 * 86_400, renewBeforeS: 30 * 86_400, windows: ['Sat 01:00-05:00'], utc: true, ...o });
  /** The root expires in 170 days of Tuesday 10:00; devices' certificates expire in `days`. */
  const facts = (now: Date, o: { rootDays?: number; devices?: [string, number, boolean | null][]; lifetimeDays?: number; open?: ScheduleFacts['open'] } = {}): ScheduleFacts => ({
    rootNotAfter: new Date(TUESDAY.getTime() + (o.rootDays ?? 170) * DAY),
    devices: (o.devices ?? []).map(([id, days, online]) => {
      const notAfter = new Date(now.getTime() + days * DAY);
      return { id, role: id.startsWith('srv') ? 'server' as const : 'client' as const, notAfter, notBefore: new Date(notAfter.getTime() - (o.lifetimeDays ?? 730) * DAY), online };
    }),
    open: o.open ?? null,
  });

  it('a root that expires in 170 days with --rotate-before 180d: skipped outside the window on Tuesday, started on Saturday 02:00', () => {
    const clock = new ManualClock(TUESDAY);
    const [tue] = decide(facts(clock.now()), config(), clock.now());
    assert.equal(tue?.what, 'rotate');
    assert.equal(tue?.outcome, 'skip');
    assert.equal(tue?.code, 'outside-window');
    assert.match(tue!.reason, /in 170 days\), within --rotate-before 180d; outside the maintenance windows \(Sat 01:00-05:00 UTC\); the next opens 2027-01-09T01:00:00.000Z/);
    clock.set(SATURDAY);
    const sat = decide(facts(clock.now()), config(), clock.now());
    assert.deepEqual(sat.map((d) => [d.what, d.outcome, d.code]), [['rotate', 'start', 'due']]);
    assert.match(sat[0]!.reason, /starting a six-step rotation/);
    assert.match(decide(facts(clock.now()), config({ rotateSchedule: 'batched' }), clock.now())[0]!.reason, /batched/);
    // Not due yet with --rotate-before 160d; never without --rotate-before.
    assert.deepEqual(decide(facts(clock.now()), config({ rotateBeforeS: 160 * 86_400 }), clock.now()), []);
    assert.deepEqual(decide(facts(clock.now()), config({ rotateBeforeS: null }), clock.now()), []);
  });

  it('never starts while a rotation is open (nothing twice for the same reason), and a due root covers due renewals', () => {
    const open = { id: 'rot-1', schedule: 'six-step', status: 'running' };
    const [d] = decide(facts(SATURDAY, { open, devices: [['cli-1', 3, true]] }), config(), SATURDAY);
    assert.deepEqual([d?.what, d?.outcome, d?.code], ['rotate', 'skip', 'open']);
    assert.match(d!.reason, /rotation rot-1 \(six-step\) is running; scheduled work waits until it is closed/);
    assert.equal(decide(facts(SATURDAY, { devices: [['cli-1', 3, true]] }), config(), SATURDAY).length, 1, 'one rotation, no separate renewal');
  });

  it('renews every due device that is online in one renewal, inside the window only; names those it leaves out and why', () => {
    const devices: [string, number, boolean | null][] = [['srv-1', 20, true], ['cli-1', 5, true], ['cli-2', 40, true], ['cli-3', 10, false], ['cli-4', 12, null]];
    const root = { rootDays: 3000 };
    const tue = decide(facts(TUESDAY, { ...root, devices }), config(), TUESDAY);
    assert.deepEqual(tue.map((d) => [d.what, d.outcome, d.code, d.deviceIds]), [
      ['renew', 'skip', 'outside-window', ['cli-1', 'srv-1']],
      ['renew', 'skip', 'offline', ['cli-3', 'cli-4']],
    ]);
    assert.match(tue[0]!.reason, /2 device certificates expire within --renew-before 30d \(first: cli-1 on .*, in 5 days\)/);
    const sat = decide(facts(SATURDAY, { ...root, devices }), config(), SATURDAY);
    assert.deepEqual(sat.map((d) => [d.what, d.outcome, d.code, d.deviceIds]), [
      ['renew', 'start', 'due', ['cli-1', 'srv-1']],
      ['renew', 'skip', 'offline', ['cli-3', 'cli-4']],
    ]);
    assert.match(sat[1]!.reason, /not online \(cli-3, cli-4\); they are renewed at a later check/);
    assert.deepEqual(decide(facts(SATURDAY, { ...root, devices: [['cli-2', 40, true]] }), config(), SATURDAY), [], 'nothing due');
    assert.deepEqual(decide(facts(SATURDAY, { ...root, devices }), config({ renewBeforeS: null }), SATURDAY), []);
    assert.equal(decide(facts(SATURDAY, { ...root, devices }), config({ windows: [] }), TUESDAY)[0]?.outcome, 'start', 'no window: any time');
  });

  it('leaves certificates a renewal cannot extend to a root rotation: ending with the root, or living no longer than --renew-before', () => {
    const now = SATURDAY;
    const f = facts(now, { rootDays: 200, devices: [['cli-1', 10, true]] });
    const capped = { ...f, devices: [{ ...f.devices[0]!, notAfter: f.rootNotAfter, id: 'cli-9' }] };
    const [c] = decide(capped, config({ rotateBeforeS: 30 * 86_400, renewBeforeS: 200 * 86_400 }), now);
    assert.deepEqual([c?.outcome, c?.code, c?.deviceIds], ['skip', 'capped', ['cli-9']]);
    assert.match(c!.reason, /expire with the root .*a root rotation does \("trustroll rotate"/);
    const [s] = decide(facts(now, { rootDays: 3000, devices: [['cli-1', 10, true]], lifetimeDays: 20 }), config(), now);
    assert.deepEqual([s?.outcome, s?.code], ['skip', 'short-lived']);
    assert.match(s!.reason, /live at most a day longer than --renew-before 30d/);
  });

  it('separate roots: the root that expires first is rotated with its own schedule; certificates are renewed, each capped by the root of its side', () => {
    const separate = (serverDays: number, clientDays: number, o: Parameters<typeof facts>[1] = {}): ScheduleFacts => {
      const roots = [{ side: 'server' as const, notAfter: new Date(TUESDAY.getTime() + serverDays * DAY) }, { side: 'client' as const, notAfter: new Date(TUESDAY.getTime() + clientDays * DAY) }];
      return { ...facts(SATURDAY, o), rootNotAfter: new Date(Math.min(...roots.map((r) => r.notAfter.getTime()))), roots };
    };
    const [client] = decide(separate(900, 170), config(), SATURDAY);
    assert.deepEqual([client?.what, client?.outcome, client?.code, client?.side], ['rotate', 'start', 'due', 'client']);
    assert.match(client!.reason, /^the client root expires .* within --rotate-before 180d: starting a client-root rotation \(it also renews every client certificate\)$/);
    const [server] = decide(separate(170, 900), config(), TUESDAY);
    assert.deepEqual([server?.outcome, server?.code, server?.side], ['skip', 'outside-window', 'server']);
    assert.match(server!.reason, /^the server root expires/);
    // Neither root due, certificates due: one renewal for both sides (each under its own root).
    const renew = decide(separate(900, 900, { devices: [['cli-1', 5, true], ['srv-1', 9, true]] }), config(), SATURDAY);
    assert.deepEqual(renew.map((d) => [d.what, d.outcome, d.code, d.deviceIds]), [['renew', 'start', 'due', ['cli-1', 'srv-1']]]);
    // A client certificate that already ends with the client root cannot be extended; the server's, under a later server root, can.
    const capped = separate(900, 190, { devices: [['cli-1', 190 + 4, true], ['srv-1', 9, true]] });
    capped.devices = capped.devices.map((d) => (d.id === 'cli-1' ? { ...d, notAfter: capped.roots!.find((r) => r.side === 'client')!.notAfter } : d));
    const split = decide(capped, { ...config(), rotateBeforeS: 100 * 86_400, renewBeforeS: 200 * 86_400 }, SATURDAY);
    assert.deepEqual(split.map((d) => [d.what, d.outcome, d.code, d.deviceIds]), [['renew', 'start', 'due', ['srv-1']], ['renew', 'skip', 'capped', ['cli-1']]]);
    assert.match(split[1]!.reason, /expire with the root that signs them; .*"trustroll rotate --root client\|server"/);
  });

  it('checks its settings: cron expression, schedule and durations (E_SERVICE_CONFIG names the option)', () => {
    assert.equal(schedulerConfig({}).checkCron, '*/10 * * * *');
    assert.equal(schedulerConfig({ checkCron: '*/5 * * * * *' }).checkCron, '*/5 * * * * *');
    assert.throws(() => schedulerConfig({ checkCron: 'every ten minutes' }), (err: Error) => code('E_SERVICE_CONFIG')(err) && /--check-cron "every ten minutes"/.test(err.message));
    assert.throws(() => schedulerConfig({ rotateSchedule: 'naive' }), (err: Error) => code('E_SERVICE_CONFIG')(err) && /--rotate-schedule "naive": use six-step or batched/.test(err.message));
    assert.throws(() => schedulerConfig({ renewBeforeS: 0 }), (err: Error) => code('E_SERVICE_CONFIG')(err) && /--renew-before/.test(err.message));
    assert.throws(() => schedulerConfig({ windows: ['Sat'] }), code('E_SERVICE_CONFIG'));
    assert.deepEqual([formatDuration(180 * 86_400), formatDuration(7200), formatDuration(90), formatDuration(600)], ['180d', '2h', '90s', '10m']);
  });
});
