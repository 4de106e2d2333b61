/**
 * Offline devices never fail a rotation (docs/lifecycle.md, "Devices that
 * are away"): the orchestrator tells a device that is offline from one that
 * is online and does not answer. A step whose acknowledgement is due while
 * its device is offline is *held*: no attempt is counted and nothing is
 * resent; the row records `E_DEVICE_OFFLINE` (so a restarted manager, the
 * rotation view and `trustroll status` see it); when the device is back the
 * held command goes out again at once with its original sequence number
 * (the device answers a redelivery from its stored result). A device that
 * is online and keeps timing out or failing still stops the rotation after
 * `maxAttempts`.
 *
 * Presence comes in through `PresenceSource`, which the orchestrator
 * declares and ../manager.ts wires to the devices' retained state messages
 * (birth `online`, `behind`, last will `offline`); without one, every
 * device counts as online (the behaviour before presence).
 */
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import type { ManagerErrorCode } from '../errors.ts';
import type { StepRow } from '../fleet/fleet-db.ts';

/** What the orchestrator asks about presence. */
export interface PresenceSource {
  /** True only when the device's last report says it is offline (its last will); a device never heard of counts as online. */
  isOffline(deviceId: string): boolean;
  /** Call `listener` each time a device reported offline reports online again. */
  onOnline(listener: (deviceId: string) => void): void;
}

/** The error code a held step's row carries while its device is offline. */
export const HELD_CODE: ManagerErrorCode = 'E_DEVICE_OFFLINE';

/** True when `row` is held for its offline device. */
export function isHeld(row: Pick<StepRow, 'errorCode'>): boolean {
  return row.errorCode === HELD_CODE;
}

/**
 * What the sweep does with one in-flight step at `now`: `wait` (not due,
 * or held and its device still offline), `hold` (due, device offline),
 * `release` (held, device back: resend without counting an attempt),
 * `resend` (due, counts an attempt) or `timeout` (no acknowledgement after
 * `maxAttempts` attempts to an online device).
 */
export type DueAction = 'wait' | 'hold' | 'release' | 'resend' | 'timeout';

/** Decide what the sweep does with `row` (see DueAction). */
export function dueAction(row: StepRow, now: number, maxAttempts: number, presence?: PresenceSource): DueAction {
  if (row.status !== 'sent' || row.dueAt === null || row.dueAt > now) return 'wait';
  const offline = presence?.isOffline(row.deviceId) ?? false;
  if (isHeld(row)) return offline ? 'wait' : 'release';
  if (offline) return 'hold';
  if (row.errorCode === null && row.attempts >= maxAttempts) return 'timeout';
  return 'resend';
}

/** The fields that mark `row` held (its attempts stay as they are). */
export function heldFields(row: Pick<StepRow, 'deviceId' | 'step' | 'attempts'>, now: Date): Pick<StepRow, 'errorCode' | 'errorMessage'> {
  return {
    errorCode: HELD_CODE,
    errorMessage: `${row.deviceId} is offline (its last will is its retained state); step ${row.step} is held since ${now.toISOString()} after ${row.attempts} attempt(s): no attempt is counted while it is away, and the command is sent again when it is back`,
  };
}

/** The fields that clear a hold from a row no longer sent (excluded, or left behind by a rollback); nothing for a row not held. */
export function unheld(row: Pick<StepRow, 'errorCode'>): Partial<Pick<StepRow, 'errorCode' | 'errorMessage'>> {
  return isHeld(row) ? { errorCode: null, errorMessage: null } : {};
}

/**
 * Presence from the devices' state messages: a last will (`offline`)
 * marks a device offline, its next birth or `behind` report marks it back
 * and tells every `onOnline` listener. A listener that throws does not
 * keep the others from being told.
 */
export class StatePresence implements PresenceSource {
  private readonly offline = new Set<string>();
  private readonly listeners: ((deviceId: string) => void)[] = [];

  constructor(private readonly onListenerError: (deviceId: string, err: Error) => void = () => undefined) {}

  /** Record one state message. */
  note(state: Pick<DeviceState, 'deviceId' | 'status'>): void {
    if (state.status === 'offline') {
      this.offline.add(state.deviceId);
      return;
    }
    if (!this.offline.delete(state.deviceId)) return;
    for (const listener of this.listeners) {
      try {
        listener(state.deviceId);
      } catch (err) {
        this.onListenerError(state.deviceId, err as Error);
      }
    }
  }

  isOffline(deviceId: string): boolean {
    return this.offline.has(deviceId);
  }

  onOnline(listener: (deviceId: string) => void): void {
    this.listeners.push(listener);
  }
}

/** Presence followed from a transport's `state` events (and the states it already holds). */
export function followPresence(transport: { on(event: 'state', listener: (s: DeviceState) => void): unknown; devices(): ReadonlyMap<string, DeviceState> }, onListenerError?: (deviceId: string, err: Error) => void): StatePresence {
  const presence = new StatePresence(onListenerError);
  for (const s of transport.devices().values()) presence.note(s);
  transport.on('state', (s) => presence.note(s));
  return presence;
}
