/**
 * The on-device agent: owns the device record, turns commands into
 * acknowledgements one at a time, and tells the TLS layer when the trust
 * store or identity changed so it can hot-reload.
 */
import type { KeyAlgorithm, KeyStore } from '../hal/key-store.ts';
import { buildCsr } from '../protocol/csr.ts';
import { ackSignedBytes } from '../protocol/ack-signature.ts';
import type { Clock } from '../protocol/clock.ts';
import type { Logger } from '../protocol/log.ts';
import type { Ack, DeviceStateSummary } from '../protocol/messages/ack.ts';
import type { Command } from '../protocol/messages/command.ts';
import { SAFE_SCHEDULES, type Role, type Schedule } from '../protocol/steps.ts';
import { isSelfSigned, issuedBy } from '../protocol/chain.ts';
import { parseCertificate, spkiOf, toPem } from '../protocol/pem.ts';
import { AgentError } from './errors.ts';
import type { RegressionFlag } from '../protocol/messages/device-state.ts';
import { anchorsOf, identitiesOf, summarize, type DeviceRecord, type Identity } from './device-record.ts';
import { dispatch } from './dispatcher.ts';
import type { OwnKey } from './effects/context.ts';
import type { HistoryEntry, StateStore } from './state-store.ts';

/** How an agent is wired. */
export interface AgentOptions {
  deviceId: string;
  role: Role;
  store: StateStore;
  keys: KeyStore;
  clock: Clock;
  logger: Logger;
  /** Schedules this device accepts; default SAFE_SCHEDULES (an unsafe order is refused even if signed). */
  schedules?: Readonly<Record<string, Schedule>>;
  verifySignature?: (cmd: Command, signedBytes: Buffer) => void;
  /** Told of every refused command before its acknowledgement leaves (refusals.ts keeps the last one durably). */
  onRefused?: (ack: Ack, raw: Buffer | string | object) => Promise<void>;
}

/**
 * Listener for trust-store/identity changes (TLS hot reload). It gets the
 * agent's record itself: the agent never modifies a record in place (every
 * change builds a new one), and listeners must not either.
 */
export type ChangeListener = (record: DeviceRecord) => void | Promise<void>;

/** A roll-back the agent detected at load, as its state message reports it (protocol/messages/device-state.ts). */
export type RegressionReport = RegressionFlag;

/** The device agent. */
export class Agent {
  private record: DeviceRecord;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<ChangeListener>();
  /** summarize() of the current record (records are never modified in place, so identity is enough). */
  private summarized: { record: DeviceRecord; summary: DeviceStateSummary } | null = null;
  private regressed: RegressionReport | null = null;

  private constructor(private readonly opts: AgentOptions, record: DeviceRecord) {
    this.record = record;
    this.checkRegression();
  }

  /** Compare the store's roll-back report with what was reported before; log a detection and a repair once each. */
  private checkRegression(): void {
    const i = this.opts.store.integrity?.() ?? null;
    const log = { deviceId: this.opts.deviceId, rotationId: this.record.rotation?.id, step: this.record.rotation?.completed.at(-1) };
    if (i?.rolledBack) {
      const first = this.regressed === null;
      this.regressed = {
        code: 'E_STORE_REGRESSED', lostWrites: i.lostWrites, missingWrites: i.missingWrites, loadedSeq: first ? this.record.lastSeq : this.regressed!.loadedSeq,
        detectedAt: this.regressed?.detectedAt ?? this.opts.clock.now().toISOString(),
        message: `${i.detail}; the device runs on the older state (last command #${first ? this.record.lastSeq : this.regressed!.loadedSeq}) until the manager re-sends what was lost`,
      };
      if (first) this.opts.logger.error('trust store rolled back to an older copy; acknowledged steps are missing here and are reported to the manager', { ...log, code: 'E_STORE_REGRESSED', lastSeq: this.record.lastSeq, lostWrites: i.lostWrites, detail: i.detail });
    } else if (this.regressed) {
      this.opts.logger.info('trust store roll-back repaired: the lost writes were made again', { ...log, lastSeq: this.record.lastSeq, lostWrites: this.regressed.lostWrites });
      this.regressed = null;
    }
  }

