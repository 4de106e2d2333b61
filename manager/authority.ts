/**
 * The narrow interface between "when" (the orchestrator) and "how" (the
 * CA): the orchestrator asks for a rotation's material at step S and tells
 * the CA when the new root has become the fleet's root; for a renewal it
 * asks for new leaves under the active root.
 */
import type { Role } from '../protocol/steps.ts';

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
}

/** The CA as the orchestrator sees it. */
export interface RotationAuthority {
  /** Step S: make K1, D (NewWithOld) and R1 (NewWithNew), and issue the leaves with K1. */
  prepare(req: { rotationId: string; subjects: readonly RotationSubject[]; now: Date }): Promise<RotationMaterial>;
  /** Every device holds R1 only: K1 becomes the current root, K0 is retired. */
  activate(rotationId: string): Promise<void>;
  /** The root devices trust now (a renewal issues under it and changes no root). */
  activeRoot(): { cert: string };
  /** Issue a leaf for a device's existing key under the active root (enrolment, renewal, catch-up). */
  issueLeaf(subject: { commonName: string; spki: Buffer; role: Role }, now: Date): string;
}
