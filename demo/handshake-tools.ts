/**
 * Running external TLS tools (openssl, gnutls-serv, gnutls-cli) so that
 * nothing can hang: every process has a deadline and is killed (SIGKILL) when
 * it passes, servers are killed on stop and when this process exits, and
 * ports are taken free from the kernel. Arguments carry file paths only,
 * never key material.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { TlsError } from '../agent/tls/errors.ts';

/** The outcome of a short-lived tool run. */
export interface ToolRun {
  /** Exit code, or null when killed or not started. */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });
  }
}

const MAX_OUTPUT = 64 * 1024;

/** Run `cmd` with `input` on stdin; resolves (never rejects) by `timeoutMs`, killing the process if needed. */
export function runTool(cmd: string, args: readonly string[], o: { input?: string; timeoutMs: number }): Promise<ToolRun> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutMs);
    child.stdout.on('data', (d: Buffer) => { if (stdout.length < MAX_OUTPUT) stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { if (stderr.length < MAX_OUTPUT) stderr += d.toString(); });
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
    const done = (code: number | null, extra = '') => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr: stderr + extra, timedOut, ms: performance.now() - t0 });
    };
    child.once('error', (err) => done(null, `\nspawn failed: ${err.message}`));
    child.once('close', (code) => done(timedOut ? null : code));
  });
}

/** A free TCP port on every address (taken from the kernel, then released for the tool). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '::', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** True when `cmd` can be started (`cmd versionArg` exits 0). */
export function hasTool(cmd: string, versionArg = 'version'): boolean {
  const r = spawnSync(cmd, [versionArg], { stdio: 'ignore', timeout: 5_000 });
  return r.status === 0;
}

/** A long-running tool server, ready once `ready` matched its output. */
export class ToolServer {
  private output = '';

  private constructor(private readonly child: ChildProcess, readonly port: number) {}

  /**
   * Start `cmd` with `args(port)` on a free port and wait for `ready`;
   * E_TLS_TOOL (after killing it) when it exits or is not ready in time.
   * A port lost to a race is retried with another one, twice.
   */
  static async start(cmd: string, args: (port: number) => string[], ready: RegExp, timeoutMs: number): Promise<ToolServer> {
    let last = '';
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const child = spawn(cmd, args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
      track(child);
      const srv = new ToolServer(child, port);
      const ok = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        const onData = (d: Buffer) => {
          if (srv.output.length < MAX_OUTPUT) srv.output += d.toString();
          if (ready.test(srv.output)) { clearTimeout(timer); resolve(true); }
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        child.once('error', () => { clearTimeout(timer); resolve(false); });
        child.once('exit', () => { clearTimeout(timer); resolve(false); });
      });
      if (ok) {
        // Keep draining output so the tool never blocks on a full pipe.
        child.stdout!.on('data', () => undefined);
        child.stderr!.on('data', () => undefined);
        return srv;
      }
      last = srv.output.slice(-300);
      await srv.stop();
    }
    throw new TlsError('E_TLS_TOOL', `${cmd} did not become ready within ${timeoutMs} ms: ${last.trim() || 'no output'}`);
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Kill the server (SIGTERM, then SIGKILL after 500 ms) and wait for it to exit. */
  stop(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const hard = setTimeout(() => this.child.kill('SIGKILL'), 500);
      this.child.once('exit', () => { clearTimeout(hard); resolve(); });
      this.child.kill('SIGTERM');
    });
  }
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
