/**
 * The fleet's devices from the command line: `enroll` a device from its
 * CSR, `route` it through a relay or directly, and declare what it
 * `verifies` (a rotation to a root it cannot verify is refused).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ManagerError } from '../../manager/errors.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { describeTopology, setRoute, topology } from '../../manager/fleet/topology.ts';
import { enrollFromCsr } from '../../manager/pki/enrollment.ts';
import { canVerify, parseVerifies, rootAlgorithm } from '../../manager/rotation/algorithm-plan.ts';
import type { Role } from '../../protocol/steps.ts';
import { dataOption, openCa } from './options.ts';

/** `trustroll enroll`, `route` and `verifies`: the devices of the fleet, how each is reached and what it verifies. */
export function addFleetCommands(program: Command): void {
  program.command('enroll')
    .description('enroll a device from its CSR (trustroll-agent init); prints its certificate')
    .option(...dataOption)
    .requiredOption('--id <deviceId>', 'device id (must equal the CSR common name)')
    .addOption(new Option('--role <role>', 'mTLS role of the device').choices(['server', 'client']).makeOptionMandatory())
    .requiredOption('--csr <file>', 'the device\'s certification request (PEM)')
    .option('--replace', 're-enrol a device that is already enrolled (new board or a key lost with its storage); provision it again afterwards', false)
    .option('--verifies <list>', 'signature algorithms the device can verify, comma-separated: RSA, ECDSA (or RSA-2048, RSA-3072, P-256, P-384); a rotation to a root it cannot verify is refused. Default: both', parseVerifies)
    .option('--via <relay>', 'the device reaches the manager only through this enrolled peer (see "trustroll route")')
    .action(async (o: { data: string; id: string; role: Role; csr: string; replace: boolean; verifies?: string[]; via?: string }) => {
      const authority = await openCa(o.data);
      const db = new FleetDb(join(o.data, 'manager.db'));
      try {
        process.stdout.write(enrollFromCsr(db, authority, { deviceId: o.id, role: o.role, csrPem: readFileSync(o.csr, 'utf8'), now: new Date(), replace: o.replace, verifies: o.verifies }));
        if (o.via) setRoute(db, o.id, o.via);
      } finally {
        db.close();
      }
    });

  program.command('route')
    .description('who reaches whom: show every device\'s route, or route one device through a relay (a peer over mutual TLS that reaches the broker) or directly')
    .option(...dataOption)
    .option('--id <deviceId>', 'the device to route')
    .option('--via <relay>', 'its relay: a printer for a client behind a firewall, a client for a printer the manager cannot reach; the relay\'s agent lists the device in "relay.for", the device\'s agent names the relay in "via"')
    .option('--direct', 'the device reaches the broker itself', false)
    .option('--json', 'print JSON', false)
    .action((o: { data: string; id?: string; via?: string; direct: boolean; json: boolean }) => {
      if ((o.via || o.direct) && !o.id) throw new ManagerError('E_SERVICE_CONFIG', 'give --id with --via or --direct');
      if (o.via && o.direct) throw new ManagerError('E_SERVICE_CONFIG', 'give --via or --direct, not both');
      if (o.id && !o.via && !o.direct) throw new ManagerError('E_SERVICE_CONFIG', 'give --via <relay> or --direct for --id');
      const db = new FleetDb(join(o.data, 'manager.db'));
      try {
        if (o.id) setRoute(db, o.id, o.direct ? null : o.via!);
        const topo = topology(db);
        process.stdout.write((o.json ? JSON.stringify(topo, null, 2) : describeTopology(topo)) + '\n');
      } finally {
        db.close();
      }
    });

  program.command('verifies')
    .description('show, or declare after enrolment, which signature algorithms an enrolled device can verify (a rotation to a root it cannot verify is refused)')
    .option(...dataOption)
    .requiredOption('--id <deviceId>', 'the enrolled device')
    .option('--set <list>', 'declare: comma-separated RSA, ECDSA (or RSA-2048, RSA-3072, P-256, P-384)', parseVerifies)
    .option('--undeclare', 'forget the declaration: the device is taken to verify RSA and ECDSA', false)
    .action(async (o: { data: string; id: string; set?: string[]; undeclare: boolean }) => {
      if (o.set && o.undeclare) throw new ManagerError('E_SERVICE_CONFIG', 'give --set or --undeclare, not both');
      const authority = await openCa(o.data);
      const db = new FleetDb(join(o.data, 'manager.db'));
      try {
        if (o.set || o.undeclare) db.setDeviceVerifies(o.id, o.set ?? null);
        else db.device(o.id);
        const declared = db.deviceVerifies().get(o.id);
        process.stdout.write(`${o.id} verifies ${declared ? declared.join(',') : 'RSA,ECDSA (not declared)'}\n`);
        const active = rootAlgorithm(authority.activeRoot().cert);
        if (declared && !canVerify(declared, active)) process.stderr.write(`warning: ${o.id} cannot verify the fleet root (${active}); it cannot authenticate its peers until the fleet root is one it verifies\n`);
      } finally {
        db.close();
      }
    });
}
