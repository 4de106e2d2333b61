/**
 * `trustroll-agent`: the device side's command line.
 *   init       create the device key in the configured HAL (if missing) and print its CSR
 *   provision  store the root and the device certificate (factory or first boot)
 *   status     the field technician's local check of the trust store (read-only)
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { SqliteStateStore } from '../agent/sqlite-state-store.ts';
import { deviceStatus, describeStatus } from '../agent/status.ts';
import { AgentError } from '../agent/errors.ts';
import { Agent } from '../agent/agent.ts';
import { loadAgentConfig, openAgentRuntime } from '../agent/config.ts';
import { runDevice } from '../agent/runtime.ts';
import { buildCsr } from '../protocol/csr.ts';
import { systemClock } from '../protocol/clock.ts';
import { createLogger } from '../protocol/log.ts';
import type { StateStore } from '../agent/state-store.ts';

const program = new Command('trustroll-agent').description('trustroll device agent').showHelpAfterError();
const logger = createLogger();
const KEY = 'device';

program.command('init')
  .description('create the device key in the HAL if it does not exist, and print a CSR for enrollment')
  .requiredOption('--config <file>', 'agent configuration (JSON)')
  .action(async (o: { config: string }) => {
    const rt = await openAgentRuntime(loadAgentConfig(o.config), { clock: systemClock, logger });
    try {
      const info = (await rt.keys.get(KEY)) ?? (await rt.keys.create(KEY, 'P-256'));
      const csr = await buildCsr({ commonName: rt.config.deviceId, spki: info.spki, algorithm: info.algorithm, sign: (d) => rt.keys.sign(KEY, d) });
      process.stdout.write(csr);
    } finally {
      await rt.close();
    }
  });

program.command('provision')
  .description('store the fleet root and this device\'s certificate (checked against the root and the HAL key)')
  .requiredOption('--config <file>', 'agent configuration (JSON)')
  .requiredOption('--root <pem>', 'the fleet root certificate (R0)')
  .requiredOption('--cert <pem>', 'this device\'s certificate, issued for its HAL key')
  .action(async (o: { config: string; root: string; cert: string }) => {
    const config = loadAgentConfig(o.config);
    const rt = await openAgentRuntime(config, { clock: systemClock, logger });
    try {
      if (rt.agent) throw new AgentError('E_AGENT_CONFIG', `device ${config.deviceId} is already provisioned; its trust store changes only through rotations`);
      await Agent.provision({ deviceId: config.deviceId, role: config.role, store: rt.store, keys: rt.keys, clock: systemClock, logger },
        { root: readFileSync(o.root, 'utf8'), certificate: readFileSync(o.cert, 'utf8'), keyLabel: KEY });
      process.stdout.write(`provisioned ${config.deviceId} (${config.role})\n`);
    } finally {
      await rt.close();
    }
  });

program.command('run')
  .description('run the device: management link to the broker, the device\'s mTLS service or its handshakes')
  .requiredOption('--config <file>', 'agent configuration (JSON)')
  .action(async (o: { config: string }) => {
    const device = await runDevice(loadAgentConfig(o.config), { clock: systemClock, logger });
    const linked = await device.linked;
    process.stdout.write(JSON.stringify({ event: 'ready', deviceId: device.deviceId, linked, tlsPort: device.tlsPort }) + '\n');
    const tally = setInterval(() => process.stdout.write(JSON.stringify({ event: 'tally', deviceId: device.deviceId, probe: { ...device.probeTally(), failures: undefined } }) + '\n'), 500);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    clearInterval(tally);
    await device.stop();
    process.stdout.write(JSON.stringify({ event: 'stopped', deviceId: device.deviceId, probe: device.probeTally() }) + '\n');
  });

program.command('status')
  .description('show what this device trusts and presents, and where it stands in a rotation')
  .option('--config <file>', 'agent configuration (JSON)')
  .option('--store <path>', 'or: the device trust store (SQLite file), opened read-only')
  .option('--json', 'print JSON', false)
  .action(async (o: { config?: string; store?: string; json: boolean }) => {
    if (!o.config === !o.store) throw new AgentError('E_AGENT_CONFIG', 'give exactly one of --config or --store');
    let store: StateStore;
    let close: () => Promise<void>;
    if (o.store) {
      const s = new SqliteStateStore(o.store, {}, { readonly: true });
      store = s;
      close = () => s.close();
    } else {
      const rt = await openAgentRuntime(loadAgentConfig(o.config!), { clock: systemClock, logger });
      store = rt.store;
      close = () => rt.close();
    }
    try {
      const record = await store.load();
      if (!record) throw new AgentError('E_AGENT_NOT_PROVISIONED', 'no trust store yet; provision the device');
      const status = deviceStatus(record, await store.history(10), new Date());
      process.stdout.write((o.json ? JSON.stringify(status, null, 2) : describeStatus(status)) + '\n');
      process.exitCode = status.warnings.some((w) => /expired/.test(w)) ? 1 : 0;
    } finally {
      await close();
    }
  });

try {
  await program.parseAsync();
} catch (err) {
  process.stderr.write(`trustroll-agent: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
