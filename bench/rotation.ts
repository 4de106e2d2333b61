/**
 * A whole in-process rotation: N devices, real verification and durable
 * SQLite writes on every agent, the orchestrator's SQLite on the manager.
 */
import 'reflect-metadata';
import type { Schedule } from '../protocol/steps.ts';
import { InProcessFleet } from '../demo/in-process-fleet.ts';
import { round } from './stats.ts';

/**
 * Signatures and verifications a rotation needs at least: one leaf per
 * device plus D and R1, one signed acknowledgement per step; four
 * certificate verifications per device (D, R1 twice, leaf) and one
 * acknowledgement verification per step.
 */
export function rotationCryptoFloorMs(devices: number, steps: number, floor: { signPerSec: number; verifyPerSec: number }): number {
  return ((devices + 2 + steps) / floor.signPerSec + (4 * devices + steps) / floor.verifyPerSec) * 1000;
}

/** Time one rotation of `servers` + `clients` devices (setup excluded). */
export async function benchRotation(schedule: Schedule, servers: number, clients: number, floor: { signPerSec: number; verifyPerSec: number }) {
  const setupStart = performance.now();
  const fleet = await InProcessFleet.create({ servers, clients });
  const setupMs = performance.now() - setupStart;
  try {
    const start = performance.now();
    const rotation = await fleet.rotate(schedule, { timeoutMs: 600_000 });
    const durationMs = performance.now() - start;
    const steps = fleet.db.steps(rotation.id).length;
    const floorMs = rotationCryptoFloorMs(servers + clients, steps, floor);
    return {
      schedule: schedule.name, devices: servers + clients, servers, clients, status: rotation.status,
      durationMs: round(durationMs, 0), cryptoFloorMs: round(floorMs, 0), ratioToFloor: round(durationMs / floorMs, 1), steps, stepsPerSec: round(steps / (durationMs / 1000), 0),
      setupMs: round(setupMs, 0), rssMB: round(process.memoryUsage().rss / 2 ** 20, 0),
    };
  } finally {
    await fleet.close();
  }
}
