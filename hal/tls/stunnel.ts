/**
 * TLS terminator for token-resident keys. Node 20's bundled OpenSSL cannot
 * sign a handshake with a key held by an engine or provider (both fail with
 * "no suitable signature algorithm"; see docs/hal.md), so one stunnel
 * process per key (system OpenSSL + libp11 engine) does the mTLS handshake
 * with the key inside the token, and the agent speaks plain bytes over a
 * Unix socket in a private 0700 directory. The config, PIN included, is
 * piped on stdin (`-fd 0`): it never touches disk or argv.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TlsKeyRef } from '../key-store.ts';
import { HalError } from '../errors.ts';

/** Default locations of Debian's stunnel4 and libengine-pkcs11-openssl. */
export const DEFAULT_STUNNEL = '/usr/bin/stunnel4';
export const DEFAULT_PKCS11_ENGINE = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so';

/** Where the terminator connects and how it checks the peer. */
export interface TerminatorOptions {
  readonly host: string;
  readonly port: number;
  /** Name the server certificate must carry (checkHost). */
  readonly servername: string;
  /** PEM chain presented as the client certificate. */
  readonly certPem: string;
  /** PEM of the CAs trusted for the server certificate. */
  readonly caPem: string;
  /** Allow TLS session resumption (default true; tests turn it off so every handshake signs). */
  readonly sessionResume?: boolean;
  readonly stunnelPath?: string;
  readonly enginePath?: string;
}

/** A token key reference (see KeyStore.tlsKey). */
export type Pkcs11Ref = Extract<TlsKeyRef, { kind: 'pkcs11' }>;

/** Reject a config value with a line break (it would inject stunnel settings). */
export function configValue(v: string): string {
  if (/[\r\n]/.test(v)) throw new HalError('E_HAL_TLS', 'terminator setting contains a line break');
  return v;
}

/** Global stunnel settings that load the PKCS#11 engine for `ref` (the PIN included: never write this to disk). */
export function engineSection(ref: Pkcs11Ref, enginePath?: string): string[] {
  return [
    'foreground = yes',
    'pid =',
    'debug = 4',
    'engine = dynamic',
    `engineCtrl = SO_PATH:${configValue(enginePath ?? DEFAULT_PKCS11_ENGINE)}`,
    'engineCtrl = ID:pkcs11',
    'engineCtrl = LIST_ADD:1',
    'engineCtrl = LOAD',
    `engineCtrl = MODULE_PATH:${configValue(ref.module)}`,
    `engineCtrl = PIN:${configValue(ref.pin)}`,
    'engineCtrl = INIT',
  ];
}

/** The PKCS#11 URI of the private key `ref` names. */
export function keyUri(ref: Pkcs11Ref): string {
  return `pkcs11:token=${encodeURIComponent(ref.tokenLabel)};object=${encodeURIComponent(ref.label)};type=private`;
}

function stunnelConfig(ref: Pkcs11Ref, o: TerminatorOptions, dir: string): string {
  const line = configValue;
  const uri = keyUri(ref);
  return [
    ...engineSection(ref, o.enginePath),
    '[device]',
    'client = yes',
    `accept = ${path.join(dir, 'tls.sock')}`,
    `connect = ${line(o.host)}:${o.port}`,
    'engineId = pkcs11',
    `key = ${uri}`,
    `cert = ${path.join(dir, 'cert.pem')}`,
    `CAfile = ${path.join(dir, 'ca.pem')}`,
    'verifyChain = yes',
    `checkHost = ${line(o.servername)}`,
    `sessionResume = ${o.sessionResume === false ? 'no' : 'yes'}`,
    'sslVersionMin = TLSv1.2',
    '',
  ].join('\n');
}

/** A running terminator: connect to `socketPath` to get a TLS-wrapped stream. */
export class StunnelTerminator {
  private exited = false;
  private log = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly socketPath: string,
    private readonly pin: string,
  ) {
    child.stderr?.on('data', (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-4096);
    });
    child.once('exit', () => {
      this.exited = true;
    });
  }

  /** Starts stunnel and waits until its socket accepts; E_HAL_TLS with its (redacted) log if it dies. */
  static async start(ref: Pkcs11Ref, o: TerminatorOptions): Promise<StunnelTerminator> {
    const bin = o.stunnelPath ?? DEFAULT_STUNNEL;
    if (!existsSync(bin)) throw new HalError('E_HAL_TLS', `stunnel not found at ${bin} (Debian package stunnel4)`);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'trustroll-tls-'));
    await fs.chmod(dir, 0o700);
    await fs.writeFile(path.join(dir, 'cert.pem'), o.certPem, { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'ca.pem'), o.caPem, { mode: 0o600 });
    const child = spawn(bin, ['-fd', '0'], { env: { ...process.env, ...ref.env }, stdio: ['pipe', 'ignore', 'pipe'] });
    const t = new StunnelTerminator(child, dir, path.join(dir, 'tls.sock'), ref.pin);
    child.stdin!.end(stunnelConfig(ref, o, dir));
    const deadline = Date.now() + 15_000;
    while (!existsSync(t.socketPath)) {
      if (t.exited || Date.now() > deadline) {
        const why = t.exited ? 'exited' : 'did not open its socket within 15 s';
        await t.close();
        throw new HalError('E_HAL_TLS', `stunnel ${why}: ${t.redactedLog()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return t;
  }

  /** True while the stunnel process runs. */
  get running(): boolean {
    return !this.exited;
  }

  /** The last lines stunnel printed, with the PIN removed. */
  redactedLog(): string {
    return this.log.split(this.pin).join('<pin>').trim().split('\n').slice(-6).join(' | ');
  }

  /** Stops stunnel and removes its private directory. */
  async close(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    }
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