  /** The store's roll-back, while one is unrepaired (null otherwise, or when the backend cannot tell). */
  regression(): RegressionReport | null {
    return this.regressed ? { ...this.regressed } : null;
  }

  /** Open a provisioned device; fails with E_AGENT_NOT_PROVISIONED or E_STORE_CORRUPT. */
  static async open(opts: AgentOptions): Promise<Agent> {
    const record = await opts.store.load();
    if (!record) throw new AgentError('E_AGENT_NOT_PROVISIONED', `device ${opts.deviceId} has no trust store; run provisioning first`);
    if (record.deviceId !== opts.deviceId || record.role !== opts.role) {
      throw new AgentError('E_AGENT_CONFIG', `trust store belongs to ${record.deviceId} (${record.role}), but the agent is configured as ${opts.deviceId} (${opts.role}); fix deviceId/role`);
    }
    return new Agent(opts, record);
  }

  /**
   * Factory provisioning: store the root and the device certificate after
   * checking that the certificate chains to the root and is for the HAL key.
   * Separate-roots fleets also give `issuerRoot`, the root that signs this
   * device's certificate (kept to verify its next one); `root` is then the
   * other side's root, the one peers are verified with.
   */
  static async provision(opts: AgentOptions, material: { root: string; certificate: string; keyLabel: string; issuerRoot?: string }): Promise<Agent> {
    const root = parseCertificate(material.root, 'root');
    const issuer = material.issuerRoot === undefined ? root : parseCertificate(material.issuerRoot, 'issuer root');
    const cert = parseCertificate(material.certificate, 'device certificate');
    const key = await opts.keys.get(material.keyLabel);
    if (!key) throw new AgentError('E_AGENT_PROVISION', `HAL has no key "${material.keyLabel}"`);
    if (!isSelfSigned(root)) throw new AgentError('E_AGENT_PROVISION', 'the root certificate is not self-signed');
    if (!isSelfSigned(issuer)) throw new AgentError('E_AGENT_PROVISION', 'the issuer root certificate is not self-signed');
    if (!issuedBy(cert, issuer)) throw new AgentError('E_AGENT_PROVISION', material.issuerRoot === undefined ? 'the device certificate is not issued by the root' : 'the device certificate is not issued by the issuer root');
    if (!spkiOf(cert).equals(key.spki)) throw new AgentError('E_AGENT_PROVISION', `the device certificate is not for HAL key "${material.keyLabel}"`);
    const record: DeviceRecord = {
      version: 1,
      deviceId: opts.deviceId,
      role: opts.role,
      trust: { current: toPem(root), distribution: null, next: null },
      ...(material.issuerRoot === undefined ? {} : { issuer: { current: toPem(issuer), distribution: null, next: null } }),
      identity: { active: { cert: toPem(cert), keyLabel: material.keyLabel }, fallback: null },
      rotation: null,
      lastSeq: 0,
      results: [],
    };
    await opts.store.save(record);
    return new Agent(opts, record);
  }

  get deviceId(): string {
    return this.opts.deviceId;
  }

  get role(): Role {
    return this.opts.role;
  }

  /** A copy of the current record. */
  snapshot(): DeviceRecord {
    return structuredClone(this.record);
  }

  /** PEM roots for the TLS stack: R0, D, R1 as held. */
  trustAnchors(): string[] {
    return anchorsOf(this.record);
  }

  /** Identities in presentation order (new first, old as fallback). */
  identities(): Identity[] {
    return identitiesOf(this.record);
  }

