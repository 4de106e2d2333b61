/**
 * Fleet benchmark (issue: MQTT link). Rotates 1,000 / 5,000 / 10,000
 * simulated agents through a real Mosquitto: each agent has its own MQTT
 * session over mTLS, verifies every command signature and certificate for
 * real, signs every acknowledgement, and keeps its record in memory (10,000
 * database files would only measure the disk). The agents run in child
 * processes (BENCH_AGENT_PROCS, default 2; 0 = inside the manager's
 * process), apart from the manager as real devices are; the manager keeps
 * its SQLite database with synchronous=FULL. Prints one JSON object.
 *
 * The crypto floor is the time the rotation's signatures and verifications
 * take on one core at this machine's speed, measured just before and just
 * after each rotation (the machine's speed drifts; the mean is used).
 * `ratioToFloor` compares the rotation's wall time with it;
 * `managerFloorMs` is the part only the manager can do (issue the leaves,
 * sign the commands, verify the acknowledgements).
 *
 * Run: npx tsx bench/fleet.ts [sizes, e.g. 1000,5000,10000]
 * BENCH_CPU_PROFILE=dir writes CPU profiles of each rotation (manager and
 * every agent host) there.
 */
import 'reflect-metadata';
import { cpus } from 'node:os';
import { createLogger } from '../protocol/log.ts';
import { SIX_STEP } from '../protocol/steps.ts';
import { startCpuProfile } from '../demo/cpu-profile.ts';
import { MqttFleet } from '../demo/mqtt-fleet.ts';
import { measureCryptoFloor, measureNodeP256 } from './crypto-floor.ts';
import { cpuMsOf, ownCpuMs } from './process-cpu.ts';
import { latencySummary, round } from './stats.ts';

const sizes = (process.argv[2] ?? '1000,5000,10000').split(',').map(Number);
const agentProcesses = Number(process.env.BENCH_AGENT_PROCS ?? 2);
const profileDir = process.env.BENCH_CPU_PROFILE;
const reference = measureCryptoFloor();

interface Rates { signPerSec: number; verifyPerSec: number }

/**
 * Signatures and verifications a rotation of n devices needs: leaves, D, R1,
 * one signed command and one signed acknowledgement per step; the agents
 * verify every command signature and four certificate signatures each, the
 * manager every acknowledgement signature.
 */
function floorMs(devices: number, steps: number, r: Rates): number {
  return ((devices + 2 + 2 * steps) / r.signPerSec + (2 * steps + 4 * devices) / r.verifyPerSec) * 1000;
}

/** The manager's share of the floor: leaves, D, R1 and the commands signed, the acknowledgements verified. */
function managerFloorMs(devices: number, steps: number, r: Rates): number {
  return ((devices + 2 + steps) / r.signPerSec + steps / r.verifyPerSec) * 1000;
}

function ratesNow(): Rates {
  const m = measureNodeP256();
  return { signPerSec: m.nodeP256SignPerSec, verifyPerSec: m.nodeP256VerifyPerSec };
}

/** CPU profiles of the rotation in this process and in every agent host; the returned function writes them. */
async function startProfiles(fleet: MqttFleet, prefix: string): Promise<() => Promise<void>> {
  const manager = await startCpuProfile();
  await Promise.all(fleet.hosts.map((h, i) => h.profile(`${prefix}-host${i}.cpuprofile`)));
  return async () => {
    await manager.stop(`${prefix}-manager.cpuprofile`);
    await Promise.all(fleet.hosts.map((h) => h.profile(null)));
  };
}

const runs = [];
for (const n of sizes) {
  const servers = Math.max(1, Math.round(n / 5));
  const setupStart = performance.now();
  const fleet = await MqttFleet.create({
    servers, clients: n - servers, broker: 'mosquitto', brokerAutosaveS: Number(process.env.BENCH_AUTOSAVE_S ?? 1), storage: 'memory',
    logger: createLogger({ level: 'error', sink: () => {} }), connectConcurrency: 200, agentProcesses,
    policy: { ackTimeoutMs: 120_000, sweepIntervalMs: 1_000 },
  });
  const setupMs = performance.now() - setupStart;
  try {
    const before = ratesNow();
    const brokerCpu0 = cpuMsOf(fleet.mosquitto.pid);
    const hostsCpu0 = fleet.hosts.map((h) => cpuMsOf(h.pid) ?? 0);
    const cpu0 = ownCpuMs();
    const stopProfiles = profileDir ? await startProfiles(fleet, `${profileDir}/fleet-${n}`) : null;
    const start = performance.now();
    const rotation = await fleet.rotate(SIX_STEP, 1_800_000);
    const durationMs = performance.now() - start;
    const managerCpuMs = ownCpuMs() - cpu0;
    const brokerCpu1 = cpuMsOf(fleet.mosquitto.pid);
    const hostsCpuMs = fleet.hosts.reduce((sum, h, i) => sum + (cpuMsOf(h.pid) ?? 0) - hostsCpu0[i]!, 0);
    await stopProfiles?.();
    const after = ratesNow();
    const rates = { signPerSec: (before.signPerSec + after.signPerSec) / 2, verifyPerSec: (before.verifyPerSec + after.verifyPerSec) / 2 };
    const rows = fleet.db.steps(rotation.id);
    const latencies = rows.filter((r) => r.ackedAt && r.sentAt).map((r) => Date.parse(r.ackedAt!) - Date.parse(r.sentAt!));
    const messages = rows.reduce((sum, r) => sum + 2 * r.attempts, 0);
    const floor = floorMs(n, rows.length, rates);
    runs.push({
      devices: n, servers, clients: n - servers, status: rotation.status, setupMs: round(setupMs, 0),
      durationMs: round(durationMs, 0), steps: rows.length, messages, messagesPerSec: round(messages / (durationMs / 1000), 0),
      stepLatency: latencySummary(latencies), managerRssMB: round(process.memoryUsage().rss / 2 ** 20, 0),
      floorRates: { before, after },
      cryptoFloorMs: round(floor, 0), ratioToFloor: round(durationMs / floor, 2),
      managerFloorMs: round(managerFloorMs(n, rows.length, rates), 0),
      // Share of one core each process was busy during the rotation.
      cpu: {
        manager: round(managerCpuMs / durationMs, 2), agentHosts: round(hostsCpuMs / durationMs, 2),
        broker: brokerCpu0 === null || brokerCpu1 === null ? null : round((brokerCpu1 - brokerCpu0) / durationMs, 2),
      },
    });
  } finally {
    await fleet.close();
  }
}
process.stdout.write(JSON.stringify({
  bench: 'fleet', at: new Date().toISOString(), node: process.version, cpus: cpus().length,
  broker: 'mosquitto (mqtts, per-device sessions, QoS 1)', agentProcesses,
  note: agentProcesses > 0 ? 'agents in child processes; managerRssMB is the manager process alone' : 'manager and all simulated agents share one process; managerRssMB includes the agents',
  cryptoFloorAtStart: reference, runs,
}, null, 2) + '\n');
