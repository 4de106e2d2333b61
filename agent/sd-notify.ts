/**
 * systemd's service notification (sd_notify(3)) and watchdog, without a
 * native addon. The protocol is one datagram of `KEY=VALUE` lines to the
 * AF_UNIX SOCK_DGRAM socket named by $NOTIFY_SOCKET; Node has no AF_UNIX
 * datagram sockets (node:dgram is UDP only, node:net streams only), so
 * each message is sent by `systemd-notify`, which ships with systemd.
 * Because that helper is a child of the agent, not its main process, the
 * unit says NotifyAccess=all; the helper waits (BARRIER=1, systemd 246 and
 * later) until systemd has read the message, so the message is never lost
 * to the helper exiting first. Costs one short-lived process per message:
 * READY=1 once, WATCHDOG=1 every WatchdogSec/2. child_process is loaded
 * only when $NOTIFY_SOCKET is set (image/README.md, "Memory").
 */
import type { Logger } from '../protocol/log.ts';

/** Sends one notification: `args` are systemd-notify's arguments (`--ready`, `WATCHDOG=1`). */
export type NotifySend = (args: string[]) => Promise<void>;

/** What the agent tells systemd. */
export interface Notifier {
  ready(status: string): Promise<void>;
  watchdog(): Promise<void>;
  status(text: string): Promise<void>;
}

/** The helper's name (PATH lookup; the unit's default PATH holds /usr/bin and /bin). */
export const SYSTEMD_NOTIFY = 'systemd-notify';

/** Runs `systemd-notify` with NOTIFY_SOCKET from `env`; resolves once it exited (its failure is logged, never thrown). */
function helper(env: NodeJS.ProcessEnv, logger: Logger, bin: string): NotifySend {
  return async (args) => {
    const { spawn } = await import('node:child_process');
    await new Promise<void>((resolve) => {
      const p = spawn(bin, args, { stdio: 'ignore', env: { PATH: env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: env.NOTIFY_SOCKET } });
      p.once('error', (err) => { logger.warn('systemd notification not sent', { helper: bin, reason: err.message }); resolve(); });
      p.once('exit', (code) => { if (code) logger.warn('systemd notification not sent', { helper: bin, exitCode: code, args }); resolve(); });
    });
  };
}

/** The notifier for this process, or null when systemd did not ask for notifications ($NOTIFY_SOCKET unset). */
export function systemdNotifier(logger: Logger, env: NodeJS.ProcessEnv = process.env, send?: NotifySend): Notifier | null {
  if (!env.NOTIFY_SOCKET) return null;
  const run = send ?? helper(env, logger, env.TRUSTROLL_SYSTEMD_NOTIFY || SYSTEMD_NOTIFY);
  return {
    ready: (status) => run(['--ready', `--pid=${process.pid}`, `--status=${status}`]),
    watchdog: () => run(['WATCHDOG=1']),
    status: (text) => run([`--status=${text}`]),
  };
}

/**
 * How often to feed the watchdog: half of $WATCHDOG_USEC (sd_watchdog_enabled(3)),
 * or null when no watchdog is set or it is meant for another process ($WATCHDOG_PID).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

/** What the watchdog asks before each ping. */
export interface WatchdogOptions {
  intervalMs: number;
  notifier: Notifier;
  /** True while the link is up or on its way up (not wedged); a false answer skips the ping. */
  healthy: () => boolean;
  logger: Logger;
  now?: () => number;
}

/**
 * Feed systemd's watchdog every `intervalMs` while the agent is healthy: the
 * timer firing at all shows the event loop runs, a tick that came later than
 * one whole interval shows it was blocked (that ping is skipped), and
 * `healthy()` vouches for the link. A hung agent stops pinging and systemd
 * restarts it after WatchdogSec. Returns the stop function.
 */
export function startWatchdog(o: WatchdogOptions): () => void {
  const now = o.now ?? (() => performance.now());
  let last = now();
  let skipped = '';
  const tick = () => {
    const t = now();
    const lag = t - last - o.intervalMs;
    last = t;
    const why = lag > o.intervalMs ? `event loop blocked for ${Math.round(lag)} ms` : o.healthy() ? '' : 'link wedged: down with no reconnect pending';
    if (why !== skipped) {
      if (why) o.logger.warn('watchdog not fed', { reason: why });
      else if (skipped) o.logger.info('watchdog fed again');
      skipped = why;
    }
    if (!why) void o.notifier.watchdog();
  };
  const timer = setInterval(tick, o.intervalMs);
  timer.unref();
  void o.notifier.watchdog();
  return () => clearInterval(timer);
}
