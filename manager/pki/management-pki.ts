/**
 * The management channel's own PKI, independent of the PKI being rotated
 * (PROTOCOL.md [0140-0143]): rotating the fleet's root never cuts the
 * channel that carries the rotation. It holds
 *
 * - the management CA (P-256, self-signed),
 * - the broker's server certificate (localhost / 127.0.0.1 / ::1 plus any
 *   configured names),
 * - the manager's client certificate, CN `trustroll-manager`,
 * - one client certificate per device, CN = device id (the broker maps the
 *   CN to the MQTT username, and the ACL is keyed on it),
 * - the command-signing key (ECDSA P-256) devices are provisioned to trust.
 *
 * Private keys are PEM strings in memory (a device's would live in its HAL);
 * `toJSON` and `util.inspect` show certificates and key ids only, so logging
 * this object never leaks a key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from './key-vault.ts';
import { ManagerError } from '../errors.ts';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { commandKeyId, type CommandSigningKey } from '../../protocol/command-signature.ts';
import { assertDeviceId, MANAGER_IDENTITY, mosquittoAcl } from '../../protocol/topics.ts';
import { createRoot, type RootMaterial } from '../ca/root.ts';
import { LeafIssuer } from '../ca/leaf-issuer.ts';

/** A certificate and its private key, PEM. `key` is secret. */
export interface TlsIdentity {
  readonly cert: string;
  readonly key: string;
}

/** How the management PKI is made. */
export interface ManagementPkiOptions {
  now: Date;
  /** DN of the management CA. */
  subject?: string;
  caLifetimeDays?: number;
  leafLifetimeDays?: number;
  /**
   * Extra names the broker is reached at. An IP address given here becomes an
   * IP subjectAltName (a DNS entry holding an address never matches it:
   * clients connecting to mqtts://10.20.30.40 would fail the host check).
   */
  brokerDnsNames?: readonly string[];
  brokerIpAddresses?: readonly string[];
}

/** The broker certificate's subjectAltNames: localhost and loopback, plus `o`'s names, each address as an IP entry. */
export function brokerAltNames(o: Pick<ManagementPkiOptions, 'brokerDnsNames' | 'brokerIpAddresses'>): { dnsNames: string[]; ipAddresses: string[] } {
  const names = o.brokerDnsNames ?? [];
  const unique = (xs: string[]) => [...new Set(xs)];
  return {
    dnsNames: unique(['localhost', ...names.filter((n) => isIP(n) === 0)]),
    ipAddresses: unique(['127.0.0.1', '::1', ...names.filter((n) => isIP(n) !== 0), ...(o.brokerIpAddresses ?? [])]),
  };
}

/** Paths of the PEM files a broker needs (see writeBrokerFiles). */
export interface BrokerFiles {
  cafile: string;
  certfile: string;
  keyfile: string;
}

const DAY = 86_400_000;
const BACKDATE_MS = 3_600_000;

