/**
 * `trustroll`: the manager's command line, one file per command group in
 * bin/trustroll/ (registered here in the order `--help` lists them):
 *   demo          the fleet demo (demo.ts)
 *   schedule      check a custom schedule (rotation.ts)
 *   mgmt          the management PKI, device link files, operators (mgmt.ts)
 *   rotate        start, resume or abort a rotation and follow it (rotation.ts)
 *   serve, token  the manager as a service and its API tokens (serve.ts)
 *   status        where a rotation stands, who waits for whom (rotation.ts)
 *   ca            the fleet root (ca.ts)
 *   enroll, route, verifies   the fleet's devices (fleet.ts)
 *   link          the management channel's root rotation (link.ts)
 *   audit         verify, export and sign the audit trail (audit.ts)
 * Exit codes: 0 ok, 1 a rotation or check that did not succeed, 2 an error.
 */
import 'reflect-metadata';
import { Command } from 'commander';
import { ProtocolError } from '../protocol/errors.ts';
import { addAuditCommands } from './trustroll/audit.ts';
import { addCaCommands } from './trustroll/ca.ts';
import { addDemoCommands } from './trustroll/demo.ts';
import { addFleetCommands } from './trustroll/fleet.ts';
import { addLinkCommands } from './trustroll/link.ts';
import { addMgmtCommands } from './trustroll/mgmt.ts';
import { dataOption } from './trustroll/options.ts';
import { addRotateCommand, addScheduleCommands, addStatusCommand } from './trustroll/rotation.ts';
import { addServeCommands } from './trustroll/serve.ts';

const program = new Command('trustroll').description('Root CA rotation for mutual-TLS device fleets').showHelpAfterError();

try {
  addDemoCommands(program);
  addScheduleCommands(program);
  addMgmtCommands(program);
  addRotateCommand(program);
  addServeCommands(program);
  addStatusCommand(program);
  addCaCommands(program);
  addFleetCommands(program);
  addLinkCommands(program, dataOption);
  addAuditCommands(program, dataOption);
  await program.parseAsync();
} catch (err) {
  const code = err instanceof ProtocolError ? err.code : (err as { code?: string }).code;
  process.stderr.write(`trustroll: ${(err as Error).message}${code && !(err as Error).message.startsWith(code) ? ` (${code})` : ''}\n`);
  process.exitCode = 2;
}
