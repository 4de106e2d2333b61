/**
 * The fault matrix: real rotations over Mosquitto with agent processes and
 * the manager as `trustroll rotate`, with faults injected on purpose:
 * kill -9 of agents at step boundaries (after receive, after persist before
 * the acknowledgement, after the acknowledgement) and at random instants,
 * kill -9 of the manager (resumed with --resume) and of the broker, EEPROM
 * slot damage of each kind in the newer slot (a roll-back the device must
 * report and the manager repair) and the older one (no roll-back), and a
 * device cut from the broker for longer than the retry interval.
 *
 * Checked: every rotation completes (a stopped one is resumed); at every
 * sample each store opens and its presented certificates chain to a root
 * it holds (PROTOCOL.md device rules); at the end every store holds exactly
 * the new root and the device's new certificate and at least every step
 * the manager recorded as acknowledged (nothing lost undetected); every
 * roll-back is detected by the device and repaired; handshake failures
 * happen only while a party is down (or rolled back, counted apart).
 */
import { fingerprintPem, parseCertificate } from '../../protocol/pem.ts';
import { issuedBy } from '../../protocol/chain.ts';
import { deviceSequence } from '../../protocol/schedule.ts';
import { SCHEDULES } from '../../protocol/steps.ts';
import { loadAgentConfig } from '../../agent/config.ts';
import { openReadOnly } from '../../agent/read-only.ts';
import { damageSlot, type DamageKind } from './support/eeprom-damage.ts';
import { EEPROM, FaultFleet } from './support/fault-fleet.ts';

/** A step boundary at which an agent is killed. */
export type Boundary = 'after-receive' | 'after-persist' | 'after-ack';

/** One injected fault. */
export type Fault =
  | { kind: 'kill-boundary'; device: string; boundary: Boundary; step: string }
  | { kind: 'kill-random'; device: string; atMs: number }
  | { kind: 'kill-manager'; atMs: number }
  | { kind: 'kill-broker'; atMs: number; downMs: number }
  | { kind: 'eeprom-damage'; device: string; which: 'newer' | 'older'; damage: DamageKind }
  | { kind: 'net-cut'; atMs: number; durationMs: number };

