/**
 * `trustroll ca ...`: the manager's certificate authority: create the fleet
 * root (or separate client and server roots), print the root devices are
 * provisioned with, and the newest rotation's OldWithNew.
 */
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { CA_KEY_ALGORITHMS, type CaKeyAlgorithm } from '../../manager/ca/keys.ts';
import { ManagerError } from '../../manager/errors.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import type { RootSide } from '../../protocol/steps.ts';
import { dataOption, openCa } from './options.ts';

/** `trustroll ca ...`: create the fleet root and print what devices are provisioned with. */
export function addCaCommands(program: Command): void {
  const ca = program.command('ca').description('the manager\'s certificate authority');
  ca.command('init')
    .description('create the fleet root (once); prints its certificate')
    .option(...dataOption)
    .requiredOption('--subject <dn>', 'root subject, e.g. "CN=Printer Fleet Root,O=Example" (with --client-subject: the server root\'s)')
    .option('--client-subject <dn>', 'keep separate roots: a client root with this subject signs client certificates (servers trust it), the --subject root signs server certificates (clients trust it); each is rotated on its own (rotate --root)')
    .addOption(new Option('--algorithm <alg>', 'root key algorithm').choices([...CA_KEY_ALGORITHMS]).default('P-256'))
    .action(async (o: { data: string; subject: string; clientSubject?: string; algorithm: CaKeyAlgorithm }) => {
      const authority = await CaAuthority.openOrInit(join(o.data, 'ca'), { subject: o.subject, clientSubject: o.clientSubject, now: new Date(), policy: { algorithm: o.algorithm } });
      process.stdout.write(authority.activeRoot().cert + (authority.separateRoots() ? authority.activeRoot('client').cert : ''));
    });
  ca.command('root')
    .description('print the root certificate devices are provisioned with (separate roots: --root client or server)')
    .option(...dataOption)
    .addOption(new Option('--root <side>', 'separate-roots fleets: the client root (a server verifies clients with it) or the server root (a client verifies servers with it)').choices(['client', 'server']))
    .action(async (o: { data: string; root?: RootSide }) => {
      const authority = await openCa(o.data);
      if (authority.separateRoots() && !o.root) throw new ManagerError('E_ROOT_SIDE', 'this fleet keeps separate client and server roots; name one with --root client or --root server');
      if (!authority.separateRoots() && o.root) throw new ManagerError('E_ROOT_SIDE', `this fleet has one root for both sides; there is no separate ${o.root} root (omit --root)`);
      process.stdout.write(authority.activeRoot(o.root).cert);
    });

  ca.command('old-with-new')
    .description('print the newest root rotation\'s OldWithNew (old root key certified by the new one): append it to the chain of a device still presenting an old-root certificate so peers that trust only the new root accept it (docs/lifecycle.md)')
    .option(...dataOption)
    .action((o: { data: string }) => {
      const db = new FleetDb(join(o.data, 'manager.db'));
      try {
        const own = db.latestOldWithNew();
        if (!own) throw new ManagerError('E_ROTATION_UNKNOWN', `no root rotation in ${o.data} has an OldWithNew yet (it is made at the start of a root rotation)`);
        process.stdout.write(own.pem);
      } finally {
        db.close();
      }
    });
}
