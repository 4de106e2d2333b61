/**
 * The manager process for one rotation on a real fleet: opens the CA and
 * the fleet database in the data folder, connects to the broker with the
 * management PKI, starts (or resumes) the rotation and returns when it
 * completes or stops.
 */
import type { Logger } from '../../protocol/log.ts';
import type { Schedule } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb, RotationRow } from '../fleet/fleet-db.ts';
import { userInfo } from 'node:os';
import { openManager } from '../manager.ts';
import type { MqttManagerTransport } from '../transport/mqtt-transport.ts';
import { openRotation } from './orchestrator.ts';
import { abortRotation } from './abort-rotation.ts';
import type { ManagementPki } from '../pki/management-pki.ts';
import type { RotationPolicy } from './orchestrator.ts';
import type { NewRootChoice } from './authority.ts';

/** What a rotation run needs. */
export interface RunRotationOptions {
  dataDir: string;
  pki: ManagementPki;
  brokerUrl: string;
  /** Start a rotation with this schedule, or resume the open one (`resume`), or abort it (`abort`: roll back while possible, else stop where it is). */
  schedule?: Schedule;
  resume?: boolean | string;
  abort?: boolean | string;
  /** The new root's algorithm and subject when starting; each defaults to the active root's. */
  newRoot?: NewRootChoice;
  /** Devices keep OldWithNew when they drop R0 (orchestrator start option). */
  distributeOldWithNew?: boolean;
  policy?: Partial<RotationPolicy>;
  logger: Logger;
  /** Called about once a second while the rotation runs, with each device's presence from its retained state (null: none seen). */
  onTick?: (db: FleetDb, rotationId: string, online: (deviceId: string) => boolean | null) => void;
}

/** Wait until every device's retained state arrived, or `ms` passed (a device that never connected has none). */
async function retainedStates(transport: MqttManagerTransport, ids: readonly string[], ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && ids.some((id) => !transport.devices().has(id))) await new Promise((r) => setTimeout(r, 50));
}

/** Run (or resume) a rotation to its end. */
export async function runRotation(o: RunRotationOptions): Promise<RotationRow> {
  let resolveEnd!: (r: RotationRow) => void;
  const ended = new Promise<RotationRow>((r) => (resolveEnd = r));
  const m = await openManager({
    dataDir: o.dataDir, pki: o.pki, brokerUrl: o.brokerUrl, logger: o.logger, policy: o.policy,
    events: { complete: (r) => resolveEnd(r), failed: (r) => resolveEnd(r) },
  });
  const { db, transport, orchestrator } = m;
  let ticker: NodeJS.Timeout | undefined;
  try {
    let id: string;
    if (o.abort) {
      orchestrator.attach(typeof o.abort === 'string' ? o.abort : openRotation(db)?.id ?? '');
      id = orchestrator.current()!.id;
      await transport.ready(30_000);
      if (abortRotation(orchestrator, `cli:${userInfo().username}`, o.logger) === 'aborted') return db.rotation(id)!;
    } else if (o.resume) {
      // Load the rotation before the session's backlog of acknowledgements arrives.
      orchestrator.resume(typeof o.resume === 'string' ? o.resume : undefined);
      id = orchestrator.current()!.id;
      await transport.ready(30_000);
    } else {
      if (!o.schedule) throw new ManagerError('E_ROTATION_UNKNOWN', 'give a schedule to start, or resume an open rotation');
      await transport.ready(30_000);
      // What each agent applies comes with its retained state, which the broker sends just after the subscription.
      if (o.distributeOldWithNew) await retainedStates(transport, db.devices().map((d) => d.id), 3_000);
      id = await orchestrator.start({ schedule: o.schedule, newRoot: o.newRoot, distributeOldWithNew: o.distributeOldWithNew });
    }
    const now = db.rotation(id)!;
    if (now.status === 'complete') return now;
    const online = (deviceId: string) => { const s = transport.devices().get(deviceId); return s ? s.status !== 'offline' : null; };
    ticker = setInterval(() => o.onTick?.(db, id, online), 1000);
    return await ended;
  } finally {
    clearInterval(ticker);
    await m.close();
  }
}
