/**
 * Optional step payload fields go only to agents that apply them. An agent
 * refuses a step carrying a field it does not know (E_SCHEMA), so a
 * rotation that distributes OldWithNew to a fleet with older agents would
 * stop at the old-root clean-up, after R0 had been dropped elsewhere. The
 * devices' state messages say what each agent applies (`accepts`, kept in
 * the fleet database); the orchestrator asks here before it makes or sends
 * anything.
 */
import type { Logger } from '../../protocol/log.ts';
import { optionalPayloadFields, type StepPayload } from '../../protocol/messages/command.ts';
import type { Schedule } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { DeviceRow, FleetDb } from '../fleet/fleet-db.ts';

/** Which of the rotation's devices would refuse, and which have not said. */
export interface PayloadGate {
  /** Devices whose agent reported what it applies, without the field. */
  readonly refusing: readonly string[];
  /** Devices that never reported (not connected since enrolment, or not over MQTT). */
  readonly unknown: readonly string[];
}

/** The devices of `schedule` that would receive `field`, split by what their agents reported. */
export function payloadGate(db: FleetDb, devices: readonly DeviceRow[], schedule: Schedule, field: keyof StepPayload): PayloadGate {
  const roles = new Set(schedule.steps.filter((s) => optionalPayloadFields(schedule, s.id).includes(field)).map((s) => s.role));
  const accepts = db.deviceAccepts();
  const refusing: string[] = [];
  const unknown: string[] = [];
  for (const d of devices) {
    if (!roles.has(d.role)) continue;
    const a = accepts.get(d.id);
    if (a === undefined) unknown.push(d.id);
    else if (!a.includes(field)) refusing.push(d.id);
  }
  return { refusing, unknown };
}

/**
 * E_AGENT_OUTDATED when a device's agent reported it does not apply
 * `field`; devices that never reported are logged as a warning (their
 * agents are assumed current: every agent that connects over MQTT reports).
 */
export function assertPayloadAccepted(db: FleetDb, devices: readonly DeviceRow[], schedule: Schedule, field: keyof StepPayload, logger: Logger, what: string): void {
  const gate = payloadGate(db, devices, schedule, field);
  if (gate.refusing.length > 0) {
    throw new ManagerError('E_AGENT_OUTDATED', `${gate.refusing.length} device(s) run an agent that does not apply ${what} (${list(gate.refusing)}): they would refuse the step that carries it. Upgrade those agents, or start the rotation without ${what}; nothing was started`);
  }
  if (gate.unknown.length > 0) {
    logger.warn(`devices have not reported whether their agent applies ${what}; assumed current`, { field, devices: gate.unknown.length, deviceIds: gate.unknown.slice(0, 20) });
  }
}

function list(ids: readonly string[]): string {
  return ids.length <= 10 ? ids.join(', ') : `${ids.slice(0, 10).join(', ')} and ${ids.length - 10} more`;
}
