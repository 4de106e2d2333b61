/**
 * Serving mutual TLS with a token-resident key (PKCS#11 / TPM): Node cannot
 * sign the handshake with such a key (docs/hal.md), so a stunnel process
 * (system OpenSSL + libp11) terminates TLS with the key inside the token,
 * requires and verifies the client certificate, and hands authenticated
 * connections to the agent as plain streams.
 *
 * Hot reload without dropping connections: Node owns the public port and
 * forwards each new TCP connection to the current stunnel "generation". A
 * trust-store or certificate change starts a new generation with the new
 * material and switches new connections to it; the old one keeps serving
 * the connections it has and stops when they end. The config (PIN
 * included) goes to stunnel on stdin, never to disk or argv.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HalError } from '../errors.ts';
import { configValue, DEFAULT_STUNNEL, engineSection, keyUri, type Pkcs11Ref } from './stunnel.ts';

/** Where to listen, what to present and trust, and who gets the authenticated connections. */
export interface ServerTerminatorOptions {
  readonly host: string;
  readonly port: number;
  readonly certPem: string;
  readonly caPem: string;
  /** Receives each authenticated connection as a plain stream. */
  readonly onConnection: (plain: net.Socket) => void;
  readonly stunnelPath?: string;
  readonly enginePath?: string;
}

interface Generation {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly plain: net.Server;
  open: number;
  retired: boolean;
  log: string;
}

/** A TLS service whose key stays in the token; `reload` swaps material without dropping connections. */
export class StunnelServerTerminator {
  private current!: Generation;
  private readonly generations = new Set<Generation>();
  private constructor(private readonly ref: Pkcs11Ref, private readonly o: ServerTerminatorOptions, private readonly front: net.Server) {}

  /** Start the first generation and listen on host:port. */
  static async start(ref: Pkcs11Ref, o: ServerTerminatorOptions): Promise<StunnelServerTerminator> {
    const front = net.createServer();
    const t = new StunnelServerTerminator(ref, o, front);
    t.current = await t.generation(o.certPem, o.caPem);
    front.on('connection', (sock) => t.forward(sock));
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject);
      front.listen(o.port, o.host, () => resolve());
    });
    return t;
  }

  /** The listening port. */
  get port(): number {
    return (this.front.address() as net.AddressInfo).port;
  }

  /** New certificate and/or trust store: new connections use them once this resolves. */
  async reload(certPem: string, caPem: string): Promise<void> {
    const next = await this.generation(certPem, caPem);
    const old = this.current;
    this.current = next;
    old.retired = true;
    if (old.open === 0) await this.stop(old);
  }

  private forward(sock: net.Socket): void {
    const gen = this.current;
    gen.open++;
    const upstream = net.connect(path.join(gen.dir, 'tls.sock'));
    sock.pipe(upstream).pipe(sock);
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      sock.destroy();
      upstream.destroy();
      gen.open--;
      if (gen.retired && gen.open === 0) void this.stop(gen);
    };
    sock.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  }

  private async generation(certPem: string, caPem: string): Promise<Generation> {
    const bin = this.o.stunnelPath ?? DEFAULT_STUNNEL;
    if (!existsSync(bin)) throw new HalError('E_HAL_TLS', `stunnel not found at ${bin} (Debian package stunnel4)`);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'trustroll-tls-srv-'));
    await fs.chmod(dir, 0o700);
    await fs.writeFile(path.join(dir, 'cert.pem'), certPem, { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'ca.pem'), caPem, { mode: 0o600 });
    const plain = net.createServer((s) => this.o.onConnection(s));
    await new Promise<void>((resolve) => plain.listen(path.join(dir, 'plain.sock'), () => resolve()));
    const config = [
      ...engineSection(this.ref, this.o.enginePath),
      '[device]',
      'client = no',
      `accept = ${path.join(dir, 'tls.sock')}`,
      `connect = ${path.join(dir, 'plain.sock')}`,
      'engineId = pkcs11',
      `key = ${configValue(keyUri(this.ref))}`,
      `cert = ${path.join(dir, 'cert.pem')}`,
      `CAfile = ${path.join(dir, 'ca.pem')}`,
      'verifyChain = yes',
      'requireCert = yes',
      'sslVersionMin = TLSv1.2',
      '',
    ].join('\n');
    const child = spawn(bin, ['-fd', '0'], { env: { ...process.env, ...this.ref.env }, stdio: ['pipe', 'ignore', 'pipe'] });
    const gen: Generation = { dir, child, plain, open: 0, retired: false, log: '' };
    this.generations.add(gen);
    child.stderr?.on('data', (d: Buffer) => { gen.log = (gen.log + d.toString()).slice(-4096); });
    child.stdin!.end(config);
    const deadline = Date.now() + 15_000;
    while (!existsSync(path.join(dir, 'tls.sock'))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        const why = child.exitCode !== null ? 'exited' : 'did not open its socket within 15 s';
        const log = gen.log.split(this.ref.pin).join('<pin>').trim().split('\n').slice(-6).join(' | ');
        await this.stop(gen);
        throw new HalError('E_HAL_TLS', `stunnel (server) ${why}: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return gen;
  }

  private async stop(gen: Generation): Promise<void> {
    if (!this.generations.delete(gen)) return;
    if (gen.child.exitCode === null && gen.child.signalCode === null) {
      const gone = new Promise((r) => gen.child.once('exit', r));
      gen.child.kill('SIGTERM');
      const timer = setTimeout(() => gen.child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    }
    await new Promise<void>((r) => gen.plain.close(() => r()));
    await fs.rm(gen.dir, { recursive: true, force: true });
  }

  /** Stop listening and stop every generation. */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.front.close(() => r()));
    await Promise.all([...this.generations].map((g) => this.stop(g)));
    await closed;
  }
}
