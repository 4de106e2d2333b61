/**
 * `trustroll-agent run` under systemd (Type=notify, WatchdogSec=): tells
 * systemd READY=1 once the device's command channel is up (the broker
 * link, or a relayed device's first exchange with its relay) and feeds the
 * watchdog while the event loop runs and the link is up or reconnecting
 * (agent/sd-notify.ts). Outside systemd ($NOTIFY_SOCKET unset) it does
 * nothing and loads nothing.
 */
import type { RunningDevice } from './runtime.ts';
import { startWatchdog, systemdNotifier, watchdogIntervalMs } from './sd-notify.ts';
import type { Logger } from '../protocol/log.ts';

/** What `run` does with the supervision: hand it the started device, stop it before the device stops. */
export interface RunSupervision {
  attach(device: RunningDevice): void;
  stop(): void;
}

/** Start the supervision at once (the watchdog runs from the start, before the device is up), or a no-op outside systemd. */
export function runSupervised(logger: Logger, env: NodeJS.ProcessEnv = process.env): RunSupervision {
  const notifier = systemdNotifier(logger, env);
  if (!notifier) return { attach: () => undefined, stop: () => undefined };
  let device: RunningDevice | null = null;
  const every = watchdogIntervalMs(env);
  // While the device starts (HAL, store, first connect) only the event loop is checked.
  const stopWatchdog = every ? startWatchdog({ intervalMs: every, notifier, logger, healthy: () => device?.linkAlive() ?? true }) : () => undefined;
  let off = (): unknown => undefined;
  let ready = false;
  return {
    attach: (d) => {
      device = d;
      const up = () => {
        if (ready) return;
        ready = true;
        logger.info('systemd notified: ready', { deviceId: d.deviceId });
        void notifier.ready(`linked (${d.deviceId})`);
      };
      off = d.onLinkChange((isUp) => { if (isUp) up(); });
      void d.linked.then((linked) => { if (linked) up(); else if (!ready) void notifier.status('not linked yet; retrying'); });
    },
    stop: () => {
      off();
      stopWatchdog();
    },
  };
}
