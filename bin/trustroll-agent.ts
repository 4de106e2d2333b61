/**
 * `trustroll-agent`: the device side's command line. `status` is the field
 * technician's local check of the trust store (read-only).
 */
import { Command } from 'commander';
import { SqliteStateStore } from '../agent/sqlite-state-store.ts';
import { deviceStatus, describeStatus } from '../agent/status.ts';
import { AgentError } from '../agent/errors.ts';

const program = new Command('trustroll-agent').description('trustroll device agent').showHelpAfterError();

program.command('status')
  .description('show what this device trusts and presents, and where it stands in a rotation')
  .requiredOption('--store <path>', 'the device trust store (SQLite file)')
  .option('--json', 'print JSON', false)
  .action(async (o: { store: string; json: boolean }) => {
    const store = new SqliteStateStore(o.store, {}, { readonly: true });
    try {
      const record = await store.load();
      if (!record) throw new AgentError('E_AGENT_NOT_PROVISIONED', `${o.store} holds no trust store; provision the device`);
      const status = deviceStatus(record, await store.history(10), new Date());
      process.stdout.write((o.json ? JSON.stringify(status, null, 2) : describeStatus(status)) + '\n');
      process.exitCode = status.warnings.some((w) => /expired/.test(w)) ? 1 : 0;
    } finally {
      await store.close();
    }
  });

try {
  await program.parseAsync();
} catch (err) {
  process.stderr.write(`trustroll-agent: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
