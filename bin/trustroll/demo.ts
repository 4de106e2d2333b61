/**
 * `trustroll demo`: rotate the root of a fleet of device processes over
 * MQTT while they keep handshaking over mutual TLS (or the quick in-process
 * variant), and print what happened.
 */
import { Option, type Command } from 'commander';
import { CA_KEY_ALGORITHMS, type CaKeyAlgorithm } from '../../manager/ca/keys.ts';
import { ManagerError } from '../../manager/errors.ts';
import { describeDemo, runInProcessDemo } from '../../demo/run-demo.ts';
import { describeFleetDemo, runFleetDemo } from '../../demo/fleet-demo.ts';
import { DEMO_TOPOLOGIES, type DemoTopology } from '../../demo/topology-plan.ts';
import { int } from './options.ts';

/** `trustroll demo`: the fleet demo over MQTT with device processes, or in process. */
export function addDemoCommands(program: Command): void {
  program.command('demo')
    .description('rotate the root of a fleet of device processes over MQTT while they keep handshaking over mutual TLS')
    .option('--servers <n>', 'server-role devices (printers)', int, 3)
    .option('--clients <n>', 'client-role devices (management clients)', int, 6)
    .addOption(new Option('--schedule <name>', 'rotation schedule').choices(['six-step', 'batched']).default('six-step'))
    .option('--naive', 'replace everything at once (unsafe, for contrast: shows failures)', false)
    .option('--broker <broker>', 'embedded (aedes, default), mosquitto (a real Mosquitto started for the demo), or mqtts://host:port of a running broker', 'embedded')
    .option('--mgmt <dir>', 'management PKI the external broker trusts (made by "trustroll mgmt init")')
    .option('--pace <ms>', 'hold each acknowledgement this long so traffic flows through every intermediate state', int, 250)
    .option('--min-handshakes <n>', 'keep the devices handshaking until this many connections were made', int, 1000)
    .addOption(new Option('--algorithm <alg>', 'the fleet root\'s algorithm (RSA fleets get RSA-2048 device keys); the rotation keeps it').choices([...CA_KEY_ALGORITHMS]))
    .option('--new-subject <dn>', 'subject of the new root (default: the old root\'s)')
    .addOption(new Option('--topology <name>', 'who reaches whom: direct (every device has a broker session), server-relay (clients reach only their printer, which relays), client-relay (printers reached only through a client), mixed').choices([...DEMO_TOPOLOGIES]).default('direct'))
    .option('--in-process', 'the quick in-process variant: no broker, no processes, path validation instead of handshakes', false)
    .option('--seed <n>', 'seed of the simulated network delays (--in-process)', int, 1)
    .option('--keep', 'keep the demo folder (configs, stores, logs)', false)
    .option('--json', 'print one JSON object instead of the summary', false)
    .action(async (o: { servers: number; clients: number; schedule: string; naive: boolean; broker: string; mgmt?: string; pace: number; minHandshakes: number; inProcess: boolean; seed: number; keep: boolean; json: boolean; algorithm?: CaKeyAlgorithm; newSubject?: string; topology: DemoTopology }) => {
      if (o.inProcess && (o.algorithm || o.newSubject || o.topology !== 'direct')) throw new ManagerError('E_SERVICE_CONFIG', '--algorithm, --new-subject and --topology apply to the process demo, not --in-process');
      if (o.inProcess) {
        const result = await runInProcessDemo(o);
        process.stdout.write((o.json ? JSON.stringify(result, null, 2) : describeDemo(result)) + '\n');
        process.exitCode = result.rotation.status === 'complete' && (o.naive || result.authChecks.failed + result.crossCheck.openssl.failed === 0) ? 0 : 1;
        return;
      }
      const result = await runFleetDemo({ ...o, mgmtDir: o.mgmt, paceMs: o.pace });
      process.stdout.write((o.json ? JSON.stringify(result, null, 2) : describeFleetDemo(result)) + '\n');
      const clean = result.handshakes.failed + result.crossStack.openssl.failed + result.crossStack.gnutls.failed === 0;
      process.exitCode = result.rotation.status === 'complete' && (o.naive || clean) ? 0 : 1;
    });
}
