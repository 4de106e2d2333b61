/**
 * The technician's side of the broken-device tests: run `trustroll-agent
 * status` and `selftest` as separate processes (JSON and text), read their
 * verdicts, and run an agent as another user (`trustroll-agent run` as a
 * child process with that uid/gid) for the permission cases.
 */
import { strict as assert } from 'node:assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Check, SelftestReport } from '../../agent/selftest/report.ts';
import type { DeviceStatus } from '../../agent/status.ts';

export const AGENT_BIN = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));

/** One run of the CLI. */
export interface CliRun { code: number; stdout: string; stderr: string }

/** Run the real CLI without blocking this process (agents may run in it). */
export function cli(...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [AGENT_BIN, ...args], { encoding: 'utf8', timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** No stack trace and no source location anywhere in the output. */
export function noStack(r: CliRun): void {
  assert.doesNotMatch(r.stdout + r.stderr, /^\s+at .+(:\d+:\d+\)?|<anonymous>)$/m, 'no stack trace');
  assert.doesNotMatch(r.stdout + r.stderr, /node:internal|\.ts:\d+/, 'no source locations');
}

/** Both tools' verdicts on one configuration, run side by side: the JSON of each, their exit codes, and status's text. */
export interface Verdicts {
  status: DeviceStatus;
  statusCode: number;
  statusText: string;
  selftest: SelftestReport;
  selftestCode: number;
}

/** Run status (JSON and text) and selftest (JSON) on `configPath`. */
export async function verdicts(configPath: string): Promise<Verdicts> {
  const [s, t, st] = await Promise.all([
    cli('status', '--config', configPath, '--json'),
    cli('status', '--config', configPath),
    cli('selftest', '--config', configPath, '--json', '--timeout', '3000'),
  ]);
  for (const r of [s, t, st]) noStack(r);
  assert.equal(t.code, s.code, 'text and JSON agree');
  return { status: JSON.parse(s.stdout) as DeviceStatus, statusCode: s.code, statusText: t.stdout, selftest: JSON.parse(st.stdout) as SelftestReport, selftestCode: st.code };
}

/** The check named `name` in a list (status problems or a selftest report). */
export function named(checks: readonly Check[], name: string): Check {
  const c = checks.find((x) => x.name === name);
  assert.ok(c, `check "${name}" in ${checks.map((x) => `${x.name}:${x.status}`).join(', ')}`);
  return c;
}

/** Both tools say NOT OK (exit 1) and name the same failing check with the same code; returns selftest's check. */
export function bothFail(v: Verdicts, name: string, code: string): Check {
  const why = `status: ${v.statusText}\nselftest: ${JSON.stringify(v.selftest.checks.filter((c) => c.status !== 'ok'), null, 1)}`;
  assert.equal(v.statusCode, 1, why);
  assert.equal(v.status.verdict, 'fail');
  assert.match(v.statusText, /status: NOT OK/);
  assert.equal(v.selftestCode, 1, why);
  assert.equal(v.selftest.result, 'fail');
  const a = named(v.status.problems, name);
  const b = named(v.selftest.checks, name);
  assert.equal(a.status, 'fail', why);
  assert.equal(b.status, 'fail', why);
  assert.equal(a.code, code, why);
  assert.equal(b.code, code, why);
  assert.ok(b.action && b.action.length > 10, 'what to do');
  return b;
}

/** Both tools say OK (exit 0); `warnings` allows status warnings (e.g. an earlier refusal). */
export function bothOk(v: Verdicts, o: { warnings?: boolean } = {}): void {
  const why = `status: ${v.statusText}\nselftest: ${JSON.stringify(v.selftest.checks.filter((c) => c.status !== 'ok'), null, 1)}`;
  assert.equal(v.statusCode, 0, why);
  assert.equal(v.selftestCode, 0, why);
  assert.ok(v.selftest.ok, why);
  if (!o.warnings) {
    assert.equal(v.status.verdict, 'ok', why);
    assert.match(v.statusText, /status: OK$/m);
    assert.equal(v.selftest.result, 'ok', why);
  }
}

/** An agent process running as another user; `stop` ends it with SIGTERM. */
export interface AgentProcess { proc: ChildProcess; stop(): Promise<void> }

/** Run `trustroll-agent run` as `uid`/`gid`; resolves once it reports ready, rejects with its exit code and stderr when it ends first. */
export function runAgentAs(configPath: string, uid: number, gid: number): Promise<AgentProcess> {
  const proc = spawn(nodeForOthers(), [AGENT_BIN, 'run', '--config', configPath], { uid, gid, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TRUSTROLL_LOG: 'warn', HOME: '/tmp' } });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { void stop(); reject(new Error(`agent not ready in 60 s: ${err}`)); }, 60_000);
    proc.once('exit', (code) => { clearTimeout(timer); reject(Object.assign(new Error(`agent exited with ${code}: ${err}`), { exitCode: code, stderr: err })); });
    proc.once('error', (e) => { clearTimeout(timer); reject(e); });
    createInterface({ input: proc.stdout! }).on('line', (l) => { if (l.includes('"event":"ready"')) { clearTimeout(timer); resolve({ proc, stop }); } });
  });
}

/**
 * A Node binary another user can run: this process's own, or a copy in the
 * temp folder when a folder above it is closed to others (the Node 24 step's
 * runtime lives under /root/.cache, 0700).
 */
function nodeForOthers(): string {
  if (othersCanReach(process.execPath)) return process.execPath;
  const dir = join(tmpdir(), `trustroll-node-${createHash('sha256').update(process.execPath).digest('hex').slice(0, 12)}`);
  const copy = join(dir, 'node');
  if (!existsSync(copy)) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    copyFileSync(process.execPath, `${copy}.${process.pid}`);
    chmodSync(`${copy}.${process.pid}`, 0o755);
    renameSync(`${copy}.${process.pid}`, copy);
  }
  return copy;
}

/** True when every folder above `file` lets others through and `file` lets them execute it. */
function othersCanReach(file: string): boolean {
  if ((statSync(file).mode & 0o001) === 0) return false;
  for (let d = dirname(file); ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === dirname(d)) return true;
  }
}
