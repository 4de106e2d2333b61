/**
 * A rotation of an in-process fleet with live mutual TLS all the way
 * through: a HandshakeMatrix serves every server and connects every client,
 * its continuous loop runs for the whole rotation, and after every durable
 * device change full rounds (`roundsPerChange`) run on the new state before
 * that device's acknowledgement is released to the manager (so the rotation
 * cannot move past a state that was not handshaken, and the number of
 * handshakes has a floor that does not depend on machine speed).
 */
import type tls from 'node:tls';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { HandshakeMatrix, type HandshakeTally } from '../../demo/handshake-matrix.ts';
import type { RotationRow } from '../../manager/fleet/fleet-db.ts';
import type { Schedule } from '../../protocol/steps.ts';

/** Options of a live rotation. */
export interface LiveRotationOptions {
  schedule: Schedule;
  unsafe?: boolean;
  servers?: number;
  clients?: number;
  seed?: number;
  maxLatencyMs?: number;
  version?: tls.SecureVersion;
  /** Full rounds run after each change before its acknowledgement goes out; default 1. */
  roundsPerChange?: number;
}

/** What a live rotation measured. */
export interface LiveRotation {
  rotation: RotationRow;
  /** Everything: the continuous loop plus the rounds after changes. */
  totals: HandshakeTally;
  /** The continuous loop alone. */
  loop: HandshakeTally & { rounds: number; ms: number; handshakesPerSecond: number };
  /** Durable device changes, each followed by a full round. */
  changes: number;
  ms: number;
}

/** Run one rotation with live handshakes throughout (see the module comment). */
export async function rotateWithHandshakes(o: LiveRotationOptions): Promise<LiveRotation> {
  const fleet = await InProcessFleet.create({ servers: o.servers ?? 3, clients: o.clients ?? 5, seed: o.seed ?? 1, maxLatencyMs: o.maxLatencyMs ?? 4 });
  let matrix: HandshakeMatrix | null = null;
  try {
    const m = (matrix = await HandshakeMatrix.create(fleet, { minVersion: o.version, maxVersion: o.version, timeoutMs: 5_000 }));
    let changes = 0;
    for (const [id, agent] of fleet.agents) {
      let deviceChanges = 0;
      agent.onChange(() => {
        deviceChanges++;
        changes++;
      });
      // Hold the acknowledgement until rounds have run on the new state. Under load the manager resends a
      // command whose acknowledgement is held past its time-out; the redelivery changes nothing, but its
      // acknowledgement must wait for the same rounds (else the rotation moves on, or ends, before them).
      let rounds: Promise<void> = Promise.resolve();
      fleet.transport.attach(id, async (raw) => {
        const before = deviceChanges;
        const ack = await agent.handle(raw);
        if (deviceChanges > before) {
          rounds = (async () => { for (let i = 0; i < (o.roundsPerChange ?? 1); i++) await m.runRound(); })();
        }
        await rounds;
        return JSON.stringify(ack);
      });
    }
    const t0 = performance.now();
    m.start();
    const rotation = await fleet.rotate(o.schedule, { unsafe: o.unsafe, timeoutMs: 60_000 });
    const loop = await m.stop();
    const ms = performance.now() - t0;
    const totals = m.totals();
    return { rotation, totals, loop, changes, ms };
  } finally {
    await matrix?.close();
    await fleet.close();
  }
}
