/**
 * The manager's CA ("how"): keeps the active root and, during a rotation,
 * the pending one; makes the RFC 9810 root key update set at step S and
 * issues the devices' new leaves for their existing public keys. State is a
 * JSON file written atomically next to the key vault.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '../protocol/steps.ts';
import type { NewRootChoice, RotationAuthority, RotationMaterial, RotationSubject } from './authority.ts';
import { createRoot, type RootMaterial } from './ca/root.ts';
import { createRootUpdate } from './ca/root-update.ts';
import { issueLeaves, LeafIssuer, type LeafRequest } from './ca/leaf-issuer.ts';
import { algorithmOf, type CaKeyAlgorithm } from './ca/keys.ts';
import { ManagerError } from './errors.ts';
import { KeyVault, writeFileAtomic } from './key-vault.ts';
import { fingerprint, parseCertificate, validity } from '../protocol/pem.ts';

/** CA settings. */
export interface CaPolicy {
  /** Algorithm of the first root (ca init); a rotation keeps the active root's unless told otherwise. */
  algorithm: CaKeyAlgorithm;
  rootLifetimeDays: number;
  leafLifetimeDays: number;
  /** Certificates start this long before "now", for device clocks that lag. */
  backdateMs: number;
  /** Subject of a new root; by default a rotation keeps the old root's DN. */
  newRootSubject?: string;
}

/** Defaults: P-256 roots for 10 years, leaves for 2 years, one hour of clock slack. */
export const DEFAULT_CA_POLICY: CaPolicy = { algorithm: 'P-256', rootLifetimeDays: 3650, leafLifetimeDays: 730, backdateMs: 3_600_000 };

interface CaState {
  active: { cert: string; key: string };
  pending: { rotationId: string; cert: string; key: string; distribution: string; oldWithNew?: string } | null;
}

const DAY = 86_400_000;

/** File-backed CA implementing the orchestrator's RotationAuthority. */
export class CaAuthority implements RotationAuthority {
  private state: CaState;
  private readonly vault: KeyVault;

  private constructor(private readonly dir: string, private readonly policy: CaPolicy, state: CaState) {
    this.vault = new KeyVault(join(dir, 'keys'));
    this.state = state;
  }

  /** Open an existing CA, or create its first root (`subject`) if there is none. */
  static async openOrInit(dir: string, opts: { subject: string; now: Date; policy?: Partial<CaPolicy> }): Promise<CaAuthority> {
    const policy = { ...DEFAULT_CA_POLICY, ...opts.policy };
    const file = join(dir, 'ca.json');
    if (existsSync(file)) {
      try {
        return new CaAuthority(dir, policy, JSON.parse(readFileSync(file, 'utf8')) as CaState);
      } catch (err) {
        throw new ManagerError('E_MANAGER_DB', `${file}: ${(err as Error).message}`);
      }
    }
    const notBefore = new Date(opts.now.getTime() - policy.backdateMs);
    const root = await createRoot({ subject: opts.subject, algorithm: policy.algorithm, notBefore, notAfter: new Date(notBefore.getTime() + policy.rootLifetimeDays * DAY) });
    const ca = new CaAuthority(dir, policy, { active: { cert: root.cert, key: keyName(root.cert) }, pending: null });
    ca.vault.put(ca.state.active.key, root.key);
    ca.save();
    return ca;
  }

  private save(): void {
    writeFileAtomic(join(this.dir, 'ca.json'), JSON.stringify(this.state, null, 2));
  }

  private active: RootMaterial | null = null;
  private issuer: { root: RootMaterial; issuer: LeafIssuer } | null = null;

  /** The root devices currently trust (R0 before activation of a rotation). */
  activeRoot(): RootMaterial {
    if (!this.active || this.active.cert !== this.state.active.cert) {
      this.active = { cert: this.state.active.cert, key: this.vault.get(this.state.active.key) };
    }
    return this.active;
  }

  /** Issue a leaf with the active root (enrollment of a device). */
  issueLeaf(subject: { commonName: string; spki: Buffer; role: Role }, now: Date): string {
    const root = this.activeRoot();
    if (this.issuer?.root !== root) this.issuer = { root, issuer: new LeafIssuer(root) };
    return this.issuer.issuer.issue(this.leafRequest(subject, now, root.cert));
  }

  private leafRequest(subject: { commonName: string; spki: Buffer; role: Role }, now: Date, issuerPem: string): LeafRequest {
    const notBefore = new Date(now.getTime() - this.policy.backdateMs);
    const issuerEnd = validity(parseCertificate(issuerPem, 'issuer')).notAfter;
    const notAfter = new Date(Math.min(now.getTime() + this.policy.leafLifetimeDays * DAY, issuerEnd.getTime()));
    return { commonName: subject.commonName, publicKey: subject.spki, profile: subject.role, notBefore, notAfter };
  }

  /** The algorithm of the active root's key (what a rotation keeps by default). */
  activeAlgorithm(): CaKeyAlgorithm {
    return algorithmOf(this.activeRoot().key);
  }

  /**
   * Step S: K1, D, R1 and OldWithNew (kept pending), and the new leaves.
   * K1 keeps the active root's algorithm and R1 its subject unless
   * `newRoot` (or the policy's newRootSubject) says otherwise.
   */
  async prepare(req: { rotationId: string; subjects: readonly RotationSubject[]; now: Date; newRoot?: NewRootChoice }): Promise<RotationMaterial> {
    const old = this.activeRoot();
    const start = new Date(req.now.getTime() - this.policy.backdateMs);
    const update = await createRootUpdate({
      old, now: start, lifetimeDays: this.policy.rootLifetimeDays,
      subject: req.newRoot?.subject ?? this.policy.newRootSubject, algorithm: req.newRoot?.algorithm ?? algorithmOf(old.key),
    });
    const key = keyName(update.next.cert);
    this.vault.put(key, update.next.key);
    this.state = { ...this.state, pending: { rotationId: req.rotationId, cert: update.next.cert, key, distribution: update.distribution, oldWithNew: update.oldWithNew } };
    this.save();
    const requests = req.subjects.map((s) => this.leafRequest({ commonName: s.commonName, spki: s.spki, role: s.role }, req.now, update.next.cert));
    const pems = await issueLeaves(update.next, requests);
    return { distribution: update.distribution, newRoot: update.next.cert, oldWithNew: update.oldWithNew, leaves: new Map(req.subjects.map((s, i) => [s.id, pems[i]!])) };
  }

  /** The rotation finished: R1 becomes the active root. */
  async activate(rotationId: string): Promise<void> {
    const p = this.state.pending;
    if (!p || p.rotationId !== rotationId) throw new ManagerError('E_ROTATION_UNKNOWN', `CA has no pending root for rotation ${rotationId}`);
    this.state = { active: { cert: p.cert, key: p.key }, pending: null };
    this.save();
  }
}

function keyName(certPem: string): string {
  return `root-${fingerprint(parseCertificate(certPem, 'root')).slice(0, 16)}`;
}
