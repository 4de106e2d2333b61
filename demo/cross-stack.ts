/**
 * Cross-stack proof (issue 3, item 5): at a fleet state, export every
 * device's PEM material and run real mutual-TLS handshakes between device
 * identities with two independent TLS stacks, OpenSSL (`s_server` /
 * `s_client`) and GnuTLS (`gnutls-serv` / `gnutls-cli`). Servers require and
 * verify a client certificate; a client verifies the server (roots and host
 * name = server id), presents its new certificate first and retries with the
 * old one when the server refuses it, like the agent.
 *
 * As on the devices, exactly the leaf is presented: OpenSSL gets the roots as
 * a verify-only store (`-verifyCAfile`, no default stores), so it cannot
 * auto-chain D after a new leaf (GnuTLS sends only the file's certificates).
 *
 * Private keys are written only into a private (0700) temporary folder, one
 * subfolder per check that is deleted when the check ends; argv carries file
 * paths only. A server is reused by later checks while its material is
 * unchanged. Every process has a deadline and is killed when it passes.
 * Note: gnutls-serv has no bind option and listens on all addresses while a
 * check runs; it only serves clients holding a fleet certificate.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from '../agent/agent.ts';
import type { KeyStore } from '../hal/key-store.ts';
import { TlsError } from '../agent/tls/errors.ts';
import type { Role, Schedule } from '../protocol/steps.ts';
import { silentLogger, type Logger } from '../protocol/log.ts';
import { pool, runTool, ToolServer } from './handshake-tools.ts';

/** The two TLS stacks the proof uses. */
export type StackName = 'openssl' | 'gnutls';

/** One device's exported state: roots and identities (new first) with their HAL key labels. */
export interface CrossStackDevice {
  id: string;
  role: Role;
  anchors: string[];
  identities: { cert: string; keyLabel: string }[];
}

/** Counters of one stack over one check. */
export interface StackTally {
  attempted: number;
  failed: number;
  fallbacks: number;
  failures: string[];
}

/** The result of one check. */
export interface CrossStackResult {
  openssl: StackTally;
  gnutls: StackTally;
  ms: number;
}

/** How the checker runs. */
export interface CrossStackOptions {
  /** PEM private key of a device's HAL key. */
  keyPem: (deviceId: string, keyLabel: string) => Promise<string>;
  stacks?: StackName[];
  /** Deadline per process (ms); default 5 000. */
  timeoutMs?: number;
  /** Processes in flight; default 4. */
  concurrency?: number;
  peers?: (serverId: string, clientId: string) => boolean;
  logger?: Logger;
}

interface Files { bundle: string; ids: { cert: string; key: string }[] }
interface Stack {
  server: { cmd: string; args: (f: Files, port: number) => string[]; ready: RegExp };
  client: { cmd: string; args: (f: Files, id: Files['ids'][number], port: number, serverId: string) => string[] };
  success: RegExp;
  /** Output of a client that refused the server certificate (no fallback then). */
  untrusted: RegExp;
}