/** What `npm run faults` prints. */
export interface FaultSummary {
  runs: number;
  devices: number;
  faults: Record<string, number>;
  resumes: number;
  regressions: { injected: number; detected: number; repaired: number; undetected: number; olderSlotDamaged: number; falseAlarms: number };
  handshakes: { failed: number; whilePartyDown: number; whilePartyRolledBack: number; unexplained: number };
  storeSamples: number;
  invariantViolations: number;
  violations: string[];
  durationMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SLACK_MS = 2_000;

/** Run `plans` (one rotation each) on a fleet of 2 servers and 2 clients (printer-1 and console-1 on EEPROM). */
export async function runFaultMatrix(plans: Fault[][], o: { ackTimeoutMs?: number; progress?: (line: string) => void } = {}): Promise<FaultSummary> {
  const started = Date.now();
  const ackTimeoutMs = o.ackTimeoutMs ?? 1_500;
  const say = o.progress ?? (() => undefined);
  const s: FaultSummary = {
    runs: 0, devices: 0, faults: {}, resumes: 0,
    regressions: { injected: 0, detected: 0, repaired: 0, undetected: 0, olderSlotDamaged: 0, falseAlarms: 0 },
    handshakes: { failed: 0, whilePartyDown: 0, whilePartyRolledBack: 0, unexplained: 0 }, storeSamples: 0, invariantViolations: 0, violations: [], durationMs: 0,
  };
  const violation = (v: string) => { s.invariantViolations++; if (s.violations.length < 50) s.violations.push(v); };
  const fleet = await FaultFleet.create({ servers: 2, clients: 2, proxied: 'console-2' });
  s.devices = fleet.devices.size;
  try {
    for (const role of ['server', 'client'] as const) await Promise.all([...fleet.devices.values()].filter((d) => d.role === role).map((d) => fleet.start(d.id)));
    for (const [n, plan] of plans.entries()) {
      const t0 = Date.now();
      for (const f of plan) s.faults[f.kind === 'eeprom-damage' ? `eeprom-${f.which}-${f.damage}` : f.kind === 'kill-boundary' ? `kill-${f.boundary}` : f.kind] = (s.faults[f.kind === 'eeprom-damage' ? `eeprom-${f.which}-${f.damage}` : f.kind === 'kill-boundary' ? `kill-${f.boundary}` : f.kind] ?? 0) + 1;
      // Step-boundary kills: the agent runs with the planned kill armed for this rotation.
      for (const f of plan) if (f.kind === 'kill-boundary') {
        await fleet.kill(f.device, false);
        fleet.devices.get(f.device)!.keepAlive = true;
        await fleet.start(f.device, `${f.boundary}:${f.step}`);
      }
      const rolledBack = new Map<string, [number, number | null]>();
      const tasks: Promise<void>[] = [];
      const rotationsBefore = fleet.readDb((db) => (db.prepare('SELECT COUNT(*) AS n FROM rotations').get() as { n: number }).n);
      let managerRun = fleet.rotate(false, ackTimeoutMs);
      for (const f of plan) {
        if (f.kind === 'kill-random') tasks.push(sleep(f.atMs).then(() => fleet.kill(f.device)));
        if (f.kind === 'kill-manager') tasks.push(sleep(f.atMs).then(() => { fleet.manager?.kill('SIGKILL'); }));
        if (f.kind === 'kill-broker') tasks.push(sleep(f.atMs).then(async () => { await fleet.broker.kill(); await sleep(f.downMs); await fleet.broker.start(); }));
        if (f.kind === 'net-cut') tasks.push(sleep(f.atMs).then(async () => { fleet.proxy.cut(); await sleep(f.durationMs); fleet.proxy.restore(); }));
        if (f.kind === 'eeprom-damage') tasks.push((async () => {
          const d = fleet.devices.get(f.device)!;
          // Wait for an acknowledged step of this rotation on the device, so the newer slot holds acknowledged state.
          const end = Date.now() + 60_000;
          while (Date.now() < end && ackedInLatest(fleet, f.device) === 0) await sleep(100);
          if (ackedInLatest(fleet, f.device) === 0) return violation(`rotation ${n + 1}: ${f.device} acknowledged nothing within 60 s; damage not injected`);
          await fleet.kill(f.device, false);
          const what = damageSlot(d.eepromFile!, EEPROM, f.which, f.damage, n + 7);
          const logFrom = d.log.length;
          d.keepAlive = true;
          const restartedAt = Date.now();
          await fleet.start(f.device);
          if (f.which === 'newer') {
            s.regressions.injected++;
            rolledBack.set(f.device, [restartedAt, null]);
            const detected = d.log.slice(logFrom).some((l) => l.fields.code === 'E_STORE_REGRESSED');
            if (detected) s.regressions.detected++;
            else { s.regressions.undetected++; violation(`rotation ${n + 1}: ${f.device}: ${what}: the roll-back was not reported`); }
            const until = Date.now() + 60_000;
            while (Date.now() < until && !d.log.slice(logFrom).some((l) => /roll-back repaired/.test(l.msg))) await sleep(100);
            const repaired = d.log.slice(logFrom).find((l) => /roll-back repaired/.test(l.msg));
            if (repaired) { s.regressions.repaired++; rolledBack.set(f.device, [restartedAt, repaired.t]); }
            else violation(`rotation ${n + 1}: ${f.device}: ${what}: not repaired within 60 s`);
          } else {
            s.regressions.olderSlotDamaged++;
            await sleep(500);
            if (d.log.slice(logFrom).some((l) => l.fields.code === 'E_STORE_REGRESSED')) { s.regressions.falseAlarms++; violation(`rotation ${n + 1}: ${f.device}: ${what}: reported as a roll-back`); }
          }
        })());
      }
      // Sample every store while the rotation runs.
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          for (const d of fleet.devices.values()) await sampleStore(d.config, (v) => violation(`rotation ${n + 1}: ${d.id}: ${v}`)).then(() => void s.storeSamples++);
          await sleep(300);
        }
      })();
      // The manager until the rotation completes; a killed or stopped one is resumed.
      const deadline = Date.now() + 180_000;
      let code = await managerRun;
      while (code !== 0 && Date.now() < deadline) {
        s.resumes++;
        await sleep(300);
        // Killed before it recorded the rotation: start it again; otherwise resume the open one.
        const created = fleet.readDb((db) => (db.prepare('SELECT COUNT(*) AS n FROM rotations').get() as { n: number }).n) > rotationsBefore;
        managerRun = fleet.rotate(created, ackTimeoutMs);
        code = await managerRun;
      }
      await Promise.all(tasks);
      sampling = false;
      await sampler;
      s.runs++;
      if (code !== 0) {
        violation(`rotation ${n + 1}: did not complete within 180 s (manager exit ${code}; ${fleet.managerLog.slice(-500)})`);
        continue;
      }
      await finalChecks(fleet, n + 1, violation);
      countHandshakes(fleet, t0, Date.now(), rolledBack, s);
      say(`rotation ${n + 1}/${plans.length}: complete in ${Date.now() - t0} ms; faults ${plan.map((f) => f.kind).join(', ') || 'none'}; violations so far ${s.invariantViolations}`);
    }
  } finally {
    await fleet.close();
  }
  s.durationMs = Date.now() - started;
  return s;
}

