/**
 * The device's side of a management-root rotation (protocol/link-schedule.ts):
 * link commands (schedule `link-rotation`) go through the device's one
 * command dispatcher, on a record that holds the link's roots and
 * certificates instead of the device trust store, so they get the same
 * checks as every rotation step (PROTOCOL.md device rules 1-4): the
 * manager's signature, the per-device sequence number (shared with the
 * device-PKI commands: a link command must be newer than both), the
 * schedule's order, D against the link root, R1 against D, the new link
 * certificate against R1 and the device's own link key, a durable write
 * before the acknowledgement, and the stored acknowledgement for a
 * redelivery. The acknowledgement's state summary describes the link
 * material, and it is signed with the device's identity key like every
 * other acknowledgement.
 *
 * `material()` is what the MQTT link presents: the new certificate first,
 * the old one as fallback, against every trusted link root.
 */
import { X509Certificate } from 'node:crypto';
import type { KeyStore } from '../../hal/key-store.ts';
import { ackSignedBytes } from '../../protocol/ack-signature.ts';
import type { Clock } from '../../protocol/clock.ts';
import { isLinkCommand, LINK_SCHEDULES } from '../../protocol/link-schedule.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { toPem } from '../../protocol/pem.ts';
import type { Agent } from '../agent.ts';
import { identitiesOf, type DeviceRecord } from '../device-record.ts';
import { dispatch } from '../dispatcher.ts';
import type { CheckedLink } from '../link-tls.ts';
import { LINK_KEY_LABEL, LinkStore, type LinkStorePlace } from './link-store.ts';

/** TLS material for one link connection attempt. */
export interface LinkTlsMaterial {
  ca: string;
  cert: string;
  key?: string;
}

/** What the MQTT link asks of a link rotation (agent/mqtt-link.ts option `linkRotation`). */
export interface LinkRotationHook {
  /** TLS material in presentation order: new link certificate first, the old one as fallback. */
  material(): LinkTlsMaterial[];
  /** True for a command of a link schedule (the rest goes to the device-PKI agent). */
  accepts(raw: Buffer): boolean;
  handle(raw: Buffer): Promise<{ ack: Ack; changed: boolean }>;
  /** The newest sequence number the device consumed (link and device-PKI commands). */
  lastSeq(): number;
}

/** What the rotator needs from the runtime. */
export interface LinkRotatorOptions {
  /** The agent's link folder (`<stateDir>/link`) and the configured (factory) link files. */
  place: LinkStorePlace;
  checked: CheckedLink;
  /** The link key as Node's TLS takes it (PEM), when it is not in a token. */
  key?: string;
  agent: Agent;
  keys: KeyStore;
  clock: Clock;
  logger: Logger;
  verifySignature?: (cmd: Command, signedBytes: Buffer) => void;
}

/** The link record a device starts from: its configured link root and certificate, no rotation. */
function initialRecord(deviceId: string, checked: CheckedLink): DeviceRecord {
  const leaf = new X509Certificate(checked.cert);
  const cas = (checked.ca.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b));
  const root = cas.find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey)) ?? cas[0]!;
  return {
    version: 1, deviceId, role: 'client',
    trust: { current: toPem(root), distribution: null, next: null },
    identity: { active: { cert: toPem(leaf), keyLabel: LINK_KEY_LABEL }, fallback: null },
    rotation: null, lastSeq: 0, results: [],
  };
}

/** Applies link commands to the device's link material. */
export class LinkRotator implements LinkRotationHook {
  private record: DeviceRecord;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly store: LinkStore;
  private readonly log: Logger;

  constructor(private readonly o: LinkRotatorOptions) {
    this.store = new LinkStore(o.place);
    this.log = o.logger.child({ deviceId: o.agent.deviceId, component: 'link-rotation' });
    this.record = this.store.load() ?? initialRecord(o.agent.deviceId, o.checked);
  }

  /** True for a command naming a link schedule. */
  accepts(raw: Buffer): boolean {
    return isLinkCommand(raw);
  }

  /** What the link presents, new certificate first (the old one as fallback), against every trusted link root. */
  material(): LinkTlsMaterial[] {
    const ca = LinkStore.caText(this.record);
    return identitiesOf(this.record).map((id) => ({ ca, cert: id.cert, ...(this.o.key !== undefined ? { key: this.o.key } : {}) }));
  }

  /** The newest sequence number this device consumed, link and device-PKI commands together. */
  lastSeq(): number {
    return Math.max(this.record.lastSeq, this.o.agent.status().lastSeq);
  }

  /** A copy of the link record (tests, status). */
  snapshot(): DeviceRecord {
    return structuredClone(this.record);
  }

  /** Handle one link command; `changed` tells the link to reconnect with the new material once the command is acknowledged. */
  handle(raw: Buffer | string): Promise<{ ack: Ack; changed: boolean }> {
    const run = this.queue.then(() => this.handleNow(raw));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async handleNow(raw: Buffer | string): Promise<{ ack: Ack; changed: boolean }> {
    const now = this.o.clock.now();
    const spki = this.o.checked.certSpki;
    const { ack, changed } = await dispatch(raw, {
      // The sequence number space is the device's: a link command must be newer than any command it has seen.
      record: { ...this.record, lastSeq: this.lastSeq() },
      schedules: LINK_SCHEDULES,
      now,
      ownKeys: async () => [{ label: LINK_KEY_LABEL, spki }],
      verifySignature: this.o.verifySignature,
      signAck: (a) => this.signAck(a),
      persist: async (next) => {
        this.store.save(next);
        this.record = next;
      },
    });
    const log = { rotationId: ack.rotationId, step: ack.step, seq: ack.seq };
    if (ack.ok) this.log.info(changed ? 'link step applied' : 'redelivered link step acknowledged again', { ...log, storeHash: ack.state.storeHash });
    else this.log.warn('link command rejected', { ...log, code: ack.error?.code, reason: ack.error?.message });
    return { ack, changed };
  }

  /** Signed with the device's identity key, as every acknowledgement the manager checks. */
  private async signAck(ack: Ack): Promise<Ack> {
    const label = this.o.agent.identities()[0]!.keyLabel;
    const info = await this.o.keys.get(label);
    if (!info) return ack;
    const value = (await this.o.keys.sign(label, ackSignedBytes(ack))).toString('base64');
    return { ...ack, sig: { alg: info.algorithm.startsWith('RSA') ? 'RS256' : 'ES256', value } };
  }
}