const NO_DEFAULT_STORES = ['-no-CAfile', '-no-CApath', '-no-CAstore'];
const STACKS: Record<StackName, Stack> = {
  openssl: {
    server: {
      cmd: 'openssl',
      args: (f, port) => ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', f.ids[0]!.cert, '-key', f.ids[0]!.key, '-verifyCAfile', f.bundle, ...NO_DEFAULT_STORES, '-Verify', '4', '-verify_return_error', '-www'],
      ready: /^ACCEPT/m,
    },
    client: {
      cmd: 'openssl',
      args: (f, id, port, serverId) => ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', serverId, '-verify_hostname', serverId, '-verify', '4', '-verify_return_error', '-verifyCAfile', f.bundle, ...NO_DEFAULT_STORES, '-cert', id.cert, '-key', id.key, '-quiet'],
    },
    success: /HTTP\/1\.0 200 ok/i,
    untrusted: /verify error:|certificate verify failed/,
  },
  gnutls: {
    server: {
      cmd: 'gnutls-serv',
      args: (f, port) => ['--http', '--require-client-cert', '--verify-client-cert', '--x509cafile', f.bundle, '--x509certfile', f.ids[0]!.cert, '--x509keyfile', f.ids[0]!.key, '--port', String(port)],
      ready: /listening on IPv4.*done/,
    },
    client: {
      cmd: 'gnutls-cli',
      args: (f, id, port, serverId) => ['--x509cafile', f.bundle, '--x509certfile', id.cert, '--x509keyfile', id.key, '--verify-hostname', serverId, '-p', String(port), '127.0.0.1'],
    },
    success: /^HTTP\/1\.0 200 OK/m,
    untrusted: /PKI verification of server certificate failed|certificate is NOT trusted/,
  },
};
const REQUEST = 'GET / HTTP/1.0\r\n\r\n';

/** Export the TLS-relevant state of agents (roots, identities), as of now. */
export function captureDevices(agents: Iterable<Agent>): CrossStackDevice[] {
  return [...agents].map((a) => ({ id: a.deviceId, role: a.role, anchors: a.trustAnchors(), identities: a.identities().map((i) => ({ ...i })) }));
}

/**
 * Call `cb(step)` once per step of `schedule`, synchronously inside the
 * change that made every agent of the step's role complete it (a step
 * boundary: capture the state right there). Returns an unsubscribe function.
 */
export function watchStepBoundaries(agents: readonly Agent[], schedule: Schedule, cb: (step: string) => void): () => void {
  const seen = new Set<string>();
  const onChange = () => {
    for (const step of schedule.steps) {
      if (seen.has(step.id)) continue;
      if (agents.filter((a) => a.role === step.role).every((a) => a.snapshot().rotation?.completed.includes(step.id))) {
        seen.add(step.id);
        cb(step.id);
      }
    }
  };
  const offs = agents.map((a) => a.onChange(onChange));
  return () => offs.forEach((off) => off());
}

/** A `keyPem` source over in-memory key stores by device id (pem keys only). */
export function pemKeysOf(stores: ReadonlyMap<string, KeyStore>): CrossStackOptions['keyPem'] {
  return async (id, label) => {
    const ref = await stores.get(id)?.tlsKey?.(label);
    if (ref?.kind !== 'pem') throw new TlsError('E_TLS_KEY_UNSUPPORTED', `no in-memory TLS key "${label}" for ${id}`);
    return ref.keyPem;
  };
}

const sha = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 24);

/** The checker: keeps a private folder and reusable servers; see the module comment. */
export class CrossStack {
  /** The private (0700) folder; key files exist in it only while a check runs. */
  readonly dir = mkdtempSync(join(tmpdir(), 'trustroll-xstack-'));
  private readonly servers = new Map<string, ToolServer>();
  private checks = 0;

  constructor(private readonly o: CrossStackOptions) {}

