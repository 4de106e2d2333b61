/**
 * `trustroll-agent status` and `trustroll-agent selftest`: the field
 * technician's checks. Each ends with one verdict and its exit code (0 OK,
 * warnings allowed; 1 something needs action; 2 the configuration or the
 * usage is wrong) and never a stack trace; with `--json` the answer is one
 * JSON object on stdout in every case, a configuration that does not load
 * included. Their code is imported when the command runs: the running
 * agent never holds it (image/README.md, "Memory").
 */
import { resolve } from 'node:path';
import { AGENT_ERRORS } from '../agent/errors.ts';
import { loadAgentConfig, type AgentConfig } from '../agent/config.ts';
import type { DeviceStatus } from '../agent/status.ts';
import type { StateStore } from '../agent/state-store.ts';
import { PROTOCOL_ERRORS, withoutCode } from '../protocol/errors.ts';
import type { CommandLine, OptionValues } from './command-line.ts';

/** The exit code for an error that stopped a check: a storage roll-back is a failed check (1), anything else a usage or configuration mistake (2). */
export function exitCodeForError(err: unknown): number {
  return /^(E_STORE_REGRESSED|E_HAL_ROLLBACK)\b/.test((err as Error).message) ? 1 : 2;
}

/** The technician's tools print one line for any failure, never a stack trace, even for an error nothing caught. */
function oneLineFailures(): void {
  const fail = (err: unknown) => {
    process.stderr.write(`trustroll-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}

/** An error that stopped a check, as the failed check a report lists. */
function failedCheck(err: unknown, configLoaded: boolean): { name: string; status: 'fail'; code: string | null; message: string; action: string } {
  const message = (err as Error).message ?? String(err);
  const code = /^(E_[A-Z0-9_]+)\b/.exec(message)?.[1] ?? null;
  const table = { ...PROTOCOL_ERRORS, ...AGENT_ERRORS } as Record<string, string>;
  return {
    name: configLoaded ? 'device' : 'config', status: 'fail', code, message: withoutCode(message),
    action: (code && table[code]) || 'see docs/errors.md for the code',
  };
}

/**
 * Run `check`; when it throws and `json` is set, print the failure as one
 * JSON object on stdout (built by `asJson`) with the exit code it deserves,
 * and also the usual one line on stderr. Without `json` the error goes on
 * to the program's one-line handler.
 */
async function answering(json: boolean, check: (loaded: (c: AgentConfig) => void) => Promise<void>, asJson: (failed: ReturnType<typeof failedCheck>, config: AgentConfig | null) => object): Promise<void> {
  let config: AgentConfig | null = null;
  try {
    await check((c) => { config = c; });
  } catch (err) {
    if (!json) throw err;
    process.stdout.write(JSON.stringify(asJson(failedCheck(err, config !== null), config), null, 2) + '\n');
    process.stderr.write(`trustroll-agent: ${(err as Error).message}\n`);
    process.exitCode = exitCodeForError(err);
  }
}

/** Register `status` and `selftest` on the agent's command line. */
export function registerTechnicianCommands(program: CommandLine, configOption: { flags: string; description: string; required: boolean }): void {
  program.command({
    name: 'status',
    description: 'show what this device trusts and presents, where it stands in a rotation, and (with --config) whether its agent runs, links, can write its folders and has its commands accepted; one verdict',
    options: [
      { flags: '--config <file>', description: 'agent configuration (JSON)' },
      { flags: '--store <path>', description: 'or: the device trust store (SQLite file), opened read-only' },
      { flags: '--json', description: 'print JSON (also for a configuration that does not load)' },
    ],
    action: async (v: OptionValues) => {
      const o = v as { config?: string; store?: string; json: boolean };
      oneLineFailures();
      await answering(o.json, async (loaded) => {
        const { AgentError } = await import('../agent/errors.ts');
        if (!o.config === !o.store) throw new AgentError('E_AGENT_CONFIG', 'give exactly one of --config or --store');
        const now = new Date();
        const { agentRunState, deviceStatus, describeStatus, halHealth, withChecks } = await import('../agent/status.ts');
        let status: DeviceStatus;
        if (o.store) {
          const { SqliteStateStore } = await import('../agent/sqlite-state-store.ts');
          const store: StateStore = new SqliteStateStore(o.store, {}, { readonly: true });
          try {
            const record = await store.load();
            if (!record) throw new AgentError('E_AGENT_NOT_PROVISIONED', 'no trust store yet; provision the device');
            status = deviceStatus(record, await store.history(10), now);
          } finally {
            await store.close();
          }
        } else {
          // Read-only: creates nothing (no empty store, key folder or EEPROM file) and works next to the running agent.
          const config = loadAgentConfig(o.config!);
          loaded(config);
          const [{ openReadOnly }, { deviceChecks }] = await Promise.all([import('../agent/read-only.ts'), import('../agent/selftest/device-checks.ts')]);
          const dev = await openReadOnly(config);
          try {
            if (!dev.record) throw dev.storeError ?? new AgentError('E_AGENT_NOT_PROVISIONED', 'no trust store yet; provision the device');
            const checks = await deviceChecks(dev, resolve(o.config!), now, { probe: false });
            status = withChecks(deviceStatus(dev.record, dev.history, now, dev.store?.integrity?.() ?? null), agentRunState(config, now), await halHealth(dev), checks);
          } finally {
            await dev.close();
          }
        }
        process.stdout.write((o.json ? JSON.stringify(status, null, 2) : describeStatus(status)) + '\n');
        process.exitCode = status.verdict === 'fail' ? 1 : 0;
      }, (failed, config) => ({ deviceId: config?.deviceId ?? null, role: config?.role ?? null, verdict: 'fail', problems: [failed] }));
    },
  });

  program.command({
    name: 'selftest',
    description: 'check that the key signs, the store is intact, the certificate chains, the agent runs this configuration and can write its folders, its commands are accepted, the broker link is up and peers complete mutual TLS (changes nothing)',
    options: [
      configOption,
      { flags: '--peer <[name@]host:port>', description: 'a peer to handshake with instead of probe.targets (client role; repeatable)', repeatable: true },
      { flags: '--timeout <ms>', description: 'per connection', default: '5000' },
      { flags: '--json', description: 'print one JSON object (also for a configuration that does not load)' },
    ],
    action: async (v: OptionValues) => {
      const o = v as { config: string; peer: string[]; timeout: string; json: boolean };
      oneLineFailures();
      await answering(o.json, async (loaded) => {
        const config = loadAgentConfig(o.config);
        loaded(config);
        const { AgentError } = await import('../agent/errors.ts');
        const { parsePeer } = await import('../agent/selftest/peer-checks.ts');
        const { describeReport, exitCodeOf } = await import('../agent/selftest/report.ts');
        const { runSelftest } = await import('../agent/selftest/selftest.ts');
        const peers = o.peer.map(parsePeer);
        if (peers.length && config.role !== 'client') throw new AgentError('E_AGENT_CONFIG', `--peer: ${config.deviceId} is a server-role device; it does not connect to peers (its own TLS port is checked)`);
        const timeoutMs = Number(o.timeout);
        if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 600_000) throw new AgentError('E_AGENT_CONFIG', `--timeout "${o.timeout}": give milliseconds between 100 and 600000`);
        const report = await runSelftest(config, { peers, timeoutMs, configPath: resolve(o.config) });
        process.stdout.write((o.json ? JSON.stringify(report, null, 2) : describeReport(report)) + '\n');
        process.exitCode = exitCodeOf(report);
      }, (failed, config) => ({
        deviceId: config?.deviceId ?? null, role: config?.role ?? null, at: new Date().toISOString(), ok: false, result: 'fail', trusts: [], presents: [], checks: [failed],
      }));
    },
  });
}
