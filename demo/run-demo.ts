/**
 * The in-process fleet demo: provisions N servers and M clients under a
 * root, rotates it with the chosen schedule, and after every durable change
 * on any device checks that every client still authenticates with every
 * server (node:crypto path validation; a sample of states also with
 * `openssl verify`). The MQTT, live-TLS demo builds on this.
 */
import { join } from 'node:path';
import { NAIVE, SCHEDULES } from '../protocol/steps.ts';
import { checkStatesWithOpenssl, checkWithNode, type FleetSnapshot } from './auth-matrix.ts';
import { InProcessFleet } from './in-process-fleet.ts';

/** Demo settings. */
export interface DemoOptions {
  servers: number;
  clients: number;
  schedule: string;
  naive: boolean;
  seed: number;
  /** Check every distinct state with openssl too (slower); otherwise every 4th. */
  opensslAll?: boolean;
}

/** What the demo prints with --json. */
export interface DemoResult {
  mode: 'in-process';
  rotation: { id: string; status: string; schedule: string; devices: number; durationMs: number; error: string | null; steps: { step: string; role: string; acked: number; of: number; lastAckMs: number | null }[] };
  authChecks: { states: number; pairs: number; failed: number; fallbacks: number; firstFailure: string | null };
  crossCheck: { openssl: { states: number; pairs: number; failed: number } };
}

/** Run the demo and return its result. */
export async function runInProcessDemo(o: DemoOptions): Promise<DemoResult> {
  const schedule = o.naive ? NAIVE : SCHEDULES[o.schedule];
  if (!schedule) throw new Error(`unknown schedule "${o.schedule}"; use six-step or batched`);
  const fleet = await InProcessFleet.create({ servers: o.servers, clients: o.clients, seed: o.seed, maxLatencyMs: 3 });
  const auth = { states: 0, pairs: 0, failed: 0, fallbacks: 0, firstFailure: null as string | null };
  const snaps: FleetSnapshot[] = [];
  const check = (label: string) => {
    const snap = fleet.snapshot(label);
    const r = checkWithNode(snap, fleet.clock.now());
    auth.states++;
    auth.pairs += r.pairs;
    auth.failed += r.broken.length;
    auth.fallbacks += r.fallbacks;
    auth.firstFailure ??= r.broken[0] ?? null;
    snaps.push(snap);
  };
  check('before rotation');
  fleet.onChange((label) => check(`after ${label}`));
  try {
    const start = performance.now();
    const rotation = await fleet.rotate(schedule, { unsafe: o.naive, timeoutMs: 600_000 });
    const durationMs = Math.round(performance.now() - start);
    const checked = checkStatesWithOpenssl(snaps, join(fleet.dir, 'openssl'), (i) => o.opensslAll === true || i % 4 === 0 || i === snaps.length - 1);
    const openssl = { states: checked.states, pairs: checked.pairs, failed: checked.broken.length };
    const rows = fleet.db.steps(rotation.id);
    const t0 = Date.parse(rotation.createdAt);
    const steps = schedule.steps.map((s) => {
      const mine = rows.filter((r) => r.step === s.id);
      const acked = mine.filter((r) => r.status === 'acked');
      const last = acked.map((r) => Date.parse(r.ackedAt!)).sort((a, b) => b - a)[0];
      return { step: s.id, role: s.role, acked: acked.length, of: mine.length, lastAckMs: last === undefined ? null : last - t0 };
    });
    return {
      mode: 'in-process',
      rotation: { id: rotation.id, status: rotation.status, schedule: schedule.name, devices: o.servers + o.clients, durationMs, error: rotation.error, steps },
      authChecks: auth,
      crossCheck: { openssl },
    };
  } finally {
    await fleet.close();
  }
}

/** A human summary of a demo result. */
export function describeDemo(r: DemoResult): string {
  const lines = [
    `trustroll demo (in-process): rotation ${r.rotation.id} ${r.rotation.status.toUpperCase()} in ${r.rotation.durationMs} ms`,
    `  schedule ${r.rotation.schedule}, ${r.rotation.devices} devices`,
    ...r.rotation.steps.map((s) => `  ${s.step} (${s.role}): ${s.acked}/${s.of} acknowledged${s.lastAckMs === null ? '' : `, last at +${s.lastAckMs} ms`}`),
    `  mutual-TLS path checks: ${r.authChecks.states} fleet states, ${r.authChecks.pairs} client/server pair checks, ${r.authChecks.failed} failed, ${r.authChecks.fallbacks} needed the old client certificate`,
    `  openssl verify cross-check: ${r.crossCheck.openssl.states} states, ${r.crossCheck.openssl.pairs} pairs, ${r.crossCheck.openssl.failed} failed`,
  ];
  if (r.rotation.error) lines.push(`  stopped: ${r.rotation.error}`);
  if (r.authChecks.firstFailure) lines.push(`  first failure: ${r.authChecks.firstFailure}`);
  return lines.join('\n');
}