/** Steps of the newest rotation acknowledged by `deviceId`. */
function ackedInLatest(fleet: FaultFleet, deviceId: string): number {
  return fleet.readDb((db) => (db.prepare(`SELECT COUNT(*) AS n FROM steps WHERE device_id = ? AND status = 'acked' AND rotation_id = (SELECT id FROM rotations ORDER BY created_at DESC LIMIT 1)`).get(deviceId) as { n: number }).n);
}

/** A store, read next to its running agent: it opens, and every certificate it presents chains to a root it holds. */
async function sampleStore(config: string, violation: (v: string) => void): Promise<void> {
  const dev = await openReadOnly(loadAgentConfig(config));
  try {
    if (!dev.record) {
      // A rolled-back EEPROM image is reported (E_STORE_REGRESSED) and repaired; anything else is a violation.
      if (dev.storeError && !/E_STORE_REGRESSED|E_HAL_IO|EBUSY/.test(dev.storeError.message)) violation(`store unreadable: ${dev.storeError.message}`);
      return;
    }
    const roots = [dev.record.trust.current, dev.record.trust.distribution, dev.record.trust.next].filter((p): p is string => !!p).map((p) => parseCertificate(p, 'root'));
    for (const id of [dev.record.identity.active, dev.record.identity.fallback]) {
      if (!id) continue;
      const cert = parseCertificate(id.cert, 'identity');
      if (!roots.some((r) => issuedBy(cert, r))) violation(`presents ${cert.subject.replace(/\n/g, ',')} which no held root issued`);
    }
  } finally {
    await dev.close();
  }
}

/** After completion: every store holds exactly R1 and its new certificate, and everything the manager recorded as acknowledged. */
async function finalChecks(fleet: FaultFleet, n: number, violation: (v: string) => void): Promise<void> {
  const rot = fleet.readDb((db) => db.prepare('SELECT id, schedule, new_root AS newRoot FROM rotations ORDER BY created_at DESC LIMIT 1').get() as { id: string; schedule: string; newRoot: string });
  for (const d of fleet.devices.values()) {
    const want = fleet.readDb((db) => ({
      leaf: (db.prepare('SELECT certificate FROM leaves WHERE rotation_id = ? AND device_id = ?').get(rot.id, d.id) as { certificate: string }).certificate,
      acked: (db.prepare(`SELECT MAX(seq) AS s FROM steps WHERE device_id = ? AND status = 'acked'`).get(d.id) as { s: number | null }).s ?? 0,
    }));
    const seqOf = deviceSequence(SCHEDULES[rot.schedule]!, d.role);
    let problems: string[] = [];
    const end = Date.now() + 30_000;
    do {
      problems = [];
      const dev = await openReadOnly(loadAgentConfig(d.config));
      try {
        const r = dev.record;
        if (!r) problems.push(`no record (${dev.storeError?.message})`);
        else {
          if (fingerprintPem(r.trust.current) !== fingerprintPem(rot.newRoot) || r.trust.distribution || r.trust.next) problems.push('does not hold exactly the new root');
          if (fingerprintPem(r.identity.active.cert) !== fingerprintPem(want.leaf) || r.identity.fallback) problems.push('does not present exactly its new certificate');
          if (r.rotation?.id !== rot.id || r.rotation.completed.join() !== seqOf.join()) problems.push(`rotation ${r.rotation?.id} completed ${r.rotation?.completed.join(',')}`);
          if (r.lastSeq < want.acked) problems.push(`lastSeq ${r.lastSeq} is below the acknowledged ${want.acked}: acknowledged state lost`);
          if (dev.store?.integrity?.()?.rolledBack) problems.push('store still rolled back');
        }
      } finally {
        await dev.close();
      }
      if (problems.length) await new Promise((r) => setTimeout(r, 300));
    } while (problems.length && Date.now() < end);
    for (const p of problems) violation(`rotation ${n}: ${d.id}: ${p}`);
  }
}

