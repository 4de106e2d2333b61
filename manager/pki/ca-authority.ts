/**
 * manager/pki/: the manager's authorities and their keys on disk. This file
 * is the room's front, the fleet's CA; around it are the key vault
 * (key-vault.ts), the management channel's own PKI (management-pki.ts),
 * the operators' CA and certificates with their roles (operator-pki.ts),
 * and enrollment, which issues a device its first certificate
 * (enrollment.ts). Certificates and keys themselves are made in ../ca/.
 *
 * The manager's CA ("how"): keeps the active root and, during a rotation,
 * the pending one; makes the RFC 9810 root key update set at step S and
 * issues the devices' new leaves for their existing public keys. State is a
 * JSON file written atomically next to the key vault.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role, RootSide } from '../../protocol/steps.ts';
import type { NewRootChoice, RotationAuthority, RotationMaterial, RotationSubject } from '../rotation/authority.ts';
import { createRoot, type RootMaterial } from '../ca/root.ts';
import { createRootUpdate } from '../ca/root-update.ts';
import { issueLeaves, LeafIssuer, type LeafRequest } from '../ca/leaf-issuer.ts';
import { algorithmOf, type CaKeyAlgorithm } from '../ca/keys.ts';
import { ManagerError } from '../errors.ts';
import { KeyVault, writeFileAtomic } from './key-vault.ts';
import { fingerprint, parseCertificate, validity } from '../../protocol/pem.ts';

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

/** One root's state: the active root and, during its rotation, the pending one. */
interface RootState {
  active: { cert: string; key: string };
  pending: { rotationId: string; cert: string; key: string; distribution: string; oldWithNew?: string } | null;
}

/**
 * The CA file. Single-root fleets: the top-level root signs every
 * certificate. Separate-roots fleets [0144-0145] also hold `client`, the
 * root that signs client certificates; the top-level root then signs only
 * server certificates (so a file written before separate roots existed
 * opens unchanged as a single-root CA).
 */
interface CaState extends RootState {
  client?: RootState;
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

  /**
   * Open an existing CA, or create its first root (`subject`) if there is
   * none. `clientSubject` makes a separate-roots CA: `subject` then names the
   * server root and `clientSubject` the client root (ignored when opening).
   */
  static async openOrInit(dir: string, opts: { subject: string; now: Date; policy?: Partial<CaPolicy>; clientSubject?: string }): Promise<CaAuthority> {
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
    const make = (subject: string) => createRoot({ subject, algorithm: policy.algorithm, notBefore, notAfter: new Date(notBefore.getTime() + policy.rootLifetimeDays * DAY) });
    const root = await make(opts.subject);
    const client = opts.clientSubject === undefined ? null : await make(opts.clientSubject);
    const ca = new CaAuthority(dir, policy, {
      active: { cert: root.cert, key: keyName(root.cert) }, pending: null,
      ...(client ? { client: { active: { cert: client.cert, key: keyName(client.cert) }, pending: null } } : {}),
    });
    ca.vault.put(ca.state.active.key, root.key);
    if (client) ca.vault.put(ca.state.client!.active.key, client.key);
    ca.save();
    return ca;
  }

  /** True when client and server certificates are signed by separate roots ("trustroll ca init --client-subject"). */
  separateRoots(): boolean {
    return this.state.client !== undefined;
  }

  /** The state of `side`'s root; the one root when the fleet has one (`side` is then only a role). */
  private rootState(side: RootSide | undefined): RootState {
    return side === 'client' && this.state.client ? this.state.client : this.state;
  }

  /**
   * The root a rotation of `side` changes. A separate-roots fleet needs a
   * side and a single-root fleet takes none: E_ROOT_SIDE otherwise, nothing made.
   */
  private rotatedState(side: RootSide | undefined): RootState {
    if (this.separateRoots() && !side) throw new ManagerError('E_ROOT_SIDE', 'this fleet keeps separate client and server roots; rotate one of them ("trustroll rotate --root client" or "--root server")');
    if (!this.separateRoots() && side) throw new ManagerError('E_ROOT_SIDE', `this fleet has one root for both sides; there is no separate ${side} root to rotate (rotate without --root)`);
    return this.rootState(side);
  }

  private save(): void {
    writeFileAtomic(join(this.dir, 'ca.json'), JSON.stringify(this.state, null, 2));
  }

