/**
 * The checks `status` and `selftest` both run on a configured device, in
 * the order a technician reads them: the configuration (and whether the
 * running agent uses it), write permissions, the agent itself, the link
 * files, the broker link and the refused commands. `status` takes the link
 * from the running agent's health file only; `selftest` probes the broker
 * when no agent runs (link-check.ts).
 */
import { configDigest } from '../config-digest.ts';
import { healthFilePath, readHealth } from '../health-file.ts';
import type { ReadOnlyDevice } from '../read-only.ts';
import { RefusalLog, type RefusedCommand } from '../refusals.ts';
import { agentCheck, configCheck, refusalCheck } from './agent-checks.ts';
import { linkCheck, linkFilesCheck, runningLinkCheck } from './link-check.ts';
import { permissionsCheck } from './permission-check.ts';
import type { Check } from './report.ts';

/** How the link is checked: from the health file only (status), or with a broker probe when no agent runs (selftest). */
export type LinkMode = { probe: false } | { probe: true; timeoutMs: number };

/** The last refused command the device keeps in its HAL record store, or the error reading it. */
async function lastRefusal(dev: ReadOnlyDevice): Promise<{ refused: RefusedCommand | null; error: Error | null }> {
  if (!dev.hal) return { refused: null, error: null };
  try {
    return { refused: await RefusalLog.read(dev.hal.records), error: null };
  } catch (err) {
    return { refused: null, error: err as Error };
  }
}

/** Run the shared checks on `dev` (opened read-only) at `now`. */
export async function deviceChecks(dev: ReadOnlyDevice, configPath: string | null, now: Date, mode: LinkMode): Promise<Check[]> {
  const config = dev.config;
  const path = healthFilePath(config);
  const view = readHealth(path, now);
  const disk = configDigest(config, configPath);
  const { refused, error } = await lastRefusal(dev);
  const checks = [configCheck(configPath, disk, view), permissionsCheck(config, view), agentCheck(config, configPath, view), await linkFilesCheck(config, dev.hal?.keys ?? null, view)];
  if (mode.probe || config.via) checks.push(await linkCheck(config, dev.hal?.keys ?? null, view, path, mode.probe ? mode.timeoutMs : 0));
  else if (config.link && view.state === 'running' && view.health.link) checks.push(runningLinkCheck(view, path));
  else if (config.link) checks.push({ name: 'link', status: 'skipped', message: 'no agent is running to report its link (see the agent check; "trustroll-agent selftest" probes the broker)' });
  checks.push(refusalCheck(config, configPath, disk, refused, dev.history, error));
  return checks;
}