/** Handshake failures in [from, to], each explained by a party being down or rolled back, or not. */
function countHandshakes(fleet: FaultFleet, from: number, to: number, rolledBack: Map<string, [number, number | null]>, s: FaultSummary): void {
  const inWindow = (id: string, t: number, windows: [number, number | null][]) => windows.some(([a, b]) => t >= a - SLACK_MS && t <= (b ?? to) + SLACK_MS);
  for (const c of fleet.devices.values()) {
    if (c.role !== 'client') continue;
    for (const l of c.log) {
      if (l.msg !== 'handshake failed' || l.t < from || l.t > to) continue;
      s.handshakes.failed++;
      const server = String(l.fields.server);
      const downs = [c.id, server].some((id) => inWindow(id, l.t, fleet.devices.get(id)?.down ?? []));
      const rb = [c.id, server].some((id) => rolledBack.has(id) && inWindow(id, l.t, [rolledBack.get(id)!]));
      if (downs) s.handshakes.whilePartyDown++;
      else if (rb) s.handshakes.whilePartyRolledBack++;
      else {
        s.handshakes.unexplained++;
        s.invariantViolations++;
        if (s.violations.length < 50) s.violations.push(`${c.id} -> ${server} failed at ${new Date(l.t).toISOString()} with both parties up: ${l.fields.code} ${l.fields.reason}`);
      }
    }
  }
}

/** The reduced matrix CI runs (a few minutes of 2 cores at most). */
export function reducedMatrix(): Fault[][] {
  return [
    [
      { kind: 'kill-boundary', device: 'printer-1', boundary: 'after-persist', step: 'P4' },
      { kind: 'kill-boundary', device: 'console-1', boundary: 'after-receive', step: 'P2' },
      { kind: 'kill-boundary', device: 'console-2', boundary: 'after-ack', step: 'P3' },
      { kind: 'kill-manager', atMs: 700 },
    ],
    [
      { kind: 'eeprom-damage', device: 'printer-1', which: 'newer', damage: 'bit-flip' },
      { kind: 'kill-random', device: 'printer-2', atMs: 400 },
      { kind: 'kill-broker', atMs: 900, downMs: 1_500 },
    ],
    [
      { kind: 'eeprom-damage', device: 'console-1', which: 'newer', damage: 'bad-header' },
      { kind: 'eeprom-damage', device: 'printer-1', which: 'older', damage: 'zero-page' },
      { kind: 'net-cut', atMs: 200, durationMs: 4_000 },
    ],
  ];
}

/** The full matrix for `npm run faults`: every boundary at every step of both roles, every damage kind on both slots and devices, random kills, manager and broker kills, network cuts. */
export function fullMatrix(seed = 1): Fault[][] {
  let x = Math.max(1, Math.floor(seed)) % 2147483647 || 1;
  // Park-Miller: every bit is usable (a power-of-two LCG repeats its low bits every few draws).
  const rnd = (n: number) => ((x = (x * 48271) % 2147483647), x % n);
  const boundaries: Fault[] = [];
  for (const boundary of ['after-receive', 'after-persist', 'after-ack'] as const) {
    for (const step of ['P1', 'P4', 'P5']) boundaries.push({ kind: 'kill-boundary', device: rnd(2) ? 'printer-1' : 'printer-2', boundary, step });
    for (const step of ['P2', 'P3', 'P6']) boundaries.push({ kind: 'kill-boundary', device: rnd(2) ? 'console-1' : 'console-2', boundary, step });
  }
  const damage: Fault[] = [];
  for (const which of ['newer', 'older'] as const) for (const kind of ['bit-flip', 'zero-page', 'bad-header'] as const) for (const device of ['printer-1', 'console-1']) damage.push({ kind: 'eeprom-damage', device, which, damage: kind });
  const plans: Fault[][] = [];
  // One boundary kill per device per rotation (a second planned kill on the same process would replace the first).
  while (boundaries.length || damage.length) {
    const plan: Fault[] = [];
    const used = new Set<string>();
    for (const f of [...boundaries]) {
      if (f.kind !== 'kill-boundary' || used.has(f.device) || plan.length >= 2) continue;
      used.add(f.device);
      plan.push(f);
      boundaries.splice(boundaries.indexOf(f), 1);
    }
    const d = damage.shift();
    if (d && d.kind === 'eeprom-damage' && !used.has(d.device)) plan.push(d);
    else if (d) damage.push(d);
    const extra = rnd(4);
    if (extra === 0) plan.push({ kind: 'kill-manager', atMs: 200 + rnd(1500) });
    if (extra === 1) plan.push({ kind: 'kill-broker', atMs: 200 + rnd(1500), downMs: 1000 + rnd(2000) });
    if (extra === 2) plan.push({ kind: 'net-cut', atMs: rnd(1000), durationMs: 3000 + rnd(3000) });
    if (extra === 3) {
      const dev = ['printer-2', 'console-2'].find((id) => !used.has(id));
      if (dev) plan.push({ kind: 'kill-random', device: dev, atMs: rnd(2000) });
    }
    plans.push(plan);
    if (plans.length > 40) break;
  }
  return plans;
}
