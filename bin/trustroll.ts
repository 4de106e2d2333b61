/**
 * `trustroll`: the manager's command line. `demo` runs the fleet demo;
 * `schedule check` validates a custom schedule file against the ordering
 * rules before anyone runs it on a fleet.
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { describeDemo, runInProcessDemo } from '../demo/run-demo.ts';
import { validateSchedule } from '../protocol/schedule.ts';
import type { Schedule } from '../protocol/steps.ts';
import { ProtocolError } from '../protocol/errors.ts';

const program = new Command('trustroll').description('Root CA rotation for mutual-TLS device fleets').showHelpAfterError();
const int = (v: string) => {
  const n = Number.parseInt(v, 10);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${v}"`);
  return n;
};

program.command('demo')
  .description('rotate the root of a simulated fleet and prove every client/server pair authenticates at every step')
  .option('--servers <n>', 'server-role devices (printers)', int, 3)
  .option('--clients <n>', 'client-role devices (management clients)', int, 6)
  .addOption(new Option('--schedule <name>', 'rotation schedule').choices(['six-step', 'batched']).default('six-step'))
  .option('--naive', 'replace everything at once (unsafe, for contrast: shows failures)', false)
  .option('--seed <n>', 'seed of the simulated network delays', int, 1)
  .option('--json', 'print one JSON object instead of the summary', false)
  .action(async (o: { servers: number; clients: number; schedule: string; naive: boolean; seed: number; json: boolean }) => {
    const result = await runInProcessDemo(o);
    process.stdout.write((o.json ? JSON.stringify(result, null, 2) : describeDemo(result)) + '\n');
    const expectFailures = o.naive;
    process.exitCode = result.rotation.status === 'complete' && (expectFailures || result.authChecks.failed + result.crossCheck.openssl.failed === 0) ? 0 : 1;
  });

program.command('schedule')
  .description('work with rotation schedules')
  .command('check <file>')
  .description('validate a schedule JSON file ({ name, steps: [{ id, role, effects, after }] }) against the ordering rules')
  .action((file: string) => {
    let schedule: Schedule;
    try {
      schedule = JSON.parse(readFileSync(file, 'utf8')) as Schedule;
    } catch (err) {
      throw new Error(`${file}: ${(err as Error).message}`);
    }
    const report = validateSchedule(schedule);
    process.stdout.write(`${schedule.name}: valid\n  server: ${report.sequence.server.join(' -> ')}\n  client: ${report.sequence.client.join(' -> ')}\n`);
    for (const w of report.warnings) process.stdout.write(`  warning: ${w}\n`);
  });

try {
  await program.parseAsync();
} catch (err) {
  const code = err instanceof ProtocolError ? err.code : (err as { code?: string }).code;
  process.stderr.write(`trustroll: ${(err as Error).message}${code && !(err as Error).message.startsWith(code) ? ` (${code})` : ''}\n`);
  process.exitCode = 2;
}