function newKey(): { spki: Buffer; pem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { spki: publicKey.export({ type: 'spki', format: 'der' }), pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** The management CA with the identities issued under it. */
export class ManagementPki {
  private readonly issuer: LeafIssuer;
  private readonly devices = new Map<string, TlsIdentity>();
  /** The management CA certificate (PEM): the broker and every client trust only this. */
  readonly ca: string;
  /** The broker's server certificate and key. */
  readonly broker: TlsIdentity;
  /** The manager's client certificate (CN trustroll-manager) and key. */
  readonly manager: TlsIdentity;
  /** The manager's command-signing key (Orchestrator `sign` via commandSigner). */
  readonly commandKey: CommandSigningKey;

  private constructor(
    private readonly root: RootMaterial,
    private readonly o: ManagementPkiOptions & { leafLifetimeDays: number },
    saved?: { broker: TlsIdentity; manager: TlsIdentity; commandKey: KeyObject },
  ) {
    this.ca = root.cert;
    this.issuer = new LeafIssuer(root);
    if (saved) {
      this.broker = saved.broker;
      this.manager = saved.manager;
      this.commandKey = { keyId: commandKeyId(createPublicKey(saved.commandKey)), privateKey: saved.commandKey };
      return;
    }
    const key = newKey();
    this.broker = {
      key: key.pem,
      cert: this.issuer.issue({
        commonName: 'trustroll-broker', publicKey: key.spki, profile: 'server',
        ...brokerAltNames(o), ...this.validity(),
      }),
    };
    this.manager = this.client(MANAGER_IDENTITY);
    const signing = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.commandKey = { keyId: commandKeyId(signing.publicKey), privateKey: signing.privateKey };
  }

  /**
   * Keep the management PKI across manager restarts: CA, broker, manager
   * and command-signing material in `dir` (keys 0600, written atomically),
   * plus the broker's files, its ACL and a Mosquitto configuration snippet.
   */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const put = (name: string, data: string, secret = false) => writeFileAtomic(join(dir, name), data, secret ? 0o600 : 0o644);
    put('ca.pem', this.ca);
    put('ca-key.pem', this.root.key.export({ type: 'pkcs8', format: 'pem' }) as string, true);
    put('manager.pem', this.manager.cert);
    put('manager-key.pem', this.manager.key, true);
    put('command-key.pem', this.commandKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, true);
    const files = this.writeBrokerFiles(dir);
    put('acl', mosquittoAcl());
    put('mosquitto-listener.conf', [
      '# Add to mosquitto.conf (Mosquitto 2.x); trustroll needs nothing else from the broker.',
      'per_listener_settings false', 'allow_anonymous false', `acl_file ${join(dir, 'acl')}`, 'persistence true',
      'listener 8883', `cafile ${files.cafile}`, `certfile ${files.certfile}`, `keyfile ${files.keyfile}`,
      'require_certificate true', 'use_identity_as_username true', 'use_username_as_clientid true',
      '# The manager\'s session must hold two messages per device while it is busy or away: size this above 2 x fleet size.',
      'max_queued_messages 200000',
      '# Broker statistics ($SYS/broker/...) for the manager\'s broker view; the ACL lets only trustroll-manager read them.',
      'sys_interval 10', '',
    ].join('\n'));
  }

  /** Load a management PKI saved with `save`. */
  static load(dir: string, now: Date): ManagementPki {
    const read = (name: string) => {
      try {
        return readFileSync(join(dir, name), 'utf8');
      } catch (err) {
        throw new ManagerError('E_KEY_VAULT', `management PKI file ${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    const root: RootMaterial = { cert: read('ca.pem'), key: createPrivateKey(read('ca-key.pem')) };
    return new ManagementPki(root, { now, leafLifetimeDays: 825 }, {
      broker: { cert: read('broker.pem'), key: read('broker-key.pem') },
      manager: { cert: read('manager.pem'), key: read('manager-key.pem') },
      commandKey: createPrivateKey(read('command-key.pem')),
    });
  }

  /** Make a fresh management PKI (P-256 throughout; about 10 ms). */
  static async create(o: ManagementPkiOptions): Promise<ManagementPki> {
    const notBefore = new Date(o.now.getTime() - BACKDATE_MS);
    const root = await createRoot({
      subject: o.subject ?? 'CN=trustroll management CA,O=trustroll', algorithm: 'P-256',
      notBefore, notAfter: new Date(notBefore.getTime() + (o.caLifetimeDays ?? 3650) * DAY),
    });
    return new ManagementPki(root, { ...o, leafLifetimeDays: o.leafLifetimeDays ?? 825 });
  }

  private validity(): { notBefore: Date; notAfter: Date } {
    const notBefore = new Date(this.o.now.getTime() - BACKDATE_MS);
    const notAfter = new Date(Math.min(this.o.now.getTime() + this.o.leafLifetimeDays * DAY, this.issuer.issuer.notAfter.getTime()));
    return { notBefore, notAfter };
  }

  private client(commonName: string): TlsIdentity {
    const key = newKey();
    return { key: key.pem, cert: this.issuer.issue({ commonName, publicKey: key.spki, profile: 'client', ...this.validity() }) };
  }

  /** The management identity of device `id` (CN = id), issued on first use. E_SCHEMA for an id unusable in topics. */
  device(id: string): TlsIdentity {
    assertDeviceId(id);
    let identity = this.devices.get(id);
    if (!identity) {
      identity = this.client(id);
      this.devices.set(id, identity);
    }
    return identity;
  }

  /** A management certificate (CN = device id) for a key the device keeps in its HAL (its SPKI, DER). */
  deviceCertificate(id: string, spki: Buffer): string {
    assertDeviceId(id);
    return this.issuer.issue({ commonName: id, publicKey: spki, profile: 'client', ...this.validity() });
  }

  /** The command keys a device trusts (Agent `verifySignature` via commandVerifier): keyId → public key. */
  trustedCommandKeys(): Map<string, KeyObject> {
    return new Map([[this.commandKey.keyId, createPublicKey(this.commandKey.privateKey)]]);
  }

  /** Write the broker's CA, certificate and key (0600) into `dir`, for Mosquitto. */
  writeBrokerFiles(dir: string): BrokerFiles {
    const files = { cafile: join(dir, 'mgmt-ca.pem'), certfile: join(dir, 'broker.pem'), keyfile: join(dir, 'broker-key.pem') };
    writeFileSync(files.cafile, this.ca);
    writeFileSync(files.certfile, this.broker.cert);
    writeFileSync(files.keyfile, this.broker.key, { mode: 0o600 });
    chmodSync(files.keyfile, 0o600);
    return files;
  }

  /** Public view only: no private key is ever serialized. */
  toJSON(): { ca: string; commandKeyId: string; devices: string[] } {
    return { ca: this.ca, commandKeyId: this.commandKey.keyId, devices: [...this.devices.keys()] };
  }

  /** util.inspect / console.log show the public view. */
  [inspect.custom](): string {
    return `ManagementPki ${JSON.stringify({ commandKeyId: this.commandKey.keyId, devices: this.devices.size })}`;
  }
}
