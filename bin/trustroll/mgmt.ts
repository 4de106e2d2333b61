/**
 * `trustroll mgmt ...`: the management channel's own PKI (broker, manager
 * and device link certificates, the command-signing key), a device's link
 * files, and the operators' certificates for the dashboard and the API.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ManagerError } from '../../manager/errors.ts';
import { recordLinkCertificate } from '../../manager/link-rotation/link-material.ts';
import { writeFileAtomic } from '../../manager/pki/key-vault.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { newP12Password, OperatorPki } from '../../manager/pki/operator-pki.ts';
import { fingerprint } from '../../protocol/pem.ts';
import { int } from './options.ts';

/** `trustroll mgmt ...`: the management channel's PKI, device link files and operator certificates. */
export function addMgmtCommands(program: Command): void {
  const mgmt = program.command('mgmt')
    .description('the management channel\'s own PKI (broker, manager and device link certificates, command-signing key)');
  mgmt.command('init')
    .description('create it in <dir>: keys 0600, broker files, ACL and a Mosquitto listener snippet')
    .requiredOption('--dir <dir>', 'where to keep it')
    .option('--broker-host <name...>', 'DNS names or IP addresses the broker is reached at (besides localhost and loopback; an address becomes an IP subjectAltName)')
    .action(async (o: { dir: string; brokerHost?: string[] }) => {
      if (existsSync(join(o.dir, 'ca-key.pem'))) throw new ManagerError('E_KEY_VAULT', `${o.dir} already holds a management PKI; refusing to overwrite it`);
      const pki = await ManagementPki.create({ now: new Date(), brokerDnsNames: o.brokerHost ?? [] });
      pki.save(o.dir);
      process.stdout.write(`management PKI in ${o.dir}; configure the broker with ${join(o.dir, 'mosquitto-listener.conf')}\n`);
    });

  mgmt.command('device')
    .description('issue a device\'s management link certificate (CN = device id) and write its link files')
    .requiredOption('--dir <dir>', 'the management PKI (trustroll mgmt init)')
    .requiredOption('--id <deviceId>', 'device id')
    .requiredOption('--out <dir>', 'where to write ca.pem, device.pem, device.key (0600) and command-key.pem')
    .option('--broker <url>', 'broker URL to put into the printed link settings', 'mqtts://broker:8883')
    .action((o: { dir: string; id: string; out: string; broker: string }) => {
      const pki = ManagementPki.load(o.dir, new Date());
      const identity = pki.device(o.id);
      // Recorded so that a management-root rotation ("trustroll link rotate") can certify the same key under the new root.
      recordLinkCertificate(o.dir, o.id, identity.cert);
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      const put = (name: string, data: string, mode = 0o644) => { writeFileAtomic(join(o.out, name), data, mode); return join(o.out, name); };
      const link = {
        url: o.broker, ca: put('ca.pem', pki.ca), cert: put('device.pem', identity.cert), key: put('device.key', identity.key, 0o600),
        commandKeys: { [pki.commandKey.keyId]: put('command-key.pem', pki.trustedCommandKeys().get(pki.commandKey.keyId)!.export({ type: 'spki', format: 'pem' }) as string) },
      };
      process.stdout.write(JSON.stringify({ link }, null, 2) + '\n');
    });

  mgmt.command('operator')
    .description('issue an operator certificate for the dashboard and API (role in the certificate), with a PKCS#12 file for browsers')
    .requiredOption('--dir <dir>', 'the management PKI (trustroll mgmt init)')
    .requiredOption('--name <name>', 'operator name, e.g. alice')
    .addOption(new Option('--role <role>', 'read sees everything; admin may also start, pause, resume, abort and exclude').choices(['read', 'admin']).default('read'))
    .option('--out <dir>', 'where to write <name>.pem, <name>.key (0600) and <name>.p12 (0600)', '.')
    .option('--days <n>', 'validity in days', int, 365)
    .option('--p12-password-file <file>', 'read the PKCS#12 password from this file (default: a random one, printed once)')
    .action(async (o: { dir: string; name: string; role: 'read' | 'admin'; out: string; days: number; p12PasswordFile?: string }) => {
      const ops = await OperatorPki.openOrCreate(o.dir, new Date());
      const c = await ops.issueOperator({ name: o.name, role: o.role, now: new Date(), lifetimeDays: o.days });
      const password = o.p12PasswordFile ? readFileSync(o.p12PasswordFile, 'utf8').trim() : newP12Password();
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      writeFileAtomic(join(o.out, `${o.name}.pem`), c.cert, 0o644);
      writeFileAtomic(join(o.out, `${o.name}.key`), c.key, 0o600);
      writeFileAtomic(join(o.out, `${o.name}.p12`), ops.pkcs12(c, password), 0o600);
      process.stdout.write([
        `operator ${o.name} (${o.role}): ${join(o.out, `${o.name}.pem`)}, ${join(o.out, `${o.name}.key`)}, ${join(o.out, `${o.name}.p12`)}`,
        `certificate sha256 ${c.sha256}`,
        ...(o.p12PasswordFile ? [] : [`PKCS#12 password (shown once): ${password}`]),
        `browsers: import the .p12 and trust ${join(o.dir, 'operator-ca.pem')} for the dashboard's HTTPS certificate`, '',
      ].join('\n'));
    });
  mgmt.command('revoke-operator')
    .description('revoke an operator certificate (a running service reloads the list within seconds)')
    .requiredOption('--dir <dir>', 'the management PKI')
    .requiredOption('--cert <pem>', 'the operator\'s certificate file')
    .action(async (o: { dir: string; cert: string }) => {
      const ops = await OperatorPki.openOrCreate(o.dir, new Date());
      const cert = new X509Certificate(readFileSync(o.cert));
      ops.revoke({ sha256: fingerprint(cert), name: cert.subject.split('\n').find((l) => l.startsWith('CN='))?.slice(3) ?? '?', now: new Date() });
      process.stdout.write(`revoked ${fingerprint(cert)}\n`);
    });
}
