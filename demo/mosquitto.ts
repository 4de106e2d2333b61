/**
 * A Mosquitto broker for one test: its own config in a temp dir, a free
 * loopback port, mutual TLS with the management CA (require_certificate,
 * certificate CN as username and client id), the trustroll ACL
 * (protocol/topics.ts mosquittoAcl), persistence in the temp dir and the
 * `$SYS` statistics every `sys_interval` seconds (the manager's broker view).
 * Start, stop (SIGTERM: Mosquitto saves its database), kill (SIGKILL: no
 * save), restart on the same port and persistence; close removes the dir.
 * Never touches a system Mosquitto.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mosquittoAcl } from '../protocol/topics.ts';
import type { ManagementPki } from '../manager/pki/management-pki.ts';

/** Where the Debian package installs the broker. */
export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/** A free TCP port on 127.0.0.1 (bind port 0, read it back, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * True when process `pid` holds the listening socket on 127.0.0.1:`port`
 * (Linux /proc): a connection that succeeds proves only that something
 * listens there, maybe another test's server that took the port first.
 * Null when /proc cannot tell (not Linux, or not readable).
 */
function listensOn(pid: number, port: number): boolean | null {
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    const inodes = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === local && f[3] === '0A')
      .map((f) => `socket:[${f[9]}]`);
    if (!inodes.length) return false;
    const fds = readdirSync(`/proc/${pid}/fd`);
    return fds.some((fd) => { try { return inodes.includes(readlinkSync(`/proc/${pid}/fd/${fd}`)); } catch { return false; } });
  } catch {
    return null;
  }
}

/** The Mosquitto configuration trustroll's tests (and a real deployment) use. */
export function mosquittoConfig(o: { dir: string; port: number; cafile: string; certfile: string; keyfile: string; aclFile: string; autosaveIntervalS?: number; sysIntervalS?: number }): string {
  return [
    'per_listener_settings false',
    'allow_anonymous false',
    `acl_file ${o.aclFile}`,
    'persistence true',
    `persistence_location ${join(o.dir, 'data')}/`,
    `autosave_interval ${o.autosaveIntervalS ?? 1}`,
    // The manager's session must hold every device's ack and state while it is busy or away (2 per device per step).
    'max_queued_messages 200000',
    // $SYS/broker/... statistics every N seconds (0: none); the ACL lets only the manager read them.
    `sys_interval ${o.sysIntervalS ?? 10}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    `listener ${o.port} 127.0.0.1`,
    `cafile ${o.cafile}`,
    `certfile ${o.certfile}`,
    `keyfile ${o.keyfile}`,
    'require_certificate true',
    'use_identity_as_username true',
    // Listener-scoped in 2.0: before the first `listener` it would open the default port 1883.
    'use_username_as_clientid true',
    'tls_version tlsv1.2',
    '',
  ].join('\n');
}

/** How a test's Mosquitto is configured. */
export interface MosquittoOptions {
  /** Persistence autosave in seconds (default 1). */
  autosaveIntervalS?: number;
  /** `$SYS` statistics interval in whole seconds (default 10, Mosquitto's own; 0 publishes none). */
  sysIntervalS?: number;
  /** ACL file text instead of mosquittoAcl() (e.g. an operator's ACL without the `$SYS` line). */
  acl?: string;
}

/** A running (or stopped) Mosquitto owned by one test. */
export class Mosquitto {
  private proc: ChildProcess | null = null;
  private stderr = '';

  private constructor(readonly dir: string, readonly port: number, private readonly configFile: string) {}

  /** Write the config for `pki` and start the broker on a free loopback port. */
  static async start(pki: ManagementPki, opts: MosquittoOptions = {}): Promise<Mosquitto> {
    if (!existsSync(MOSQUITTO_BIN)) throw new Error(`${MOSQUITTO_BIN} is missing — apt-get install -y mosquitto`);
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-mosq-'));
    mkdirSync(join(dir, 'data'));
    const files = pki.writeBrokerFiles(dir);
    const aclFile = join(dir, 'acl');
    writeFileSync(aclFile, opts.acl ?? mosquittoAcl());
    const configFile = join(dir, 'mosquitto.conf');
    // The free port is released before Mosquitto binds it, so another test
    // process may take it in between: Mosquitto then exits at start with
    // "Address already in use", and it is started again on another port.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      writeFileSync(configFile, mosquittoConfig({ dir, port, aclFile, ...files, autosaveIntervalS: opts.autosaveIntervalS, sysIntervalS: opts.sysIntervalS }));
      const m = new Mosquitto(dir, port, configFile);
      try {
        await m.launch();
        return m;
      } catch (e) {
        if (attempt >= 3 || !/address already in use/i.test(m.log)) {
          rmSync(dir, { recursive: true, force: true });
          throw e;
        }
      }
    }
  }

  /** mqtts URL of the listener. */
  get url(): string {
    return `mqtts://127.0.0.1:${this.port}`;
  }

  /** The broker's process id while it runs (benchmarks read its CPU time from /proc). */
  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  /** True while the broker process is alive. */
  get running(): boolean {
    return this.proc !== null;
  }

  private async launch(): Promise<void> {
    const proc = spawn(MOSQUITTO_BIN, ['-c', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    this.stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    let exited = false;
    proc.once('exit', () => { exited = true; if (this.proc === proc) this.proc = null; });
    const end = Date.now() + 5_000;
    const ready = async (): Promise<boolean> => !exited && (listensOn(proc.pid!, this.port) ?? (await accepts(this.port)));
    while (!(await ready())) {
      if (exited) throw new Error(`mosquitto exited at start: ${this.stderr.trim()}`);
      if (Date.now() > end) throw new Error(`mosquitto did not accept on ${this.port} within 5 s: ${this.stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(sig);
    await gone;
    this.proc = null;
  }

  /** Graceful stop: Mosquitto writes its persistence database. */
  stop(): Promise<void> {
    return this.signal('SIGTERM');
  }

  /** Crash: SIGKILL, nothing saved beyond the last autosave (1 s). */
  kill(): Promise<void> {
    return this.signal('SIGKILL');
  }

  /** Start again with the same config, port and persistence directory. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** Start after stop() or kill(). */
  start(): Promise<void> {
    return this.launch();
  }

  /** Last lines Mosquitto wrote to stderr (for failure messages). */
  get log(): string {
    return this.stderr;
  }

  /** Stop the broker and delete its directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
