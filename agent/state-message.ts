/**
 * The device's state message (protocol/messages/device-state.ts) built from
 * the agent: the same for the MQTT link and for a relayed device, whose
 * relay publishes it unchanged.
 */
import type { Clock } from '../protocol/clock.ts';
import type { DesiredState, DeviceState, TlsCounters } from '../protocol/messages/device-state.ts';
import type { Agent } from './agent.ts';

/** Online (birth) or behind the desired state; fingerprints and counters only. */
export function deviceStateMessage(agent: Agent, status: 'online' | 'behind', o: { desired: DesiredState | null; tls: TlsCounters | null; clock: Clock }): DeviceState {
  const s = agent.status();
  const msg: DeviceState = {
    v: 1, kind: 'state', deviceId: s.deviceId, status, role: s.role, lastSeq: s.lastSeq,
    state: { storeHash: s.storeHash, rotationId: s.rotationId, completed: s.completed, trust: s.trust, identity: s.identity },
    at: o.clock.now().toISOString(),
  };
  if (status === 'behind' && o.desired) msg.desired = { rotationId: o.desired.rotationId, step: o.desired.step, seq: o.desired.seq };
  if (o.tls) msg.tls = o.tls;
  if (s.regression) msg.regression = { ...s.regression, message: s.regression.message.slice(0, 1024) };
  return msg;
}
