/**
 * Shared by the image tests: when an image test runs (always in CI; here
 * only while the cross-compile cache is warm, since a cold native build
 * takes minutes), building or reusing the image, unpacking its tarball, and
 * agent processes started from any command line (host or qemu).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AGENT_ADDONS } from '../../cross-compile/addons.ts';
import { addonCache } from '../../cross-compile/paths.ts';
import type { Target } from '../../cross-compile/targets.ts';
import { buildImage, type ImageBuild } from '../../image/build.ts';
import type { CommandLine } from '../../image/emulate.ts';
import type { Role } from '../../protocol/steps.ts';

/**
 * Why the image tests for `target` are skipped here, or null when they run.
 * arm64 (the acceptance target) runs in CI (building from a cold cache takes
 * about 2 minutes of compiling) and wherever its native builds are cached
 * (per machine, see cross-compile/paths.ts); the other targets take minutes
 * under emulation, so they run only with TRUSTROLL_IMAGE_TESTS=1.
 */
export function imageTestSkipReason(target: Target): string | null {
  if (process.env.TRUSTROLL_IMAGE_TESTS === '1') return null;
  if (target.arch !== 'arm64') return `the ${target.arch} image tests take minutes under emulation: set TRUSTROLL_IMAGE_TESTS=1 to run them`;
  if (process.env.CI === 'true') return null;
  const warm = AGENT_ADDONS.every((a) => existsSync(join(addonCache(target.arch), a.pkg, '.build-key')));
  return warm ? null : `cross-compile cache for ${target.arch} is cold (a native build takes minutes): run "npm run image -- --arch ${target.arch}" once, or set TRUSTROLL_IMAGE_TESTS=1${target.arch === 'arm64' ? ' or CI=true' : ''}`;
}

const built = new Map<string, Promise<ImageBuild>>();

/** The target's image, built once per test run (its native parts are reused from the cache when unchanged). */
export function imageFor(target: Target): Promise<ImageBuild> {
  let p = built.get(target.arch);
  if (!p) {
    p = buildImage(target, (line) => process.stderr.write(`      ${line}\n`));
    built.set(target.arch, p);
  }
  return p;
}

/** Unpacks the image tarball into a new temporary folder; returns that folder (the overlay's root). */
export function unpack(tarball: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'trustroll-image-'));
  const r = spawnSync('tar', ['-xzf', tarball, '-C', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -xzf ${tarball}: ${r.stderr}`);
  return dir;
}

/** A client's handshake counters as `trustroll-agent run` prints them. */
export interface Tally { attempted: number; failed: number; fallbacks: number; failures?: string[] }

/** A running `trustroll-agent run` process. */
export interface AgentProc {
  id: string;
  role: Role;
  proc: ChildProcess;
  /** Settles once the agent reports it is linked to the broker. */
  ready: Promise<void>;
  /** The final tally it prints on SIGTERM (null if it printed none). */
  stopped: Promise<Tally | null>;
  stderr(): string;
}

/** Starts `run --config <config>` with the given agent command line (host Node or qemu). */
export function startAgent(id: string, role: Role, agent: (args: string[]) => CommandLine, config: string, startTimeoutMs = 120_000): AgentProc {
  const cl = agent(['run', '--config', config]);
  const proc = spawn(cl.command, cl.args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TRUSTROLL_LOG: 'warn' } });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
  let settle!: (e: Error | null) => void;
  const ready = new Promise<void>((resolve, reject) => { settle = (e) => (e ? reject(e) : resolve()); });
  ready.catch(() => undefined);
  let finish!: (t: Tally | null) => void;
  const stopped = new Promise<Tally | null>((r) => { finish = r; });
  const timer = setTimeout(() => settle(new Error(`${id} was not ready within ${startTimeoutMs} ms: ${err.trim()}`)), startTimeoutMs);
  proc.once('exit', (code) => {
    clearTimeout(timer);
    settle(new Error(`${id} exited with ${code} before it was ready: ${err.trim().split('\n').slice(-3).join(' | ')}`));
    finish(null);
  });
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let msg: { event?: string; linked?: boolean; probe?: Tally };
    try { msg = JSON.parse(line) as typeof msg; } catch { return; }
    if (msg.event === 'ready') {
      clearTimeout(timer);
      settle(msg.linked ? null : new Error(`${id} could not connect to the broker`));
    }
    if (msg.event === 'stopped') finish(msg.probe ?? null);
  });
  return { id, role, proc, ready, stopped, stderr: () => err };
}

/** SIGTERM to every agent, clients first; their final tallies (waits at most 30 s each). */
export async function stopAgents(agents: AgentProc[]): Promise<Map<string, Tally | null>> {
  const out = new Map<string, Tally | null>();
  for (const role of ['client', 'server'] as const) {
    const group = agents.filter((a) => a.role === role && a.proc.exitCode === null);
    for (const a of group) a.proc.kill('SIGTERM');
    const tallies = await Promise.all(group.map((a) => Promise.race([a.stopped, new Promise<null>((r) => setTimeout(() => r(null), 30_000).unref())])));
    group.forEach((a, i) => out.set(a.id, tallies[i]!));
  }
  for (const a of agents) if (a.proc.exitCode === null) a.proc.kill('SIGKILL');
  return out;
}
