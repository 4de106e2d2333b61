/**
 * Step S of a management-root rotation, on the management PKI folder
 * (`trustroll mgmt init`): from the management root R0 (ca.pem, key K0 in
 * ca-key.pem) make K1, D (NewWithOld) and R1 (NewWithNew) with the same
 * RFC 9810 root key update as the device PKI (manager/ca/root-update.ts),
 * then the leaves under K1, each for the key its holder already has: the
 * broker's server certificate Sn (same names as before), the manager's
 * client certificate, and one link certificate per device (CN = device id,
 * the key of its current link certificate, which `trustroll mgmt device`
 * recorded in links/<id>.pem).
 *
 * Everything is staged in <mgmt>/link-rotation/ (keys 0600, atomic writes)
 * and promoted into the folder only when the rotation completes, so a
 * manager that restarts mid-rotation still loads the material the broker
 * and devices trust at that moment.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANAGER_IDENTITY, assertDeviceId } from '../../protocol/topics.ts';
import { spkiOf } from '../../protocol/pem.ts';
import { LeafIssuer } from '../ca/leaf-issuer.ts';
import { createRootUpdate } from '../ca/root-update.ts';
import type { RootMaterial } from '../ca/root.ts';
import { ManagerError } from '../errors.ts';
import { writeFileAtomic } from '../pki/key-vault.ts';

/** The staged material of one management-root rotation (PEM; keys stay in files). */
export interface LinkMaterial {
  /** R0: the management root everyone trusts now. */
  oldRoot: string;
  /** D = NewWithOld: K1 signed by K0. */
  distribution: string;
  /** R1 = NewWithNew. */
  newRoot: string;
  /** Sn: the broker's certificate under K1, for its current key. */
  broker: string;
  /** The manager's client certificate under K1, for its current key. */
  manager: string;
  /** Each device's new link certificate under K1, for its current link key. */
  devices: Record<string, string>;
}

const DAY = 86_400_000;

/** Where a mgmt folder keeps what a rotation stages. */
export const stagingDir = (mgmtDir: string) => join(mgmtDir, 'link-rotation');

/** Where `trustroll mgmt device` records the link certificate it issued (the key it certifies is needed to rotate). */
export const linksDir = (mgmtDir: string) => join(mgmtDir, 'links');

/** Record a device's current link certificate in the mgmt folder. */
export function recordLinkCertificate(mgmtDir: string, deviceId: string, certPem: string): void {
  assertDeviceId(deviceId);
  mkdirSync(linksDir(mgmtDir), { recursive: true, mode: 0o700 });
  writeFileAtomic(join(linksDir(mgmtDir), `${deviceId}.pem`), certPem, 0o644);
}

/** The recorded link certificates, by device id. */
export function recordedLinkCertificates(mgmtDir: string): Map<string, string> {
  const dir = linksDir(mgmtDir);
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.pem')) out.set(f.slice(0, -4), readFileSync(join(dir, f), 'utf8'));
  return out;
}

const read = (dir: string, name: string) => {
  try {
    return readFileSync(join(dir, name), 'utf8');
  } catch (err) {
    throw new ManagerError('E_KEY_VAULT', `management PKI file ${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
};

/** Subject alternative names of a certificate, split into DNS names and IP addresses. */
function namesOf(cert: X509Certificate): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) dnsNames.push(part.slice(4));
    else if (part.startsWith('IP Address:')) ipAddresses.push(part.slice(11).toLowerCase() === '0:0:0:0:0:0:0:1' ? '::1' : part.slice(11));
  }
  return { dnsNames, ipAddresses };
}

/** Make and stage K1, D, R1 and every leaf under K1; `devices` maps device id to its current link certificate. */
export async function stageLinkMaterial(mgmtDir: string, devices: ReadonlyMap<string, string>, o: { now: Date; lifetimeDays?: number; leafLifetimeDays?: number; subject?: string }): Promise<LinkMaterial> {
  const old: RootMaterial = { cert: read(mgmtDir, 'ca.pem'), key: createPrivateKey(read(mgmtDir, 'ca-key.pem')) };
  const update = await createRootUpdate({ old, now: o.now, lifetimeDays: o.lifetimeDays ?? 3650, subject: o.subject });
  const issuer = new LeafIssuer(update.next);
  const notBefore = new Date(new X509Certificate(update.next.cert).validFrom);
  const notAfter = new Date(Math.min(o.now.getTime() + (o.leafLifetimeDays ?? 825) * DAY, issuer.issuer.notAfter.getTime()));
  const brokerOld = new X509Certificate(read(mgmtDir, 'broker.pem'));
  const managerOld = new X509Certificate(read(mgmtDir, 'manager.pem'));
  const material: LinkMaterial = {
    oldRoot: old.cert,
    distribution: update.distribution,
    newRoot: update.next.cert,
    broker: issuer.issue({ commonName: 'trustroll-broker', publicKey: spkiOf(brokerOld), profile: 'server', ...namesOf(brokerOld), notBefore, notAfter }),
    manager: issuer.issue({ commonName: MANAGER_IDENTITY, publicKey: spkiOf(managerOld), profile: 'client', notBefore, notAfter }),
    devices: {},
  };
  for (const [id, pem] of devices) {
    assertDeviceId(id);
    material.devices[id] = issuer.issue({ commonName: id, publicKey: spkiOf(new X509Certificate(pem)), profile: 'client', notBefore, notAfter });
  }
  const dir = stagingDir(mgmtDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(join(dir, 'ca-next-key.pem'), update.next.key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  writeFileAtomic(join(dir, 'material.json'), JSON.stringify(material, null, 1), 0o644);
  return material;
}

/** The material a rotation staged, or null. */
export function stagedLinkMaterial(mgmtDir: string): LinkMaterial | null {
  const file = join(stagingDir(mgmtDir), 'material.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as LinkMaterial : null;
}

/**
 * Make the staged material the folder's own, once the rotation is complete:
 * R1 and K1 become ca.pem and ca-key.pem (and R1 mgmt-ca.pem), the new broker and manager
 * certificates replace theirs (keys unchanged), each device's new link
 * certificate is recorded; R0 is kept as ca-previous.pem. Idempotent.
 */
export function promoteLinkMaterial(mgmtDir: string, m: LinkMaterial): void {
  const dir = stagingDir(mgmtDir);
  writeFileAtomic(join(mgmtDir, 'ca-previous.pem'), m.oldRoot, 0o644);
  writeFileAtomic(join(mgmtDir, 'ca-key.pem'), read(dir, 'ca-next-key.pem'), 0o600);
  writeFileAtomic(join(mgmtDir, 'ca.pem'), m.newRoot, 0o644);
  // The broker's cafile kept in the folder (the listener snippet's default) trusts only R1 too.
  writeFileAtomic(join(mgmtDir, 'mgmt-ca.pem'), m.newRoot, 0o644);
  writeFileAtomic(join(mgmtDir, 'broker.pem'), m.broker, 0o644);
  writeFileAtomic(join(mgmtDir, 'manager.pem'), m.manager, 0o644);
  for (const [id, pem] of Object.entries(m.devices)) recordLinkCertificate(mgmtDir, id, pem);
}
