/**
 * The narrow interface between "when" (the orchestrator) and "how" (the
 * CA): the orchestrator asks for a rotation's material at step S and tells
 * the CA when the new root has become the fleet's root; for a renewal it
 * asks for new leaves under the active root.
 */
import type { Role, RootSide } from '../../protocol/steps.ts';
import type { CaKeyAlgorithm } from '../ca/keys.ts';

/** A device the rotation covers, as the CA needs it to issue a new leaf. */
export interface RotationSubject {
  id: string;
  role: Role;
  commonName: string;
  spki: Buffer;
}

/** Everything the devices will receive: D, R1 and one new leaf per device. */
export interface RotationMaterial {
  distribution: string;
  newRoot: string;
  leaves: Map<string, string>;
  /** OldWithNew (K0 certified by K1), for a holder of R1 alone who must still verify K0's leaves; absent from an external CA that makes none. */
  oldWithNew?: string;
}

/** What the operator chose for the new root; each absent field keeps the active root's. */
export interface NewRootChoice {
  /** K1's algorithm; default: the active root's (an RSA fleet stays RSA). */
  algorithm?: CaKeyAlgorithm;
  /** R1's subject DN; default: the active root's, byte for byte. */
  subject?: string;
}

/** The CA as the orchestrator sees it. */
export interface RotationAuthority {
  /**
   * Step S: make K1, D (NewWithOld) and R1 (NewWithNew), and issue the leaves
   * with K1. `side`: which root of a separate-roots fleet (absent: the one
   * fleet root); `subjects` are then only the devices that root signs.
   */
  prepare(req: { rotationId: string; subjects: readonly RotationSubject[]; now: Date; newRoot?: NewRootChoice; side?: RootSide }): Promise<RotationMaterial>;
  /** Every device holds R1 only: K1 becomes the current root, K0 is retired. */
  activate(rotationId: string): Promise<void>;
  /**
   * The root devices trust now (a renewal issues under it and changes no
   * root); `side` picks one root of a separate-roots fleet (absent there:
   * the server root).
   */
  activeRoot(side?: RootSide): { cert: string };
  /** True when client and server certificates are signed by separate roots, each rotated on its own. */
  separateRoots?(): boolean;
  /** Issue a leaf for a device's existing key under the active root (enrolment, renewal, catch-up). */
  issueLeaf(subject: { commonName: string; spki: Buffer; role: Role }, now: Date): string;
}
