/**
 * The device's state message (protocol/messages/device-state.ts) built from
 * the agent: the same for the MQTT link and for a relayed device, whose
 * relay publishes it unchanged.
 */
import type { Clock } from '../protocol/clock.ts';
import type { Logger } from '../protocol/log.ts';
import { OPTIONAL_PAYLOAD_FIELDS } from '../protocol/messages/command.ts';
import { assertDesiredState, type DesiredState, type DeviceState, type TlsCounters } from '../protocol/messages/device-state.ts';
import { parseWire } from '../protocol/validate.ts';
import type { Agent } from './agent.ts';

/** Online (birth) or behind the desired state; fingerprints and counters only. */
export function deviceStateMessage(agent: Agent, status: 'online' | 'behind', o: { desired: DesiredState | null; tls: TlsCounters | null; clock: Clock }): DeviceState {
  const s = agent.status();
  const msg: DeviceState = {
    v: 1, kind: 'state', deviceId: s.deviceId, status, role: s.role, lastSeq: s.lastSeq,
    state: { storeHash: s.storeHash, rotationId: s.rotationId, completed: s.completed, trust: s.trust, ...(s.issuer ? { issuer: s.issuer } : {}), identity: s.identity },
    accepts: [...OPTIONAL_PAYLOAD_FIELDS],
    at: o.clock.now().toISOString(),
  };
  if (status === 'behind' && o.desired) msg.desired = { rotationId: o.desired.rotationId, step: o.desired.step, seq: o.desired.seq };
  if (o.tls) msg.tls = o.tls;
  if (s.regression) msg.regression = { ...s.regression, message: s.regression.message.slice(0, 1024) };
  return msg;
}

/**
 * A desired-state message for `deviceId` (from the broker or handed over by
 * a relay), or null: one for another device, or an invalid one (logged and
 * ignored).
 */
export function readDesired(raw: Buffer | string, deviceId: string, log: Logger): DesiredState | null {
  try {
    const d = parseWire(raw, 'desired state');
    assertDesiredState(d);
    return d.deviceId === deviceId ? d : null;
  } catch (err) {
    log.warn('invalid desired state ignored', { reason: (err as Error).message });
    return null;
  }
}
