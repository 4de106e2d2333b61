/**
 * The demo's device processes: each device is a `trustroll-agent run`
 * process; its stdout carries JSON event lines (ready, tally, stopped).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Role } from '../protocol/steps.ts';

const AGENT_BIN = fileURLToPath(new URL('../bin/trustroll-agent.mjs', import.meta.url));

/** A running device process. */
export interface DeviceProc { id: string; role: Role; dir: string; config: string; proc: ChildProcess; ready: Promise<void>; stopped: Promise<Tally | null>; attempted: number }

/** A client device's handshake counters. */
export type Tally = { attempted: number; failed: number; fallbacks: number; failures: string[] };

/** Start one device process; `ready` settles when it reports being linked to the broker. */
export function startDevice(id: string, role: Role, dir: string, config: string): DeviceProc {
  const proc = spawn(process.execPath, [AGENT_BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TRUSTROLL_LOG: 'warn' } });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  let resolveStopped!: (t: Tally | null) => void;
  const stopped = new Promise<Tally | null>((r) => (resolveStopped = r));
  let settleReady!: (err: Error | null) => void;
  const ready = new Promise<void>((resolve, reject) => (settleReady = (err) => (err ? reject(err) : resolve())));
  ready.catch(() => undefined);
  const timer = setTimeout(() => settleReady(new Error(`device ${id} did not start within 90 s`)), 90_000);
  proc.once('exit', (code) => {
    clearTimeout(timer);
    settleReady(new Error(`device ${id} exited with ${code} before it was ready: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    resolveStopped(null);
  });
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (line) => {
    let msg: { event?: string; probe?: Tally; linked?: boolean };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return;
    }
    if (msg.event === 'ready') {
      clearTimeout(timer);
      settleReady(msg.linked ? null : new Error(`device ${id} could not connect to the broker`));
    }
    if (msg.event === 'tally') p.attempted = msg.probe?.attempted ?? p.attempted;
    if (msg.event === 'stopped') resolveStopped(msg.probe ?? null);
  });
  const p: DeviceProc = { id, role, dir, config, proc, ready, stopped, attempted: 0 };
  return p;
}

/** Stop the clients first (their final tallies), then the servers they were talking to. */
export async function stopAll(procs: DeviceProc[]): Promise<Tally[]> {
  const stop = async (group: DeviceProc[]) => {
    for (const p of group) p.proc.kill('SIGTERM');
    return Promise.all(group.map((p) => Promise.race([p.stopped, new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref())])));
  };
  const tallies = await stop(procs.filter((p) => p.role === 'client'));
  await stop(procs.filter((p) => p.role === 'server'));
  return tallies.filter((t): t is Tally => t !== null);
}

/** Resolves once something accepts TCP connections on the loopback `port`; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Start every device process of a fleet in an order where each first
 * handshake finds its peer listening: direct servers (ready), relayed
 * servers (listening; ready only once their relay pushed to them), then the
 * clients; resolves once all are ready. `onStart` sees each process as it
 * starts (the list is complete even when a start fails).
 */
export async function startFleetProcesses(ids: readonly [string, Role][], routes: ReadonlyMap<string, string>, ports: ReadonlyMap<string, number>, dir: string, configs: ReadonlyMap<string, string>, onStart: (p: DeviceProc) => void = () => undefined): Promise<DeviceProc[]> {
  const all: DeviceProc[] = [];
  const launch = (wanted: Role, relayed: boolean) => {
    const group = ids.filter(([id, role]) => role === wanted && routes.has(id) === relayed).map(([id, role]) => startDevice(id, role, join(dir, 'devices', id), configs.get(id)!));
    for (const p of group) onStart(p);
    all.push(...group);
    return group;
  };
  await Promise.all(launch('server', false).map((p) => p.ready));
  const relayedServers = launch('server', true);
  await Promise.all(relayedServers.map((p) => waitForPort(ports.get(p.id)!, 30_000)));
  await Promise.all([...launch('client', false), ...launch('client', true)].map((p) => p.ready));
  await Promise.all(relayedServers.map((p) => p.ready));
  return all;
}
