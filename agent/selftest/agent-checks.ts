/**
 * Checks of the running agent that `status` and `selftest` share, each a
 * plain sentence with what to do: is the agent running (and if it left,
 * why), does it run the configuration on disk, and is the device refusing
 * the manager's commands (the durable record of the last refusal,
 * refusals.ts, against the last applied step).
 */
import { PROTOCOL_ERRORS } from '../../protocol/errors.ts';
import { changedSections, type ConfigDigest } from '../config-digest.ts';
import type { AgentConfig } from '../config.ts';
import type { HealthView } from '../health-file.ts';
import type { RefusedCommand } from '../refusals.ts';
import type { HistoryEntry } from '../state-store.ts';
import type { Check } from './report.ts';

/** How a technician starts the agent: the unit on the image, else the command line. */
export function startAdvice(configPath: string | null): string {
  return `start the agent: "systemctl start trustroll-agent" (or "/etc/init.d/trustroll-agent start") where it is installed as a service, else "trustroll-agent run --config ${configPath ?? '<agent.json>'}"`;
}

/** True when the configuration lets an agent run (a broker link or a relay). */
export function runsAgent(config: AgentConfig): boolean {
  return config.link !== undefined || config.via !== undefined;
}

/** Is the agent running? A failed start names its reason; a stop or a crash says so. */
export function agentCheck(config: AgentConfig, configPath: string | null, view: HealthView): Check {
  const name = 'agent';
  if (!runsAgent(config)) return { name, status: 'skipped', message: 'the configuration has no "link" (nor "via"): no agent runs for this device' };
  const start = startAdvice(configPath);
  if (view.state === 'running') {
    const h = view.health;
    return { name, status: 'ok', message: `the agent runs (pid ${h.pid}, user ${h.user.name}, since ${h.startedAt}; last report ${h.updatedAt})` };
  }
  if (view.state === 'absent' && view.unreadable) {
    return { name, status: 'fail', code: 'E_AGENT_PERMISSION', message: `cannot tell whether the agent runs: ${view.reason}`, action: 'run this check as root or as the agent\'s user' };
  }
  if (view.state === 'absent') return { name, status: 'fail', code: 'E_AGENT_NOT_RUNNING', message: `the agent is not running (${view.reason})`, action: start };
  const h = view.health;
  if (h.startError) {
    const perm = h.startError.code === 'E_HAL_PERMISSION' || h.storage.problems.length > 0;
    return {
      name, status: 'fail', code: 'E_AGENT_NOT_RUNNING',
      message: `the agent is not running: its start at ${h.startedAt} as user ${h.user.name} failed: ${h.startError.message}`,
      action: `${perm ? 'fix the permission problem (see the permissions check)' : 'fix what the error names'}, then ${start}`,
      details: { startError: h.startError },
    };
  }
  const how = h.stoppedAt ? `it was stopped at ${h.stoppedAt}` : `pid ${h.pid} ended without a clean stop (last report ${h.updatedAt}): it crashed or was killed; its log says why (journalctl -u trustroll-agent)`;
  return { name, status: 'fail', code: 'E_AGENT_NOT_RUNNING', message: `the agent is not running: ${how}`, action: start };
}

/** Does the running agent use the configuration on disk? */
export function configCheck(configPath: string | null, disk: ConfigDigest, view: HealthView): Check {
  const name = 'config';
  const file = configPath ?? 'the configuration';
  if (view.state !== 'running') return { name, status: 'ok', message: `${file} is valid (no running agent to compare it with)` };
  const ran = view.health.config;
  if (ran.sha256 === disk.sha256) return { name, status: 'ok', message: `${file} is valid, and the running agent (pid ${view.health.pid}) uses exactly this configuration` };
  const from = ran.path && ran.path !== configPath ? ` from ${ran.path}` : '';
  return {
    name, status: 'fail', code: 'E_AGENT_CONFIG_CHANGED',
    message: `the running agent (pid ${view.health.pid}, started ${view.health.startedAt}${from}) uses another configuration than ${file}: ${changedSections(ran, disk).map((s) => `"${s}"`).join(', ')} differ${changedSections(ran, disk).length === 1 ? 's' : ''}; the other checks here read ${file}`,
    action: 'restart the agent so it runs what the file says ("systemctl restart trustroll-agent", or stop and start "trustroll-agent run"), then check again',
    details: { running: ran, disk },
  };
}

/** What to do about a refusal, by code. */
function refusalAction(r: RefusedCommand, config: AgentConfig, configPath: string | null): string {
  const file = configPath ?? 'the agent configuration';
  const keys = config.link?.commandKeys ?? config.via?.commandKeys ?? {};
  const setting = config.link ? 'link.commandKeys' : 'via.commandKeys';
  const ids = Object.keys(keys);
  if (r.code === 'E_SIGNATURE' && r.keyId && !ids.includes(r.keyId)) {
    const rename = ids.length === 1 ? `rename the entry "${ids[0]}" to "${r.keyId}"` : `add "${r.keyId}" with the manager's command key file`;
    return `the manager signs with command key id "${r.keyId}", but ${setting} in ${file} names ${ids.map((i) => `"${i}"`).join(', ') || 'none'}: ${rename} in ${setting} (the file is command-key.pem from "trustroll mgmt device", whose printed link settings carry the id), restart the agent; the manager sends the command again`;
  }
  if (r.code === 'E_SIGNATURE') return `the command key file for id "${r.keyId ?? '?'}" in ${setting} is not the manager's key: put command-key.pem from "trustroll mgmt device" there and restart the agent`;
  const hint = (PROTOCOL_ERRORS as Record<string, string>)[r.code];
  return `${hint ?? 'see docs/errors.md for the code'}; check the rotation on the manager ("trustroll status")`;
}

/**
 * Is the device refusing commands? Failing while the last refusal is newer
 * than the last applied step and was made under the configuration on disk;
 * a warning once the configuration changed since (the manager resends).
 */
export function refusalCheck(config: AgentConfig, configPath: string | null, disk: ConfigDigest, refused: RefusedCommand | null, history: HistoryEntry[], readError: Error | null = null): Check {
  const name = 'commands';
  if (!runsAgent(config)) return { name, status: 'skipped', message: 'no agent runs for this device, so it receives no commands' };
  if (readError) return { name, status: 'warn', message: `the record of refused commands cannot be read: ${readError.message}`, action: 'check the HAL record store (see the key and store checks)' };
  const applied = history.reduce<HistoryEntry | null>((a, h) => (!a || h.at > a.at ? h : a), null);
  const last = applied ? `; last applied step: #${applied.seq} ${applied.step} at ${applied.at}` : '';
  if (!refused) return { name, status: 'ok', message: `no command was refused${last}` };
  const what = `command #${refused.seq} (rotation ${refused.rotationId}, step ${refused.step}) at ${refused.at}: ${refused.code}: ${refused.message}`;
  if (applied && applied.at >= refused.at) return { name, status: 'ok', message: `the last refused command was ${what}; a later one was applied${last}` };
  const details = { refused };
  if (refused.configSha256 !== null && refused.configSha256 !== disk.sha256) {
    return {
      name, status: 'warn', code: refused.code, details,
      message: `the device refused ${what}, under an earlier configuration than ${configPath ?? 'the one on disk'}`,
      action: 'if the agent was restarted with the corrected configuration, the manager sends the command again: check that it is applied ("trustroll status" on the manager)',
    };
  }
  return { name, status: 'fail', code: refused.code, message: `the device refuses the manager's commands: it refused ${what}${last || '; no step applied since'}`, action: refusalAction(refused, config, configPath), details };
}
