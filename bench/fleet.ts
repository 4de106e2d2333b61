/**
 * Fleet benchmark (issue: MQTT link). Rotates 1,000 / 5,000 / 10,000
 * simulated agents through a real Mosquitto: each agent has its own MQTT
 * session over mTLS, verifies every command signature and certificate for
 * real, and keeps its record in memory (10,000 database files would only
 * measure the disk). Prints one JSON object.
 * Run: npx tsx bench/fleet.ts [sizes, e.g. 1000,5000,10000]
 */
import 'reflect-metadata';
import { cpus } from 'node:os';
import { createLogger } from '../protocol/log.ts';
import { SIX_STEP } from '../protocol/steps.ts';
import { MqttFleet } from '../demo/mqtt-fleet.ts';
import { measureCryptoFloor } from './crypto-floor.ts';
import { latencySummary, round } from './stats.ts';
import { cpuMsOf, ownCpuMs } from './process-cpu.ts';
import { startCpuProfile } from '../demo/cpu-profile.ts';

const sizes = (process.argv[2] ?? '1000,5000,10000').split(',').map(Number);
/** Child processes hosting the simulated devices; 0 = in the manager's process. */
const agentProcesses = Number(process.env.BENCH_AGENT_PROCS ?? 1);
const floorRates = measureCryptoFloor();
const sign = floorRates.nodeP256SignPerSec;
const verify = floorRates.nodeP256VerifyPerSec;

/**
 * Signatures and verifications a rotation of n devices needs: leaves, D, R1,
 * one signed command and one signed acknowledgement per step; the agents
 * verify every command signature and four certificate signatures each, the
 * manager every acknowledgement signature.
 */
function floorMs(devices: number, steps: number): number {
  return ((devices + 2 + 2 * steps) / sign + (2 * steps + 4 * devices) / verify) * 1000;
}

/** BENCH_CPU_PROFILE=dir: CPU profiles of the rotation (manager, each agent host) written there. */
const profileDir = process.env.BENCH_CPU_PROFILE;

async function startProfiles(fleet: MqttFleet, prefix: string): Promise<() => Promise<void>> {
  const manager = await startCpuProfile();
  await Promise.all(fleet.hosts.map((h, i) => h.call({ op: 'profile', file: `${prefix}-host${i}.cpuprofile` })));
  return async () => {
    await manager.stop(`${prefix}-manager.cpuprofile`);
    await Promise.all(fleet.hosts.map((h) => h.call({ op: 'profile', file: null })));
  };
}

const runs = [];
for (const n of sizes) {
  const servers = Math.max(1, Math.round(n / 5));
  const setupStart = performance.now();
  const fleet = await MqttFleet.create({ servers, clients: n - servers, broker: 'mosquitto', brokerAutosaveS: Number(process.env.BENCH_AUTOSAVE_S ?? 1), storage: 'memory', logger: createLogger({ level: 'error', sink: () => {} }), connectConcurrency: 200, agentProcesses, policy: { ackTimeoutMs: 120_000, sweepIntervalMs: 1_000 } });
  const setupMs = performance.now() - setupStart;
  try {
    const brokerCpu0 = cpuMsOf(fleet.mosquitto.pid);
    const hostsCpu0 = fleet.hosts.map((h) => cpuMsOf(h.pid) ?? 0);
    const cpu0 = ownCpuMs();
    const start = performance.now();
    const stopProfiles = profileDir ? await startProfiles(fleet, `${profileDir}/fleet-${n}`) : null;
    const rotation = await fleet.rotate(SIX_STEP, 1_800_000);
    await stopProfiles?.();
    const durationMs = performance.now() - start;
    const nodeCpuMs = ownCpuMs() - cpu0;
    const brokerCpu1 = cpuMsOf(fleet.mosquitto.pid);
    const hostsCpuMs = fleet.hosts.reduce((sum, h, i) => sum + (cpuMsOf(h.pid) ?? 0) - hostsCpu0[i]!, 0);
    const rows = fleet.db.steps(rotation.id);
    const latencies = rows.filter((r) => r.ackedAt && r.sentAt).map((r) => Date.parse(r.ackedAt!) - Date.parse(r.sentAt!));
    const messages = rows.reduce((sum, r) => sum + 2 * r.attempts, 0);
    const floor = floorMs(n, rows.length);
    runs.push({
      devices: n, servers, clients: n - servers, status: rotation.status, setupMs: round(setupMs, 0),
      durationMs: round(durationMs, 0), steps: rows.length, messages, messagesPerSec: round(messages / (durationMs / 1000), 0),
      stepLatency: latencySummary(latencies), rssMB: round(process.memoryUsage().rss / 2 ** 20, 0),
      cryptoFloorMs: round(floor, 0), ratioToFloor: round(durationMs / floor, 2),
      // Share of one core each process was busy during the rotation.
      cpu: { manager: round(nodeCpuMs / durationMs, 2), agentHosts: round(hostsCpuMs / durationMs, 2), broker: brokerCpu0 === null || brokerCpu1 === null ? null : round((brokerCpu1 - brokerCpu0) / durationMs, 2) },
    });
  } finally {
    await fleet.close();
  }
}
process.stdout.write(JSON.stringify({ bench: 'fleet', at: new Date().toISOString(), node: process.version, cpus: cpus().length, broker: 'mosquitto (mqtts, per-device sessions, QoS 1)', note: 'manager and all simulated agents share one Node process; rssMB is that process', cryptoFloor: floorRates, runs }, null, 2) + '\n');