  private readonly active = new Map<string, RootMaterial>();
  private readonly issuers = new Map<string, LeafIssuer>();

  /**
   * The root devices currently trust (R0 before activation of a rotation).
   * `side` picks one root of a separate-roots fleet; without it, the
   * top-level root (the server root there). A single-root fleet ignores it.
   */
  activeRoot(side?: RootSide): RootMaterial {
    const st = this.rootState(side).active;
    let root = this.active.get(st.key);
    if (!root || root.cert !== st.cert) {
      root = { cert: st.cert, key: this.vault.get(st.key) };
      this.active.set(st.key, root);
    }
    return root;
  }

  /** The root that signs a `role` device's certificate (the device keeps it as its issuer anchor). */
  issuingRoot(role: Role): RootMaterial {
    return this.activeRoot(role);
  }

  /** The root a `role` device verifies its peers with: the other side's (the same one in a single-root fleet). */
  peerRoot(role: Role): RootMaterial {
    return this.activeRoot(role === 'server' ? 'client' : 'server');
  }

  /** Issue a leaf with the active root that signs the subject's role (enrollment of a device). */
  issueLeaf(subject: { commonName: string; spki: Buffer; role: Role }, now: Date): string {
    const root = this.issuingRoot(subject.role);
    let issuer = this.issuers.get(root.cert);
    if (!issuer) this.issuers.set(root.cert, (issuer = new LeafIssuer(root)));
    return issuer.issue(this.leafRequest(subject, now, root.cert));
  }

  private leafRequest(subject: { commonName: string; spki: Buffer; role: Role }, now: Date, issuerPem: string): LeafRequest {
    const notBefore = new Date(now.getTime() - this.policy.backdateMs);
    const issuerEnd = validity(parseCertificate(issuerPem, 'issuer')).notAfter;
    const notAfter = new Date(Math.min(now.getTime() + this.policy.leafLifetimeDays * DAY, issuerEnd.getTime()));
    return { commonName: subject.commonName, publicKey: subject.spki, profile: subject.role, notBefore, notAfter };
  }

  /** The algorithm of the active root's key (what a rotation keeps by default). */
  activeAlgorithm(side?: RootSide): CaKeyAlgorithm {
    return algorithmOf(this.activeRoot(side).key);
  }

  /**
   * Step S: K1, D, R1 and OldWithNew (kept pending), and the new leaves.
   * K1 keeps the active root's algorithm and R1 its subject unless
   * `newRoot` (or the policy's newRootSubject) says otherwise.
   */
  async prepare(req: { rotationId: string; subjects: readonly RotationSubject[]; now: Date; newRoot?: NewRootChoice; side?: RootSide }): Promise<RotationMaterial> {
    const slot = this.rotatedState(req.side);
    const old = this.activeRoot(req.side);
    const start = new Date(req.now.getTime() - this.policy.backdateMs);
    const update = await createRootUpdate({
      old, now: start, lifetimeDays: this.policy.rootLifetimeDays,
      subject: req.newRoot?.subject ?? this.policy.newRootSubject, algorithm: req.newRoot?.algorithm ?? algorithmOf(old.key),
    });
    const key = keyName(update.next.cert);
    this.vault.put(key, update.next.key);
    slot.pending = { rotationId: req.rotationId, cert: update.next.cert, key, distribution: update.distribution, oldWithNew: update.oldWithNew };
    this.save();
    const requests = req.subjects.map((s) => this.leafRequest({ commonName: s.commonName, spki: s.spki, role: s.role }, req.now, update.next.cert));
    const pems = await issueLeaves(update.next, requests);
    return { distribution: update.distribution, newRoot: update.next.cert, oldWithNew: update.oldWithNew, leaves: new Map(req.subjects.map((s, i) => [s.id, pems[i]!])) };
  }

  /** The rotation finished: R1 becomes the active root. */
  async activate(rotationId: string): Promise<void> {
    const slot = [this.state, this.state.client].find((r) => r?.pending?.rotationId === rotationId);
    if (!slot) throw new ManagerError('E_ROTATION_UNKNOWN', `CA has no pending root for rotation ${rotationId}`);
    const p = slot.pending!;
    slot.active = { cert: p.cert, key: p.key };
    slot.pending = null;
    this.save();
  }
}

function keyName(certPem: string): string {
  return `root-${fingerprint(parseCertificate(certPem, 'root')).slice(0, 16)}`;
}
