/**
 * The systemd notification pieces on their own (agent/sd-notify.ts,
 * agent/run-process.ts): the watchdog interval from $WATCHDOG_USEC and
 * $WATCHDOG_PID, a ping skipped while the link is wedged or after the event
 * loop was blocked, and `run`'s exit code for each cause.
 */
import { strict as assert } from 'node:assert';
import { RUN_EXIT, logLevelOf, onJournal, runExitCode } from '../../agent/run-process.ts';
import { startWatchdog, systemdNotifier, watchdogIntervalMs } from '../../agent/sd-notify.ts';
import { AgentError } from '../../agent/errors.ts';
import { HalError } from '../../hal/errors.ts';
import { createLogger } from '../../protocol/log.ts';

describe('systemd notification and run exit codes', () => {
  const logger = createLogger({ level: 'error' });

  it('feeds the watchdog every WATCHDOG_USEC/2, not for another process, not without the variable', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 7), 15_000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 7), 15_000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '8' }, 7), null);
    assert.equal(watchdogIntervalMs({}, 7), null);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 7), null);
    assert.equal(systemdNotifier(logger, {}), null, 'no NOTIFY_SOCKET, no notifier');
  });

  it('skips the ping while the link is wedged or after the event loop was blocked, and says so once', async () => {
    const sent: string[] = [];
    const lines: string[] = [];
    const notifier = systemdNotifier(createLogger({ sink: (l) => lines.push(l) }), { NOTIFY_SOCKET: '/nowhere' }, async (args) => { sent.push(args.join(' ')); })!;
    let healthy = true;
    let clock = 0;
    let block = 0;
    const stop = startWatchdog({ intervalMs: 20, notifier, healthy: () => healthy, logger: createLogger({ sink: (l) => lines.push(l) }), now: () => (clock += 20 + block) });
    try {
      await new Promise((r) => setTimeout(r, 110));
      const fed = sent.length;
      assert.ok(fed >= 3, `${fed} pings`);
      healthy = false;
      await new Promise((r) => setTimeout(r, 110));
      assert.equal(sent.length, fed, 'no ping while the link is wedged');
      healthy = true;
      block = 25;
      await new Promise((r) => setTimeout(r, 110));
      assert.equal(sent.length, fed, 'no ping after ticks later than one interval');
      block = 0;
      await new Promise((r) => setTimeout(r, 110));
      assert.ok(sent.length > fed, 'fed again');
      assert.ok(sent.every((s) => s === 'WATCHDOG=1'));
      assert.equal(lines.filter((l) => l.includes('watchdog not fed')).length, 2, lines.join('\n'));
    } finally {
      stop();
    }
  });

  it('maps each cause to its exit code: 78 configuration, 77 permission, 75 transient, 1 unexpected', () => {
    assert.equal(runExitCode(new AgentError('E_AGENT_CONFIG', 'setting "role"')), RUN_EXIT.config);
    assert.equal(runExitCode(new AgentError('E_AGENT_NOT_PROVISIONED', 'x')), 78);
    assert.equal(runExitCode(new Error('E_STORE_REGRESSED: older')), 78);
    assert.equal(runExitCode(new HalError('E_HAL_PERMISSION', 'records')), RUN_EXIT.noperm);
    assert.equal(runExitCode(Object.assign(new Error('open'), { code: 'EACCES' })), 77);
    assert.equal(runExitCode(new HalError('E_HAL_TOKEN_MISSING', 'slot')), RUN_EXIT.tempfail);
    assert.equal(runExitCode(new Error('E_STORE_IO: fsync')), 75);
    assert.equal(runExitCode(Object.assign(new Error('listen'), { code: 'EADDRINUSE' })), 75);
    assert.equal(runExitCode(new TypeError('x is undefined')), RUN_EXIT.unexpected);
  });

  it('log level: --log-level, then agent.json, then TRUSTROLL_LOG, then info; journal only for the very stream', () => {
    assert.equal(logLevelOf('error', 'debug', { TRUSTROLL_LOG: 'warn' }), 'error');
    assert.equal(logLevelOf(undefined, 'debug', { TRUSTROLL_LOG: 'warn' }), 'debug');
    assert.equal(logLevelOf(undefined, 'loud', { TRUSTROLL_LOG: 'warn' }), 'warn');
    assert.equal(logLevelOf(undefined, undefined, {}), 'info');
    assert.equal(onJournal(2, {}), false);
    assert.equal(onJournal(2, { JOURNAL_STREAM: '0:0' }), false);
  });
});
