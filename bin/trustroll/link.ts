/**
 * `trustroll link ...`: rotate the management channel's own root (the PKI
 * of the MQTT link between broker, manager and devices), show how far a
 * rotation got, and record the link certificate of a device whose link
 * files were made before `trustroll mgmt device` recorded them. The
 * rotation itself is manager/link-rotation; see docs/management-pki.md.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ManagerError } from '../../manager/errors.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { EmbeddedBroker } from '../../manager/broker/embedded-broker.ts';
import { embeddedBrokerControl, scriptedBroker } from '../../manager/link-rotation/broker-control.ts';
import { loadLinkJournal, LINK_PHASES } from '../../manager/link-rotation/link-journal.ts';
import { recordLinkCertificate, recordedLinkCertificates } from '../../manager/link-rotation/link-material.ts';
import { brokerFilesNow } from '../../manager/link-rotation/broker-files.ts';
import { rotateManagementRoot } from '../../manager/link-rotation/link-rotation.ts';
import { liveService } from '../../manager/service/run-service.ts';
import { createLogger } from '../../protocol/log.ts';
import { fingerprintPem } from '../../protocol/pem.ts';

const positive = (v: string) => {
  const n = Number.parseInt(v, 10);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${v}"`);
  return n;
};

/** Add the `link` command group to the manager's CLI. */
export function addLinkCommands(program: Command, dataOption: readonly [string, string, string]): void {
  const link = program.command('link').description('the management link\'s own PKI: rotate its root (broker = server, devices and manager = clients)');

  link.command('rotate')
    .description('rotate the management root: broker trusts both roots (restart), devices get the new root and link certificates, broker switches its certificate (restart), devices and then the broker drop the old root (restart)')
    .option(...dataOption)
    .requiredOption('--mgmt <dir>', 'the management PKI (trustroll mgmt init)')
    .option('--broker <url>', 'mqtts://host:port of the broker (with --restart-command)')
    .option('--restart-command <cmd>', 'shell command that restarts the broker, e.g. "systemctl restart mosquitto" (Mosquitto reads its cafile only at start)')
    .option('--embedded-port <port>', 'instead of --broker: run the embedded broker (what "trustroll serve" runs by default) on this port for the rotation; its broker steps swap its TLS material, no restart', positive)
    .option('--broker-files <dir>', 'folder of the broker\'s mgmt-ca.pem, broker.pem and broker-key.pem (its cafile, certfile, keyfile); default: the --mgmt folder')
    .option('--subject <dn>', 'subject of the new management root; default: the old one\'s')
    .option('--resume', 'continue the open management-root rotation from its journal')
    .option('--ack-timeout <ms>', 'time a device has to acknowledge a link step before it is resent', positive, 30_000)
    .option('--max-attempts <n>', 'attempts per link step before the rotation stops where it is', positive, 5)
    .option('--json', 'print the result as JSON', false)
    .action(async (o: { data: string; mgmt: string; broker?: string; restartCommand?: string; embeddedPort?: number; brokerFiles?: string; subject?: string; resume?: boolean; ackTimeout: number; maxAttempts: number; json: boolean }) => {
      const service = liveService(o.data);
      if (service) throw new ManagerError('E_SERVICE_CONFIG', `"trustroll serve" (pid ${service.pid}) holds the manager's MQTT session on ${o.data}; stop it for the management-root rotation, then start it again (it loads the new management material)`);
      if (o.embeddedPort === undefined && (!o.broker || !o.restartCommand)) throw new ManagerError('E_SERVICE_CONFIG', 'give --broker <url> with --restart-command <cmd> (an operator-run broker), or --embedded-port <port> (the embedded broker)');
      if (o.embeddedPort !== undefined && (o.broker || o.restartCommand)) throw new ManagerError('E_SERVICE_CONFIG', '--embedded-port runs the broker here; it does not go with --broker or --restart-command');
      const logger = createLogger({ level: 'warn' });
      const embedded = o.embeddedPort !== undefined ? await EmbeddedBroker.start({ ...brokerFilesNow(o.mgmt), port: o.embeddedPort, logger }) : null;
      const brokerUrl = embedded ? embedded.url : o.broker!;
      const db = new FleetDb(join(o.data, 'manager.db'));
      try {
        const result = await rotateManagementRoot({
          mgmtDir: o.mgmt, db, brokerUrl, logger,
          broker: embedded ? embeddedBrokerControl(embedded) : scriptedBroker({ dir: o.brokerFiles ?? o.mgmt, restartCommand: o.restartCommand!, url: brokerUrl }),
          subject: o.subject, resume: o.resume, ackTimeoutMs: o.ackTimeout, maxAttempts: o.maxAttempts,
        });
        process.stdout.write(o.json ? JSON.stringify(result, null, 2) + '\n'
          : `management-root rotation ${result.id} complete: ${result.devices} devices, ${result.restarts} broker restarts, ${result.commands} commands (${result.resent} resent), ${result.seconds.toFixed(1)} s\n`);
      } finally {
        db.close();
        await embedded?.close();
      }
    });

  link.command('status')
    .description('how far the last management-root rotation got, and which link root the management folder holds')
    .requiredOption('--mgmt <dir>', 'the management PKI (trustroll mgmt init)')
    .option('--json', 'print it as JSON', false)
    .action((o: { mgmt: string; json: boolean }) => {
      const j = loadLinkJournal(o.mgmt);
      const root = fingerprintPem(readFileSync(join(o.mgmt, 'ca.pem'), 'utf8'));
      const devices = recordedLinkCertificates(o.mgmt).size;
      const view = {
        root, devicesRecorded: devices,
        rotation: j ? { id: j.id, startedAt: j.startedAt, finishedAt: j.finishedAt, done: j.done, next: LINK_PHASES.find((p) => !j.done.includes(p)) ?? null, restarts: j.restarts } : null,
      };
      if (o.json) return void process.stdout.write(JSON.stringify(view, null, 2) + '\n');
      process.stdout.write(`management root ${root.slice(0, 16)}…, ${devices} device link certificates recorded\n`);
      if (!j) return void process.stdout.write('no management-root rotation yet\n');
      process.stdout.write(`rotation ${j.id}: ${j.finishedAt ? `complete at ${j.finishedAt}` : `open, done ${j.done.join(', ') || 'nothing'}, next ${view.rotation!.next}`}\n`);
    });

  link.command('record')
    .description('record a device\'s current link certificate (device.pem) so a rotation can issue its new one for the same key ("trustroll mgmt device" records it itself)')
    .requiredOption('--mgmt <dir>', 'the management PKI (trustroll mgmt init)')
    .requiredOption('--id <deviceId>', 'device id (the certificate\'s CN)')
    .requiredOption('--cert <pem>', 'the device\'s link certificate file')
    .action((o: { mgmt: string; id: string; cert: string }) => {
      const pem = readFileSync(o.cert, 'utf8');
      const cert = new X509Certificate(pem);
      const ca = new X509Certificate(readFileSync(join(o.mgmt, 'ca.pem'), 'utf8'));
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new ManagerError('E_CSR_IDENTITY', `${o.cert} is not issued by the management root in ${o.mgmt}`);
      if (!cert.subject.split('\n').includes(`CN=${o.id}`)) throw new ManagerError('E_CSR_IDENTITY', `${o.cert} is not the link certificate of ${o.id} (${cert.subject.replace(/\n/g, ', ')})`);
      recordLinkCertificate(o.mgmt, o.id, pem);
      process.stdout.write(`recorded the link certificate of ${o.id}\n`);
    });
}
