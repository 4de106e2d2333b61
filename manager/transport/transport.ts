/**
 * manager/transport/: how the manager reaches its devices. This file is the
 * room's front, the one interface the orchestrator sends through; around
 * it are the MQTT session (mqtt-transport.ts, with its types, its `$SYS`
 * feed and what it accepts from a device topic), the in-process bus of
 * tests and simulations (in-process-transport.ts), and the check of the
 * devices' signatures on acknowledgements (ack-verifier.ts).
 *
 * How the orchestrator reaches devices. It only ever sends a command and
 * receives acknowledgements; MQTT and the in-process bus implement this.
 */
import type { Command } from '../../protocol/messages/command.ts';

/** Receives raw acknowledgements (validated by the orchestrator). */
export type AckHandler = (raw: Buffer | string | object) => void;

/** The manager's side of a link to the devices. */
export interface ManagerTransport {
  /** Queue a command for a device. Delivery is at-least-once; the device de-duplicates. */
  send(cmd: Command): void;
  onAck(handler: AckHandler): void;
  /**
   * The orchestrator accepted an acknowledgement (signature checked, matching
   * the step in flight): the transport may forget the command it keeps for
   * resending. Never called for a dropped or forged acknowledgement.
   */
  accepted?(deviceId: string, seq: number): void;
  close(): Promise<void>;
}