  /** Handshake every client with every (peer) server in `devices`, with each stack. */
  async check(devices: readonly CrossStackDevice[], label = 'state'): Promise<CrossStackResult> {
    const t0 = performance.now();
    const work = join(this.dir, `check-${++this.checks}`);
    mkdirSync(work, { mode: 0o700 });
    const stacks = this.o.stacks ?? ['openssl', 'gnutls'];
    const limit = this.o.concurrency ?? 4;
    const timeoutMs = this.o.timeoutMs ?? 5_000;
    const out: CrossStackResult = { openssl: tally(), gnutls: tally(), ms: 0 };
    try {
      const files = new Map<string, Files>();
      for (const d of devices) files.set(d.id, await this.write(work, d));
      const servers = devices.filter((d) => d.role === 'server');
      const clients = devices.filter((d) => d.role === 'client');
      const used = new Set<string>();
      const starts = stacks.flatMap((s) => servers.map((d) => ({ s, d })));
      const ports = new Map<string, number>();
      await pool(starts, limit, async ({ s, d }) => {
        const key = sha(s, ...d.anchors, d.identities[0]!.cert, d.identities[0]!.keyLabel, d.id);
        used.add(key);
        let srv = this.servers.get(key);
        if (!srv?.running) {
          const spec = STACKS[s].server;
          srv = await ToolServer.start(spec.cmd, (port) => spec.args(files.get(d.id)!, port), spec.ready, timeoutMs);
          this.servers.set(key, srv);
        }
        ports.set(`${s}/${d.id}`, srv.port);
      });
      const pairs = stacks.flatMap((s) => servers.flatMap((srv) => clients.filter((c) => !this.o.peers || this.o.peers(srv.id, c.id)).map((c) => ({ s, srv, c }))));
      await pool(pairs, limit, async ({ s, srv, c }) => {
        const t = out[s];
        t.attempted++;
        const r = await this.pair(STACKS[s], files.get(c.id)!, ports.get(`${s}/${srv.id}`)!, srv.id, timeoutMs);
        if (r.ok && r.index > 0) t.fallbacks++;
        if (!r.ok) {
          t.failed++;
          if (t.failures.length < 50) t.failures.push(`${label}: ${c.id} -> ${srv.id} (${s}): ${r.reason}`);
        }
      });
      for (const [key, srv] of this.servers) {
        if (used.has(key)) continue;
        this.servers.delete(key);
        await srv.stop();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    out.ms = performance.now() - t0;
    (this.o.logger ?? silentLogger).info('cross-stack check', { label, openssl: summary(out.openssl), gnutls: summary(out.gnutls), ms: Math.round(out.ms) });
    return out;
  }

  private async pair(stack: Stack, f: Files, port: number, serverId: string, timeoutMs: number): Promise<{ ok: boolean; index: number; reason: string }> {
    let reason = 'no identity';
    for (const [index, id] of f.ids.entries()) {
      const run = await runTool(stack.client.cmd, stack.client.args(f, id, port, serverId), { input: REQUEST, timeoutMs });
      const text = `${run.stdout}\n${run.stderr}`;
      if (stack.success.test(run.stdout)) return { ok: true, index, reason: '' };
      const untrusted = stack.untrusted.test(text);
      reason = run.timedOut ? `timed out after ${timeoutMs} ms` : untrusted ? 'client rejected the server certificate' : `server refused identity ${index} (${lastLine(text)})`;
      if (untrusted || run.timedOut) break;
    }
    return { ok: false, index: -1, reason };
  }

  private async write(work: string, d: CrossStackDevice): Promise<Files> {
    const dir = join(work, d.id.replace(/[^A-Za-z0-9_.-]/g, '_'));
    mkdirSync(dir, { mode: 0o700 });
    const put = (name: string, body: string, mode = 0o644) => {
      const p = join(dir, name);
      writeFileSync(p, body, { mode });
      return p;
    };
    const ids: Files['ids'] = [];
    for (const [n, i] of d.identities.entries()) {
      const key = join(dir, `key-${sha(i.keyLabel)}.pem`);
      if (!ids.some((x) => x.key === key)) put(`key-${sha(i.keyLabel)}.pem`, await this.o.keyPem(d.id, i.keyLabel), 0o600);
      ids.push({ cert: put(`identity-${n}.pem`, i.cert), key });
    }
    return { bundle: put('roots.pem', d.anchors.join('')), ids };
  }

  /** Stop every server and delete the private folder. */
  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
    this.servers.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function tally(): StackTally {
  return { attempted: 0, failed: 0, fallbacks: 0, failures: [] };
}

function summary(t: StackTally) {
  return { attempted: t.attempted, failed: t.failed, fallbacks: t.fallbacks };
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !/^(depth=|verify return:)/.test(l));
  return (lines[lines.length - 1] ?? 'no output').slice(0, 160);
}