  /** Subscribe to durable changes; returns an unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Handle one command (raw bytes or parsed); commands are processed strictly one at a time. */
  handle(raw: Buffer | string | object): Promise<Ack> {
    const run = this.queue.then(() => this.handleNow(raw));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async handleNow(raw: Buffer | string | object): Promise<Ack> {
    const now = this.opts.clock.now();
    const { ack, changed } = await dispatch(raw, {
      record: this.record,
      schedules: this.opts.schedules ?? SAFE_SCHEDULES,
      now,
      ownKeys: () => this.ownKeys(),
      verifySignature: this.opts.verifySignature,
      signAck: async (ack) => {
        // Signed with the identity key the manager knows now (a re-key switches keys only with this very step).
        const label = this.record.identity.active.keyLabel;
        const info = await this.opts.keys.get(label);
        if (!info) return ack;
        const value = (await this.opts.keys.sign(label, ackSignedBytes(ack))).toString('base64');
        return { ...ack, sig: { alg: info.algorithm.startsWith('RSA') ? 'RS256' : 'ES256', value } };
      },
      persist: async (next, cmd, storeHash) => {
        const entry: HistoryEntry = { seq: cmd.seq, rotationId: cmd.rotationId, step: cmd.step, storeHash, at: now.toISOString() };
        await this.opts.store.save(next, entry);
        this.record = next;
        if (this.regressed) this.checkRegression();
      },
    });
    const log = { deviceId: ack.deviceId, rotationId: ack.rotationId, step: ack.step, seq: ack.seq };
    if (ack.ok) this.opts.logger.info(changed ? 'step applied' : 'redelivered step acknowledged again', { ...log, storeHash: ack.state.storeHash });
    else {
      this.opts.logger.warn('command rejected', { ...log, code: ack.error?.code, reason: ack.error?.message });
      await this.opts.onRefused?.(ack, raw);
    }
    // Listeners (TLS hot reload) finish before the acknowledgement leaves the device.
    if (changed && this.listeners.size > 0) {
      const record = this.record;
      await Promise.all([...this.listeners].map((l) => l(record)));
    }
    return ack;
  }

  private async ownKeys(): Promise<OwnKey[]> {
    const labels = [this.record.identity.active.keyLabel, this.record.pendingKey].filter((l): l is string => !!l);
    const out: OwnKey[] = [];
    for (const label of [...new Set(labels)]) {
      const info = await this.opts.keys.get(label);
      if (info) out.push({ label, spki: info.spki });
    }
    return out;
  }

  /**
   * Re-key inside secure storage: create a new key in the HAL (the private
   * key never leaves it), remember it durably as pending, and return a
   * PKCS#10 request signed by it for the manager. The next rotation's leaf
   * may then carry this key; installing it switches the identity's key.
   */
  rekey(opts: { algorithm?: KeyAlgorithm } = {}): Promise<string> {
    const run = this.queue.then(async () => {
      const algorithm = opts.algorithm ?? 'P-256';
      let label = this.record.pendingKey ?? null;
      let info = label ? await this.opts.keys.get(label) : null;
      if (!label || !info) {
        label = `${this.deviceId}.k${this.opts.clock.now().getTime().toString(36)}`;
        info = await this.opts.keys.create(label, algorithm);
        const next: DeviceRecord = { ...structuredClone(this.record), pendingKey: label };
        await this.opts.store.save(next);
        this.record = next;
        if (this.regressed) this.checkRegression();
      }
      const keyLabel = label;
      const csr = await buildCsr({ commonName: this.deviceId, spki: info.spki, algorithm: info.algorithm, sign: (data) => this.opts.keys.sign(keyLabel, data) });
      this.opts.logger.info('re-key requested', { deviceId: this.deviceId, keyLabel, algorithm: info.algorithm });
      return csr;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Technician view: where the device stands, fingerprints only. */
  status() {
    if (this.summarized?.record !== this.record) this.summarized = { record: this.record, summary: summarize(this.record) };
    return { deviceId: this.deviceId, role: this.role, ...this.summarized.summary, lastSeq: this.record.lastSeq, regression: this.regression() };
  }
}
